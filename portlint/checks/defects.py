"""PL109: patterns the target's compiler version is known to fail on (its own bugs).

The facts are in the profile's ``defects`` (which pattern, which toolchain versions, what
happens, the workaround, the evidence); the patterns are declared once in
``portlint.defect_patterns``. A defect of another toolchain version stays silent.
"""

from __future__ import annotations

from collections.abc import Iterator

from portlint.checks.base import CheckContext, check
from portlint.defect_patterns import DEFECT_PATTERNS
from portlint.findings import NODE, RawFinding
from portlint.target import Target

SHOWN_NODES = 4


def _has_defects(target: Target) -> bool:
    return bool(target.active_defects)


@check("toolchain_defect", applies=_has_defects)
def toolchain_defect(ctx: CheckContext) -> Iterator[RawFinding]:
    target = ctx.target
    for defect in target.active_defects:
        pattern = DEFECT_PATTERNS[defect.pattern]
        for match in ctx.view.derived(f"defect:{pattern.name}", pattern.find):
            members = ", ".join(f'"{n}"' for n in match.nodes[:SHOWN_NODES])
            hidden = len(match.nodes) - SHOWN_NODES
            more = f" and {hidden} more" if hidden > 0 else ""
            yield RawFinding(
                match.anchor,
                NODE,
                f"{target.toolchain} {target.toolchain_version} fails on this pattern "
                f"({match.shape}; nodes {members}{more}): {defect.what}",
                match.op_type,
                actual=match.shape,
                limit=f"known defect {defect.id}",
                source=defect.source,
                verified=defect.verified,
                effect=defect.effect,
                note=f"Workaround: {defect.workaround}."
                + (f" Evidence: {defect.note}" if defect.note else ""),
            )

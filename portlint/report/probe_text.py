"""What ``portlint probe`` prints: each profile fact confirmed, contradicted or untestable.

A contradicted fact shows what ``check`` predicts, what the compiler did instead, and the
compiler's own words, per probe, so the profile edit it calls for is plain.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from portlint.probe.session import CONFIRMED, CONTRADICTED, UNTESTABLE, FactVerdict, ProbeRun

WORDS = {
    "reject": "the build fails",
    "cpu": "runs on the CPU",
    "slow": "runs on the NPU, with layers of the toolchain's own on the CPU",
    "npu": "runs on the NPU",
    "untestable": "no verdict",
}
STYLE = {CONFIRMED: "green", CONTRADICTED: "bold red", UNTESTABLE: "dim"}


def _contradiction_lines(fact: FactVerdict) -> list[str]:
    lines = []
    for o in fact.outcomes:
        if o.agrees is not False:
            continue
        said = f" — {escape(o.message)}" if o.message else ""
        lines.append(
            f"    {escape(o.probe.id)}: check says {WORDS[o.predicted]}; "
            f"{escape(o.result.toolchain)}: {WORDS[o.observed]} ({o.result.outcome}){said}"
        )
    return lines


def render_probe(run: ProbeRun, console: Console, verbose: bool = False) -> None:
    console.print(
        f"[bold]{run.target.name}[/] — {len(run.outcomes)} probes through "
        f"{escape(run.toolchain)} {escape(run.version)} (profile: "
        f"{escape(run.target.toolchain)} {escape(run.target.toolchain_version)})"
    )
    console.print(
        f" {run.count(CONFIRMED)} facts confirmed · {run.count(CONTRADICTED)} contradicted · "
        f"{run.count(UNTESTABLE)} untestable"
    )
    for verdict in (CONTRADICTED, UNTESTABLE, CONFIRMED):
        facts = [f for f in run.facts if f.verdict == verdict]
        if not facts or (verdict == CONFIRMED and not verbose):
            continue
        console.print(f"\n[{STYLE[verdict]}]{verdict} ({len(facts)})[/]")
        for fact in facts:
            reason = f": {escape(fact.reason)}" if fact.reason else ""
            console.print(f"  {escape(fact.fact)}{reason}", soft_wrap=True)
            if verdict == CONTRADICTED:
                for line in _contradiction_lines(fact):
                    console.print(line, soft_wrap=True)

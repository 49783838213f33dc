"""``docs/targets/validation.md``, generated from the recorded compiler evidence.

For every evidence file (``targets/evidence/<target>/<toolchain>-<version>.yaml``): what was
probed, with which compiler version and when, and for each profile fact what the compiler
did and what ``check`` predicts from the profile today. Written from the records, never by
hand, so it says exactly what ``tests/test_evidence.py`` holds the profiles to.
"""

from __future__ import annotations

from collections import Counter

from portlint.probe.evidence import Evidence, recorded
from portlint.probe.judge import LABELS, UNTESTABLE
from portlint.probe.plan import fact_for
from portlint.probe.replay import Replayed, profile_for, replay
from portlint.target import Target

CELL = {**LABELS, None: "—"}


def _fact_rows(replayed: list[Replayed], target: Target) -> list[str]:
    rows = ["| fact | probe | compiler | check | |", "|---|---|---|---|---|"]
    for item in replayed:
        r = item.record
        agree = "" if r.compiler == UNTESTABLE else ("✓" if item.problem is None else "✗")
        if _runtime_only(item):
            agree = "runtime limit"  # the converter built it; the device decides
        said = f" ({r.message})" if r.message and r.compiler != "npu" else ""
        fact = fact_for(r.id, r.fact, target)
        rows.append(
            f"| `{fact}` | `{r.id}` | {CELL[r.compiler]}{_escape(said)} | "
            f"{CELL[item.predicted]} | {agree} |"
        )
    return rows


def _runtime_only(item: Replayed) -> bool:
    """A violation of a limit the device's runtime enforces, which the converter built: no
    comparison was made."""
    return item.runtime and item.record.compiler != "reject"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _section(evidence: Evidence) -> list[str]:
    target = profile_for(evidence)
    replayed = [replay(r, evidence, target) for r in evidence.records]
    judged = [x for x in replayed if x.record.compiler != UNTESTABLE and not _runtime_only(x)]
    agree = sum(1 for x in judged if x.problem is None)
    runtime = sum(1 for x in replayed if _runtime_only(x))
    kinds = Counter(r.compiler for r in evidence.records)
    facts = {r.fact for r in evidence.records}
    source = f"targets/evidence/{evidence.target}/{evidence.path.name if evidence.path else ''}"
    return [
        f"## {target.name}: {evidence.toolchain} {evidence.version}",
        "",
        f"Recorded {evidence.recorded} with `portlint probe -t {evidence.target} --record "
        f"targets/evidence` ([{source}](../../{source})): {len(evidence.records)} probes of "
        f"{len(facts)} facts; the compiler built {kinds['npu']} with the probed node on the "
        f"NPU, {kinds['slow']} with it on the NPU and layers of its own on the CPU, "
        f"{kinds['cpu']} with it on the CPU, failed {kinds['reject']}, gave no verdict "
        f"on {kinds[UNTESTABLE]}. `check` with the `{target.name}` profile predicts "
        f"**{agree} of {len(judged)}**"
        + (f" ({runtime} more probe a limit the device's runtime enforces)" if runtime else "")
        + ".",
        "",
        *_fact_rows(replayed, target),
        "",
    ]


def render_validation() -> str:
    lines = [
        "# Validation: the profiles against the compilers",
        "",
        "Every profile fact a compiler that installs with pip can test is probed: one small "
        "model per op the profile names (and per op exporters commonly write), two per limit "
        "(just inside and just outside), and one per block exporters commonly write (SiLU "
        "as Sigmoid and Mul, GELU in its Erf and tanh forms, LayerNorm native and "
        "decomposed, attention, channel shuffle, a DFL head, an NMS tail, dynamic batch, "
        "large Resize scales, grouped convs), each probed node or block between two Relus "
        "as in a real network. The compiler's answer is recorded per toolchain version in "
        "`targets/evidence/`; CI rebuilds every probe model from its recipe and asks `check` "
        "the same question (`tests/test_evidence.py`), so a profile that contradicts a "
        "recorded compiler does not merge. Conversion only: nothing here ran on a board.",
        "",
        "Compiler: what it did with the probed node (NPU, CPU, or the build fails, with its "
        "own message). Check: what `check` predicts from the profile as it is now. A limit "
        "the profile marks `enforced_by: runtime` is the device runtime's, not the "
        "converter's: a conversion that accepts it neither confirms nor contradicts it.",
        "",
    ]
    for evidence in recorded():
        lines += _section(evidence)
    return "\n".join(lines).rstrip() + "\n"

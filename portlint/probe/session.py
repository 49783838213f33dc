"""``portlint probe``: plan a profile's probes, run them, and judge each fact.

A fact is confirmed when the compiler did what ``check`` predicts for every probe of it,
contradicted when it did something else for any, and untestable when no probe of it got a
verdict (or none could be built).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from portlint.probe.plan import Probe, Unprobed, plan
from portlint.probe.run import ProbeOutcome, run_probes
from portlint.target import Target
from portlint.toolchains.run import require_interpreter
from portlint.verify import check_configured, toolchain_for

CONFIRMED, CONTRADICTED, UNTESTABLE = "confirmed", "contradicted", "untestable"
RUNTIME_REASON = "a limit the device's runtime enforces: the converter built it"


@dataclass(frozen=True)
class FactVerdict:
    fact: str
    verdict: str  # confirmed | contradicted | untestable
    outcomes: tuple[ProbeOutcome, ...] = ()
    reason: str = ""  # why untestable


@dataclass
class ProbeRun:
    """Every probe of one target, run through its compiler, and each fact's verdict."""

    target: Target
    toolchain: str
    version: str
    outcomes: list[ProbeOutcome]
    unprobed: list[Unprobed]
    facts: list[FactVerdict] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(1 for f in self.facts if f.verdict == verdict)


def judge_facts(outcomes: list[ProbeOutcome], unprobed: list[Unprobed]) -> list[FactVerdict]:
    by_fact: dict[str, list[ProbeOutcome]] = {}
    for outcome in outcomes:
        by_fact.setdefault(outcome.probe.fact, []).append(outcome)
    verdicts = []
    for fact, found in by_fact.items():
        judged = [o for o in found if o.agrees is not None]
        runtime = any(o.runtime and o.agrees is None for o in found)
        reason = ""
        if any(o.agrees is False for o in judged):
            verdict = CONTRADICTED
        elif runtime:  # the limit itself was never put to the converter
            verdict, reason = (
                UNTESTABLE,
                "a limit the device's runtime enforces: the converter built it",
            )
        elif judged:
            verdict = CONFIRMED
        else:
            verdict, reason = UNTESTABLE, "no verdict from the compiler"
        verdicts.append(FactVerdict(fact, verdict, tuple(found), reason))
    for item in unprobed:
        if item.fact not in by_fact:
            verdicts.append(FactVerdict(item.fact, UNTESTABLE, reason=item.reason))
    return sorted(verdicts, key=lambda v: v.fact)


def _wanted(only: str | None) -> list[str]:
    return [w for w in (only or "").split(",") if w]


def select(probes: list[Probe], only: str | None) -> list[Probe]:
    """Probes whose id contains one of the comma-separated ``only`` substrings."""
    wanted = _wanted(only)
    return [p for p in probes if any(w in p.id for w in wanted)] if wanted else probes


def probe_target(
    target: Target,
    *,
    toolchain_python: str | None = None,
    configured: Mapping[str, str] | None = None,
    only: str | None = None,
    jobs: int = 2,
    timeout: float = 300.0,
    done: Callable[[ProbeOutcome, int], None] | None = None,
) -> ProbeRun:
    """Run the probes of ``target``'s facts through its compiler; ``done(outcome, total)``
    is called as each finishes."""
    check_configured(configured or {})
    toolchain, chip = toolchain_for(target)
    interpreter = require_interpreter(toolchain, toolchain_python, configured or {})
    probes, unprobed = plan(target)
    probes = select(probes, only)
    if only:
        unprobed = [u for u in unprobed if any(w in u.fact for w in _wanted(only))]

    def finished(outcome: ProbeOutcome) -> None:
        if done is not None:
            done(outcome, len(probes))

    outcomes = run_probes(
        probes,
        target,
        toolchain,
        chip,
        interpreter.python,
        jobs=jobs,
        timeout=timeout,
        done=finished,
    )
    return ProbeRun(
        target,
        toolchain.package,
        interpreter.version or "",
        outcomes,
        unprobed,
        judge_facts(outcomes, unprobed),
    )

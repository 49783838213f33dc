"""What a check is: a function from (graph view, target, rule) to raw findings, by name.

Rules name their check (``check: <name>`` in ``rules/PL*.yaml``); a check module registers
its functions here with ``@check``. ``portlint.checks.catalog`` imports every check module,
so whoever runs checks imports the catalogue and the registry is complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from portlint.findings import RawFinding
from portlint.graph_view import GraphView
from portlint.target import Target


@dataclass(frozen=True)
class CheckContext:
    view: GraphView
    target: Target
    rule: str


CheckFunction = Callable[[CheckContext], Iterator[RawFinding]]
CHECKS: dict[str, CheckFunction] = {}
APPLIES: dict[str, Callable[[Target], bool]] = {}
"""For checks that only some targets' facts switch on: which ones (the generated docs say)."""


def check(
    name: str, applies: Callable[[Target], bool] | None = None
) -> Callable[[CheckFunction], CheckFunction]:
    """Register ``func`` as the check rules name with ``check: <name>``."""

    def register(func: CheckFunction) -> CheckFunction:
        CHECKS[name] = func
        if applies is not None:
            APPLIES[name] = applies
        return func

    return register

"""Checks: pure functions from (graph view, target) to raw findings.

Most rules need no check of their own: the generic ``constraint`` check evaluates every
target constraint naming the rule. The few rules that cannot be written as a limit on one
field (op support, opsets, control flow, dynamic shapes) have a small bespoke check here.
Checks never print and never mutate; the engine turns their findings into reports.
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


from portlint.checks import (  # noqa: E402,F401  (registration)
    constraint,
    defects,
    ops,
    postprocess,
    quant_layers,
    quant_precision,
    quant_scales,
    quant_weights,
    shapes,
)

"""Every check, registered: import this (not a single check module) to run or list checks."""

from __future__ import annotations

from portlint.checks import (  # noqa: F401  (each module registers its checks)
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
from portlint.checks.base import APPLIES, CHECKS, CheckContext, CheckFunction
from portlint.errors import ProfileError
from portlint.rule import Rule

__all__ = ["APPLIES", "CHECKS", "CheckContext", "CheckFunction", "check_of"]


def check_of(rule: Rule) -> CheckFunction:
    """The function that evaluates ``rule``; a rule file naming no known check fails in one
    line that names the file (rules load before the checks, so this is where it shows)."""
    if rule.check not in CHECKS:
        raise ProfileError(
            f"{rule.path}: check: no check named {rule.check!r} "
            f"(known: {', '.join(sorted(CHECKS))})"
        )
    return CHECKS[rule.check]

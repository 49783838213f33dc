"""Checks: pure functions from (graph view, target) to raw findings.

Most rules need no check of their own: the generic ``constraint`` check evaluates every
target constraint naming the rule. The few rules that cannot be written as a limit on one
field (op support, opsets, control flow, dynamic shapes) have a small bespoke check here.
Checks never print and never mutate; the engine turns their findings into reports.

What a check is and its ``@check`` registry: ``portlint.checks.base``; every check, with
all check modules imported: ``portlint.checks.catalog``.
"""

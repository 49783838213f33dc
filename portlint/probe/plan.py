"""Which probes test a profile: one per op it names (and per op exporters commonly write
that it does not), and two per limit, just inside and just outside.

A probe names the fact it tests, so a compiler outcome confirms or contradicts that fact.
Block probes (``block:<name>``, fact ``blocks.<name>``) test the profile as a whole on a form
exporters write: SiLU as Sigmoid and Mul, a decomposed LayerNorm, attention, a DFL head.
What cannot be probed with a one-node model is listed with the reason, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from portlint.probe.blocks import BLOCKS
from portlint.probe.boundary import boundary, limit_recipe
from portlint.probe.factory import BESPOKE
from portlint.probe.fixed_models import COMMON
from portlint.probe.parts import SHAPE_PRESERVING, WINDOWED, Unsupported
from portlint.probe.recipes import Recipe, block_recipe, build_recipe, op_recipe
from portlint.target import Constraint, Target

BUILDABLE_OPS = frozenset(
    {
        *SHAPE_PRESERVING,
        *BESPOKE,
        *COMMON,
        *WINDOWED,
        *("Resize", "GlobalAveragePool", "GlobalMaxPool"),
    }
)
"""Ops the probe factory builds a one-node model of: what torch, timm and Ultralytics
exports commonly contain, so an op a profile does not list is probed too."""
INSIDE, OUTSIDE = "inside", "outside"


@dataclass(frozen=True)
class Probe:
    """One model that tests one fact of a profile."""

    id: str  # op:Softmax, limit:<constraint id>:inside, block:silu
    fact: str  # ops.Softmax, unlisted.Erf, constraints.<id>, blocks.silu
    recipe: Recipe
    op: str  # the op of the probed node ("" for a block: its nodes are named probe.<role>)


@dataclass(frozen=True)
class Unprobed:
    """A fact no one-node probe tests, and why."""

    fact: str
    reason: str


def _op_fact(target: Target, op: str) -> str:
    """``ops.X`` for an op the profile lists; ``unlisted.X`` for one it does not, which the
    profile's ``unsupported_ops`` effect covers."""
    return f"ops.{op}" if op in target.ops else f"unlisted.{op}"


def fact_for(probe_id: str, recorded: str, target: Target) -> str:
    """The fact a recorded probe tests under ``target`` as it is now: an op probe recorded as
    ``unlisted.X`` tests ``ops.X`` once the profile lists X (and the other way round)."""
    return _op_fact(target, probe_id[3:]) if probe_id.startswith("op:") else recorded


def op_probes(target: Target) -> tuple[list[Probe], list[Unprobed]]:
    probes, unprobed = [], []
    for op in sorted({*target.ops, *BUILDABLE_OPS}):
        recipe = op_recipe(op)
        try:
            build_recipe(recipe)
        except Unsupported as exc:
            unprobed.append(Unprobed(_op_fact(target, op), f"{op}: {exc}"))
            continue
        probes.append(Probe(f"op:{op}", _op_fact(target, op), recipe, op))
    return probes, unprobed


def _recipe_op(recipe: Recipe) -> str:
    return recipe.get("op", "Relu")  # a graph-input probe is a Relu on that input


def limit_probes(target: Target) -> tuple[list[Probe], list[Unprobed]]:
    probes, unprobed = [], []
    for c in target.constraints:
        fact = f"constraints.{c.id}"
        if c.predicate in ("table", "static"):
            unprobed.append(Unprobed(fact, f"a {c.predicate} constraint has no single boundary"))
            continue
        try:
            recipes = _limit_recipes(c)
        except Unsupported as exc:
            unprobed.append(Unprobed(fact, str(exc)))
            continue
        for side, recipe in recipes.items():
            probes.append(Probe(f"limit:{c.id}:{side}", fact, recipe, _recipe_op(recipe)))
    return probes, unprobed


def _limit_recipes(c: Constraint) -> dict[str, Recipe]:
    inside, outside = boundary(c.field or "", c.predicate or "", c.operand)
    return {INSIDE: limit_recipe(c, inside), OUTSIDE: limit_recipe(c, outside)}


def block_probes() -> list[Probe]:
    return [Probe(f"block:{name}", f"blocks.{name}", block_recipe(name), "") for name in BLOCKS]


def plan(target: Target) -> tuple[list[Probe], list[Unprobed]]:
    """Every probe for ``target``'s facts, and the facts none tests."""
    ops, ops_unprobed = op_probes(target)
    limits, limits_unprobed = limit_probes(target)
    return [*ops, *limits, *block_probes()], [*ops_unprobed, *limits_unprobed]

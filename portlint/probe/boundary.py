"""Both sides of a profile limit: a value just inside it and one just outside, as models.

A limit in a profile (``kernel_shape`` at most 7, ``mode`` one of nearest/linear, batch 1)
is a claim about the compiler; a probe tests it with two one-node models that differ only in
that value. The values come from the loaded profile, so probes follow profile edits.
"""

from __future__ import annotations

from typing import Any

import onnx

from portlint.fields import GRAPH_INPUT, TENSOR
from portlint.probe.parts import Unsupported
from portlint.probe.recipes import Recipe, build_recipe, input_recipe, op_recipe
from portlint.target import Condition, Constraint

ALTERNATIVES = {
    "mode": ["nearest", "linear", "cubic"],
    "group_kind": ["regular", "depthwise", "grouped"],
    "dtype": ["float32", "float16", "float64", "uint8", "int8", "int16", "int32", "int64", "bool"],
    "auto_pad": ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"],
    "attr.auto_pad": ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"],
    "coordinate_transformation_mode": [
        "half_pixel",
        "asymmetric",
        "align_corners",
        "pytorch_half_pixel",
        "tf_crop_and_resize",
    ],
    "nearest_mode": ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"],
    "attr.direction": ["forward", "reverse", "bidirectional"],
    **{
        flag: [0, 1]
        for flag in (
            "attr.ceil_mode",
            "attr.count_include_pad",
            "attr.storage_order",
            "attr.input_forget",
        )
    },
}
"""Fields with a closed set of values: the value outside a limit comes from here (a flag's
other value is 0 or 1, never operand + 1, which the op reads as 1 again)."""
FAMILIES = {"attr.mode": (("constant", "reflect", "edge", "wrap"), ("avg", "max"))}
"""Fields whose values mean different things per op (Pad's mode, RoiAlign's mode): the
alternative to a value comes from its own family, so that the probe stays a valid model."""


def _alternatives(field: str, values: list[Any]) -> list[Any]:
    """The values ``field`` can take, from the family that holds ``values``."""
    for family in FAMILIES.get(field, ()):
        if any(v in family for v in values):
            return list(family)
    return ALTERNATIVES.get(field, [])


def _numeric_alternative(options: list[Any]) -> Any:
    top = max(options)
    if isinstance(top, tuple):
        return tuple(v + 1 for v in top)
    return top + 1


def boundary(field: str, predicate: str, operand: Any) -> tuple[Any, Any]:
    """A value that satisfies the predicate and one that just violates it."""
    if predicate == "range":
        low, high = operand
        return (high, high + 1) if high < 1_000_000 else (low, low - 1)
    if predicate == "max":
        return operand, operand + 1
    if predicate == "min":
        below = operand - 1
        return operand, (-1 if field == "steps" and below == 0 else below)  # a step of 0 is invalid
    if predicate == "multiple_of":
        if operand == 1:  # only fractional values violate it: "integer scale factors"
            return 2, 2.5
        return operand * 2, operand * 2 + 1
    if predicate == "equals":
        if isinstance(operand, bool):
            return operand, not operand
        if isinstance(operand, (int, float)) and not _alternatives(field, [operand]):
            return operand, operand + 1
        if isinstance(operand, tuple):
            return operand, tuple(v + 1 for v in operand)
        other = [v for v in _alternatives(field, [operand]) if v != operand]
        if not other:
            raise Unsupported(f"no alternative value for {field}")
        return operand, other[0]
    if predicate in ("one_of", "not_one_of"):
        inside = operand[0]
        if all(isinstance(o, (int, float, tuple)) for o in operand):
            outside = _numeric_alternative(operand)
        else:
            choices = [v for v in _alternatives(field, operand) if v not in operand]
            if not choices:
                raise Unsupported(f"no value outside {operand} for {field}")
            outside = choices[0]
        return (inside, outside) if predicate == "one_of" else (outside, inside)
    raise Unsupported(f"predicate {predicate}")


def _condition_value(condition: Condition, must_hold: bool) -> Any:
    holding, violating = boundary(condition.field, condition.predicate, condition.operand)
    return holding if must_hold else violating


def limit_recipe(c: Constraint, value: Any) -> Recipe:
    """How to build a small model whose one interesting node (or graph input) has ``value`` in
    ``c``'s field, with ``c``'s ``when`` condition holding and its ``unless`` condition not."""
    if c.scope in (GRAPH_INPUT, TENSOR):
        dims = [1, 8, 16, 16]
        if c.field == "batch":
            dims[0] = value
        elif c.field == "rank":
            dims = [1, 2, 2, 2, 2, 2][: int(value)]
        elif c.field == "dims":
            dims[-1] = value
        elif c.field != "dtype":
            raise Unsupported(c.field)
        return input_recipe(dims, value if c.field == "dtype" else "float32")
    errors = []
    for op in sorted(c.ops or ("Cast" if c.field == "dtype" else "Relu",)):
        settings = [
            (condition.field, _condition_value(condition, must_hold))
            for condition, must_hold in ((c.when, True), (c.unless, False))
            if condition is not None
        ]
        recipe = op_recipe(op, [*settings, (c.field, value)])
        try:
            build_recipe(recipe)
        except Unsupported as exc:
            errors.append(str(exc))
            continue
        return recipe
    raise Unsupported("; ".join(errors) or "no ops")


def limit_model(c: Constraint, value: Any) -> onnx.ModelProto:
    return build_recipe(limit_recipe(c, value))

"""Every limit in every shipped profile, probed on both sides of its boundary.

The values come from the loaded profiles, not from this file: change a limit in
``targets/*.yaml`` and these tests follow it. Each case builds a one-node model just
inside the limit (no finding for that constraint) and just outside it (exactly that
finding, naming the node, the actual value and the limit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import findings_of, run_check
from model_factory import NODE_NAME, Spec, Unsupported, apply, build, graph_input_model

from portlint.checks.constraint import UNEVALUABLE_RULE
from portlint.fields import GRAPH_INPUT, NODE, TENSOR, get_field
from portlint.predicates import PREDICATES, format_value
from portlint.target import Condition, Constraint, load_target, shipped_target_names

ALTERNATIVES = {
    "mode": ["nearest", "linear", "cubic"],
    "group_kind": ["regular", "depthwise", "grouped"],
    "dtype": ["float32", "float16", "float64", "uint8", "int8", "int16", "int32", "int64", "bool"],
    "auto_pad": ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"],
    "attr.auto_pad": ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"],
    "attr.mode": ["constant", "reflect", "edge"],
    "coordinate_transformation_mode": [
        "half_pixel",
        "asymmetric",
        "align_corners",
        "pytorch_half_pixel",
        "tf_crop_and_resize",
    ],
    "nearest_mode": ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"],
    "attr.direction": ["forward", "reverse", "bidirectional"],
}


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
        return operand, operand - 1
    if predicate == "multiple_of":
        if operand == 1:  # only fractional values violate it: "integer scale factors"
            return 2, 2.5
        return operand * 2, operand * 2 + 1
    if predicate == "equals":
        if isinstance(operand, bool):
            return operand, not operand
        if isinstance(operand, (int, float)):
            return operand, operand + 1
        if isinstance(operand, tuple):
            return operand, tuple(v + 1 for v in operand)
        other = [v for v in ALTERNATIVES.get(field, []) if v != operand]
        if not other:
            raise Unsupported(f"no alternative value for {field}")
        return operand, other[0]
    if predicate in ("one_of", "not_one_of"):
        inside = operand[0]
        if all(isinstance(o, (int, float, tuple)) for o in operand):
            outside = _numeric_alternative(operand)
        else:
            choices = [v for v in ALTERNATIVES.get(field, []) if v not in operand]
            if not choices:
                raise Unsupported(f"no value outside {operand} for {field}")
            outside = choices[0]
        return (inside, outside) if predicate == "one_of" else (outside, inside)
    raise Unsupported(f"predicate {predicate}")


def _condition_value(condition: Condition, must_hold: bool) -> Any:
    holding, violating = boundary(condition.field, condition.predicate, condition.operand)
    return holding if must_hold else violating


def _model_for(c: Constraint, value: Any):
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
        return graph_input_model(dims, value if c.field == "dtype" else "float32")
    errors = []
    for op in sorted(c.ops or ("Cast" if c.field == "dtype" else "Relu",)):
        spec = Spec(op)
        try:
            for condition, must_hold in ((c.when, True), (c.unless, False)):
                if condition is not None:
                    spec = apply(spec, condition.field, _condition_value(condition, must_hold))
            return build(op, c.field, value, base=spec)
        except Unsupported as exc:
            errors.append(str(exc))
    raise Unsupported("; ".join(errors) or "no ops")


def _cases() -> list[Any]:
    cases = []
    for name in shipped_target_names():
        for c in load_target(name).constraints:
            if c.predicate in ("table", "static"):
                continue
            label = f"{name}-{c.index}-{c.rule}-{c.field}"
            cases.append(pytest.param(name, c.index, id=label))
    return cases


def _matching(report, c: Constraint, location: str):
    requirement = PREDICATES[c.predicate].explain_requirement(c.operand)
    label = get_field(c.field).label
    return [
        f
        for f in findings_of(report, c.rule, location)
        if f.limit == requirement and f"{label} " in f.message
    ]


@pytest.mark.parametrize(("target", "index"), _cases())
def test_limit_boundary(target: str, index: int, tmp_path: Path) -> None:
    c = load_target(target).constraints[index]
    try:
        passing, failing = boundary(c.field, c.predicate, c.operand)
        good, bad = _model_for(c, passing), _model_for(c, failing)
    except Unsupported as exc:
        pytest.skip(f"no single-op probe: {exc}")
    location = NODE_NAME if c.scope == NODE else "x"
    good_report = run_check(good, tmp_path, target, name="good.onnx")
    assert not findings_of(good_report, UNEVALUABLE_RULE, location)
    assert _matching(good_report, c, location) == [], f"{passing!r} should pass"
    bad_report = run_check(bad, tmp_path, target, name="bad.onnx")
    found = _matching(bad_report, c, location)
    assert len(found) == 1, f"{failing!r} should violate {c.rule}: {bad_report.findings}"
    field_value = format_value(
        failing, spatial=c.field in ("kernel_shape", "strides", "dilations", "resize_scales")
    )
    assert field_value in found[0].message
    assert found[0].source is not None and found[0].source.key == c.source
    assert found[0].verified == c.verified

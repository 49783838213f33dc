"""Every limit in every shipped profile, probed on both sides of its boundary.

The values come from the loaded profiles, not from this file: change a limit in
``targets/*.yaml`` and these tests follow it. Each case builds a one-node model just
inside the limit (no finding for that constraint) and just outside it (exactly that
finding, naming the node, the actual value and the limit). A limit the factory cannot
build a probe for fails, unless ``UNPROBED`` names it with the reason: an unprobed limit
must be a decision, not a silent skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import findings_of, run_check

from portlint.checks.constraint import UNEVALUABLE_RULE
from portlint.fields import NODE, get_field
from portlint.predicates import PREDICATES, format_value
from portlint.probe.boundary import boundary, limit_model
from portlint.probe.parts import NODE_NAME, Unsupported
from portlint.target import Constraint, load_target, shipped_target_names

UNPROBED: dict[tuple[str, str], str] = {}
"""(target, constraint id) -> why no one-op model shows the limit. Empty: every limit of
every shipped profile is probed."""


def _cases() -> list[Any]:
    cases = []
    for name in shipped_target_names():
        for c in load_target(name).constraints:
            if c.predicate in ("table", "static"):
                continue
            label = f"{name}-{c.id}-{c.rule}-{c.field}"
            cases.append(pytest.param(name, c.index, id=label))
    return cases


def _unprobed(target: str, c: Constraint) -> str | None:
    return UNPROBED.get((target, c.id))


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
    reason = _unprobed(target, c)
    try:
        passing, failing = boundary(c.field, c.predicate, c.operand)
        good, bad = limit_model(c, passing), limit_model(c, failing)
    except Unsupported as exc:
        if reason is None:
            pytest.fail(
                f"no single-op probe: {exc}; extend portlint/probe/factory.py, or list "
                f"{(target, c.id)} in UNPROBED with the reason"
            )
        pytest.skip(f"unprobed: {reason}")
    assert reason is None, f"{target} {c.rule} {c.field} is probed now: drop it from UNPROBED"
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


def test_unprobed_entries_name_shipped_constraints() -> None:
    """An allow-list entry whose constraint was renamed or removed would excuse nothing."""
    known = {(name, c.id) for name in shipped_target_names() for c in load_target(name).constraints}
    assert set(UNPROBED) <= known, sorted(set(UNPROBED) - known)

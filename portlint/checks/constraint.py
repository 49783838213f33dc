"""The generic evaluator: apply a target's declared limits to the nodes and tensors they name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from portlint.checks.base import CheckContext, check
from portlint.fields import GRAPH_INPUT, NODE, TENSOR, Unknown, get_field
from portlint.findings import RawFinding
from portlint.graph_view import GraphView, NodeView, TensorInfo
from portlint.predicates import PREDICATES, format_options, format_value
from portlint.target import Condition, Constraint

UNEVALUABLE_RULE = "PL200"
UNKNOWN_EFFECT = "unknown"
"""Effect of an unevaluable limit: it neither places the node nor blocks the compile."""


def _subjects(constraint: Constraint, view: GraphView) -> Iterator[NodeView | TensorInfo]:
    if constraint.scope == NODE:
        if constraint.ops is None:
            yield from (n for n in view.live_nodes() if constraint.applies_to_op(n.op_type))
        else:
            nodes = [n for op in constraint.ops for n in view.live_by_op.get(op, ())]
            yield from sorted(nodes, key=lambda n: n.index)
    elif constraint.scope == GRAPH_INPUT:
        yield from view.graph_inputs
    elif constraint.scope == TENSOR:
        yield from _live_tensors(view)


def _live_tensors(view: GraphView) -> Iterator[TensorInfo]:
    """Graph inputs and the outputs of nodes that survive folding (what lands on the chip)."""
    yield from view.graph_inputs
    for node in view.live_nodes():
        for name in node.outputs:
            info = view.tensor(name)
            if info is not None:
                yield info


def _location(subject: NodeView | TensorInfo, scope: str) -> tuple[str, str, str | None]:
    if isinstance(subject, NodeView):
        return subject.name, "node", subject.op_type
    return subject.name, "graph_input" if scope == GRAPH_INPUT else "tensor", None


def _value(field_name: str, subject: NodeView | TensorInfo, view: GraphView) -> Any:
    field = get_field(field_name)
    assert field is not None  # validated when the profile was loaded
    return field.get(subject, view)


def conditions_hold(c: Constraint, subject: NodeView | TensorInfo, view: GraphView) -> bool:
    """Whether ``c``'s when/unless conditions let it apply to ``subject``.

    Raises ``Unknown`` when the model leaves a condition's field open.
    """
    for condition, required in ((c.when, True), (c.unless, False)):
        if condition is not None and _holds(condition, subject, view) is not required:
            return False
    return True


def _holds(condition: Condition, subject: NodeView | TensorInfo, view: GraphView) -> bool | None:
    """Whether a when/unless condition holds; None when it does not apply to this subject."""
    value = _value(condition.field, subject, view)
    if value is None:
        return None
    return PREDICATES[condition.predicate].holds(value, condition.operand)


_Row = list[tuple[str, list[Any], bool, bool]]
_COMPILED_TABLES: dict[int, tuple[Any, list[_Row]]] = {}


def _compiled_rows(c: Constraint) -> list[_Row]:
    """Each table row as (field, options, "any" allowed, "=kernel_shape" allowed) entries,
    worked out once per constraint rather than once per node."""
    entry = _COMPILED_TABLES.get(id(c.operand))
    if entry is None or entry[0] is not c.operand:
        rows = [
            [
                (
                    name,
                    [a for a in allowed if not _is_kernel_ref(a)],
                    "any" in allowed,
                    any(_is_kernel_ref(a) for a in allowed),
                )
                for name, allowed in row.items()
            ]
            for row in c.operand
        ]
        entry = _COMPILED_TABLES[id(c.operand)] = (c.operand, rows)
    return entry[1]


def _is_kernel_ref(option: Any) -> bool:
    return isinstance(option, str) and option == "=kernel_shape"


def _row_matches(row: _Row, values: dict[str, Any]) -> bool:
    for field_name, options, any_allowed, kernel_ref in row:
        if any_allowed:
            continue
        value = values[field_name]
        value = tuple(value) if isinstance(value, list) else value
        if value in options:
            continue
        if kernel_ref and value == tuple(values["kernel_shape"] or ()):
            continue
        return False
    return True


def _table_violation(
    c: Constraint, subject: Any, view: GraphView, names: list[str]
) -> RawFinding | None:
    values = {name: _value(name, subject, view) for name in names}
    if any(v is None for v in values.values()):
        return None
    if any(_row_matches(row, values) for row in _compiled_rows(c)):
        return None
    actual = ", ".join(
        f"{get_field(n).label} {format_value(v, get_field(n).spatial)}" for n, v in values.items()
    )
    return _finding(
        c,
        subject,
        f"{_prefix(subject)}{actual} is not a listed combination",
        actual,
        f"one of {len(c.operand)} listed combinations",
    )


def _prefix(subject: NodeView | TensorInfo) -> str:
    return f"{subject.op_type} " if isinstance(subject, NodeView) else ""


def table_fields(c: Constraint) -> list[str]:
    """Fields a combination table reads, in first-mention order (plus the kernel for '=')."""
    names = [f for row in c.operand for f in row]
    if any("=kernel_shape" in values for row in c.operand for values in row.values()):
        names.append("kernel_shape")
    return list(dict.fromkeys(names))


RUNTIME_WORDS = " (the converter builds it; the runtime on the device refuses or miscomputes it)"


def _finding(
    c: Constraint, subject: Any, message: str, actual: str, limit: str, rule: str | None = None
) -> RawFinding:
    location, kind, op_type = _location(subject, c.scope)
    if c.enforced_by == "runtime":
        message += RUNTIME_WORDS
    return RawFinding(
        location,
        kind,
        message,
        op_type,
        actual,
        limit,
        c.source,
        c.verified,
        c.effect,
        rule,
        c.note,
        c.enforced_by,
    )


def _field_violation(c: Constraint, subject: Any, view: GraphView) -> RawFinding | None:
    value = _value(c.field, subject, view)
    if value is None:
        return None
    predicate = PREDICATES[c.predicate]
    if predicate.holds(value, c.operand):
        return None
    field = get_field(c.field)
    shown = format_value(value, field.spatial)
    message = f"{_prefix(subject)}{field.label} {shown} {predicate.explain_failure(c.operand)}"
    limit = predicate.explain_requirement(c.operand)
    return _finding(c, subject, message, shown, limit)


def evaluate(
    c: Constraint,
    subject: NodeView | TensorInfo,
    view: GraphView,
    table_names: list[str] | None = None,
) -> RawFinding | None:
    """Apply one constraint to one subject: a violation, an 'unevaluable' finding, or None."""
    try:
        if not conditions_hold(c, subject, view):
            return None
        if c.predicate == "table":
            return _table_violation(c, subject, view, table_names or table_fields(c))
        return _field_violation(c, subject, view)
    except Unknown as reason:
        what = c.field or "the combination table"
        message = f"could not evaluate {c.rule} ({what}): {reason}"
        finding = _finding(c, subject, message, "unknown", _describe_limit(c), UNEVALUABLE_RULE)
        return replace(finding, effect=UNKNOWN_EFFECT)


def _describe_limit(c: Constraint) -> str:
    if c.predicate in PREDICATES:
        return PREDICATES[c.predicate].explain_requirement(c.operand)
    return f"one of {len(c.operand)} listed combinations" if c.predicate == "table" else ""


def describe(c: Constraint) -> str:
    """The constraint as one sentence, for docs and `portlint targets show`."""
    ops = "every op" if c.ops is None else ", ".join(sorted(c.ops))
    if c.exclude_ops:
        ops += " except " + ", ".join(sorted(c.exclude_ops))
    scope = {NODE: ops, GRAPH_INPUT: "graph inputs", TENSOR: "every tensor"}.get(c.scope, c.scope)
    if c.predicate == "table":
        rows = "; ".join(
            " ".join(f"{get_field(k).label} {format_options(v)}" for k, v in row.items())
            for row in c.operand
        )
        text = f"{scope}: combination must be one of: {rows}"
    elif c.predicate == "static":
        text = "all tensor shapes must be static"
    else:
        field = get_field(c.field)
        text = f"{scope}: {field.label} {PREDICATES[c.predicate].explain_requirement(c.operand)}"
    for condition, word in ((c.when, "when"), (c.unless, "unless")):
        if condition is not None:
            cond_field = get_field(condition.field)
            requirement = PREDICATES[condition.predicate].explain_requirement(condition.operand)
            stated = requirement.replace("must not be", "is not").replace("must be", "is")
            text += f" ({word} {cond_field.label} {stated})"
    return text


@check("constraint")
def check_constraints(ctx: CheckContext) -> Iterator[RawFinding]:
    """Every constraint the target declares for this rule, on every subject it names."""
    for constraint in ctx.target.constraints_for(ctx.rule):
        names = table_fields(constraint) if constraint.predicate == "table" else None
        for subject in _subjects(constraint, ctx.view):
            finding = evaluate(constraint, subject, ctx.view, names)
            if finding is not None:
                yield finding


@check("unevaluable")
def check_unevaluable(ctx: CheckContext) -> Iterator[RawFinding]:
    """PL200 findings come from the constraint evaluator; this check adds none of its own."""
    return iter(())

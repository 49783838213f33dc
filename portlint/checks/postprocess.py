"""PL108: a detector post-processing tail the vendors' recipes cut off and run on the host.

The tail's own unsupported ops are PL101/PL102/PL204 findings already; this one finding is
the advice that ties them together: where the vendor cuts, and what that removes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from portlint.checks import CheckContext, check
from portlint.checks.constraint import evaluate
from portlint.checks.ops import in_target_domain, support_for
from portlint.findings import GRAPH, NODE, RawFinding
from portlint.graph_view import GraphView, NodeView
from portlint.postprocess import Tail, count_ops, find_tail
from portlint.target import SEVERITY_EFFECT, Target

OFF_NPU = ("cpu", "reject")
FIX_COMMAND = "portlint fix MODEL --target {target} --pass strip-postprocess"
SHOWN_HEAD_ENDS = 1
"""Head-end names in the message; all of them go in the note."""


def placement(node: NodeView, view: GraphView, target: Target) -> str:
    """Where the profile puts this node: op support first, then node limits (PL204...).

    Mirrors what the engine derives from findings, so the message agrees with the report
    (limits the user ignored still count: the toolchain does not know about ignores).
    """
    support = support_for(node, target) if in_target_domain(node, target) else None
    if support is None:
        return target.unsupported_effect
    if support.placement != "npu":
        return support.placement
    worst = "npu"
    for constraint in target.constraints:
        if constraint.scope != NODE or not constraint.applies_to_op(node.op_type):
            continue
        finding = evaluate(constraint, node, view)
        if finding is None or finding.rule is not None:  # None, or unevaluable (PL200)
            continue
        effect = constraint.effect or _default_effect(constraint.rule)
        if effect == "reject":
            return effect
        worst = effect if effect == "cpu" or worst == "npu" else worst
    return worst


def _default_effect(rule: str) -> str:
    from portlint.rule import load_rules  # the registry imports the checks: import late

    return SEVERITY_EFFECT[load_rules().get(rule).severity]


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _message(tail: Tail, off_npu: list[NodeView], target: Target) -> str:
    where = f"{len(off_npu)} not on the NPU: {count_ops(off_npu)}" if off_npu else "all on the NPU"
    shown = _quoted(tail.head_ends[:SHOWN_HEAD_ENDS])
    more = ", …" if len(tail.head_ends) > SHOWN_HEAD_ENDS else ""
    return (
        f"post-processing tail of {len(tail.nodes)} nodes ({', '.join(tail.signals)}; "
        f"{where}) after {tail.head_label()} {shown}{more}: cut there with "
        + FIX_COMMAND.format(target=target.name)
    )


@check("postprocess_tail")
def postprocess_tail(ctx: CheckContext) -> Iterator[RawFinding]:
    """One finding per target when the model ends in a detector's decode/NMS tail."""
    view, target = ctx.view, ctx.target
    tail = find_tail(view)
    if tail is None:
        return
    by_name = {n.name: n for n in view.nodes}
    nodes = [by_name[name] for name in tail.nodes]
    off_npu = [n for n in nodes if placement(n, view, target) in OFF_NPU]
    if off_npu and target.partitioning == "single":  # later nodes follow the first one out
        off_npu = [n for n in nodes if n.index >= off_npu[0].index]
    info = target.info.get("postprocessing")
    convention = info if isinstance(info, Mapping) else {}
    note = f"head ends: {_quoted(tail.head_ends)}"
    if convention.get("handling"):
        note += f"; {target.name}: {convention['handling']}"
    first = nodes[0] if nodes else None
    yield RawFinding(
        first.name if first else "model",
        NODE if first else GRAPH,
        _message(tail, off_npu, target),
        first.op_type if first else None,
        f"{len(tail.nodes)}-node tail after {tail.head_label()}",
        "model ends at the head outputs; decode and NMS on the host",
        convention.get("source"),
        bool(convention.get("verified", True)),
        note=note,
    )

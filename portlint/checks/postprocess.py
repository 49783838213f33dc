"""PL108: a detector post-processing tail the vendors' recipes cut off and run on the host.

The tail's own unsupported ops are PL101/PL102/PL204 findings already; this one finding is
the advice that ties them together: where the vendor cuts, and what that removes.

A tail with no detector signal but a TopK (a classifier's top-5) is reported only when the
target does not run all of it on the NPU, and then as a top-k tail, without the target's
detector convention: a classifier whose top-k runs on the NPU needs no cut.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from portlint.checks.base import CheckContext, check
from portlint.checks.constraint import evaluate
from portlint.checks.ops import in_target_domain, support_for
from portlint.findings import GRAPH, NODE, RawFinding
from portlint.graph_view import GraphView, NodeView
from portlint.postprocess import Tail, count_ops, find_tail, quoted
from portlint.rule import load_rules
from portlint.target import SEVERITY_EFFECT, Fact, Target

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


def off_npu(tail: Tail, view: GraphView, target: Target) -> list[NodeView]:
    """The tail's nodes the target does not run on the NPU, in graph order.

    On single-partition toolchains every node after the first one off the NPU follows it.
    """
    by_name = {n.name: n for n in view.nodes}
    nodes = [by_name[name] for name in tail.nodes]
    found = [n for n in nodes if placement(n, view, target) in OFF_NPU]
    if found and target.partitioning == "single":
        found = [n for n in nodes if n.index >= found[0].index]
    return found


def worth_cutting(tail: Tail, off: list[NodeView]) -> bool:
    """A detector's tail always is; a top-k tail only when part of it leaves the NPU."""
    return tail.detector or bool(off)


def _default_effect(rule: str) -> str:
    return SEVERITY_EFFECT[load_rules().get(rule).severity]


def _message(tail: Tail, off: list[NodeView], target: Target) -> str:
    where = f"{len(off)} not on the NPU: {count_ops(off)}" if off else "all on the NPU"
    shown = quoted(tail.head_ends[:SHOWN_HEAD_ENDS])
    more = ", …" if len(tail.head_ends) > SHOWN_HEAD_ENDS else ""
    host = "" if tail.detector else " and run the top-k on the host"
    return (
        f"{tail.kind} of {len(tail.nodes)} nodes ({', '.join(tail.signals)}; "
        f"{where}) after {tail.head_label()} {shown}{more}: cut there{host} with "
        + FIX_COMMAND.format(target=target.name)
    )


def _op_fact(node: NodeView, target: Target) -> Fact | None:
    """The profile fact that keeps ``node`` off the NPU, when op support is what does."""
    support = support_for(node, target) if in_target_domain(node, target) else None
    if support is None:
        return target.unsupported_ops
    return support if support.placement != "npu" else None


@check("postprocess_tail")
def postprocess_tail(ctx: CheckContext) -> Iterator[RawFinding]:
    """One finding per target when the model ends in a detector's decode/NMS tail, or in a
    top-k the target does not run on the NPU."""
    view, target = ctx.view, ctx.target
    tail = find_tail(view)
    if tail is None:
        return
    off = off_npu(tail, view, target)
    if not worth_cutting(tail, off):
        return
    by_name = {n.name: n for n in view.nodes}
    first = by_name[tail.nodes[0]] if tail.nodes else None
    note = f"head ends: {quoted(tail.head_ends)}"
    if tail.detector:
        info = target.info.get("postprocessing")
        convention = info if isinstance(info, Mapping) else {}
        if convention.get("handling"):
            note += f"; {target.name}: {convention['handling']}"
        source, verified = convention.get("source"), bool(convention.get("verified", True))
        limit = "model ends at the head outputs; decode and NMS on the host"
    else:  # the target's convention is about detectors: cite why the top-k leaves the NPU
        fact = next(filter(None, (_op_fact(n, target) for n in off)), None)
        source, verified = (fact.source, fact.verified) if fact else (None, True)
        limit = "model ends at the head outputs; top-k on the host"
    what = "tail" if tail.detector else "top-k tail"
    yield RawFinding(
        first.name if first else "model",
        NODE if first else GRAPH,
        _message(tail, off, target),
        first.op_type if first else None,
        f"{len(tail.nodes)}-node {what} after {tail.head_label()}",
        limit,
        source,
        verified,
        "advice",
        note=note,
    )

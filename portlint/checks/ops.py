"""Op-level checks: is the op (or fused pattern) supported, where does it run, which opset."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache

from portlint.checks.base import CheckContext, check
from portlint.findings import GRAPH, NODE, RawFinding
from portlint.graph_view import NodeView
from portlint.target import OpSupport, Target

CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan"})
DEFAULT_DOMAINS = ("", "ai.onnx")


@lru_cache(maxsize=64)
def _accepted_domains(domains: tuple[str, ...]) -> frozenset[str]:
    return frozenset("" if d == "ai.onnx" else d for d in domains)


def in_target_domain(node: NodeView, target: Target) -> bool:
    domain = node.domain
    return ("" if domain == "ai.onnx" else domain) in _accepted_domains(tuple(target.domains))


def support_for(node: NodeView, target: Target) -> OpSupport | None:
    """How the target supports this node, judging fused patterns (SiLU...) as one layer."""
    if node.pattern is not None:
        pattern = target.patterns.get(node.pattern) or target.ops.get(node.pattern)
        if pattern is not None:
            return pattern
    return target.ops.get(node.op_type)


def _judged_nodes(ctx: CheckContext) -> Iterator[NodeView]:
    """Live nodes in a domain the target accepts (other domains are PL104's business), and
    folded nodes of ops the target's toolchain does not fold (``folds: false``)."""
    target, kept = ctx.target, ctx.target.unfolded_ops
    nodes = ctx.view.nodes if kept else ctx.view.live_nodes()
    return (n for n in nodes if (not n.folded or n.op_type in kept) and in_target_domain(n, target))


def judged_ops(ctx: CheckContext, ops: Iterable[str]) -> Iterator[NodeView]:
    """Live nodes of ``ops`` in a domain the target accepts, op by op."""
    for op in ops:
        for node in ctx.view.live_by_op.get(op, ()):
            if in_target_domain(node, ctx.target):
                yield node


def _unsupported_message(node: NodeView, target: Target) -> str:
    if target.unsupported_effect == "slow":
        return f"{node.op_type} has no fast kernel on {target.name}; it runs on a slow path"
    if node.pattern is not None:
        return (
            f"{node.op_type} (part of a {node.pattern} pattern) is not supported by "
            f"{target.name}, which lists neither {node.op_type} nor {node.pattern}"
        )
    return f"{node.op_type} is not supported by {target.name}"


def _refused(node: NodeView, target: Target, message: str, actual: str, limit: str) -> RawFinding:
    """A finding backed by the profile's statement of what happens to unlisted ops."""
    fact = target.unsupported_ops
    return RawFinding(
        node.name,
        NODE,
        message,
        node.op_type,
        actual,
        limit,
        fact.source,
        fact.verified,
        target.unsupported_effect,
        note=fact.note,
    )


def _uncovered_control_flow(node: NodeView, target: Target) -> bool:
    return node.op_type in CONTROL_FLOW_OPS and node.op_type not in target.ops


@check("unsupported_op")
def unsupported_op(ctx: CheckContext) -> Iterator[RawFinding]:
    """Ops the target's op list does not name (the profile says whether that fails or falls
    back), and ops the profile names as refused outright (``placement: reject``)."""
    target = ctx.target
    limit = f"one of the {len(target.ops)} ops {target.name} lists"
    for node in _judged_nodes(ctx):
        support = support_for(node, target)
        if support is not None and support.placement == "reject":
            yield _placed(node, target, "reject")
        elif support is None and not _uncovered_control_flow(node, target):
            yield _refused(node, target, _unsupported_message(node, target), node.op_type, limit)


PLACEMENT_MESSAGES = {
    "cpu": ("{op} runs on the CPU, not the NPU, on {target}", "an NPU op"),
    "slow": ("{op} runs on a slow path of {target}", "the fast path"),
    "reject": ("{op} is refused by {target}", "not this op"),
}


def _placed(node: NodeView, target: Target, placement: str) -> RawFinding | None:
    """A finding for a listed op whose profile entry places it off the NPU's fast path."""
    support = support_for(node, target)
    if support is None or support.placement != placement:
        return None
    template, limit = PLACEMENT_MESSAGES[placement]
    message = template.format(op=node.op_type, target=target.name)
    return RawFinding(
        node.name,
        NODE,
        message,
        node.op_type,
        node.op_type,
        limit,
        support.source,
        support.verified,
        placement,
        note=support.note,
    )


@check("cpu_fallback_op")
def cpu_fallback_op(ctx: CheckContext) -> Iterator[RawFinding]:
    """Ops the toolchain accepts but runs on the host CPU, splitting the NPU graph."""
    found = (_placed(node, ctx.target, "cpu") for node in _judged_nodes(ctx))
    return (f for f in found if f is not None)


@check("slow_op")
def slow_op(ctx: CheckContext) -> Iterator[RawFinding]:
    """Ops the accelerator runs on a slow path (a secondary engine or reference kernels)."""
    found = (_placed(node, ctx.target, "slow") for node in _judged_nodes(ctx))
    return (f for f in found if f is not None)


@check("opset_range")
def opset_range(ctx: CheckContext) -> Iterator[RawFinding]:
    """The default-domain opset against the range the toolchain documents."""
    target, fact = ctx.target, ctx.target.opset_fact
    version = ctx.view.opsets.get("", ctx.view.opsets.get("ai.onnx"))
    if fact is None or version is None:
        return
    low, high = target.opset_min, target.opset_max
    limit = f"opset {low if low is not None else '?'}..{high if high is not None else '?'}"
    if high is not None and version > high:
        message = (
            f"model opset {version} is newer than the highest {target.name} documents ({high})"
        )
    elif low is not None and version < low:
        message = f"model opset {version} is older than the lowest {target.name} documents ({low})"
    else:
        return
    yield RawFinding(
        "model",
        GRAPH,
        message,
        None,
        f"opset {version}",
        limit,
        fact.source,
        fact.verified,
        note=fact.note,
    )


@check("unsupported_domain")
def unsupported_domain(ctx: CheckContext) -> Iterator[RawFinding]:
    """Ops from custom domains (com.microsoft, vendor extensions) no NPU toolchain parses."""
    target = ctx.target
    limit = "domains: " + ", ".join(d or "ai.onnx" for d in target.domains)
    for node in ctx.view.live_nodes():
        if not in_target_domain(node, target):
            message = (
                f"{node.qualified_op} is in domain {node.domain!r}, which {target.name} "
                "does not accept"
            )
            yield _refused(node, target, message, node.domain, limit)


@check("control_flow")
def control_flow(ctx: CheckContext) -> Iterator[RawFinding]:
    """If/Loop/Scan: data-dependent control flow that NPUs compile only in special cases."""
    target = ctx.target
    for node in _judged_nodes(ctx):
        if _uncovered_control_flow(node, target):
            message = f"{node.op_type} is control flow, which {target.name} does not support"
            yield _refused(node, target, message, node.op_type, "no control flow")


@check("partition_tail")
def partition_tail(ctx: CheckContext) -> Iterator[RawFinding]:
    """PL106 findings come from placement (engine), which knows every other finding first."""
    return iter(())

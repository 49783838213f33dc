"""silu-to-relu and silu-to-hardswish: swap SiLU for an activation the NPU has.

Many NPUs lack SiLU (x·sigmoid(x)) or run its Sigmoid half on a lookup table or on the CPU.
ReLU is native everywhere; HardSwish (x·relu6(x+3)/6) is much closer to SiLU where the
target has it. Either way the numbers change: the weights were trained for SiLU, so the
model must be fine-tuned or retrained after this pass. The deviation is measured and shown.
"""

from __future__ import annotations

from portlint.graph_patterns import HARD_SWISH, SILU, FusedOp, Match
from portlint.passes.base import PassContext, PassResult, Rewrite
from portlint.passes.matching import NodeBuilder, SurgeonGraph
from portlint.passes.surgery import default_opset, to_graph, to_model

RETRAIN = "the model's numbers change: fine-tune or retrain it before deployment"


def _silus(graph) -> list[Match]:
    """Each SiLU in node order: ``graph_patterns.SILU`` (the Mul form ``check`` judges as SiLU),
    or one of the ops that compute it."""
    g = SurgeonGraph(graph)
    found = (SILU.match_fused(g, node) or SILU.match(g, node) for node in graph.nodes)
    return [match for match in found if match is not None]


def _replace(graph, match: Match, opset: int, build) -> None:
    for node in match.nodes:
        node.outputs.clear()
    build(NodeBuilder(graph, match.y.name, opset, lowercase=True), match.x, match.y)


def _relu(emit: NodeBuilder, x, y) -> None:
    emit.add("Relu", [x], output=y)


def _hardswish_op(emit: NodeBuilder, x, y) -> None:
    emit.add("HardSwish", [x], output=y)


def _hardswish_gate(emit: NodeBuilder, x, y) -> None:
    """x * HardSigmoid(x; 1/6, 0.5): HardSwish as ``check`` recognises it, for opsets before 14."""
    HARD_SWISH.form.build(emit, FusedOp((x,), y))


def _hardswish_builder(ctx: PassContext):
    """HardSwish as one op where the opset and target have it, else x*HardSigmoid(x)."""
    opset = default_opset(ctx.model)
    if opset >= 14 and ctx.target.runs_on_npu("HardSwish"):
        return _hardswish_op, None
    if ctx.target.runs_on_npu("HardSigmoid") or ctx.target.runs_on_npu("HardSwish"):
        return _hardswish_gate, None
    return None, f"{ctx.target.name} lists neither HardSwish nor HardSigmoid: use silu-to-relu"


def _rewrite(ctx: PassContext, build, label: str) -> PassResult:
    graph = to_graph(ctx.model)
    silus = _silus(graph)
    if not silus:
        return PassResult(ctx.model)
    opset = default_opset(ctx.model)
    for match in silus:
        _replace(graph, match, opset, build)
    changes = [f"{len(silus)} SiLU activation(s) -> {label}; {RETRAIN}"]
    return PassResult(to_model(graph, ctx.model), changes)


def run_relu(ctx: PassContext) -> PassResult:
    return _rewrite(ctx, _relu, "ReLU")


def run_hardswish(ctx: PassContext) -> PassResult:
    build, problem = _hardswish_builder(ctx)
    if build is None:
        return PassResult(ctx.model, skipped=[problem])
    return _rewrite(ctx, build, "HardSwish")


def wanted(ctx: PassContext) -> str | None:
    count = len(_silus(to_graph(ctx.model)))
    return f"{count} SiLU activation(s)" if count else None


TO_RELU = Rewrite(run_relu, wanted)
TO_HARDSWISH = Rewrite(run_hardswish, wanted)

"""decompose: rewrite an op the target lacks into ops it has, with the same numbers.

A toolchain that lacks HardSwish, Gelu or LayerNormalization usually has the handful of
elementwise ops and reductions they are made of, and a toolchain that prefers convolutions
runs a fully connected layer as a 1x1 Conv. Each op has candidate decompositions; the first
whose every op the target runs on its NPU is used, so the rewrite never trades one
unsupported op for another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from portlint.graph_patterns import GELU_ERF, HARD_SWISH, LAYER_NORM, GraphPattern
from portlint.pass_catalog import pass_info
from portlint.passes.base import PassContext, PassResult, Rewrite
from portlint.passes.matching import NodeBuilder, fused_op
from portlint.passes.surgery import constant_value, default_opset, to_graph, to_model

RULES = pass_info("decompose").resolves


@dataclass(frozen=True)
class Decomposition:
    op: str
    uses: tuple[str, ...]
    build: Callable  # (NodeBuilder, node) -> bool (False: this node's attributes do not allow it)


def _builder(graph, node, opset: int) -> NodeBuilder:
    """Nodes named after the node they replace, with constants of its dtype."""
    return NodeBuilder(graph, node.name, opset, node.inputs[0].dtype)


def _written_as(pattern: GraphPattern) -> Decomposition:
    """The pattern's own form in place of its fused op: what ``check`` then judges as the
    pattern. Only the op's first output is written, so one whose others are read stays."""
    form = pattern.form

    def build(b: NodeBuilder, node) -> bool:
        return not any(o.outputs for o in node.outputs[1:]) and form.build(b, fused_op(node))

    return Decomposition(pattern.fused_ops[0], form.ops, build)


def _hardswish_clip(b: NodeBuilder, node) -> bool:
    x, y = node.inputs[0], node.outputs[0]
    shifted = b.add("Add", [x, b.const(3.0)])
    clipped = b.add("Clip", [shifted, b.const(0.0), b.const(6.0)])
    b.add("Div", [b.add("Mul", [x, clipped]), b.const(6.0)], output=y)
    return True


def _gemm_as_conv(b: NodeBuilder, node) -> bool:
    """Y = alpha*A*B + beta*C as Reshape -> 1x1 Conv -> Reshape, for constant B and C."""
    a, y = node.inputs[0], node.outputs[0]
    weight = constant_value(node.inputs[1])
    bias = constant_value(node.inputs[2]) if len(node.inputs) > 2 else None
    if node.attrs.get("transA", 0) or weight is None or a.shape is None or len(a.shape) != 2:
        return False
    if not all(isinstance(d, int) for d in a.shape):
        return False
    matrix = weight if node.attrs.get("transB", 0) else weight.T  # [N, K]
    outputs = matrix.shape[0]
    if bias is not None and bias.shape not in ((), (1,), (1, 1), (outputs,), (1, outputs)):
        return False  # a per-row bias ([M, 1], [M, N]) is not a per-channel Conv bias
    kernel = (float(node.attrs.get("alpha", 1.0)) * matrix)[:, :, None, None]
    inputs = [b.add("Reshape", [a, b.const([a.shape[0], a.shape[1], 1, 1], np.int64)])]
    inputs.append(b.const(kernel.astype(weight.dtype)))
    if bias is not None:
        full = np.broadcast_to(float(node.attrs.get("beta", 1.0)) * bias.ravel(), (outputs,))
        inputs.append(b.const(full.astype(weight.dtype)))
    conv = b.add("Conv", inputs, {"kernel_shape": [1, 1]})
    b.add("Reshape", [conv, b.const([a.shape[0], outputs], np.int64)], output=y)
    return True


DECOMPOSITIONS = (
    _written_as(HARD_SWISH),
    Decomposition("HardSwish", ("Add", "Clip", "Mul", "Div"), _hardswish_clip),
    _written_as(GELU_ERF),
    _written_as(LAYER_NORM),
    Decomposition("Gemm", ("Reshape", "Conv"), _gemm_as_conv),
)


def _choices(ctx: PassContext) -> dict[str, list[Decomposition]]:
    """For each op the target flags, the decompositions whose ops all run on its NPU."""
    usable: dict[str, list[Decomposition]] = {}
    for item in DECOMPOSITIONS:
        if all(ctx.target.runs_on_npu(op) for op in item.uses):
            usable.setdefault(item.op, []).append(item)
    return usable


def _targets(ctx: PassContext, graph) -> list:
    flagged = ctx.flagged(RULES)
    usable = _choices(ctx)
    return [n for n in graph.nodes if n.op in usable and n.name in flagged and not n.domain]


def _unmatched(ctx: PassContext, graph) -> list:
    """Flagged nodes of ops this pass knows, for which the target has no usable recipe."""
    known = {d.op for d in DECOMPOSITIONS}
    usable, flagged = _choices(ctx), ctx.flagged(RULES)
    return [n for n in graph.nodes if n.op in known - set(usable) and n.name in flagged]


def run(ctx: PassContext) -> PassResult:
    graph = to_graph(ctx.model, shapes=True)  # shapes inferred without the weights
    opset = default_opset(ctx.model)
    usable = _choices(ctx)
    changes, skipped = [], []
    for node in _unmatched(ctx, graph):
        skipped.append(
            f"{node.name!r}: {node.op} has no decomposition into ops {ctx.target.name} runs"
        )
    for node in _targets(ctx, graph):
        builder = _builder(graph, node, opset)
        done = next((d for d in usable[node.op] if d.build(builder, node)), None)
        if done is None:
            skipped.append(f"{node.name!r}: {node.op} with these attributes has no decomposition")
            continue
        node.outputs.clear()
        changes.append(f"{node.name!r}: {node.op} -> {' + '.join(done.uses)}")
    if not changes:
        return PassResult(ctx.model, skipped=skipped)
    result = to_model(graph, ctx.model)
    del result.graph.value_info[:]
    return PassResult(result, changes, skipped)


def wanted(ctx: PassContext) -> str | None:
    found = _targets(ctx, to_graph(ctx.model))
    if not found:
        return None
    ops = sorted({n.op for n in found})
    return f"{len(found)} node(s) of {', '.join(ops)} the target lacks decompose into ops it has"


REWRITE = Rewrite(run, wanted)

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

from portlint.passes import Pass, PassContext, PassResult, Semantics, register
from portlint.passes.surgery import (
    constant,
    constant_value,
    default_opset,
    to_graph,
    to_model,
    unique_name,
)
from portlint.patterns import HARD_SWISH_ALPHA, HARD_SWISH_BETA

RULES = ("PL101", "PL102")


@dataclass(frozen=True)
class Decomposition:
    op: str
    uses: tuple[str, ...]
    build: Callable  # (Builder, node) -> bool (False: this node's attributes do not allow it)


class Builder:
    """Adds nodes named after the node they replace, with constants of its dtype."""

    def __init__(self, graph, node, opset: int):
        self.graph, self.node, self.opset = graph, node, opset
        self.dtype = np.dtype(node.inputs[0].dtype or np.float32)

    def const(self, value, dtype=None) -> object:
        name = unique_name(self.graph, f"{self.node.name}/const")
        return constant(name, np.asarray(value, dtype=dtype or self.dtype))

    def add(self, op: str, inputs: list, attrs: dict | None = None, output=None) -> object:
        name = unique_name(self.graph, f"{self.node.name}/{op}")
        out = output if output is not None else unique_name(self.graph, f"{name}_out")
        outputs = [out]
        return self.graph.layer(op=op, name=name, inputs=inputs, outputs=outputs, attrs=attrs)[0]

    def reduce_mean(self, x, axes: list[int]) -> object:
        if self.opset >= 18:
            return self.add("ReduceMean", [x, self.const(axes, np.int64)], {"keepdims": 1})
        return self.add("ReduceMean", [x], {"axes": axes, "keepdims": 1})


def _hardswish_gate(b: Builder, node) -> bool:
    x, y = node.inputs[0], node.outputs[0]
    gate = b.add("HardSigmoid", [x], {"alpha": HARD_SWISH_ALPHA, "beta": HARD_SWISH_BETA})
    b.add("Mul", [x, gate], output=y)
    return True


def _hardswish_clip(b: Builder, node) -> bool:
    x, y = node.inputs[0], node.outputs[0]
    shifted = b.add("Add", [x, b.const(3.0)])
    clipped = b.add("Clip", [shifted, b.const(0.0), b.const(6.0)])
    b.add("Div", [b.add("Mul", [x, clipped]), b.const(6.0)], output=y)
    return True


def _gelu(b: Builder, node) -> bool:
    x, y = node.inputs[0], node.outputs[0]
    if node.attrs.get("approximate", "none") == "tanh":
        return False
    erf = b.add("Erf", [b.add("Div", [x, b.const(np.sqrt(2.0))])])
    gated = b.add("Mul", [x, b.add("Add", [erf, b.const(1.0)])])
    b.add("Mul", [gated, b.const(0.5)], output=y)
    return True


def _layer_norm(b: Builder, node) -> bool:
    x = node.inputs[0]
    if len([o for o in node.outputs if o.outputs]) > 1 or x.shape is None:
        return False  # Mean / InvStdDev outputs are used, or the rank is unknown
    rank = len(x.shape)
    axis = int(node.attrs.get("axis", -1)) % rank
    axes = list(range(axis, rank))
    centred = b.add("Sub", [x, b.reduce_mean(x, axes)])
    variance = b.reduce_mean(b.add("Mul", [centred, centred]), axes)
    eps = b.const(float(node.attrs.get("epsilon", 1e-5)))
    normed = b.add("Div", [centred, b.add("Sqrt", [b.add("Add", [variance, eps])])])
    has_bias = len(node.inputs) > 2 and node.inputs[2].name
    scaled = b.add("Mul", [normed, node.inputs[1]], output=None if has_bias else node.outputs[0])
    if has_bias:
        b.add("Add", [scaled, node.inputs[2]], output=node.outputs[0])
    return True


def _gemm_as_conv(b: Builder, node) -> bool:
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
    Decomposition("HardSwish", ("HardSigmoid", "Mul"), _hardswish_gate),
    Decomposition("HardSwish", ("Add", "Clip", "Mul", "Div"), _hardswish_clip),
    Decomposition("Gelu", ("Div", "Erf", "Add", "Mul"), _gelu),
    Decomposition(
        "LayerNormalization", ("ReduceMean", "Sub", "Mul", "Add", "Sqrt", "Div"), _layer_norm
    ),
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
        builder = Builder(graph, node, opset)
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


register(
    Pass(
        name="decompose",
        summary="Rewrite HardSwish, Gelu, LayerNormalization, Gemm into ops the target has.",
        semantics=Semantics.EXACT,
        resolves=RULES,
        run=run,
        wanted=wanted,
        why=__doc__.split("\n\n", 1)[1].strip(),
        edits_in_place=False,
    )
)

"""fold-batchnorm: fold an inference-mode BatchNormalization into the layer before it.

BatchNorm after a Conv is an affine map per output channel, so it can live in that Conv's
weights and bias. NPU compilers that lack BatchNorm refuse it or run it on the CPU, and a
BatchNorm left unfused is quantized on its own, with its own rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from portlint.graph_patterns import BATCHNORM_FOLD, FOLD_REWRITES, batchnorm_scale, scaled_weight
from portlint.pass_catalog import pass_info
from portlint.passes.base import PassContext, PassResult, Rewrite
from portlint.passes.matching import SurgeonGraph
from portlint.passes.surgery import constant, constant_value, to_graph, to_model, unique_name

RULES = pass_info("fold-batchnorm").resolves


def _foldable(graph) -> Iterator[tuple]:
    """(batchnorm, producer) pairs: ``graph_patterns.BATCHNORM_FOLD`` matches (what the checks
    count as folded) whose weights and statistics are constants this pass can rewrite.

    Lazy, in node order: a caller that folds each pair before asking for the next one folds
    a BatchNorm that follows a folded one too (Conv -> BN -> BN), in one pass.
    """
    for match in BATCHNORM_FOLD.find(SurgeonGraph(graph)):
        producer, node = match.nodes
        if _values_known(node, producer):
            yield node, producer


def _values_known(bn, producer) -> bool:
    """The fold needs the statistics, the weight and any bias as values, and a layout it knows
    (not a MatMul, which has no bias; not a Gemm that transposes its input)."""
    if producer.op not in FOLD_REWRITES:
        return False
    if producer.op == "Gemm" and producer.attrs.get("transA", 0):
        return False
    weight = constant_value(producer.inputs[1]) if len(producer.inputs) > 1 else None
    bias_ok = len(producer.inputs) < 3 or constant_value(producer.inputs[2]) is not None
    stats = [constant_value(t) for t in bn.inputs[1:]]
    return weight is not None and bias_ok and all(s is not None for s in stats)


def _fold(graph, bn, producer) -> None:
    gamma, beta, mean, var = (constant_value(t).astype(np.float64) for t in bn.inputs[1:])
    scale = batchnorm_scale(gamma, var, float(bn.attrs.get("epsilon", 1e-5)))
    weight = constant_value(producer.inputs[1])
    dtype = weight.dtype
    old_bias = constant_value(producer.inputs[2]) if len(producer.inputs) > 2 else None
    bias = np.zeros_like(scale) if old_bias is None else old_bias.astype(np.float64)
    if producer.op == "Gemm":  # C may be [N], [1, N] or [M, N]: the result broadcasts alike
        bias = bias * float(producer.attrs.get("beta", 1.0))
        producer.attrs["beta"] = 1.0
    new_weight = scaled_weight(producer.op, producer.attrs, weight.astype(np.float64), scale)
    new_weight = new_weight.astype(dtype)
    new_bias = ((bias - mean) * scale + beta).astype(dtype)
    base = producer.name or producer.op
    producer.inputs[1] = constant(unique_name(graph, f"{base}.weight_bnfold"), new_weight)
    bias_tensor = constant(unique_name(graph, f"{base}.bias_bnfold"), new_bias)
    if len(producer.inputs) > 2:
        producer.inputs[2] = bias_tensor
    else:
        producer.inputs.append(bias_tensor)
    producer.outputs = list(bn.outputs)
    bn.outputs.clear()


def run(ctx: PassContext) -> PassResult:
    graph = to_graph(ctx.model)
    changes = []
    for bn, producer in _foldable(graph):  # each folded before the next is looked at
        changes.append(
            f"{bn.name!r}: BatchNormalization folded into {producer.op} {producer.name!r}"
        )
        _fold(graph, bn, producer)
    if not changes:
        return PassResult(ctx.model)
    return PassResult(to_model(graph, ctx.model), changes)


def wanted(ctx: PassContext) -> str | None:
    flagged = ctx.flagged(RULES)
    names = [bn.name for bn, _ in _foldable(to_graph(ctx.model)) if bn.name in flagged]
    if not names:
        return None
    return f"{len(names)} BatchNormalization node(s) the target does not run on the NPU fold away"


REWRITE = Rewrite(run, wanted)

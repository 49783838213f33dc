"""fold-batchnorm: fold an inference-mode BatchNormalization into the layer before it.

BatchNorm after a Conv is an affine map per output channel, so it can live in that Conv's
weights and bias. NPU compilers that lack BatchNorm refuse it or run it on the CPU, and a
BatchNorm left unfused is quantized on its own, with its own rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from portlint.passes import Pass, PassContext, PassResult, Semantics, register
from portlint.passes.surgery import constant, constant_value, to_graph, to_model, unique_name

FOLDS_INTO = ("Conv", "ConvTranspose", "Gemm")
RULES = ("PL101", "PL102", "PL107")


def _foldable(graph) -> Iterator[tuple]:
    """(batchnorm, producer) pairs: BN in inference mode whose producer only feeds it.

    Lazy, in node order: a caller that folds each pair before asking for the next one folds
    a BatchNorm that follows a folded one too (Conv -> BN -> BN), in one pass.
    """
    outputs = {t.name for t in graph.outputs}
    for node in graph.nodes:
        if node.op != "BatchNormalization" or node.attrs.get("training_mode", 0):
            continue
        if len(node.outputs) != 1 or len(node.inputs) != 5:
            continue
        source = node.inputs[0]
        if len(source.inputs) != 1 or source.name in outputs or len(source.outputs) != 1:
            continue
        producer = source.inputs[0]
        stats = [constant_value(t) for t in node.inputs[1:]]
        weight = constant_value(producer.inputs[1]) if len(producer.inputs) > 1 else None
        bias_ok = len(producer.inputs) < 3 or constant_value(producer.inputs[2]) is not None
        if (
            producer.op in FOLDS_INTO
            and weight is not None
            and bias_ok
            and all(s is not None for s in stats)
        ):
            if producer.op == "Gemm" and producer.attrs.get("transA", 0):
                continue
            yield node, producer


def _scaled_weight(producer, weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Multiply each output channel's slice of ``weight`` by its scale."""
    if producer.op == "Conv":
        return weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    if producer.op == "ConvTranspose":  # [C_in, C_out / group, k...]
        group = int(producer.attrs.get("group", 1))
        per_group = weight.shape[1]
        in_per_group = weight.shape[0] // group
        factor = np.stack(
            [
                scale[(i // in_per_group) * per_group : (i // in_per_group + 1) * per_group]
                for i in range(weight.shape[0])
            ]
        )
        return weight * factor.reshape(*factor.shape, *([1] * (weight.ndim - 2)))
    # Gemm: B is [K, N] or, with transB, [N, K]; alpha stays as it is
    return weight * (scale[:, None] if producer.attrs.get("transB", 0) else scale[None, :])


def _fold(graph, bn, producer) -> None:
    gamma, beta, mean, var = (constant_value(t).astype(np.float64) for t in bn.inputs[1:])
    scale = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
    weight = constant_value(producer.inputs[1])
    dtype = weight.dtype
    old_bias = constant_value(producer.inputs[2]) if len(producer.inputs) > 2 else None
    bias = np.zeros_like(scale) if old_bias is None else old_bias.astype(np.float64)
    if producer.op == "Gemm":  # C may be [N], [1, N] or [M, N]: the result broadcasts alike
        bias = bias * float(producer.attrs.get("beta", 1.0))
        producer.attrs["beta"] = 1.0
    new_weight = _scaled_weight(producer, weight.astype(np.float64), scale).astype(dtype)
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


register(
    Pass(
        name="fold-batchnorm",
        summary="Fold inference BatchNormalization into the Conv, ConvTranspose or Gemm before it.",
        semantics=Semantics.EXACT,
        resolves=RULES,
        run=run,
        wanted=wanted,
        why=__doc__.split("\n\n", 1)[1].strip(),
        edits_in_place=False,
    )
)

"""PL301: weights whose channels differ so much that one per-tensor scale crushes the small ones.

On a target that quantizes each weight tensor with one scale, the channel with the widest
weights sets the step for all of them; a channel 100x narrower keeps a handful of levels.
The check quantizes the real weights the way the target would (after folding a following
BatchNorm, as every toolchain does first) and measures each channel's SQNR: a measurement on
the weights, not a rule of thumb. Targets with per-channel weights never hear of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from portlint.checks.base import CheckContext, check
from portlint.checks.ops import judged_ops
from portlint.findings import NODE, RawFinding
from portlint.graph_patterns import batchnorm_scale
from portlint.graph_view import GraphView, NodeView
from portlint.quant_math import fake_quantize, fmt, sqnr_db, step
from portlint.quant_scheme import QuantScheme
from portlint.ranges import weights_affordable
from portlint.view_patterns import folded_batchnorm

MIN_SQNR_DB = 20.0
"""A channel below this keeps an error of more than a tenth of its signal (amplitude)."""
NEGLIGIBLE = 1e-3
"""Channels this much smaller than the widest are pruned ones: losing them costs nothing."""
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class ChannelDamage:
    """What one per-tensor scale does to each output channel of a weight tensor."""

    absmax: np.ndarray
    sqnr: np.ndarray  # per channel, per-tensor scale
    per_channel_sqnr: np.ndarray  # per channel, its own scale (what per-channel would give)
    folded: bool

    @property
    def worst(self) -> int:
        return int(np.argmin(np.where(self.considered, self.sqnr, np.inf)))

    @property
    def considered(self) -> np.ndarray:
        return self.absmax > NEGLIGIBLE * self.absmax.max()


def output_channels(node: NodeView, weight: np.ndarray) -> np.ndarray | None:
    """The weights as [output channel, everything else], or None when the layout is unknown."""
    if node.op_type == "Conv" and weight.ndim >= 3:
        return weight.reshape(weight.shape[0], -1)
    if node.op_type == "ConvTranspose" and weight.ndim >= 3:
        if int(node.attributes.get("group", 1)) != 1:
            return None
        return np.moveaxis(weight, 1, 0).reshape(weight.shape[1], -1)
    if node.op_type in ("Gemm", "MatMul") and weight.ndim == 2:
        trans = node.op_type == "Gemm" and node.attributes.get("transB", 0)
        return weight if trans else weight.T
    return None


def _folded_batchnorm(node: NodeView, view: GraphView) -> np.ndarray | None:
    """Per-output-channel factor of a BatchNormalization the toolchain folds into ``node``."""
    bn = folded_batchnorm(view, node)
    if bn is None:
        return None
    scale, var = view.weight(bn.inputs[1]), view.weight(bn.inputs[4])
    if scale is None or var is None:
        return None
    return batchnorm_scale(scale, var, float(bn.attributes.get("epsilon", 1e-5)))


def damage(node: NodeView, view: GraphView, scheme: QuantScheme) -> ChannelDamage | None:
    """Quantize ``node``'s weights per tensor as ``scheme`` does; None when there are none."""
    if len(node.inputs) < 2 or view.producer(node.inputs[1]) is not None:
        return None  # weights computed at run time (or fed in): not a constant to judge
    weight = view.weight(node.inputs[1])
    if weight is None or weight.dtype.kind != "f" or not np.isfinite(weight).all():
        return None  # NaN/Inf weights are a broken model, not a quantization hazard
    rows = output_channels(node, weight.astype(np.float64))
    if rows is None or rows.shape[0] < 2:
        return None
    with np.errstate(all="ignore"):
        factor = _folded_batchnorm(node, view)
    folded = factor is not None and factor.size == rows.shape[0] and np.isfinite(factor).all()
    if folded:
        rows = rows * factor[:, None]
    absmax = np.abs(rows).max(axis=1)
    if absmax.max() <= 0:
        return None
    bits = scheme.bits()
    size = step(-absmax.max(), absmax.max(), bits, True, scheme.pot_scales)
    shared = fake_quantize(rows, size, bits)
    own = [
        fake_quantize(r, step(-m, m, bits, True, scheme.pot_scales), bits)
        for r, m in zip(rows, absmax, strict=True)
    ]
    return ChannelDamage(
        absmax,
        np.array([sqnr_db(r, q) for r, q in zip(rows, shared, strict=True)]),
        np.array([sqnr_db(r, q) for r, q in zip(rows, own, strict=True)]),
        folded,
    )


def _message(node: NodeView, hurt: ChannelDamage, scheme: QuantScheme) -> str:
    worst, widest = hurt.worst, int(np.argmax(hurt.absmax))
    ratio = hurt.absmax[widest] / hurt.absmax[worst]
    below = int(np.sum(hurt.considered & (hurt.sqnr < MIN_SQNR_DB)))
    pot = " with power-of-two scales" if scheme.pot_scales else ""
    folded = " (BatchNorm folded in)" if hurt.folded else ""
    return (
        f"per-tensor int{scheme.bits()} weights{pot}: output channel {worst} spans "
        f"±{fmt(hurt.absmax[worst])} while channel {widest} spans ±{fmt(hurt.absmax[widest])} "
        f"({ratio:.0f}×){folded}; one scale for all leaves channel {worst} at "
        f"{hurt.sqnr[worst]:.1f} dB SQNR (its own scale would give "
        f"{hurt.per_channel_sqnr[worst]:.1f} dB); {below} of {hurt.absmax.size} channels "
        f"below {MIN_SQNR_DB:.0f} dB"
    )


@check("per_tensor_weights", lambda t: t.scheme.per_tensor_weights)
def per_tensor_weights(ctx: CheckContext) -> Iterator[RawFinding]:
    """Weighted layers with a channel the target's one-scale-per-tensor weights crush."""
    scheme = ctx.target.scheme
    fact = scheme.weight_granularity
    if fact is None or not scheme.per_tensor_weights or not weights_affordable(ctx.view):
        return
    for node in judged_ops(ctx, WEIGHTED_OPS):
        hurt = damage(node, ctx.view, scheme)
        if hurt is None or hurt.sqnr[hurt.worst] >= MIN_SQNR_DB:
            continue
        yield RawFinding(
            node.name,
            NODE,
            _message(node, hurt, scheme),
            node.op_type,
            f"worst channel {hurt.sqnr[hurt.worst]:.1f} dB SQNR",
            f"≥ {MIN_SQNR_DB:.0f} dB per channel with one int{scheme.bits()} scale per tensor",
            fact.source,
            fact.verified,
            "accuracy",
            note=fact.note,
        )

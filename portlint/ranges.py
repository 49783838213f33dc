"""Activation ranges a quantizer will see, estimated from the float model alone or measured.

The hazard rules need, for a few tensors, how wide each channel's values are. Given sample
inputs (``--inputs``) that is measured. Without them it is estimated, the way a reviewer
would on paper: every tensor is summarised per channel by a mean and a standard deviation,
graph inputs are assumed normalised (mean 0, std 1), a Conv/Gemm maps them through its
weights (independent inputs), a BatchNormalization *replaces* the estimate by its running
statistics (what the layer saw in training: the best evidence a float model holds), and
activations, pools, concats and reshapes carry the statistics through. A value range is then
mean ± ``SPREAD`` std, clipped to what the activation can produce.

An op the estimator does not know makes everything after it unknown: the rules then stay
silent instead of guessing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from portlint.graph_view import GraphView, NodeView

SPREAD = 4.0
"""Range = mean ± SPREAD·std: a float model's rare largest values, not its average ones."""
INPUT_STD = 1.0
MAX_CHANNELS = 2**20
"""A graph input claiming more channels than this is not estimated (corrupt or hostile)."""
MEASURED, FROM_BATCHNORM, FROM_WEIGHTS = "measured", "BatchNorm statistics", "weights"
ESTIMATE_WEIGHT_BUDGET = 256 * 2**20
"""Beyond this many bytes of weights the numerics rules read none: ranges are not estimated
and per-tensor weight damage is not measured (``check`` stays fast and lean on multi-GB
models); measured ranges (``--inputs``) still work."""
_NUMPY_DTYPES = {
    "float16": "float16",
    "bfloat16": "float16",
    "float64": "float64",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
}

_erf = np.vectorize(math.erf, otypes=[float])


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel mean and std of one tensor (one entry for a tensor without channels)."""

    mean: np.ndarray
    std: np.ndarray
    low: float = -math.inf  # what the producing activation can output at least / at most
    high: float = math.inf
    basis: str = FROM_WEIGHTS
    peak: np.ndarray | None = None
    """Per-channel largest value, where mean + SPREAD·std misjudges it: a ReLU of a mostly
    negative channel has a tiny mean and std but still peaks at its input's tail."""

    def bounded(self, low: float, high: float) -> ChannelStats:
        return replace(self, low=max(self.low, low), high=min(self.high, high))

    @property
    def tail(self) -> np.ndarray:
        return self.mean + SPREAD * self.std if self.peak is None else self.peak


@dataclass(frozen=True)
class Range:
    """The values one tensor takes: overall and per channel (largest |value| per channel)."""

    low: float
    high: float
    channel_absmax: np.ndarray | None
    basis: str  # measured | BatchNorm statistics | weights
    channel_typical: np.ndarray | None = None
    """A channel's usual magnitude: |mean| when estimated; measured, its largest |value|."""

    @property
    def absmax(self) -> float:
        return max(abs(self.low), abs(self.high))

    @property
    def how(self) -> str:
        return "measured" if self.basis == MEASURED else f"estimated from {self.basis}"


def tensor_range(view: GraphView, name: str) -> Range | None:
    """The range of tensor ``name``: measured when the view has activations, else estimated."""
    if view.activations is not None:
        stats = view.activations.get(name)
        if stats is not None:
            absmax = stats.channel_absmax
            return Range(stats.minimum, stats.maximum, absmax, MEASURED, absmax)
    stats = estimates(view).get(name)
    return None if stats is None else _range_of(stats)


def _range_of(stats: ChannelStats) -> Range:
    low = np.clip(stats.mean - SPREAD * stats.std, stats.low, stats.high)
    high = np.clip(stats.tail, stats.low, stats.high)
    absmax = np.maximum(np.abs(low), np.abs(high))
    mean = np.clip(stats.mean, stats.low, stats.high)
    typical = np.sqrt(mean * mean + stats.std * stats.std)  # the RMS value, not the peak
    return Range(float(low.min()), float(high.max()), absmax, stats.basis, typical)


def estimates(view: GraphView) -> dict[str, ChannelStats]:
    """Per-channel statistics of every tensor the estimator can follow, computed once per view
    (every target's rules ask; the weights are read once)."""
    return view.derived("range-estimates", _estimate)


def _estimate(view: GraphView) -> dict[str, ChannelStats]:
    if not weights_affordable(view):
        return {}
    with np.errstate(all="ignore"):  # NaN/Inf weights make a tensor unknown, not noise
        return _propagate(view)


def weights_affordable(view: GraphView) -> bool:
    """Whether the numerics rules may read this model's weights (see ESTIMATE_WEIGHT_BUDGET)."""
    return weight_bytes(view) <= ESTIMATE_WEIGHT_BUDGET


def weight_bytes(view: GraphView) -> int:
    """Bytes of all initializers, from their dims (nothing read)."""
    total = 0
    for tensor in view.tensors.values():
        if tensor.kind == "initializer" and tensor.shape is not None:
            size = np.dtype(_NUMPY_DTYPES.get(tensor.dtype or "", "float32")).itemsize
            total += size * math.prod(d for d in tensor.shape if isinstance(d, int))
    return total


def _propagate(view: GraphView) -> dict[str, ChannelStats]:
    known: dict[str, ChannelStats] = {}
    for tensor in view.graph_inputs:
        channels = _channels(tensor.shape)
        if channels is not None:
            known[tensor.name] = ChannelStats(np.zeros(channels), np.full(channels, INPUT_STD))
    gates = {n.outputs[0] for n in view.nodes if n.pattern in GATED and n.op_type != "Mul"}
    for node in view.nodes:
        rule = _RULES.get(node.op_type)
        if rule is None or not node.outputs:
            continue
        try:
            if node.pattern in GATED and node.op_type == "Mul":  # x·gate(x): follow x
                x = next((known[n] for n in node.inputs if n in known and n not in gates), None)
                out = None if x is None else GATED[node.pattern](x)
            else:
                out = rule(node, view, known)
        except (ValueError, IndexError, TypeError, ZeroDivisionError, MemoryError):
            out = None  # shapes the estimate cannot follow: unknown, not an error
        if out is not None and np.isfinite(out.mean).all() and np.isfinite(out.std).all():
            known[node.outputs[0]] = out
            if node.op_type == "Split":  # every output: equal slices of the channels
                _split(node, view, known, out)
    return known


def _channels(shape) -> int | None:
    if shape is None or len(shape) < 2 or not isinstance(shape[1], int):
        return 1 if shape is not None and len(shape) < 2 else None
    return shape[1] if 0 < shape[1] <= MAX_CHANNELS else None


def _input(node: NodeView, known: dict[str, ChannelStats], index: int = 0) -> ChannelStats | None:
    return known.get(node.inputs[index]) if len(node.inputs) > index else None


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def rectified(
    mean: np.ndarray, std: np.ndarray, slope: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of max(x, slope·x) for x ~ N(mean, std²), per channel (closed form)."""
    std = np.maximum(std, 1e-12)
    a = mean / std
    pdf, cdf = _normal_pdf(a), _normal_cdf(a)
    pos_mean = mean * cdf + std * pdf
    pos_sq = (mean**2 + std**2) * cdf + mean * std * pdf
    neg_mean, neg_sq = mean - pos_mean, (mean**2 + std**2) - pos_sq
    out_mean = pos_mean + slope * neg_mean
    second = pos_sq + slope * slope * neg_sq
    return out_mean, np.sqrt(np.maximum(second - out_mean**2, 0.0))


def _conv(node: NodeView, view: GraphView, known: dict[str, ChannelStats]) -> ChannelStats | None:
    """out_c = b_c + Σ w·x: mean through the weights, variance through their squares."""
    x = _input(node, known)
    weight = view.weight(node.inputs[1]) if len(node.inputs) > 1 else None
    if x is None or weight is None or weight.ndim < 2:
        return None
    weight = weight.astype(np.float64)
    if node.op_type == "ConvTranspose":  # [C_in, C_out/g, k...] -> per output channel
        groups = int(node.attributes.get("group", 1))
        c_in = weight.shape[0]
        w = weight.reshape(groups, c_in // groups, weight.shape[1], -1)
        w = w.transpose(0, 2, 1, 3).reshape(groups * weight.shape[1], c_in // groups, -1)
    else:
        groups = int(node.attributes.get("group", 1))
        w = weight.reshape(weight.shape[0], weight.shape[1], -1)
    out_channels, per_group = w.shape[0], w.shape[1]
    if groups < 1 or out_channels % groups or x.mean.size not in (1, per_group * groups):
        return None  # a group count the weights and the input do not bear out
    mean_in, std_in = _per_channel(x, per_group * groups)
    group_of = np.arange(out_channels) // (out_channels // groups)
    index = group_of[:, None] * per_group + np.arange(per_group)[None, :]
    mean = np.einsum("oik,oi->o", w, mean_in[index])
    std = np.sqrt(np.einsum("oik,oi->o", w * w, std_in[index] ** 2))
    if node.op_type == "ConvTranspose":  # each output pixel sees 1/∏strides of the taps
        share = 1.0 / math.prod(node.attributes.get("strides") or [1])
        mean, std = mean * share, std * math.sqrt(share)
    bias = view.weight(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if bias is not None:
        mean = mean + bias.astype(np.float64).reshape(-1)
    return ChannelStats(mean, std, basis=x.basis)


def _gemm(node: NodeView, view: GraphView, known: dict[str, ChannelStats]) -> ChannelStats | None:
    """Gemm / MatMul with a constant right-hand side: features are the last axis."""
    x = _input(node, known)
    weight = view.weight(node.inputs[1]) if len(node.inputs) > 1 else None
    if x is None or weight is None or weight.ndim != 2:
        return None
    w = weight.astype(np.float64)
    data = view.tensor(node.inputs[0])
    if node.op_type == "MatMul" and (data is None or data.rank != 2):
        return None  # [B, T, D] inputs: stats are per axis 1 (tokens), not per feature
    if node.op_type == "Gemm":
        if node.attributes.get("transA", 0):
            return None  # features on axis 0: the stats do not line up
        if node.attributes.get("transB", 0):
            w = w.T
        w = w * float(node.attributes.get("alpha", 1.0))
    features = w.shape[0]
    mean_in, std_in = _per_channel(x, features)
    mean, std = mean_in @ w, np.sqrt((std_in**2) @ (w * w))
    bias = view.weight(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if bias is not None:
        mean = mean + float(node.attributes.get("beta", 1.0)) * np.broadcast_to(
            bias.astype(np.float64).reshape(-1), mean.shape
        )
    return ChannelStats(mean, std, basis=x.basis)


def _per_channel(stats: ChannelStats, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Stats spread over ``count`` inputs: per channel, repeated (Flatten), or one value."""
    have = stats.mean.size
    if have == count:
        return stats.mean, stats.std
    if have == 1 or count % have:
        if have != 1:  # cannot line channels up with features: pool them into one
            mean = np.full(count, stats.mean.mean())
            return mean, np.full(count, math.sqrt(float((stats.std**2).mean())))
        return np.full(count, stats.mean[0]), np.full(count, stats.std[0])
    repeat = count // have  # Flatten of [N, C, H, W]: each channel's H·W features in a row
    return np.repeat(stats.mean, repeat), np.repeat(stats.std, repeat)


def _batchnorm(
    node: NodeView, view: GraphView, known: dict[str, ChannelStats]
) -> ChannelStats | None:
    """The layer's learned output distribution: mean beta, std |gamma| (the running statistics
    normalise its input)."""
    scale, bias = (view.weight(n) for n in node.inputs[1:3])
    if scale is None or bias is None:
        return None
    return ChannelStats(
        bias.astype(np.float64).reshape(-1),
        np.abs(scale.astype(np.float64)).reshape(-1),
        basis=FROM_BATCHNORM,
    )


def _swish(floor: float) -> Callable[[ChannelStats], ChannelStats]:
    """x·gate(x) behaves like a ReLU with a shallow negative dip (SiLU's minimum is -0.28)."""

    def stats(x: ChannelStats) -> ChannelStats:
        mean, std = rectified(x.mean, x.std)
        return ChannelStats(mean, std, floor, math.inf, x.basis, np.maximum(x.tail, 0.0))

    return stats


GATED = {"SiLU": _swish(-0.279), "HardSwish": _swish(-0.375)}


def _activation(slope: float = 0.0, low: float = 0.0) -> Callable:
    def rule(node: NodeView, view: GraphView, known: dict[str, ChannelStats]):
        x = _input(node, known)
        if x is None:
            return None
        alpha = float(node.attributes.get("alpha", 0.01)) if node.op_type == "LeakyRelu" else slope
        mean, std = rectified(x.mean, x.std, alpha)
        floor = low if alpha == 0.0 else -math.inf
        return ChannelStats(mean, std, floor, math.inf, x.basis, np.maximum(x.tail, 0.0))

    return rule


def _bounded(low: float, high: float, squash: Callable | None = None) -> Callable:
    """Bounded outputs; ``squash`` maps the input's per-channel (mean, std) to the output's
    (sigmoid and tanh: the probit approximation), else the mean is clipped into the bounds."""

    def rule(node: NodeView, view: GraphView, known: dict[str, ChannelStats]):
        x = _input(node, known)
        if x is None:
            return None
        if squash is not None:
            mean, std = squash(x.mean, x.std)
        else:
            mean, std = np.clip(x.mean, low, high), x.std
        return ChannelStats(mean, np.minimum(std, (high - low) / 2), low, high, x.basis)

    return rule


def _sigmoid_moments(mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E[sigmoid(x)] ≈ sigmoid(μ / sqrt(1 + π σ² / 8)); the std through its slope at the mean."""
    centre = 1.0 / (1.0 + np.exp(-mean / np.sqrt(1.0 + math.pi * std * std / 8.0)))
    slope = centre * (1.0 - centre)
    return centre, std * slope


def _tanh_moments(mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """tanh(x) = 2·sigmoid(2x) − 1."""
    centre, spread = _sigmoid_moments(2.0 * mean, 2.0 * std)
    return 2.0 * centre - 1.0, 2.0 * spread


def _clip(node: NodeView, view: GraphView, known: dict[str, ChannelStats]) -> ChannelStats | None:
    x = _input(node, known)
    if x is None:
        return None
    low, high = node.attributes.get("min"), node.attributes.get("max")
    if len(node.inputs) > 1 and node.inputs[1]:
        value = view.constant_value(node.inputs[1])
        low = None if value is None else float(value)
    if len(node.inputs) > 2 and node.inputs[2]:
        value = view.constant_value(node.inputs[2])
        high = None if value is None else float(value)
    low = -math.inf if low is None else float(low)
    high = math.inf if high is None else float(high)
    if low == 0.0:  # ReLU6 and friends: the rectified estimate, then the ceiling
        mean, std = rectified(x.mean, x.std)
        x = ChannelStats(mean, std, basis=x.basis, peak=np.maximum(x.tail, 0.0))
    return x.bounded(low, high)


def _same(node: NodeView, view: GraphView, known: dict[str, ChannelStats]) -> ChannelStats | None:
    """Ops that move values without changing them (channels stay on axis 1)."""
    return _input(node, known)


def _pool(node: NodeView, view: GraphView, known: dict[str, ChannelStats]) -> ChannelStats | None:
    """Averages keep the mean and shrink the std by the window's square root; max pools
    move the mean up towards the tail."""
    x = _input(node, known)
    if x is None:
        return None
    window = _window(node, view)
    if window is None:
        return None
    if node.op_type in ("MaxPool", "GlobalMaxPool"):
        lift = math.sqrt(2.0 * math.log(window)) if window > 1 else 0.0
        mean = np.minimum(x.mean + lift * x.std, x.tail)
        return replace(x, mean=mean, std=x.std / max(lift, 1.0), peak=x.tail)
    shrink = math.sqrt(window)  # an average's tail comes in towards its mean
    return replace(x, std=x.std / shrink, peak=x.mean + (x.tail - x.mean) / shrink)


def _window(node: NodeView, view: GraphView) -> int | None:
    if node.op_type.startswith("Global"):
        tensor = view.tensor(node.inputs[0])
        if tensor is None or not tensor.is_static or tensor.rank is None or tensor.rank < 3:
            return None
        return int(np.prod(tensor.shape[2:]))
    kernel = node.attributes.get("kernel_shape")
    return int(np.prod(kernel)) if kernel else None


def _add(node: NodeView, view: GraphView, known: dict[str, ChannelStats]) -> ChannelStats | None:
    """Sums of independent tensors, or a tensor shifted by a constant."""
    parts = [_operand(name, view, known) for name in node.inputs]
    if any(p is None for p in parts) or len(parts) != 2:
        return None
    (m1, s1, b1), (m2, s2, b2) = parts
    sign = -1.0 if node.op_type == "Sub" else 1.0
    mean, std = np.atleast_1d(m1 + sign * m2), np.atleast_1d(np.sqrt(s1**2 + s2**2))
    return ChannelStats(mean, std, basis=b1 or b2 or FROM_WEIGHTS)


def _mul(node: NodeView, view: GraphView, known: dict[str, ChannelStats]) -> ChannelStats | None:
    parts = [_operand(name, view, known) for name in node.inputs]
    if any(p is None for p in parts) or len(parts) != 2:
        return None
    (m1, s1, b1), (m2, s2, b2) = parts
    mean = m1 * m2
    std = np.sqrt(s1**2 * s2**2 + s1**2 * m2**2 + s2**2 * m1**2)
    return ChannelStats(np.atleast_1d(mean), np.atleast_1d(std), basis=b1 or b2 or FROM_WEIGHTS)


def _operand(name: str, view: GraphView, known: dict[str, ChannelStats]):
    """(mean, std, basis) of an input: a tensor's statistics or a constant's per-channel value."""
    stats = known.get(name)
    if stats is not None:
        return stats.mean, stats.std, stats.basis
    value = view.weight(name)
    if value is None:
        return None
    value = value.astype(np.float64)
    if value.size == 1:
        per_channel = value.reshape(1)
    elif value.ndim >= 3 and value.size == value.shape[-3]:  # [C, 1, 1] / [1, C, 1, 1]
        per_channel = value.reshape(-1)
    else:
        return None
    return per_channel, np.zeros_like(per_channel), ""


def _concat(node: NodeView, view: GraphView, known: dict[str, ChannelStats]) -> ChannelStats | None:
    parts = [known.get(name) for name in node.inputs]
    if any(p is None for p in parts):
        return None
    axis = int(node.attributes.get("axis", 1))
    rank = view.tensor(node.outputs[0]).rank if view.tensor(node.outputs[0]) else None
    if rank is not None and axis < 0:
        axis += rank
    basis = FROM_BATCHNORM if all(p.basis == FROM_BATCHNORM for p in parts) else parts[0].basis
    if axis == 1:
        return ChannelStats(
            np.concatenate([p.mean for p in parts]),
            np.concatenate([p.std for p in parts]),
            min(p.low for p in parts),
            max(p.high for p in parts),
            basis,
            np.concatenate([p.tail for p in parts]),
        )
    return _pooled(parts, basis)


def _pooled(parts: list[ChannelStats], basis: str) -> ChannelStats:
    """Several tensors merged along a non-channel axis (or one whose channels moved): one set
    of stats covering them all."""
    if len(parts) > 1 and all(p.mean.size == parts[0].mean.size for p in parts):
        mean = np.mean([p.mean for p in parts], axis=0)
        std = np.max([p.std for p in parts], axis=0)
    else:
        mean = np.array([np.mean([p.mean.mean() for p in parts])])
        std = np.array([max(float(p.std.max()) for p in parts)])
    return ChannelStats(mean, std, min(p.low for p in parts), max(p.high for p in parts), basis)


def _split(node: NodeView, view: GraphView, known: dict[str, ChannelStats], whole: ChannelStats):
    axis = int(node.attributes.get("axis", 0))
    sizes = []
    for name in node.outputs:
        tensor = view.tensor(name)
        if tensor is None or tensor.rank is None or axis not in (1, 1 - tensor.rank):
            return
        size = tensor.shape[1]
        if not isinstance(size, int):
            return
        sizes.append(size)
    if sum(sizes) != whole.mean.size:
        return
    start = 0
    for name, size in zip(node.outputs, sizes, strict=True):
        part = slice(start, start + size)
        known[name] = ChannelStats(
            whole.mean[part], whole.std[part], whole.low, whole.high, whole.basis, whole.tail[part]
        )
        start += size


def _split_first(node: NodeView, view: GraphView, known: dict[str, ChannelStats]):
    """Split's first output is filled in by ``_split``; here only the whole goes in."""
    return _input(node, known)


def _reshape(
    node: NodeView, view: GraphView, known: dict[str, ChannelStats]
) -> ChannelStats | None:
    """Channel statistics survive when axis 1 keeps its size; otherwise they are pooled."""
    x = _input(node, known)
    out = view.tensor(node.outputs[0])
    if x is None:
        return None
    if node.op_type == "Flatten" or out is None or out.rank is None or out.rank < 2:
        return x  # features in channel-major order (see _per_channel)
    if out.shape[1] == x.mean.size:
        return x
    return _pooled([x], x.basis)


def _transpose(node: NodeView, view: GraphView, known: dict[str, ChannelStats]):
    x = _input(node, known)
    perm = node.attributes.get("perm")
    if x is None:
        return None
    return x if perm is not None and len(perm) > 1 and perm[1] == 1 else _pooled([x], x.basis)


_RULES: dict[str, Callable[[NodeView, GraphView, dict[str, ChannelStats]], ChannelStats | None]] = {
    "Conv": _conv,
    "ConvTranspose": _conv,
    "Gemm": _gemm,
    "MatMul": _gemm,
    "BatchNormalization": _batchnorm,
    "Relu": _activation(),
    "LeakyRelu": _activation(),
    "HardSwish": _activation(low=-0.375),
    "Gelu": _activation(low=-0.17),
    "Erf": _bounded(-1.0, 1.0),
    "Sigmoid": _bounded(0.0, 1.0, _sigmoid_moments),
    "HardSigmoid": _bounded(0.0, 1.0),
    "Tanh": _bounded(-1.0, 1.0, _tanh_moments),
    "Softmax": _bounded(0.0, 1.0),
    "Clip": _clip,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _pool,
    "GlobalMaxPool": _pool,
    "Add": _add,
    "Sub": _add,
    "Mul": _mul,
    "Concat": _concat,
    "Split": _split_first,
    "Identity": _same,
    "Dropout": _same,
    "Resize": _same,
    "Upsample": _same,
    "Pad": _same,
    "Transpose": _transpose,
    "Reshape": _reshape,
    "Flatten": _reshape,
    "Squeeze": _reshape,
    "Unsqueeze": _reshape,
}

"""Hypothesis strategies for random, valid ONNX graphs built from the ops the profiles know.

``graphs()`` draws a small float32 NCHW network (input up to 1x16x16x16, IR version 8,
opset 17): a chain of layers (Conv in all its forms, ConvTranspose, BatchNormalization,
activations, SiLU as Mul(x, Sigmoid(x)), elementwise ops with constants or with a second
branch or input, channel Concat, pools, Resize, LayerNormalization, Softmax, Pad, Slice,
Split), optionally ending in Flatten/Reshape + Gemm (+ BN, Relu, Softmax), sometimes with an
inner tensor as a second output, a symbolic batch, weights in Constant nodes or unnamed
nodes. Every layer computes its parameters from the shape it is given, so each drawn model
passes ``onnx.checker.check_model(full_check=True)`` and runs in onnxruntime without any
rejection sampling. Structure shrinks through hypothesis; the weights come from a numpy
generator seeded by one drawn integer, so a shrunk example is reproduced exactly. They are
scaled so that activations stay near unit size, and variances, divisors and LayerNorm
epsilons stay away from zero: an exact pass only moves outputs by float rounding, and a
badly conditioned graph would magnify that beyond the exact tolerance.

``graphs(opset=20)`` is the same with IR version 9 and opset 20, and adds Gelu.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

IR_VERSIONS = {17: 8, 20: 9}
MAX_CHANNELS = 24
MAX_SIZE = 16
BATCH = "N"
HARD_SWISH_GATE = (1 / 6, 0.5)


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]  # the batch is 1 (or BATCH when the model's batch is dynamic)

    @property
    def channels(self) -> int:
        return self.shape[1]

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.shape[2:]


@dataclass
class Builder:
    """Collects nodes and initializers; every name it hands out is unique."""

    rng: np.random.Generator
    opset: int
    named: bool = True  # or every node unnamed, as ONNX allows (onnxruntime refuses repeats)
    constant_nodes: bool = False  # weights as Constant nodes instead of initializers
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)  # every 4-D activation so far
    count: int = 0

    def fresh(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def node_name(self, op: str) -> str:
        return self.fresh(op) if self.named else ""

    def const(self, value: np.ndarray, base: str = "w", as_node: bool | None = None) -> str:
        name = self.fresh(base)
        tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
        if self.constant_nodes if as_node is None else as_node:
            node_name = self.node_name("Constant")
            self.nodes.append(helper.make_node("Constant", [], [name], node_name, value=tensor))
        else:
            self.initializers.append(tensor)
        return name

    def weight(self, shape: tuple[int, ...], fan_in: int, base: str = "w") -> str:
        scale = 1.0 / np.sqrt(max(fan_in, 1))
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32), base)

    def floats(self, shape: tuple[int, ...], low: float, high: float, base: str = "c") -> str:
        return self.const(self.rng.uniform(low, high, shape).astype(np.float32), base)

    def ints(self, values: list[int], base: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), base)

    def node(
        self, op: str, inputs: list[str], shape: tuple[int, ...], track: bool = True, **attrs
    ) -> Tensor:
        out = Tensor(self.fresh(op.lower()), shape)
        name = self.node_name(op)
        self.nodes.append(helper.make_node(op, inputs, [out.name], name=name, **attrs))
        if track and len(shape) == 4:
            self.tensors.append(out)
        return out

    def split(self, inputs: list[str], shapes: list[tuple[int, ...]], **attrs) -> list[Tensor]:
        outs = [Tensor(self.fresh("split"), shape) for shape in shapes]
        node = helper.make_node(
            "Split", inputs, [t.name for t in outs], name=self.node_name("Split"), **attrs
        )
        self.nodes.append(node)
        return outs


Layer = Callable[[st.DrawFn, Builder, Tensor], Tensor]


def _window_out(size: int, kernel: int, stride: int, pads: int, dilation: int = 1) -> int:
    return (size + pads - dilation * (kernel - 1) - 1) // stride + 1


def _fitting_pads(draw: st.DrawFn, size: int, reach: int) -> tuple[int, int]:
    """Begin/end pads below ``reach`` (the dilated kernel) that let the window fit in ``size``."""
    begin = draw(st.integers(0, min(reach - 1, 2)))
    end = draw(st.integers(0, min(reach - 1, 2)))
    if size + begin + end < reach:
        end = reach - size - begin
    return begin, end


def _windows(
    draw: st.DrawFn, spatial: tuple[int, ...], max_kernel: int, dilated: bool
) -> tuple[list[int], list[int], list[int], list[int], tuple[int, ...]]:
    """Kernel, strides, dilations and pads for each spatial axis, and the output sizes."""
    kernels, strides, dilations, begins, ends, out = [], [], [], [], [], []
    for size in spatial:
        dilation = draw(st.integers(1, 2)) if dilated else 1
        kernel = draw(st.integers(1, max_kernel))
        while dilation * (kernel - 1) + 1 > size + 4:  # pads are at most 2 a side
            kernel -= 1
        reach = dilation * (kernel - 1) + 1
        stride = draw(st.integers(1, 2))
        begin, end = _fitting_pads(draw, size, reach)
        kernels.append(kernel)
        strides.append(stride)
        dilations.append(dilation)
        begins.append(begin)
        ends.append(end)
        out.append(_window_out(size, kernel, stride, begin + end, dilation))
    return kernels, strides, dilations, begins + ends, tuple(out)


def conv(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    channels = x.channels
    divisors = [g for g in range(2, channels) if channels % g == 0]
    kinds = ["regular", "depthwise"] + (["grouped"] if divisors else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "regular":
        group, out = 1, draw(st.integers(1, 16))
    elif kind == "depthwise":
        group = channels
        out = channels * draw(st.integers(1, max(1, min(2, MAX_CHANNELS // channels))))
    else:
        group = draw(st.sampled_from(divisors))
        out = group * draw(st.integers(1, max(1, 16 // group)))
    kernels, strides, dilations, pads, spatial = _windows(draw, x.spatial, 5, dilated=True)
    attrs: dict = {"kernel_shape": kernels}
    auto_pad = draw(st.sampled_from(["NOTSET"] * 6 + ["SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") and dilations == [1] * len(dilations):
        # (onnxruntime has no SAME padding with dilations)
        spatial = tuple(-(-size // s) for size, s in zip(x.spatial, strides, strict=True))
        attrs["auto_pad"] = auto_pad
    elif auto_pad == "VALID" and all(
        d * (k - 1) + 1 <= size for d, k, size in zip(dilations, kernels, x.spatial, strict=True)
    ):
        spatial = tuple(
            _window_out(size, k, s, 0, d)
            for size, k, s, d in zip(x.spatial, kernels, strides, dilations, strict=True)
        )
        attrs["auto_pad"] = auto_pad
    elif any(pads) or draw(st.booleans()):
        attrs["pads"] = pads
    if any(s != 1 for s in strides) or draw(st.booleans()):
        attrs["strides"] = strides
    if any(d != 1 for d in dilations):
        attrs["dilations"] = dilations
    if group != 1:
        attrs["group"] = group
    per_group = channels // group
    fan_in = per_group * int(np.prod(kernels))
    inputs = [x.name, b.weight((out, per_group, *kernels), fan_in)]
    if draw(st.booleans()):
        inputs.append(b.weight((out,), 4, "bias"))
    return b.node("Conv", inputs, (x.shape[0], out, *spatial), **attrs)


def same_conv(draw: st.DrawFn, b: Builder, x: Tensor, out: int | None = None) -> Tensor:
    """A stride-1 Conv that keeps the spatial size (odd kernel, symmetric pads)."""
    out = x.channels if out is None else out
    depthwise = out == x.channels and draw(st.booleans())
    kernel = draw(st.sampled_from([1, 3]))
    group = x.channels if depthwise else 1
    per_group = x.channels // group
    weight = b.weight((out, per_group, kernel, kernel), per_group * kernel * kernel)
    half = kernel // 2
    attrs = {"kernel_shape": [kernel, kernel], "pads": [half] * 4}
    if group != 1:
        attrs["group"] = group
    inputs = [x.name, weight, b.weight((out,), 4, "bias")]
    return b.node("Conv", inputs, (x.shape[0], out, *x.spatial), **attrs)


def conv_transpose(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    channels = x.channels
    divisors = [g for g in range(2, channels + 1) if channels % g == 0]
    kind = draw(st.sampled_from(["regular", "grouped"] if divisors else ["regular"]))
    if kind == "regular":
        group, out = 1, draw(st.integers(1, 16))
    else:  # group == channels is depthwise
        group = draw(st.sampled_from(divisors))
        out = group * draw(st.integers(1, max(1, 16 // group)))
    kernels, strides, pads, extra, spatial = [], [], [], [], []
    for size in x.spatial:
        stride = draw(st.integers(1, 2)) if size <= MAX_SIZE // 2 else 1
        kernel = draw(st.integers(1, 4))
        full = stride * (size - 1) + kernel
        while full > MAX_SIZE + 2 and kernel > 1:
            kernel, full = kernel - 1, full - 1
        begin = draw(st.integers(0, min(kernel - 1, 1)))
        end = draw(st.integers(0, min(kernel - 1, 1)))
        output_padding = draw(st.integers(0, stride - 1))
        end = min(end, full + output_padding - begin - 1)  # at least one output
        size_out = full + output_padding - begin - end
        kernels.append(kernel)
        strides.append(stride)
        pads.append((begin, end))
        extra.append(output_padding)
        spatial.append(size_out)
    attrs: dict = {"kernel_shape": kernels, "strides": strides}
    attrs["pads"] = [p[0] for p in pads] + [p[1] for p in pads]
    if any(extra):
        attrs["output_padding"] = extra
    if group != 1:
        attrs["group"] = group
    weight = b.weight((channels, out // group, *kernels), channels * int(np.prod(kernels)))
    inputs = [x.name, weight]
    if draw(st.booleans()):
        inputs.append(b.weight((out,), 4, "bias"))
    return b.node("ConvTranspose", inputs, (x.shape[0], out, *spatial), **attrs)


def batchnorm(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    c = x.channels
    stats = [
        b.floats((c,), 0.5, 1.5, "gamma"),
        b.weight((c,), 4, "beta"),
        b.weight((c,), 4, "mean"),
        b.floats((c,), 0.5, 2.0, "var"),
    ]
    epsilon = draw(st.sampled_from([1e-5, 1e-3]))
    return b.node("BatchNormalization", [x.name, *stats], x.shape, epsilon=epsilon)


def conv_batchnorm(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    """Conv or ConvTranspose straight into BatchNormalization, as exporters write them."""
    layer = draw(st.sampled_from([conv, conv_transpose]))
    return batchnorm(draw, b, layer(draw, b, x))


def relu(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    return b.node("Relu", [x.name], x.shape)


def leaky_relu(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    return b.node("LeakyRelu", [x.name], x.shape, alpha=draw(st.sampled_from([0.01, 0.1, 0.2])))


def sigmoid(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    return b.node("Sigmoid", [x.name], x.shape)


def silu(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    gate = b.node("Sigmoid", [x.name], x.shape, track=False)
    inputs = [x.name, gate.name] if draw(st.booleans()) else [gate.name, x.name]
    return b.node("Mul", inputs, x.shape)


def hard_swish(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    return b.node("HardSwish", [x.name], x.shape)


def hard_sigmoid(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    alpha, beta = draw(st.sampled_from([(0.2, 0.5), HARD_SWISH_GATE, (0.5, 0.25)]))
    return b.node("HardSigmoid", [x.name], x.shape, alpha=alpha, beta=beta)


def clip(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    low, high = draw(st.sampled_from([(0.0, 6.0), (-1.0, 1.0), (0.0, None), (None, 0.5)]))
    inputs = [x.name, "" if low is None else b.const(np.float32(low), "min")]
    if high is not None:
        inputs.append(b.const(np.float32(high), "max"))
    return b.node("Clip", inputs, x.shape)


def gelu(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    approximate = draw(st.sampled_from(["none", "tanh"]))
    return b.node("Gelu", [x.name], x.shape, approximate=approximate)


def identity(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    return b.node(draw(st.sampled_from(["Identity", "Dropout"])), [x.name], x.shape)


CONSTANT_SHAPES: dict[str, Callable[[Tensor], tuple[int, ...]]] = {
    "scalar": lambda x: (),
    "one": lambda x: (1,),
    "channel": lambda x: (x.channels, 1, 1),
    "channel4": lambda x: (1, x.channels, 1, 1),
    "full": lambda x: (1, *x.shape[1:]),
    "width": lambda x: (x.shape[3],),
    "plane": lambda x: (1, 1, *x.shape[2:]),
    "hw": lambda x: x.shape[2:],
}


def with_constant(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    """Add/Sub/Mul/Div of the activation and a constant of a broadcastable shape."""
    op = draw(st.sampled_from(["Add", "Mul", "Sub", "Div"]))
    shape = CONSTANT_SHAPES[draw(st.sampled_from(list(CONSTANT_SHAPES)))](x)
    if op == "Div":  # well away from zero
        value = b.rng.uniform(0.5, 2.0, shape) * b.rng.choice([-1.0, 1.0], shape)
    else:
        value = b.rng.standard_normal(shape) * 0.5 + (1.0 if op == "Mul" else 0.0)
    how = draw(st.sampled_from(["initializer", "constant node", "folded"]))
    name = b.const(value.astype(np.float32), "k", as_node=how == "constant node")
    if how == "folded":  # a constant subgraph: Constant * 1 (what simplify folds)
        one = b.const(np.ones(shape, np.float32), "one", as_node=True)
        name = b.node("Mul", [name, one], shape, track=False).name
    first = op != "Div" and draw(st.booleans())
    return b.node(op, [name, x.name] if first else [x.name, name], x.shape)


BRANCHES = ("relu", "sigmoid", "same_conv", "batchnorm", "hard_sigmoid")


def _branch(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    """Another tensor of ``x``'s shape: an earlier one, or a side branch grown from ``x``."""
    earlier = [t for t in b.tensors if t.shape == x.shape and t.name != x.name]
    if earlier and draw(st.booleans()):
        return draw(st.sampled_from(earlier))
    kind = draw(st.sampled_from(BRANCHES))
    return LAYERS[kind](draw, b, x) if kind != "same_conv" else same_conv(draw, b, x)


def with_branch(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    """Add/Mul/Sub of the activation and another branch of the same shape."""
    op = draw(st.sampled_from(["Add", "Mul", "Sub", "Max", "Min"]))
    other = _branch(draw, b, x)
    inputs = [x.name, other.name] if draw(st.booleans()) else [other.name, x.name]
    return b.node(op, inputs, x.shape)


def concat(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    """Concat on channels with tensors of the same batch and spatial size."""
    room = MAX_CHANNELS - x.channels
    fits = [t for t in b.tensors if t.shape[2:] == x.shape[2:] and t.channels <= room]
    parts = [x]
    if fits and draw(st.booleans()):
        parts.append(draw(st.sampled_from(fits)))
    elif room >= 1:
        parts.append(same_conv(draw, b, x, out=draw(st.integers(1, min(room, 8)))))
    else:  # no room for more channels
        return relu(draw, b, x)
    if draw(st.booleans()):
        parts.reverse()
    channels = sum(t.channels for t in parts)
    return b.node("Concat", [t.name for t in parts], (x.shape[0], channels, *x.shape[2:]), axis=1)


def pool(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    kernels, strides, _, pads, spatial = _windows(draw, x.spatial, 3, dilated=False)
    attrs: dict = {"kernel_shape": kernels, "strides": strides}
    if any(pads):
        attrs["pads"] = pads
        if op == "AveragePool":
            attrs["count_include_pad"] = draw(st.integers(0, 1))
    elif all(k >= s for k, s in zip(kernels, strides, strict=True)) and draw(st.booleans()):
        attrs["ceil_mode"] = 1  # every window still starts inside the input
        spatial = tuple(
            -(-(size - k) // s) + 1 for size, k, s in zip(x.spatial, kernels, strides, strict=True)
        )
    return b.node(op, [x.name], (*x.shape[:2], *spatial), **attrs)


def global_pool(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    op = draw(st.sampled_from(["GlobalAveragePool", "GlobalMaxPool"]))
    return b.node(op, [x.name], (*x.shape[:2], 1, 1))


def tanh(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    return b.node("Tanh", [x.name], x.shape)


def elu(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    return b.node("Elu", [x.name], x.shape, alpha=draw(st.sampled_from([1.0, 0.5])))


def prelu(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    """A slope per channel or one shared slope."""
    shape = draw(st.sampled_from([(x.channels, 1, 1), (1,)]))
    return b.node("PRelu", [x.name, b.floats(shape, 0.05, 0.3, "slope")], x.shape)


def pad(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    """Pad the spatial axes (constant, reflect or edge), or the channels with zeros."""
    mode = draw(st.sampled_from(["constant", "reflect", "edge"]))
    begins, ends = [0, 0], [0, 0]
    if mode == "constant" and x.channels < MAX_CHANNELS and draw(st.integers(0, 3)) == 0:
        begins[1], ends[1] = 0, draw(st.integers(1, min(3, MAX_CHANNELS - x.channels)))
    for size in x.spatial:
        most = min(2, size - 1) if mode == "reflect" else 2  # reflect stays inside the input
        begins.append(draw(st.integers(0, most)))
        ends.append(draw(st.integers(0, most)))
    shape = tuple(
        d if isinstance(d, str) else d + p0 + p1
        for d, p0, p1 in zip(x.shape, begins, ends, strict=True)
    )
    inputs = [x.name, b.ints(begins + ends, "pads")]
    if mode == "constant" and draw(st.booleans()):
        inputs.append(b.const(np.float32(draw(st.sampled_from([0.0, 0.5]))), "pad_value"))
    return b.node("Pad", inputs, shape, mode=mode)


def slice_(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    """Slice one axis (channels, height or width), maybe with a step or an open end."""
    axes = [a for a in (1, 2, 3) if x.shape[a] >= 2]
    if not axes:
        return relu(draw, b, x)
    axis = draw(st.sampled_from(axes))
    size = x.shape[axis]
    start = draw(st.integers(0, size - 1))
    end = draw(st.integers(start + 1, size))
    step = draw(st.sampled_from([1, 1, 2]))
    kept = len(range(start, end, step))
    stop = 2**63 - 1 if end == size and draw(st.booleans()) else end  # as exporters write ":"
    inputs = [x.name, b.ints([start], "starts"), b.ints([stop], "ends"), b.ints([axis], "axes")]
    if step != 1:
        inputs.append(b.ints([step], "steps"))
    shape = tuple(kept if i == axis else d for i, d in enumerate(x.shape))
    return b.node("Slice", inputs, shape)


def split(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    """Split an axis in two halves, then join them again (elementwise, or Concat swapped)."""
    axes = [a for a in (1, 2, 3) if x.shape[a] % 2 == 0]
    if not axes:
        return relu(draw, b, x)
    axis = draw(st.sampled_from(axes))
    half = x.shape[axis] // 2
    shape = tuple(half if i == axis else d for i, d in enumerate(x.shape))
    attrs = {"axis": axis}
    if draw(st.booleans()):
        inputs = [x.name, b.ints([half, half], "split")]
    else:  # equal parts: implied up to opset 17, then named by num_outputs
        inputs = [x.name]
        attrs.update({"num_outputs": 2} if b.opset >= 18 else {})
    first, second = b.split(inputs, [shape, shape], **attrs)
    if draw(st.booleans()):
        op = draw(st.sampled_from(["Add", "Mul", "Max"]))
        return b.node(op, [first.name, second.name], shape)
    return b.node("Concat", [second.name, first.name], x.shape, axis=axis)


def resize(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    """Nearest-neighbour upsampling by 2 (by 1/2 on an axis already larger than 8)."""
    factors = [2.0 if size <= MAX_SIZE // 2 else 0.5 for size in x.spatial]
    scales = b.const(np.array([1, 1, *factors], np.float32), "scales")
    shape = (*x.shape[:2], *(int(s * f) for s, f in zip(x.spatial, factors, strict=True)))
    return b.node("Resize", [x.name, "", scales], shape, mode="nearest")


def softmax(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    return b.node("Softmax", [x.name], x.shape, axis=draw(st.sampled_from([1, -1])))


def layer_norm(draw: st.DrawFn, b: Builder, x: Tensor) -> Tensor:
    axis = draw(st.sampled_from([-1, 1, 2, 3]))
    normalized = x.shape[axis:]
    inputs = [x.name, b.floats(normalized, 0.5, 1.5, "ln_scale")]
    if draw(st.booleans()):
        inputs.append(b.weight(normalized, 4, "ln_bias"))
    # Not the default 1e-5: a row of near-equal values (Relu zeros) has a variance far below
    # it, and 1/sqrt(epsilon) then magnifies float rounding beyond any exact tolerance.
    epsilon = draw(st.sampled_from([1e-3, 1e-2]))
    return b.node("LayerNormalization", inputs, x.shape, axis=axis, epsilon=epsilon)


LAYERS: dict[str, Layer] = {
    "relu": relu,
    "conv": conv,
    "batchnorm": batchnorm,
    "conv_batchnorm": conv_batchnorm,
    "leaky_relu": leaky_relu,
    "sigmoid": sigmoid,
    "silu": silu,
    "hard_swish": hard_swish,
    "hard_sigmoid": hard_sigmoid,
    "clip": clip,
    "with_constant": with_constant,
    "with_branch": with_branch,
    "concat": concat,
    "conv_transpose": conv_transpose,
    "pool": pool,
    "global_pool": global_pool,
    "resize": resize,
    "softmax": softmax,
    "layer_norm": layer_norm,
    "identity": identity,
    "tanh": tanh,
    "elu": elu,
    "prelu": prelu,
    "pad": pad,
    "slice": slice_,
    "split": split,
}
"""Layer kinds, simplest first (hypothesis shrinks towards the front of the list)."""
OPSET_LAYERS = {20: {"gelu": gelu}}


def head(draw: st.DrawFn, b: Builder, x: Tensor, dynamic: bool) -> Tensor:
    """Flatten or Reshape to [N, features], then Gemm, maybe BatchNorm, Relu or Softmax."""
    features = int(np.prod(x.shape[1:]))
    if draw(st.booleans()):
        flat = b.node("Flatten", [x.name], (x.shape[0], features), axis=1)
    else:
        shape = b.ints([0 if dynamic else 1, -1])
        flat = b.node("Reshape", [x.name, shape], (x.shape[0], features))
    units = draw(st.integers(1, 10))
    trans_b = draw(st.integers(0, 1))
    weight = b.weight((units, features) if trans_b else (features, units), features)
    attrs: dict = {}
    if trans_b:
        attrs["transB"] = 1
    if draw(st.booleans()):
        attrs["alpha"] = draw(st.sampled_from([0.5, 2.0]))
    inputs = [flat.name, weight]
    bias = draw(st.sampled_from(["none", "vector", "row"]))
    if bias != "none":
        inputs.append(b.weight((units,) if bias == "vector" else (1, units), 4, "bias"))
        if draw(st.booleans()):
            attrs["beta"] = draw(st.sampled_from([0.5, 2.0]))
    y = b.node("Gemm", inputs, (x.shape[0], units), **attrs)
    after = draw(st.sampled_from(["none", "batchnorm", "relu", "softmax"]))
    if after == "batchnorm":
        y = batchnorm(draw, b, y)
    elif after == "relu":
        y = relu(draw, b, y)
    elif after == "softmax":
        y = b.node("Softmax", [y.name], y.shape, axis=draw(st.sampled_from([1, -1])))
    return y


def _value_info(tensor: Tensor) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(tensor.name, TensorProto.FLOAT, list(tensor.shape))


@st.composite
def graphs(
    draw: st.DrawFn,
    opset: int = 17,
    focus: tuple[str, ...] = (),
    dynamic_batch: bool | None = False,
    max_layers: int = 6,
) -> onnx.ModelProto:
    """A random valid model. ``focus`` names layer kinds to draw more often (and at least
    once); ``dynamic_batch`` None draws whether the batch dim is symbolic."""
    dynamic = draw(st.booleans()) if dynamic_batch is None else dynamic_batch
    batch: int | str = BATCH if dynamic else 1
    seed = draw(st.integers(0, 2**32 - 1))
    b = Builder(
        np.random.default_rng(seed),
        opset,
        named=draw(st.sampled_from([True, True, True, False])),
        constant_nodes=draw(st.sampled_from([False, False, False, True])),
    )
    size = (draw(st.integers(1, MAX_SIZE)), draw(st.integers(1, MAX_SIZE)))
    if draw(st.booleans()):
        size = (size[0], size[0])
    x = Tensor("input", (batch, draw(st.integers(1, MAX_CHANNELS - 8)), *size))
    b.tensors.append(x)
    second = Tensor("input2", x.shape)  # joins branches and concats when drawn from b.tensors
    if draw(st.integers(0, 3)) == 0:
        b.tensors.append(second)
    kinds = {**LAYERS, **OPSET_LAYERS.get(opset, {})}
    choices = list(kinds) + [k for k in focus for _ in range(len(kinds) // 2)]
    count = draw(st.integers(1, max_layers))
    plan = [draw(st.sampled_from(choices)) for _ in range(count)]
    if focus and not set(plan) & set(focus):
        plan[draw(st.integers(0, count - 1))] = draw(st.sampled_from(focus))
    y = x
    for kind in plan:
        y = kinds[kind](draw, b, y)
    if draw(st.booleans()):
        y = head(draw, b, y, dynamic)
    outputs = [y]
    inner = [t for t in b.tensors if t.name not in (x.name, second.name, y.name)]
    if inner and draw(st.integers(0, 3)) == 0:
        outputs.append(draw(st.sampled_from(inner)))
    inputs = [x]
    if any(second.name in node.input for node in b.nodes):
        inputs.append(second)
    graph = helper.make_graph(
        b.nodes,
        "random",
        [_value_info(t) for t in inputs],
        [_value_info(t) for t in outputs],
        b.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_VERSIONS[opset]
    model.producer_name = "portlint-tests"
    return model


def ops_of(model: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in model.graph.node}

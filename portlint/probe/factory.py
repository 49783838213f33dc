"""Single-op ONNX models with chosen field values, for boundary tests on profile limits.

Given a node field (kernel_shape, strides, out_channels, in_width, mode, ...) and a value,
``build(op, field, value)`` returns a small valid model whose one interesting node has that
value, or raises ``Unsupported`` when no single-op model can express it.

Ops no profile limit varies (comparisons, shape arithmetic, detector post-processing ...)
get one fixed model each (``FIXED``): the op alone, or inside the few nodes a torch export
puts around it, so that its bool or integer tensors are read by the nodes that read them in
real networks and only float tensors meet the carriers ``recipes`` adds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from portlint.pattern_catalog import FUSED_PATTERNS

IR_VERSION = 8
OPSET = 17
IR_FOR_OPSET = {9: 4, 17: IR_VERSION, 18: 8, 19: 9, 20: 9, 21: 10}
"""The IR version each opset the probes use came with (DequantizeLinear to float16 needs 19)."""
OPSET_OF = {"Upsample": 9, "Mish": 18, "Gelu": 20, "GroupNormalization": 21}
"""Ops a probe must import another opset than ``OPSET`` for: removed since (Upsample, which
old exports at opset 9 still hold) or added later (GroupNormalization in its opset 21 form:
the checker refuses the deprecated opset 18 one)."""
N, C, H, W = 1, 8, 16, 16
"""The probe input [n, c, h, w] when no field sets it (fixed probes always)."""
NODE_NAME = "probe"
DTYPES = {
    "float32": TensorProto.FLOAT,
    "float16": TensorProto.FLOAT16,
    "float64": TensorProto.DOUBLE,
    "int8": TensorProto.INT8,
    "uint8": TensorProto.UINT8,
    "int16": TensorProto.INT16,
    "int32": TensorProto.INT32,
    "int64": TensorProto.INT64,
    "bool": TensorProto.BOOL,
}
KERNEL_FIELDS = {
    "kernel_shape",
    "kernel_height",
    "kernel_width",
    "kernel_area",
    "dilated_kernel_shape",
}
WINDOWED = {"Conv", "ConvTranspose", "MaxPool", "AveragePool"}
SHAPE_PRESERVING = {
    "Pow",
    "MatMul",
    "ArgMax",
    "ArgMin",
    "DepthToSpace",
    "LRN",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Elu",
    "LeakyRelu",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Max",
    "Min",
    "Transpose",
    "Reshape",
    "BatchNormalization",
    "PRelu",
    "Clip",
    "Softmax",
    "ReduceMean",
    "ReduceSum",
    "Pad",
    "Concat",
    "Slice",
    "Cast",
    "Identity",
    "Exp",
    "Log",
    "HardSigmoid",
    "HardSwish",
    "Flatten",
    "Gather",
}


class Unsupported(Exception):
    """The factory cannot build a single-op model for this op/field."""


@dataclass
class Spec:
    """Everything a probe model can vary; fields map onto these."""

    op: str
    n: int = N
    c: int = C
    h: int = H
    w: int = W
    out: int = 8
    kernel: tuple[int, ...] = (3, 3)
    strides: tuple[int, ...] = (1, 1)
    dilations: tuple[int, ...] = (1, 1)
    pads: tuple[int, ...] = (0, 0, 0, 0)
    group: int = 1
    rank: int = 4
    axis: int = 1
    mode: str = "nearest"
    scales: tuple[float, ...] = (2.0, 2.0)
    steps: int = 1
    dtype: str = "float32"
    first_layer: bool = True
    attrs: dict[str, Any] = field(default_factory=dict)


def _pair(value: Any) -> tuple[int, ...]:
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return (int(value), int(value))


def _fit(spec: Spec) -> Spec:
    """Grow the input so the window fits."""
    reach = [(k - 1) * d + 1 for k, d in zip(spec.kernel, spec.dilations, strict=False)]
    need_h = max(reach[0] + spec.strides[0], spec.h)
    need_w = max(reach[-1] + spec.strides[-1], spec.w)
    return replace(spec, h=need_h, w=need_w)


def apply(spec: Spec, name: str, value: Any) -> Spec:
    """Set one field on the spec, as the profile's field function would read it back."""
    setters = {
        "kernel_shape": lambda: _fit(replace(spec, kernel=_pair(value))),
        "strides": lambda: _fit(replace(spec, strides=_pair(value))),
        "dilations": lambda: _fit(replace(spec, dilations=_pair(value))),
        "pads": lambda: _fit(
            replace(
                spec,
                pads=(int(value),) * 4,
                kernel=tuple(max(k, int(value) + 1) for k in spec.kernel),
            )
        ),
        "group": lambda: replace(spec, group=int(value), c=8 * int(value), out=8 * int(value)),
        "group_kind": lambda: _group_kind(spec, value),
        "in_channels": lambda: replace(spec, c=int(value), kernel=(1, 1), h=2, w=2),
        "out_channels": lambda: replace(spec, out=int(value), c=spec.c, kernel=(1, 1), h=2, w=2),
        "in_height": lambda: replace(spec, h=int(value), c=1, out=1, kernel=(1, 1), w=2),
        "in_width": lambda: replace(spec, w=int(value), c=1, out=1, kernel=(1, 1), h=2),
        "out_height": lambda: replace(spec, h=int(value), c=1, out=1, kernel=(1, 1), w=2),
        "out_width": lambda: replace(spec, w=int(value), c=1, out=1, kernel=(1, 1), h=2),
        "batch": lambda: replace(spec, n=int(value)),
        "input_rank": lambda: _rank(spec, int(value)),
        "axis": lambda: replace(spec, axis=int(value)),
        "mode": lambda: replace(spec, mode=str(value)),
        "resize_scales": lambda: replace(spec, scales=tuple(float(v) for v in _pair_float(value))),
        "steps": lambda: replace(spec, steps=int(value)),
        "dtype": lambda: replace(spec, dtype=str(value)),
        "auto_pad": lambda: replace(spec, attrs={**spec.attrs, "auto_pad": str(value)}),
        "kernel_area": lambda: _fit(replace(spec, kernel=(1, int(value)))),
        "width_x_kernel_height": lambda: replace(spec, w=int(value), kernel=(1, 1), c=1, out=1),
        "weights_per_filter": lambda: replace(spec, c=int(value), kernel=(1, 1), out=1, h=1, w=1),
        "is_first_layer": lambda: replace(spec, first_layer=bool(value)),
        "kernel_height": lambda: _fit(replace(spec, kernel=(int(value), spec.kernel[-1]))),
        "kernel_width": lambda: _fit(replace(spec, kernel=(spec.kernel[0], int(value)))),
        "stride_height": lambda: _fit(replace(spec, strides=(int(value), spec.strides[-1]))),
        "stride_width": lambda: _fit(replace(spec, strides=(spec.strides[0], int(value)))),
        "dilated_kernel_shape": lambda: _fit(replace(spec, kernel=_pair(value))),
        "channels_per_group": lambda: replace(spec, c=int(value) * spec.group, kernel=(1, 1)),
        "depth_multiplier": lambda: replace(spec, group=spec.c, out=spec.c * int(value)),
        "coordinate_transformation_mode": lambda: replace(
            spec, attrs={**spec.attrs, "coordinate_transformation_mode": str(value)}
        ),
        "nearest_mode": lambda: replace(spec, attrs={**spec.attrs, "nearest_mode": str(value)}),
    }
    if name.startswith("attr."):
        return replace(spec, attrs={**spec.attrs, name[5:]: value})
    if name.startswith("has_attr."):
        return _written(spec, name[9:], bool(value))
    if name not in setters:
        raise Unsupported(f"no setter for field {name}")
    return setters[name]()


def _written(spec: Spec, attribute: str, written: bool) -> Spec:
    """``has_attr.NAME``: write the attribute out with its ONNX default value, or leave it out
    (``None`` in ``attrs`` drops it), so only whether it is written differs."""
    value = _schema_default(spec.op, attribute) if written else None
    return replace(spec, attrs={**spec.attrs, attribute: value})


def _schema_default(op: str, attribute: str) -> Any:
    schema = onnx.defs.get_schema(op, OPSET)
    declared = schema.attributes.get(attribute)
    if declared is None or declared.default_value.type == onnx.AttributeProto.UNDEFINED:
        raise Unsupported(f"{op} attribute {attribute} has no ONNX default to write out")
    return helper.get_attribute_value(declared.default_value)


def _pair_float(value: Any) -> tuple[float, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _group_kind(spec: Spec, kind: str) -> Spec:
    if kind == "regular":
        return replace(spec, group=1)
    if kind == "depthwise":
        return replace(spec, group=spec.c, out=spec.c)
    return replace(spec, group=2, c=8, out=8)


def _rank(spec: Spec, rank: int) -> Spec:
    if not 2 <= rank <= 8:
        raise Unsupported(f"rank {rank}")
    if rank != 3 and rank != 4:
        if spec.op in WINDOWED and rank != 5:
            raise Unsupported(f"rank {rank} {spec.op}")
        return replace(spec, rank=rank)  # rank 5 windows: _windowed adds the depth axis
    if rank == 3:
        return replace(
            spec,
            rank=3,
            kernel=spec.kernel[:1],
            strides=spec.strides[:1],
            dilations=spec.dilations[:1],
            pads=spec.pads[:2],
        )
    return spec


def _value(name: str, dtype: int, dims: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, dims)


def _model(
    nodes: list[onnx.NodeProto], inputs: list, outputs: list, inits: list, opset: int = OPSET
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "probe", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_FOR_OPSET[opset]
    return model


def _node(op: str, inputs: list[str], outputs: list[str], attrs: dict[str, Any]) -> onnx.NodeProto:
    """The probe node; attributes set to ``None`` are left out (``has_attr`` probes)."""
    written = {k: v for k, v in attrs.items() if v is not None}
    return helper.make_node(op, inputs, outputs, name=NODE_NAME, **written)


def _normal(shape: list[int], seed: int = 0) -> np.ndarray:
    """Weights with a fixed seed: the same recipe must rebuild the same bytes."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


Builder = Callable[[Spec], onnx.ModelProto]
X = (N, C, H, W)
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
"""Gate blocks stacked in a recurrent layer's weights (ONNX order: iofc, zrh, one)."""


def _recurrent_weights(channels: int, gates: int, directions: int = 1) -> dict[str, np.ndarray]:
    """W and R of a recurrent layer whose hidden size is its input's ``channels``."""
    return {
        "W": _normal([directions, gates * channels, channels], seed=1),
        "R": _normal([directions, gates * channels, channels], seed=2),
    }


def _f32(values: Any) -> np.ndarray:
    return np.array(values, np.float32)


def _i64(values: Any) -> np.ndarray:
    return np.array(values, np.int64)


def _aux(op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> onnx.NodeProto:
    """A node of the network around the probed one, named after its first output."""
    return helper.make_node(op, inputs, outputs, name=outputs[0], **attrs)


def _net(
    op: str,
    nodes: list[onnx.NodeProto],
    constants: Mapping[str, np.ndarray],
    inputs: Mapping[str, Sequence[int]] | None = None,
    outputs: Mapping[str, Sequence[int] | None] | None = None,
) -> onnx.ModelProto:
    """A small float network whose one node of type ``op`` is the probed one: every graph
    input and output is float, so the carriers wrap it as layers would; bool and integer
    tensors stay inside, between the nodes that make and read them."""
    [probed] = [node for node in nodes if node.op_type == op]
    probed.name = NODE_NAME
    return _model(
        nodes,
        [
            _value(name, TensorProto.FLOAT, list(dims))
            for name, dims in (inputs or {"x": X}).items()
        ],
        [
            _value(name, TensorProto.FLOAT, None if dims is None else list(dims))
            for name, dims in (outputs or {"y": None}).items()
        ],
        [numpy_helper.from_array(values, name) for name, values in constants.items()],
        opset=OPSET_OF.get(op, OPSET),
    )


def _input_dims(spec: Spec) -> list[int]:
    if spec.rank <= 3:
        return [spec.n, spec.c, spec.w][: spec.rank]
    depth = spec.h if spec.op in WINDOWED else 2  # a 3-D window must fit its depth axis too
    return [spec.n, spec.c, *[depth] * (spec.rank - 4), spec.h, spec.w]


def _widen(values: tuple[int, ...], axes: int) -> tuple[int, ...]:
    """Per-axis values for ``axes`` spatial axes: a 2-D setting repeats its first (height)
    value for the leading depth axis of a 3-D window."""
    return (values[0],) * (axes - len(values)) + tuple(values)


def _widen_pads(pads: tuple[int, ...], axes: int) -> tuple[int, ...]:
    half = len(pads) // 2
    return _widen(pads[:half], axes) + _widen(pads[half:], axes)


def _windowed(spec: Spec) -> onnx.ModelProto:
    weights, inputs = {}, ["x"]
    axes = len(_input_dims(spec)) - 2
    kernel = _widen(spec.kernel, axes)
    attrs: dict[str, Any] = {
        "kernel_shape": list(kernel),
        "strides": list(_widen(spec.strides, axes)),
        "pads": list(_widen_pads(spec.pads, axes)),
    }
    dilations = list(_widen(spec.dilations, axes))
    if spec.op in ("Conv", "ConvTranspose"):
        shape = (
            [spec.out, spec.c // spec.group]
            if spec.op == "Conv"
            else [spec.c, spec.out // spec.group]
        ) + list(kernel)
        weights["w"] = _normal(shape)
        inputs.append("w")
        attrs.update(dilations=dilations, group=spec.group)
    elif spec.op == "MaxPool":
        attrs["dilations"] = dilations
    attrs.update(spec.attrs)
    if attrs.get("auto_pad", "NOTSET") != "NOTSET":
        attrs.pop("pads")
    node = _node(spec.op, inputs, ["y"], attrs)
    return _net(spec.op, [node], weights, {"x": _input_dims(spec)})


def _global_pool(spec: Spec, kernel: tuple[int, ...] | None = None) -> onnx.ModelProto:
    dims = _input_dims(spec) if kernel is None else [spec.n, spec.c, *kernel]
    return _net(spec.op, [_node(spec.op, ["x"], ["y"], {})], {}, {"x": dims})


def _resize(spec: Spec) -> onnx.ModelProto:
    node = _node("Resize", ["x", "", "scales"], ["y"], {"mode": spec.mode, **spec.attrs})
    scales = {"scales": _f32([1, 1, *spec.scales])}
    return _net("Resize", [node], scales, {"x": _input_dims(spec)})


def _simple(spec: Spec) -> onnx.ModelProto:
    """Shape-preserving ops on one input (plus constant extras where the op needs them)."""
    dims = _input_dims(spec)
    extra, inits, attrs = [], [], dict(spec.attrs)
    op = spec.op
    if op == "Concat":
        extra = ["x"]
    if op in ("Add", "Sub", "Mul", "Div", "Max", "Min"):  # a per-channel constant, as exported
        shape = [1, dims[1], *[1] * (len(dims) - 2)] if len(dims) >= 2 else []
        inits.append(numpy_helper.from_array(np.full(shape, 1.5, np.float32), "k"))
        extra = ["k"]
    if op in ("Softmax", "Concat", "Gather", "Flatten", "ArgMax", "ArgMin"):
        attrs.setdefault("axis", spec.axis)
    if op == "Transpose":
        attrs.setdefault("perm", list(range(len(dims))))
    if op == "Reshape":
        inits.append(numpy_helper.from_array(np.array(dims, np.int64), "shape"))
        extra = ["shape"]
    if op == "BatchNormalization":
        for name in ("scale", "bias", "mean", "var"):
            inits.append(numpy_helper.from_array(np.ones(spec.c, np.float32), name))
        extra = ["scale", "bias", "mean", "var"]
    if op == "PRelu":
        inits.append(numpy_helper.from_array(np.full((spec.c, 1, 1), 0.1, np.float32), "slope"))
        extra = ["slope"]
    if op == "Slice":
        starts = np.zeros(1, np.int64)
        for name, value in (
            ("starts", starts),
            ("ends", np.array([dims[-1]], np.int64)),
            ("axes", np.array([len(dims) - 1], np.int64)),
            ("steps", np.array([spec.steps], np.int64)),
        ):
            inits.append(numpy_helper.from_array(value, name))
        extra = ["starts", "ends", "axes", "steps"]
    if op == "Cast":
        attrs["to"] = DTYPES[spec.dtype]
    if op == "MatMul":
        inits.append(numpy_helper.from_array(np.ones((dims[-1], dims[-1]), np.float32), "m"))
        extra = ["m"]
    if op == "Pow":
        inits.append(numpy_helper.from_array(np.array(2.0, np.float32), "exponent"))
        extra = ["exponent"]
    if op == "DepthToSpace":
        attrs.setdefault("blocksize", 2)
    if op == "LRN":
        attrs.setdefault("size", 3)
    if op == "Gather":
        inits.append(numpy_helper.from_array(np.zeros(1, np.int64), "idx"))
        extra = ["idx"]
    if op == "Pad":
        inits.append(numpy_helper.from_array(np.zeros(2 * len(dims), np.int64), "pads"))
        extra = ["pads"]
    node = _node(op, ["x", *extra], ["y"], attrs)
    in_type = TensorProto.FLOAT if op == "Cast" else DTYPES[spec.dtype]
    out_type = {"Cast": DTYPES[spec.dtype], "ArgMax": TensorProto.INT64}.get(op, in_type)
    out_type = TensorProto.INT64 if op == "ArgMin" else out_type
    return _model([node], [_value("x", in_type, dims)], [_value("y", out_type, None)], inits)


def _lstm(spec: Spec) -> onnx.ModelProto:
    """One LSTM layer over a [steps, batch, channels] sequence, hidden size = channels;
    ``attr.direction`` bidirectional doubles the weights' direction axis."""
    hidden, directions = spec.c, 2 if spec.attrs.get("direction") == "bidirectional" else 1
    weights = _recurrent_weights(spec.c, GATES["LSTM"], directions)
    node = _node("LSTM", ["x", "W", "R"], ["y"], {"hidden_size": hidden, **spec.attrs})
    return _net("LSTM", [node], weights, {"x": (4, spec.n, spec.c)})


def _split(spec: Spec) -> onnx.ModelProto:
    """Split into two equal halves along ``axis`` (opset 17: no split sizes needed)."""
    dims = _input_dims(spec)
    axis = spec.attrs.get("axis", spec.axis)
    if not -len(dims) <= axis < len(dims) or dims[axis] % 2:
        raise Unsupported(f"Split axis {axis} of {dims}")
    node = _node("Split", ["x"], ["y0", "y1"], {**spec.attrs, "axis": axis})
    return _net("Split", [node], {}, {"x": dims}, {"y0": None, "y1": None})


def _roi_align(spec: Spec) -> onnx.ModelProto:
    """RoiAlign of one box covering the whole [n, c, h, w] map into 2x2 bins."""
    box = _f32([[0, 0, spec.w - 1, spec.h - 1]])
    attrs = {"output_height": 2, "output_width": 2, **spec.attrs}
    node = _node("RoiAlign", ["x", "rois", "batch_indices"], ["y"], attrs)
    constants = {"rois": box, "batch_indices": np.zeros(1, np.int64)}
    return _net("RoiAlign", [node], constants, {"x": (spec.n, spec.c, spec.h, spec.w)})


def _layer_norm(spec: Spec) -> onnx.ModelProto:
    """LayerNormalization over the last axis, with scale and bias."""
    dims = _input_dims(spec)
    constants = {"scale": np.ones(dims[-1], np.float32), "bias": np.zeros(dims[-1], np.float32)}
    node = _node("LayerNormalization", ["x", "scale", "bias"], ["y"], {"axis": -1, **spec.attrs})
    return _net("LayerNormalization", [node], constants, {"x": dims})


def _dequantize(spec: Spec) -> onnx.ModelProto:
    """DequantizeLinear of an int8 input; its output type is its scale's, and a float16
    scale needs opset 19."""
    if spec.dtype not in ("float32", "float16"):
        raise Unsupported(f"DequantizeLinear to {spec.dtype}")
    scale = np.array(0.1, np.float32 if spec.dtype == "float32" else np.float16)
    inits = [
        numpy_helper.from_array(scale, "scale"),
        numpy_helper.from_array(np.array(0, np.int8), "zero_point"),
    ]
    node = _node("DequantizeLinear", ["x", "scale", "zero_point"], ["y"], spec.attrs)
    return _model(
        [node],
        [_value("x", TensorProto.INT8, _input_dims(spec))],
        [_value("y", DTYPES[spec.dtype], None)],
        inits,
        opset=OPSET if spec.dtype == "float32" else 19,
    )


@dataclass(frozen=True)
class OneNode:
    """A probe that is the op alone on an input of ``dims``: the constant inputs it reads
    after that input (in order), its attributes, and its output's dims where onnx's shape
    inference does not find them (the checker wants them)."""

    constants: Mapping[str, np.ndarray] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    dims: tuple[int, ...] = X
    out_dims: tuple[int, ...] | None = None


AFFINE = {"scale": np.ones(C, np.float32), "bias": np.zeros(C, np.float32)}
"""A normalization's per-channel scale and bias, as a freshly initialized layer has them."""
ONE_NODE: dict[str, OneNode] = {
    "LogSoftmax": OneNode(attrs={"axis": 1}),
    "LpNormalization": OneNode(attrs={"axis": 1, "p": 2}),
    "SpaceToDepth": OneNode(attrs={"blocksize": 2}),
    # opset 17 reductions other than ReduceSum take axes as an attribute; a channel max with
    # keepdims is CBAM's torch.max(x, dim=1, keepdim=True)
    **dict.fromkeys(
        ("ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2"),
        OneNode(attrs={"axes": [1], "keepdims": 1}),
    ),
    "InstanceNormalization": OneNode(AFFINE),
    # opset 21 (per-channel scale): the checker refuses opset 18's per-group form, deprecated;
    # onnx infers no output shape through this function op
    "GroupNormalization": OneNode(AFFINE, {"num_groups": C // 2}, out_dims=X),
    # onnx infers the function body's shape only with the (default) axes written out
    "MeanVarianceNormalization": OneNode(attrs={"axes": [0, 2, 3]}),
    # a text recognizer's feature map of height 1 squeezed into a sequence, and back
    "Squeeze": OneNode({"axes": _i64([2])}, dims=(N, C, 1, W)),
    "Unsqueeze": OneNode({"axes": _i64([2])}, dims=(N, C, W)),
    "Expand": OneNode({"shape": _i64(X)}, dims=(N, C, 1, W)),
    "Tile": OneNode({"repeats": _i64([1, 1, 2, 2])}),
    "Mod": OneNode({"divisor": _f32(2.0)}, {"fmod": 1}),  # float Mod must be fmod
    "CumSum": OneNode({"axis": _i64(3)}),
    "Sum": OneNode({"bias": np.ones((1, C, 1, 1), np.float32)}),
    "GatherElements": OneNode(
        {"indices": np.random.default_rng(0).integers(0, C, (N, 1, H, W))}, {"axis": 1}
    ),
    "GatherND": OneNode({"indices": _i64([[0, 1]])}),
    # a slice assignment, x[0, 0] = 0, as torch exports it
    "ScatterND": OneNode({"indices": _i64([[0, 0]]), "updates": np.zeros((1, H, W), np.float32)}),
    "ReverseSequence": OneNode(
        {"sequence_lens": _i64([4] * N)}, {"batch_axis": 1, "time_axis": 0}, dims=(4, N, C)
    ),
    "MaxRoiPool": OneNode({"rois": _f32([[0, 0, 0, W - 1, H - 1]])}, {"pooled_shape": [2, 2]}),
    "Upsample": OneNode({"scales": _f32([1, 1, 2, 2])}, {"mode": "nearest"}),
}
"""Ops probed alone that need more than their one float input; an op missing here (a unary
op: Erf, Sqrt, Dropout without its ratio ...) needs nothing more."""


def _one_node(spec: Spec) -> onnx.ModelProto:
    """The op alone between carriers: no other node to blame for what the compiler does."""
    form = ONE_NODE.get(spec.op, OneNode())
    node = _aux(spec.op, ["x", *form.constants], ["y"], **form.attrs)
    return _net(spec.op, [node], form.constants, {"x": form.dims}, {"y": form.out_dims})


COMPARISONS = ("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual")
LOGICAL = ("And", "Or", "Xor")


def _select(spec: Spec) -> onnx.ModelProto:
    """``torch.where(x > 0, x, 0.1 * x)`` as exported (Greater, Mul, Where): a comparison's
    bool cannot reach a float carrier, so a Where turns it back into float, as masks do in
    real networks. A logical op joins two comparisons (``(x > 0) & (x < 6)``), Not inverts
    one; whichever op is asked for is the probed node."""
    op = spec.op
    nodes = [_aux(op if op in COMPARISONS else "Greater", ["x", "low"], ["mask"])]
    constants = {"low": _f32(0.0), "slope": _f32(0.1)}
    if op in LOGICAL:
        constants["high"] = _f32(6.0)
        nodes += [_aux("Less", ["x", "high"], ["below"]), _aux(op, ["mask", "below"], ["both"])]
    if op == "Not":
        nodes.append(_aux("Not", ["mask"], ["both"]))
    mask = nodes[-1].output[0]
    nodes += [_aux("Mul", ["x", "slope"], ["leak"]), _aux("Where", [mask, "x", "leak"], ["y"])]
    return _net(op, nodes, constants)


def _gemm(spec: Spec) -> onnx.ModelProto:
    """A classifier head as torchvision and timm export it: GlobalAveragePool, Flatten, then
    the Linear layer as Gemm with transB."""
    nodes = [
        _aux("GlobalAveragePool", ["x"], ["pooled"]),
        _aux("Flatten", ["pooled"], ["features"]),
        _aux("Gemm", ["features", "weight", "bias"], ["y"], transB=1),
    ]
    return _net("Gemm", nodes, {"weight": _normal([10, C], seed=1), "bias": _normal([10], seed=2)})


def _recurrent(spec: Spec) -> onnx.ModelProto:
    """One GRU or RNN layer over a [steps, batch, channels] sequence, like the LSTM probe,
    with the bias torch writes (and GRU's ``linear_before_reset``, which torch always sets)."""
    op, gates = spec.op, GATES[spec.op]
    constants = {**_recurrent_weights(C, gates), "B": _normal([1, 2 * gates * C], seed=3)}
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    node = _aux(op, ["x", "W", "R", "B"], ["y"], hidden_size=C, **attrs)
    return _net(op, [node], constants, {"x": (4, N, C)})


def _shape_of(spec: Spec) -> onnx.ModelProto:
    """Shape or Size feeding a Reshape, as ``flat.view(x.shape)`` and ``x.view(x.numel())``
    export when shapes are not folded: the integer output is used, not left dangling."""
    if spec.op == "Shape":
        nodes = [
            _aux("Flatten", ["x"], ["flat"]),
            _aux("Shape", ["x"], ["shape"]),
            _aux("Reshape", ["flat", "shape"], ["y"]),
        ]
        return _net("Shape", nodes, {})
    nodes = [
        _aux("Size", ["x"], ["count"]),
        _aux("Unsqueeze", ["count", "first"], ["shape"]),
        _aux("Reshape", ["x", "shape"], ["y"]),
    ]
    return _net("Size", nodes, {"first": _i64([0])})


def _constant_of_shape(spec: Spec) -> onnx.ModelProto:
    """``x + torch.ones_like(x)``: exporters fold a ConstantOfShape of a constant shape away,
    so the ones that remain take their shape from a Shape."""
    nodes = [
        _aux("Shape", ["x"], ["shape"]),
        _aux("ConstantOfShape", ["shape"], ["ones"], value=numpy_helper.from_array(_f32([1.0]))),
        _aux("Add", ["x", "ones"], ["y"]),
    ]
    return _net("ConstantOfShape", nodes, {})


def _range(spec: Spec) -> onnx.ModelProto:
    """``x + torch.arange(x.shape[-1])``, a coordinate grid as detectors build it; like
    ConstantOfShape, only a Range with a limit read from a shape survives export."""
    nodes = [
        _aux("Shape", ["x"], ["shape"]),
        _aux("Gather", ["shape", "last"], ["width"]),
        _aux("Range", ["start", "width", "step"], ["positions"]),
        _aux("Cast", ["positions"], ["grid"], to=TensorProto.FLOAT),
        _aux("Add", ["x", "grid"], ["y"]),
    ]
    constants = {"last": _i64(len(X) - 1), "start": _i64(0), "step": _i64(1)}
    return _net("Range", nodes, constants)


def _constant_node(name: str, values: np.ndarray) -> onnx.NodeProto:
    """A Constant node writing ``values`` to ``name`` (also an If branch's whole body)."""
    return _aux("Constant", [], [name], value=numpy_helper.from_array(values))


def _constant(spec: Spec) -> onnx.ModelProto:
    """A Constant feeding an Add: torch writes the scalars and small tensors of an
    expression as Constant nodes, not initializers."""
    nodes = [
        _constant_node("bias", np.ones((1, C, 1, 1), np.float32)),
        _aux("Add", ["x", "bias"], ["y"]),
    ]
    return _net("Constant", nodes, {})


def _nonzero(spec: Spec) -> onnx.ModelProto:
    """``torch.nonzero(x > 0.5)``, its int64 indices cast to float for the carrier."""
    nodes = [
        _aux("Greater", ["x", "threshold"], ["mask"]),
        _aux("NonZero", ["mask"], ["indices"]),
        _aux("Cast", ["indices"], ["y"], to=TensorProto.FLOAT),
    ]
    return _net("NonZero", nodes, {"threshold": _f32(0.5)})


ANCHORS, CLASSES = 32, 4


def _nms(spec: Spec) -> onnx.ModelProto:
    """NonMaxSuppression of a detector's boxes [1, anchors, 4] and class scores
    [1, classes, anchors] (as torchvision's nms exports), its selected (batch, class, box)
    indices cast to float for the carrier."""
    nodes = [
        _aux("NonMaxSuppression", ["boxes", "scores", "top", "iou", "score"], ["selected"]),
        _aux("Cast", ["selected"], ["y"], to=TensorProto.FLOAT),
    ]
    constants = {"top": _i64([10]), "iou": _f32([0.5]), "score": _f32([0.25])}
    inputs = {"boxes": (N, ANCHORS, 4), "scores": (N, CLASSES, ANCHORS)}
    return _net("NonMaxSuppression", nodes, constants, inputs)


def _topk(spec: Spec) -> onnx.ModelProto:
    """The 10 best of a detector's [1, anchors] scores: the values, and the indices cast to
    float (TopK's indices output is not optional)."""
    nodes = [
        _aux("TopK", ["x", "k"], ["y", "indices"], axis=-1),
        _aux("Cast", ["indices"], ["order"], to=TensorProto.FLOAT),
    ]
    return _net(
        "TopK", nodes, {"k": _i64([10])}, {"x": (N, ANCHORS)}, outputs={"y": None, "order": None}
    )


def _quantize(spec: Spec) -> onnx.ModelProto:
    """QuantizeLinear to int8 and DequantizeLinear back, the pair a QDQ model holds around
    every quantized tensor."""
    nodes = [
        _aux("QuantizeLinear", ["x", "scale", "zero_point"], ["q"]),
        _aux("DequantizeLinear", ["q", "scale", "zero_point"], ["y"]),
    ]
    return _net("QuantizeLinear", nodes, {"scale": _f32(0.1), "zero_point": np.array(0, np.int8)})


def _branch(name: str, gain: float) -> onnx.GraphProto:
    values = np.full((1, C, 1, 1), gain, np.float32)
    output = _value(name, TensorProto.FLOAT, list(values.shape))
    return helper.make_graph([_constant_node(name, values)], name, [], [output])


def _if(spec: Spec) -> onnx.ModelProto:
    """``x * (1.0 if x.mean() > 0 else 0.5)`` as a scripted model exports it: an If on a
    comparison, each branch one Constant."""
    nodes = [
        _aux("ReduceMean", ["x"], ["mean"], keepdims=0),
        _aux("Greater", ["mean", "zero"], ["positive"]),
        _aux(
            "If",
            ["positive"],
            ["gain"],
            then_branch=_branch("then_gain", 1.0),
            else_branch=_branch("else_gain", 0.5),
        ),
        _aux("Mul", ["x", "gain"], ["y"]),
    ]
    return _net("If", nodes, {"zero": _f32(0.0)})


def _max_unpool(spec: Spec) -> onnx.ModelProto:
    """SegNet's decoder step: MaxUnpool of a MaxPool's values at the MaxPool's indices."""
    window = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [
        _aux("MaxPool", ["x"], ["pooled", "argmax"], **window),
        _aux("MaxUnpool", ["pooled", "argmax"], ["y"], **window),
    ]
    return _net("MaxUnpool", nodes, {})


def _eye_like(spec: Spec) -> onnx.ModelProto:
    """``x + torch.eye``-like of a square matrix: EyeLike reads its input's shape."""
    nodes = [_aux("EyeLike", ["x"], ["eye"]), _aux("Add", ["x", "eye"], ["y"])]
    return _net("EyeLike", nodes, {}, {"x": (H, W)})


def _one_hot(spec: Spec) -> onnx.ModelProto:
    """A segmentation map's one-hot mask: OneHot of the channel ArgMax, back to [n, c, h, w]."""
    nodes = [
        _aux("ArgMax", ["x"], ["labels"], axis=1, keepdims=0),
        _aux("OneHot", ["labels", "depth", "values"], ["y"], axis=1),
    ]
    return _net("OneHot", nodes, {"depth": _i64(C), "values": _f32([0.0, 1.0])})


COMMON: dict[str, Builder] = {
    **dict.fromkeys(
        (
            *("Abs", "Cos", "Erf", "Floor", "Neg", "Sin", "Softplus", "Sqrt"),
            *("ReduceMax", "ReduceMin", "ReduceL2", "InstanceNormalization"),
            *("Squeeze", "Unsqueeze", "Expand", "Tile", "GatherElements", "ScatterND"),
        ),
        _one_node,
    ),
    **dict.fromkeys((*COMPARISONS, "Where", "Not", "And"), _select),
    "Gemm": _gemm,
    "GRU": _recurrent,
    "Shape": _shape_of,
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
    "Constant": _constant,
    "NonZero": _nonzero,
    "NonMaxSuppression": _nms,
    "TopK": _topk,
    "QuantizeLinear": _quantize,
}
"""Fixed probes of ops torch, timm and Ultralytics exports commonly hold (classifier heads,
GELU, position encodings, masks, shape arithmetic, detector post-processing, QDQ): ``plan``
probes them on every target, listed or not."""
LISTED: dict[str, Builder] = {
    **dict.fromkeys(
        (
            *("Ceil", "Reciprocal", "Round", "Sign", "Softsign", "Mish", "Gelu", "Dropout"),
            *("MeanVarianceNormalization", "LpNormalization", "GroupNormalization"),
            *("LogSoftmax", "SpaceToDepth", "ReduceProd", "Mod", "CumSum", "Sum"),
            *("GatherND", "ReverseSequence", "MaxRoiPool", "Upsample"),
        ),
        _one_node,
    ),
    **dict.fromkeys(("Or", "Xor"), _select),
    "Size": _shape_of,
    "RNN": _recurrent,
    "If": _if,
    "MaxUnpool": _max_unpool,
    "EyeLike": _eye_like,
    "OneHot": _one_hot,
}
"""Fixed probes of ops real exports rarely hold: built when a profile lists the op, but
not probed as unlisted on every target, which would cost compiler time for little."""
FIXED: dict[str, Builder] = {**COMMON, **LISTED}
"""Probes that are one model each and take no field settings. A setting their builder does
not read would make both sides of a limit the same model; and ``boundary.limit_recipe``
probes a limit on the first of its ops that builds, so a newly settable op would take over
limit probes recorded with another op (ethos-u55's batch limit lists Abs before Add)."""


BESPOKE: dict[str, Builder] = {
    "LSTM": _lstm,
    "Split": _split,
    "RoiAlign": _roi_align,
    "LayerNormalization": _layer_norm,
    "DequantizeLinear": _dequantize,
    **COMMON,
}
"""Ops whose probe needs inputs or outputs of its own shape, not the shape-preserving one."""


def build(
    op: str, field_name: str | None = None, value: Any = None, base: Spec | None = None
) -> onnx.ModelProto:
    """A small model whose one probed node (named ``probe``) is ``op`` with ``field_name``
    set to ``value``: the op alone, or in the few nodes a real export puts around it."""
    if op in FIXED:
        return _fixed(op, field_name, base)
    spec = base or Spec(op)
    if field_name is not None:
        spec = apply(spec, field_name, value)
    if op in ("Conv", "ConvTranspose", "MaxPool", "AveragePool"):
        return _windowed(spec)
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return _global_pool(spec, spec.kernel if field_name in KERNEL_FIELDS else None)
    if op == "Resize":
        return _resize(spec)
    if op in BESPOKE:
        return BESPOKE[op](spec)
    if op in SHAPE_PRESERVING:
        return _simple(spec)
    if op in FUSED_PATTERNS:
        raise Unsupported(
            f"a pattern of several nodes ({FUSED_PATTERNS[op]}), not one ONNX op a probe node "
            "can be; its ops are probed one by one"
        )
    raise Unsupported(f"no probe for op {op}")


def _fixed(op: str, field_name: str | None, base: Spec | None) -> onnx.ModelProto:
    if field_name is not None or base is not None:
        setting = field_name or "base spec"
        raise Unsupported(f"the {op} probe is one fixed model: no setting ({setting}) reaches it")
    return FIXED[op](Spec(op))


def graph_input_model(dims: list[int], dtype: str = "float32") -> onnx.ModelProto:
    """A Relu on one graph input with the given dims and dtype."""
    node = helper.make_node("Relu", ["x"], ["y"], name=NODE_NAME)
    return _model(
        [node], [_value("x", DTYPES[dtype], dims)], [_value("y", DTYPES[dtype], None)], []
    )


def conv_stack(channels: int, convs: int, seed: int = 0, size: int = 1) -> onnx.ModelProto:
    """1x1 Convs then a HardSwish (``fix -t nnom`` decomposes it: an exact pass), on a
    [1, channels, size, size] input: weights scale with ``channels``, the graph does not."""
    rng = np.random.default_rng(seed)
    scale = np.float32(1 / np.sqrt(channels))
    nodes, weights, current = [], [], "x"
    for i in range(convs):
        values = rng.standard_normal((channels, channels, 1, 1), dtype=np.float32) * scale
        weights.append(numpy_helper.from_array(values, f"w{i}"))
        nodes.append(helper.make_node("Conv", [current, f"w{i}"], [f"c{i}"], name=f"conv{i}"))
        current = f"c{i}"
    nodes.append(helper.make_node("HardSwish", [current], ["y"], name="hs"))
    shape = [1, channels, size, size]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model

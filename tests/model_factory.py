"""Single-op ONNX models with chosen field values, for boundary tests on profile limits.

Given a node field (kernel_shape, strides, out_channels, in_width, mode, ...) and a value,
``build(op, field, value)`` returns a small valid model whose one interesting node has that
value, or raises ``Unsupported`` when no single-op model can express it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8
OPSET = 17
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
    "InstanceNormalization",
    "LSTM",
    "Split",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Gather",
}


class Unsupported(Exception):
    """The factory cannot build a single-op model for this op/field."""


@dataclass
class Spec:
    """Everything a probe model can vary; fields map onto these."""

    op: str
    n: int = 1
    c: int = 8
    h: int = 16
    w: int = 16
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
        raise Unsupported("explicit-attribute probes need the attribute's value")
    if name not in setters:
        raise Unsupported(f"no setter for field {name}")
    return setters[name]()


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
        if spec.op in WINDOWED:
            raise Unsupported(f"rank {rank} {spec.op}")
        return replace(spec, rank=rank)
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
    nodes: list[onnx.NodeProto], inputs: list, outputs: list, inits: list
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "probe", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def _input_dims(spec: Spec) -> list[int]:
    if spec.rank <= 3:
        return [spec.n, spec.c, spec.w][: spec.rank]
    return [spec.n, spec.c, *[2] * (spec.rank - 4), spec.h, spec.w]


def _windowed(spec: Spec) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits, inputs = [], ["x"]
    attrs: dict[str, Any] = {
        "kernel_shape": list(spec.kernel),
        "strides": list(spec.strides),
        "pads": list(spec.pads),
    }
    if spec.op in ("Conv", "ConvTranspose"):
        shape = (
            [spec.out, spec.c // spec.group]
            if spec.op == "Conv"
            else [spec.c, spec.out // spec.group]
        ) + list(spec.kernel)
        inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), "w"))
        inputs.append("w")
        attrs.update(dilations=list(spec.dilations), group=spec.group)
    elif spec.op == "MaxPool":
        attrs["dilations"] = list(spec.dilations)
    attrs.update(spec.attrs)
    if attrs.get("auto_pad", "NOTSET") != "NOTSET":
        attrs.pop("pads")
    node = helper.make_node(spec.op, inputs, ["y"], name=NODE_NAME, **attrs)
    return _model(
        [node],
        [_value("x", TensorProto.FLOAT, _input_dims(spec))],
        [_value("y", TensorProto.FLOAT, None)],
        inits,
    )


def _global_pool(spec: Spec, kernel: tuple[int, ...] | None = None) -> onnx.ModelProto:
    dims = _input_dims(spec) if kernel is None else [spec.n, spec.c, *kernel]
    node = helper.make_node(spec.op, ["x"], ["y"], name=NODE_NAME)
    return _model(
        [node], [_value("x", TensorProto.FLOAT, dims)], [_value("y", TensorProto.FLOAT, None)], []
    )


def _resize(spec: Spec) -> onnx.ModelProto:
    scales = numpy_helper.from_array(np.array([1, 1, *spec.scales], np.float32), "scales")
    node = helper.make_node(
        "Resize", ["x", "", "scales"], ["y"], name=NODE_NAME, mode=spec.mode, **spec.attrs
    )
    return _model(
        [node],
        [_value("x", TensorProto.FLOAT, _input_dims(spec))],
        [_value("y", TensorProto.FLOAT, None)],
        [scales],
    )


def _simple(spec: Spec) -> onnx.ModelProto:
    """Shape-preserving ops on one input (plus constant extras where the op needs them)."""
    dims = _input_dims(spec)
    extra, inits, attrs = [], [], dict(spec.attrs)
    op = spec.op
    if op in ("Add", "Sub", "Mul", "Div", "Max", "Min", "Concat"):
        extra = ["x"]
    if op in ("Softmax", "Concat", "Split", "Gather", "Flatten", "ArgMax", "ArgMin"):
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
    if op in ("LSTM", "InstanceNormalization", "Split", "Squeeze", "Unsqueeze"):
        raise Unsupported(f"{op} needs a bespoke probe")
    node = helper.make_node(op, ["x", *extra], ["y"], name=NODE_NAME, **attrs)
    in_type = TensorProto.FLOAT if op == "Cast" else DTYPES[spec.dtype]
    out_type = {"Cast": DTYPES[spec.dtype], "ArgMax": TensorProto.INT64}.get(op, in_type)
    out_type = TensorProto.INT64 if op == "ArgMin" else out_type
    return _model([node], [_value("x", in_type, dims)], [_value("y", out_type, None)], inits)


def build(
    op: str, field_name: str | None = None, value: Any = None, base: Spec | None = None
) -> onnx.ModelProto:
    """A one-node model (node name ``probe``) of ``op`` with ``field_name`` set to ``value``."""
    spec = base or Spec(op)
    if field_name is not None:
        spec = apply(spec, field_name, value)
    if op in ("Conv", "ConvTranspose", "MaxPool", "AveragePool"):
        return _windowed(spec)
    if op in ("GlobalAveragePool", "GlobalMaxPool"):
        return _global_pool(spec, spec.kernel if field_name in KERNEL_FIELDS else None)
    if op == "Resize":
        return _resize(spec)
    if op in SHAPE_PRESERVING:
        return _simple(spec)
    raise Unsupported(f"no probe for op {op}")


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

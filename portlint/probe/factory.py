"""Single-op ONNX models with chosen field values, for boundary tests on profile limits.

Given a node field (kernel_shape, strides, out_channels, in_width, mode, ...) and a value,
``build(op, field, value)`` returns a small valid model whose one interesting node has that
value, or raises ``Unsupported`` when no single-op model can express it. Ops no field
reaches get one fixed model each (``fixed_models.FIXED``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from portlint.pattern_catalog import FUSED_PATTERNS
from portlint.probe.fixed_models import FIXED
from portlint.probe.parts import (
    DTYPES,
    GATES,
    IR_VERSION,
    KERNEL_FIELDS,
    NODE_NAME,
    OPSET,
    SHAPE_PRESERVING,
    WINDOWED,
    Builder,
    Spec,
    Unsupported,
    f32,
    make_model,
    net,
    normal,
    probe_node,
    recurrent_weights,
    value_info,
)


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
        "last_axis_step": lambda: replace(spec, steps=int(value)),  # the probe slices it
        "activation_inputs": lambda: replace(spec, activation_inputs=int(value)),
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


WRITTEN = {"axes": [2, 3]}
"""Values to write for attributes ONNX gives no default: a reduction over H and W."""


def _schema_default(op: str, attribute: str) -> Any:
    schema = onnx.defs.get_schema(op, OPSET)
    declared = schema.attributes.get(attribute)
    if attribute in WRITTEN and declared is not None:
        return WRITTEN[attribute]
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
    if not 2 <= rank <= 9:  # ONNX has no bound; the Vela 5.2 report limits Transpose to 8
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
        weights["w"] = normal(shape)
        inputs.append("w")
        attrs.update(dilations=dilations, group=spec.group)
    elif spec.op == "MaxPool":
        attrs["dilations"] = dilations
    attrs.update(spec.attrs)
    if attrs.get("auto_pad", "NOTSET") != "NOTSET":
        attrs.pop("pads")
    node = probe_node(spec.op, inputs, ["y"], attrs)
    return net(spec.op, [node], weights, {"x": _input_dims(spec)})


def _global_pool(spec: Spec, kernel: tuple[int, ...] | None = None) -> onnx.ModelProto:
    dims = _input_dims(spec) if kernel is None else [spec.n, spec.c, *kernel]
    return net(spec.op, [probe_node(spec.op, ["x"], ["y"], {})], {}, {"x": dims})


ANTIALIAS_OPSET = 18
LATER_OPSETS = {"RMSNormalization": 23, "Attention": 23}
"""Ops newer than the onnx and onnxruntime versions the probes are checked with."""


def _resize(spec: Spec) -> onnx.ModelProto:
    node = probe_node("Resize", ["x", "", "scales"], ["y"], {"mode": spec.mode, **spec.attrs})
    scales = {"scales": f32([1, 1, *spec.scales])}
    opset = ANTIALIAS_OPSET if "antialias" in spec.attrs else None  # the attribute's first
    return net("Resize", [node], scales, {"x": _input_dims(spec)}, opset=opset)


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
        if spec.activation_inputs >= 2:  # both inputs computed: a second graph input
            inits, extra = [], ["x2"]
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
    if op == "Slice":  # the whole last axis, forwards, or backwards for a negative step
        backwards = spec.steps < 0
        starts = np.array([dims[-1] - 1 if backwards else 0], np.int64)
        for name, value in (
            ("starts", starts),
            ("ends", np.array([-dims[-1] - 1 if backwards else dims[-1]], np.int64)),
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
    if op == "Pow" and spec.activation_inputs >= 2:  # a computed exponent: a second input
        extra = ["x2"]
    elif op == "Pow":
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
    node = probe_node(op, ["x", *extra], ["y"], attrs)
    in_type = TensorProto.FLOAT if op == "Cast" else DTYPES[spec.dtype]
    out_type = {"Cast": DTYPES[spec.dtype], "ArgMax": TensorProto.INT64}.get(op, in_type)
    out_type = TensorProto.INT64 if op == "ArgMin" else out_type
    inputs = [value_info(name, in_type, dims) for name in ("x", "x2") if name in ("x", *extra)]
    return make_model([node], inputs, [value_info("y", out_type, None)], inits)


def _lstm(spec: Spec) -> onnx.ModelProto:
    """One LSTM layer over a [steps, batch, channels] sequence, hidden size = channels;
    ``attr.direction`` bidirectional doubles the weights' direction axis."""
    hidden, directions = spec.c, 2 if spec.attrs.get("direction") == "bidirectional" else 1
    weights = recurrent_weights(spec.c, GATES["LSTM"], directions)
    node = probe_node("LSTM", ["x", "W", "R"], ["y"], {"hidden_size": hidden, **spec.attrs})
    return net("LSTM", [node], weights, {"x": (4, spec.n, spec.c)})


def _split(spec: Spec) -> onnx.ModelProto:
    """Split into two equal halves along ``axis`` (opset 17: no split sizes needed)."""
    dims = _input_dims(spec)
    axis = spec.attrs.get("axis", spec.axis)
    if not -len(dims) <= axis < len(dims) or dims[axis] % 2:
        raise Unsupported(f"Split axis {axis} of {dims}")
    node = probe_node("Split", ["x"], ["y0", "y1"], {**spec.attrs, "axis": axis})
    return net("Split", [node], {}, {"x": dims}, {"y0": None, "y1": None})


def _roi_align(spec: Spec) -> onnx.ModelProto:
    """RoiAlign of one box covering the whole [n, c, h, w] map into 2x2 bins."""
    box = f32([[0, 0, spec.w - 1, spec.h - 1]])
    attrs = {"output_height": 2, "output_width": 2, **spec.attrs}
    node = probe_node("RoiAlign", ["x", "rois", "batch_indices"], ["y"], attrs)
    constants = {"rois": box, "batch_indices": np.zeros(1, np.int64)}
    return net("RoiAlign", [node], constants, {"x": (spec.n, spec.c, spec.h, spec.w)})


def _layer_norm(spec: Spec) -> onnx.ModelProto:
    """LayerNormalization over the last axis, with scale and bias."""
    dims = _input_dims(spec)
    constants = {"scale": np.ones(dims[-1], np.float32), "bias": np.zeros(dims[-1], np.float32)}
    node = probe_node(
        "LayerNormalization", ["x", "scale", "bias"], ["y"], {"axis": -1, **spec.attrs}
    )
    return net("LayerNormalization", [node], constants, {"x": dims})


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
    node = probe_node("DequantizeLinear", ["x", "scale", "zero_point"], ["y"], spec.attrs)
    return make_model(
        [node],
        [value_info("x", TensorProto.INT8, _input_dims(spec))],
        [value_info("y", DTYPES[spec.dtype], None)],
        inits,
        opset=OPSET if spec.dtype == "float32" else 19,
    )


BESPOKE: dict[str, Builder] = {
    "LSTM": _lstm,
    "Split": _split,
    "RoiAlign": _roi_align,
    "LayerNormalization": _layer_norm,
    "DequantizeLinear": _dequantize,
}
"""Ops whose probe needs inputs or outputs of its own shape, not the shape-preserving one."""


def build(
    op: str, field_name: str | None = None, value: Any = None, base: Spec | None = None
) -> onnx.ModelProto:
    """A small model whose one probed node (named ``probe``) is ``op`` with ``field_name``
    set to ``value``: the op alone, or in the few nodes a real export puts around it."""
    if op in LATER_OPSETS:
        raise Unsupported(
            f"{op} is an ONNX opset {LATER_OPSETS[op]} op; probes are built at opset {OPSET}"
        )
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
    return make_model(
        [node], [value_info("x", DTYPES[dtype], dims)], [value_info("y", DTYPES[dtype], None)], []
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

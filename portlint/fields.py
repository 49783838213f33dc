"""Quantities a target constraint can limit, each a small function over the graph view.

A field computes what a vendor document talks about ("kernel", "output channels", "Resize
scale") from a node or tensor. When the model does not determine the value (a dynamic dim),
the field raises ``Unknown`` so the engine reports "could not evaluate" instead of passing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portlint.graph_view import GraphView, NodeView, TensorInfo

Subject = NodeView | TensorInfo
NODE, GRAPH_INPUT, TENSOR, GRAPH = "node", "graph_input", "tensor", "graph"
SCOPES = {
    NODE: "each node whose op type the constraint lists (the default)",
    GRAPH_INPUT: "each input of the graph",
    TENSOR: "every tensor: graph inputs, outputs and intermediate values",
    GRAPH: "the graph as a whole (only `static: true`, rule PL201)",
}
"""What a constraint is evaluated on; a field declares the scopes it can be computed in."""


class Unknown(Exception):
    """The value depends on something the model leaves open, e.g. a dynamic dim."""


@dataclass(frozen=True)
class Field:
    """A named quantity: how to compute it, how to name it in messages and docs."""

    name: str
    label: str
    doc: str
    scopes: tuple[str, ...]
    get: Callable[[Any, GraphView], Any]
    spatial: bool = False
    """List values are per spatial axis and read best as HxW."""


FIELDS: dict[str, Field] = {}


def field(
    name: str, label: str, doc: str, scopes: tuple[str, ...] = (NODE,), spatial: bool = False
):
    """Register a field function under ``name``."""

    def register(func: Callable[[Any, GraphView], Any]) -> Callable[[Any, GraphView], Any]:
        FIELDS[name] = Field(name, label, doc, scopes, func, spatial)
        return func

    return register


def get_field(name: str) -> Field | None:
    """Look a field up by name; ``attr.NAME`` names any ONNX attribute."""
    found = FIELDS.get(name)
    if found is not None:
        return found
    found = _ATTRIBUTE_FIELDS.get(name)
    if found is None:
        found = _attribute_field(name)
        if found is not None:
            _ATTRIBUTE_FIELDS[name] = found
    return found


_ATTRIBUTE_FIELDS: dict[str, Field] = {}
"""``attr.NAME`` and ``has_attr.NAME`` fields, made once per name (they are asked for once
per node)."""


def _attribute_field(name: str) -> Field | None:
    if name.startswith("has_attr.") and len(name) > 9:
        attr = name[9:]

        def written(node: NodeView, view: GraphView) -> bool:
            return attr in node.explicit_attributes

        return Field(
            name,
            f"{attr} written",
            f"whether attribute `{attr}` is written explicitly",
            (NODE,),
            written,
        )
    if name.startswith("attr.") and len(name) > 5:
        attr = name[5:]
        return Field(
            name, attr, f"attribute `{attr}` (ONNX default applied)", (NODE,), _attribute(attr)
        )
    return None


def _attribute(name: str) -> Callable[[NodeView, GraphView], Any]:
    """A field function reading attribute ``name`` as written (or its ONNX default)."""

    def value(node: NodeView, view: GraphView) -> Any:
        return node.attributes.get(name)

    return value


def _tensor(view: GraphView, name: str, what: str) -> TensorInfo:
    info = view.tensor(name)
    if info is None or info.shape is None:
        raise Unknown(f"the shape of {what} {name!r} is unknown")
    return info


def _static_dims(info: TensorInfo, what: str) -> tuple[int, ...]:
    for axis, dim in info.dynamic_axes():
        label = f" ({dim!r})" if isinstance(dim, str) else ""
        raise Unknown(f"{what} {info.name!r} has a dynamic dim at axis {axis}{label}")
    return tuple(int(d) for d in info.shape or ())


def _dim(view: GraphView, name: str, axis: int, what: str, rank: int | None = None) -> int | None:
    """Size of ``axis``; None when the tensor has fewer axes (or not exactly ``rank``)."""
    info = _tensor(view, name, what)
    if info.rank is None or axis >= info.rank or (rank is not None and info.rank != rank):
        return None
    dim = info.shape[axis]  # type: ignore[index]
    if not isinstance(dim, int):
        label = f" ({dim!r})" if isinstance(dim, str) else ""
        raise Unknown(f"{what} {name!r} has a dynamic dim at axis {axis}{label}")
    return dim


def _input(node: NodeView, index: int = 0) -> str:
    return node.inputs[index] if len(node.inputs) > index else ""


@field("kernel_shape", "kernel", "kernel size (HxW)", spatial=True)
def kernel_shape(node: NodeView, view: GraphView) -> list[int] | None:
    if node.op_type in ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"):
        info = _tensor(view, _input(node), "input")
        spatial = TensorInfo(info.name, info.dtype, (info.shape or ())[2:], info.kind)
        return list(_static_dims(spatial, "input"))
    kernel = node.attributes.get("kernel_shape")
    if kernel is None and node.op_type in ("Conv", "ConvTranspose"):
        raise Unknown("the kernel shape is not set and the weight shape is unknown")
    return list(kernel) if kernel is not None else None


@field("strides", "stride", "stride (HxW)", spatial=True)
def strides(node: NodeView, view: GraphView) -> list[int] | None:
    value = node.attributes.get("strides")
    return list(value) if value is not None else None


@field("dilations", "dilation", "dilation (HxW)", spatial=True)
def dilations(node: NodeView, view: GraphView) -> list[int] | None:
    value = node.attributes.get("dilations")
    return list(value) if value is not None else None


@field("pads", "padding", "padding per side (begin..., end...), auto_pad resolved")
def pads(node: NodeView, view: GraphView) -> list[int] | None:
    auto_pad = node.attributes.get("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", None):
        value = node.attributes.get("pads")
        return list(value) if value is not None else None
    kernel = node.attributes.get("kernel_shape")
    if kernel is None:
        raise Unknown("auto_pad is set and the kernel shape is unknown")
    if auto_pad == "VALID":
        return [0] * (2 * len(kernel))
    spatial = _static_dims(_tensor(view, _input(node), "input"), "input")[2:]
    stride = node.attributes.get("strides") or [1] * len(kernel)
    if any(s <= 0 for s in stride):
        raise Unknown(f"auto_pad is set and the strides {list(stride)} are not all positive")
    dilation = node.attributes.get("dilations") or [1] * len(kernel)
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, stride, dilation, strict=False):
        total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return begins + ends


@field("auto_pad", "auto_pad", "auto_pad mode")
def auto_pad(node: NodeView, view: GraphView) -> str | None:
    return node.attributes.get("auto_pad")


@field("group", "group", "number of groups")
def group(node: NodeView, view: GraphView) -> int | None:
    return node.attributes.get("group")


@field("in_channels", "input channels", "input channels (dim 1)")
def in_channels(node: NodeView, view: GraphView) -> int | None:
    return _dim(view, _input(node), 1, "input")


@field("out_channels", "output channels", "output channels (dim 1)")
def out_channels(node: NodeView, view: GraphView) -> int | None:
    if node.op_type == "Conv" and len(node.inputs) > 1:
        return _dim(view, node.inputs[1], 0, "weight")
    if node.op_type == "ConvTranspose" and len(node.inputs) > 1:
        per_group = _dim(view, node.inputs[1], 1, "weight")
        return None if per_group is None else per_group * int(node.attributes.get("group", 1))
    return _dim(view, node.outputs[0], 1, "output")


@field("group_kind", "group kind", "convolution kind: regular, depthwise or grouped")
def group_kind(node: NodeView, view: GraphView) -> str | None:
    groups = int(node.attributes.get("group", 1))
    if groups == 1:
        return "regular"
    channels = in_channels(node, view)
    return "depthwise" if channels == groups else "grouped"


@field("in_height", "input height", "input height (dim 2 of a 4-D NCHW input)")
def in_height(node: NodeView, view: GraphView) -> int | None:
    return _dim(view, _input(node), 2, "input", rank=4)


@field("in_width", "input width", "input width (dim 3 of a 4-D NCHW input)")
def in_width(node: NodeView, view: GraphView) -> int | None:
    return _dim(view, _input(node), 3, "input", rank=4)


@field("out_height", "output height", "output height (dim 2 of a 4-D NCHW output)")
def out_height(node: NodeView, view: GraphView) -> int | None:
    return _dim(view, node.outputs[0], 2, "output", rank=4)


@field("out_width", "output width", "output width (dim 3 of a 4-D NCHW output)")
def out_width(node: NodeView, view: GraphView) -> int | None:
    return _dim(view, node.outputs[0], 3, "output", rank=4)


@field("input_rank", "input rank", "rank of the first input")
def input_rank(node: NodeView, view: GraphView) -> int | None:
    return _tensor(view, _input(node), "input").rank


@field("output_rank", "output rank", "rank of the first output")
def output_rank(node: NodeView, view: GraphView) -> int | None:
    return _tensor(view, node.outputs[0], "output").rank


@field("axis", "axis", "axis attribute, made non-negative")
def axis(node: NodeView, view: GraphView) -> int | None:
    value = node.attributes.get("axis")
    if value is None or value >= 0:
        return value
    return value + input_rank(node, view)


for _name in ("mode", "coordinate_transformation_mode", "nearest_mode"):
    field(_name, _name, f"Resize `{_name}` attribute")(_attribute(_name))


@field("resize_scales", "scale", "Resize scale factors on H and W", spatial=True)
def resize_scales(node: NodeView, view: GraphView) -> list[float] | None:
    if node.op_type not in ("Resize", "Upsample"):
        return None
    scales_index = 1 if node.op_type == "Upsample" or node.opset < 11 else 2
    scales = view.constant_value(_input(node, scales_index))
    if scales is not None and scales.size:
        return [float(s) for s in scales.reshape(-1)[2:]]
    in_dims = _static_dims(_tensor(view, _input(node), "input"), "input")
    sizes = view.constant_value(_input(node, 3)) if node.op_type == "Resize" else None
    if sizes is not None and sizes.size:
        out_dims = tuple(int(s) for s in sizes.reshape(-1))
    else:
        out_dims = _static_dims(_tensor(view, node.outputs[0], "output"), "output")
    return [o / i for o, i in zip(out_dims[2:], in_dims[2:], strict=False)]


@field("steps", "steps", "Slice steps")
def steps(node: NodeView, view: GraphView) -> list[int] | None:
    if node.op_type != "Slice":
        return None
    if len(node.inputs) < 5 or not node.inputs[4]:
        return [1]
    value = view.constant_value(node.inputs[4])
    if value is None:
        raise Unknown("the Slice steps are not a constant")
    return [int(v) for v in value.reshape(-1)]


@field(
    "last_axis_step",
    "step along the last axis",
    "Slice step along the input's last axis (1 when the Slice leaves that axis whole)",
)
def last_axis_step(node: NodeView, view: GraphView) -> int | None:
    taken = steps(node, view)
    if taken is None or all(step == 1 for step in taken):
        return None if taken is None else 1  # opset-9 Slices (no steps) land here too
    rank = _tensor(view, _input(node), "input").rank
    if rank is None:
        raise Unknown("the input rank is unknown")
    axes_value = view.constant_value(_input(node, 3)) if len(node.inputs) > 3 else None
    if len(node.inputs) > 3 and node.inputs[3] and axes_value is None:
        raise Unknown("the Slice axes are not a constant")
    if axes_value is None:  # axes omitted: one step per leading axis, as many as steps
        axes = list(range(len(taken)))
    else:
        axes = [int(a) % rank for a in axes_value.reshape(-1)]
    return next((step for axis, step in zip(axes, taken, strict=False) if axis == rank - 1), 1)


@field("dtype", "dtype", "element type", scopes=(NODE, GRAPH_INPUT, TENSOR))
def dtype(subject: Subject, view: GraphView) -> str | None:
    if isinstance(subject, TensorInfo):
        return subject.dtype
    info = view.tensor(subject.outputs[0]) if subject.outputs else None
    if info is None or info.dtype is None:
        raise Unknown("the output element type is unknown")
    return info.dtype


@field("dims", "dims", "tensor dimensions", scopes=(GRAPH_INPUT, TENSOR))
def dims(info: TensorInfo, view: GraphView) -> list[int]:
    if info.shape is None:
        raise Unknown(f"the shape of {info.name!r} is unknown")
    return list(_static_dims(info, "tensor"))


@field("rank", "rank", "tensor rank", scopes=(GRAPH_INPUT, TENSOR))
def rank(info: TensorInfo, view: GraphView) -> int:
    if info.rank is None:
        raise Unknown(f"the rank of {info.name!r} is unknown")
    return info.rank


@field(
    "batch",
    "batch",
    "batch size (dim 0 of a graph input, or of a node's first input)",
    scopes=(NODE, GRAPH_INPUT),
)
def batch(subject: Subject, view: GraphView) -> int | None:
    info = view.tensor(_input(subject)) if isinstance(subject, NodeView) else subject
    if info is None or info.shape is None or not info.shape:
        return None
    first = info.shape[0]
    if not isinstance(first, int):
        label = f" ({first!r})" if isinstance(first, str) else ""
        raise Unknown(f"input {info.name!r} has a dynamic batch dim{label}")
    return first


def _kernel_hw(node: NodeView, view: GraphView) -> list[int]:
    kernel = kernel_shape(node, view)
    if not kernel:
        raise Unknown("the node has no kernel")
    return kernel


@field("kernel_area", "kernel area", "kernel height x width (kh*kw)")
def kernel_area(node: NodeView, view: GraphView) -> int | None:
    kernel = kernel_shape(node, view)
    return None if kernel is None else math.prod(kernel)


@field("width_x_kernel_height", "input width x kernel height", "input width times kernel height")
def width_x_kernel_height(node: NodeView, view: GraphView) -> int | None:
    width = in_width(node, view)
    if width is None:
        return None
    return width * _kernel_hw(node, view)[0]


@field("is_first_layer", "first layer", "whether the node reads a graph input directly")
def is_first_layer(node: NodeView, view: GraphView) -> bool:
    inputs = {i.name for i in view.graph_inputs}
    return any(name in inputs for name in node.inputs)


@field(
    "activation_inputs",
    "activation inputs",
    "inputs computed at run time (not weights, constants or folded values)",
)
def activation_inputs(node: NodeView, view: GraphView) -> int:
    return sum(1 for name in node.inputs if name and not view.is_constant(name))


@field("weights_per_filter", "weights per filter", "weights per output channel (kh*kw*Cin/group)")
def weights_per_filter(node: NodeView, view: GraphView) -> int | None:
    if node.op_type not in ("Conv", "ConvTranspose") or len(node.inputs) < 2:
        return None
    weight = _tensor(view, node.inputs[1], "weight")
    dims = _static_dims(weight, "weight")
    if len(dims) < 2:
        return None  # not a convolution weight: (out, in/group, k...) or (in, out/group, k...)
    if node.op_type == "Conv":
        return math.prod(dims[1:])
    return dims[0] * math.prod(dims[2:]) // max(1, int(node.attributes.get("group", 1)))


@field("perm", "permutation", "Transpose permutation")
def perm(node: NodeView, view: GraphView) -> list[int] | None:
    if node.op_type != "Transpose":
        return None
    value = node.attributes.get("perm")
    if value is None:
        rank = input_rank(node, view)
        return None if rank is None else list(range(rank))[::-1]
    return list(value)


def _axis_of(values: list[int] | None, axis: int) -> int | None:
    return values[axis] if values else None


@field("kernel_height", "kernel height", "kernel size along H (the first spatial axis)")
def kernel_height(node: NodeView, view: GraphView) -> int | None:
    return _axis_of(kernel_shape(node, view), 0)


@field("kernel_width", "kernel width", "kernel size along W (the last spatial axis)")
def kernel_width(node: NodeView, view: GraphView) -> int | None:
    return _axis_of(kernel_shape(node, view), -1)


@field("stride_height", "stride height", "stride along H (the first spatial axis)")
def stride_height(node: NodeView, view: GraphView) -> int | None:
    return _axis_of(strides(node, view), 0)


@field("stride_width", "stride width", "stride along W (the last spatial axis)")
def stride_width(node: NodeView, view: GraphView) -> int | None:
    return _axis_of(strides(node, view), -1)


@field(
    "dilated_kernel_shape", "dilated kernel", "kernel extent with dilation: (k-1)*d+1", spatial=True
)
def dilated_kernel_shape(node: NodeView, view: GraphView) -> list[int] | None:
    kernel = kernel_shape(node, view)
    if kernel is None:
        return None
    dilation = dilations(node, view) or [1] * len(kernel)
    return [(k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=False)]


@field("channels_per_group", "channels per group", "input channels per convolution group")
def channels_per_group(node: NodeView, view: GraphView) -> int | None:
    channels = in_channels(node, view)
    groups = node.attributes.get("group")
    if channels is None or groups is None:
        return None
    if int(groups) <= 0:
        raise Unknown(f"the group {groups} is not a positive number")
    return channels // int(groups)


@field("depth_multiplier", "depth multiplier", "output channels per group of a depthwise conv")
def depth_multiplier(node: NodeView, view: GraphView) -> int | None:
    if group_kind(node, view) != "depthwise":
        return None
    channels = out_channels(node, view)
    return None if channels is None else channels // int(node.attributes.get("group", 1))

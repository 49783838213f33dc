"""Probe models of ops no profile field varies: one fixed model per op.

Comparisons, shape arithmetic, detector post-processing, recurrent layers, QDQ... each gets
the op alone, or inside the few nodes a torch export puts around it, so that its bool or
integer tensors are read by the nodes that read them in real networks and only float
tensors meet the carriers ``recipes`` adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from portlint.probe.parts import (
    GATES,
    Builder,
    C,
    H,
    N,
    Spec,
    W,
    X,
    aux,
    f32,
    i64,
    net,
    normal,
    recurrent_weights,
    value_info,
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
        (
            *("ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceL1"),
            *("ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"),
        ),
        OneNode(attrs={"axes": [1], "keepdims": 1}),
    ),
    "InstanceNormalization": OneNode(AFFINE),
    # opset 21 (per-channel scale): the checker refuses opset 18's per-group form, deprecated;
    # onnx infers no output shape through this function op
    "GroupNormalization": OneNode(AFFINE, {"num_groups": C // 2}, out_dims=X),
    # onnx infers the function body's shape only with the (default) axes written out
    "MeanVarianceNormalization": OneNode(attrs={"axes": [0, 2, 3]}),
    # a text recognizer's feature map of height 1 squeezed into a sequence, and back
    "Squeeze": OneNode({"axes": i64([2])}, dims=(N, C, 1, W)),
    "Unsqueeze": OneNode({"axes": i64([2])}, dims=(N, C, W)),
    "Expand": OneNode({"shape": i64(X)}, dims=(N, C, 1, W)),
    "Tile": OneNode({"repeats": i64([1, 1, 2, 2])}),
    "Mod": OneNode({"divisor": f32(2.0)}, {"fmod": 1}),  # float Mod must be fmod
    "CumSum": OneNode({"axis": i64(3)}),
    "Sum": OneNode({"bias": np.ones((1, C, 1, 1), np.float32)}),
    "GatherElements": OneNode(
        {"indices": np.random.default_rng(0).integers(0, C, (N, 1, H, W))}, {"axis": 1}
    ),
    "GatherND": OneNode({"indices": i64([[0, 1]])}),
    # a slice assignment, x[0, 0] = 0, as torch exports it
    "ScatterND": OneNode({"indices": i64([[0, 0]]), "updates": np.zeros((1, H, W), np.float32)}),
    "ReverseSequence": OneNode(
        {"sequence_lens": i64([4] * N)}, {"batch_axis": 1, "time_axis": 0}, dims=(4, N, C)
    ),
    "MaxRoiPool": OneNode({"rois": f32([[0, 0, 0, W - 1, H - 1]])}, {"pooled_shape": [2, 2]}),
    "Upsample": OneNode({"scales": f32([1, 1, 2, 2])}, {"mode": "nearest"}),
}
"""Ops probed alone that need more than their one float input; an op missing here (a unary
op: Erf, Sqrt, Dropout without its ratio ...) needs nothing more."""


def _one_node(spec: Spec) -> onnx.ModelProto:
    """The op alone between carriers: no other node to blame for what the compiler does."""
    form = ONE_NODE.get(spec.op, OneNode())
    node = aux(spec.op, ["x", *form.constants], ["y"], **form.attrs)
    return net(spec.op, [node], form.constants, {"x": form.dims}, {"y": form.out_dims})


COMPARISONS = ("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual")
LOGICAL = ("And", "Or", "Xor")


def _select(spec: Spec) -> onnx.ModelProto:
    """``torch.where(x > 0, x, 0.1 * x)`` as exported (Greater, Mul, Where): a comparison's
    bool cannot reach a float carrier, so a Where turns it back into float, as masks do in
    real networks. A logical op joins two comparisons (``(x > 0) & (x < 6)``), Not inverts
    one; whichever op is asked for is the probed node."""
    op = spec.op
    nodes = [aux(op if op in COMPARISONS else "Greater", ["x", "low"], ["mask"])]
    # x >= 0 ? x : 0.1 x is exactly a LeakyRelu, which onnx2tf writes as one (Vela then has
    # no comparison to judge): GreaterOrEqual compares with 0.5 instead
    constants = {"low": f32(0.5 if op == "GreaterOrEqual" else 0.0), "slope": f32(0.1)}
    if op in LOGICAL:
        constants["high"] = f32(6.0)
        nodes += [aux("Less", ["x", "high"], ["below"]), aux(op, ["mask", "below"], ["both"])]
    if op == "Not":
        nodes.append(aux("Not", ["mask"], ["both"]))
    mask = nodes[-1].output[0]
    nodes += [aux("Mul", ["x", "slope"], ["leak"]), aux("Where", [mask, "x", "leak"], ["y"])]
    return net(op, nodes, constants)


def _gemm(spec: Spec) -> onnx.ModelProto:
    """A classifier head as torchvision and timm export it: GlobalAveragePool, Flatten, then
    the Linear layer as Gemm with transB."""
    nodes = [
        aux("GlobalAveragePool", ["x"], ["pooled"]),
        aux("Flatten", ["pooled"], ["features"]),
        aux("Gemm", ["features", "weight", "bias"], ["y"], transB=1),
    ]
    return net("Gemm", nodes, {"weight": normal([10, C], seed=1), "bias": normal([10], seed=2)})


def _recurrent(spec: Spec) -> onnx.ModelProto:
    """One GRU or RNN layer over a [steps, batch, channels] sequence, like the LSTM probe,
    with the bias torch writes (and GRU's ``linear_before_reset``, which torch always sets)."""
    op, gates = spec.op, GATES[spec.op]
    constants = {**recurrent_weights(C, gates), "B": normal([1, 2 * gates * C], seed=3)}
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    node = aux(op, ["x", "W", "R", "B"], ["y"], hidden_size=C, **attrs)
    return net(op, [node], constants, {"x": (4, N, C)})


def _shape_of(spec: Spec) -> onnx.ModelProto:
    """Shape or Size feeding a Reshape, as ``flat.view(x.shape)`` and ``x.view(x.numel())``
    export when shapes are not folded: the integer output is used, not left dangling."""
    if spec.op == "Shape":
        nodes = [
            aux("Flatten", ["x"], ["flat"]),
            aux("Shape", ["x"], ["shape"]),
            aux("Reshape", ["flat", "shape"], ["y"]),
        ]
        return net("Shape", nodes, {})
    nodes = [
        aux("Size", ["x"], ["count"]),
        aux("Unsqueeze", ["count", "first"], ["shape"]),
        aux("Reshape", ["x", "shape"], ["y"]),
    ]
    return net("Size", nodes, {"first": i64([0])})


def _constant_of_shape(spec: Spec) -> onnx.ModelProto:
    """``x + torch.ones_like(x)``: exporters fold a ConstantOfShape of a constant shape away,
    so the ones that remain take their shape from a Shape."""
    nodes = [
        aux("Shape", ["x"], ["shape"]),
        aux("ConstantOfShape", ["shape"], ["ones"], value=numpy_helper.from_array(f32([1.0]))),
        aux("Add", ["x", "ones"], ["y"]),
    ]
    return net("ConstantOfShape", nodes, {})


def _range(spec: Spec) -> onnx.ModelProto:
    """``x + torch.arange(x.shape[-1])``, a coordinate grid as detectors build it; like
    ConstantOfShape, only a Range with a limit read from a shape survives export."""
    nodes = [
        aux("Shape", ["x"], ["shape"]),
        aux("Gather", ["shape", "last"], ["width"]),
        aux("Range", ["start", "width", "step"], ["positions"]),
        aux("Cast", ["positions"], ["grid"], to=TensorProto.FLOAT),
        aux("Add", ["x", "grid"], ["y"]),
    ]
    constants = {"last": i64(len(X) - 1), "start": i64(0), "step": i64(1)}
    return net("Range", nodes, constants)


def _constant_node(name: str, values: np.ndarray) -> onnx.NodeProto:
    """A Constant node writing ``values`` to ``name`` (also an If branch's whole body)."""
    return aux("Constant", [], [name], value=numpy_helper.from_array(values))


def _constant(spec: Spec) -> onnx.ModelProto:
    """A Constant feeding an Add: torch writes the scalars and small tensors of an
    expression as Constant nodes, not initializers."""
    nodes = [
        _constant_node("bias", np.ones((1, C, 1, 1), np.float32)),
        aux("Add", ["x", "bias"], ["y"]),
    ]
    return net("Constant", nodes, {})


def _nonzero(spec: Spec) -> onnx.ModelProto:
    """``torch.nonzero(x > 0.5)``, its int64 indices cast to float for the carrier."""
    nodes = [
        aux("Greater", ["x", "threshold"], ["mask"]),
        aux("NonZero", ["mask"], ["indices"]),
        aux("Cast", ["indices"], ["y"], to=TensorProto.FLOAT),
    ]
    return net("NonZero", nodes, {"threshold": f32(0.5)})


ANCHORS, CLASSES = 32, 4


def _nms(spec: Spec) -> onnx.ModelProto:
    """NonMaxSuppression of a detector's boxes [1, anchors, 4] and class scores
    [1, classes, anchors] (as torchvision's nms exports), its selected (batch, class, box)
    indices cast to float for the carrier."""
    nodes = [
        aux("NonMaxSuppression", ["boxes", "scores", "top", "iou", "score"], ["selected"]),
        aux("Cast", ["selected"], ["y"], to=TensorProto.FLOAT),
    ]
    constants = {"top": i64([10]), "iou": f32([0.5]), "score": f32([0.25])}
    inputs = {"boxes": (N, ANCHORS, 4), "scores": (N, CLASSES, ANCHORS)}
    return net("NonMaxSuppression", nodes, constants, inputs)


def _topk(spec: Spec) -> onnx.ModelProto:
    """The 10 best of a detector's [1, anchors] scores: the values, and the indices cast to
    float (TopK's indices output is not optional)."""
    nodes = [
        aux("TopK", ["x", "k"], ["y", "indices"], axis=-1),
        aux("Cast", ["indices"], ["order"], to=TensorProto.FLOAT),
    ]
    return net(
        "TopK", nodes, {"k": i64([10])}, {"x": (N, ANCHORS)}, outputs={"y": None, "order": None}
    )


def _quantize(spec: Spec) -> onnx.ModelProto:
    """QuantizeLinear to int8 and DequantizeLinear back, the pair a QDQ model holds around
    every quantized tensor."""
    nodes = [
        aux("QuantizeLinear", ["x", "scale", "zero_point"], ["q"]),
        aux("DequantizeLinear", ["q", "scale", "zero_point"], ["y"]),
    ]
    return net("QuantizeLinear", nodes, {"scale": f32(0.1), "zero_point": np.array(0, np.int8)})


def _branch(name: str, gain: float) -> onnx.GraphProto:
    values = np.full((1, C, 1, 1), gain, np.float32)
    output = value_info(name, TensorProto.FLOAT, list(values.shape))
    return helper.make_graph([_constant_node(name, values)], name, [], [output])


def _if(spec: Spec) -> onnx.ModelProto:
    """``x * (1.0 if x.mean() > 0 else 0.5)`` as a scripted model exports it: an If on a
    comparison, each branch one Constant."""
    nodes = [
        aux("ReduceMean", ["x"], ["mean"], keepdims=0),
        aux("Greater", ["mean", "zero"], ["positive"]),
        aux(
            "If",
            ["positive"],
            ["gain"],
            then_branch=_branch("then_gain", 1.0),
            else_branch=_branch("else_gain", 0.5),
        ),
        aux("Mul", ["x", "gain"], ["y"]),
    ]
    return net("If", nodes, {"zero": f32(0.0)})


def _max_unpool(spec: Spec) -> onnx.ModelProto:
    """SegNet's decoder step: MaxUnpool of a MaxPool's values at the MaxPool's indices."""
    window = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [
        aux("MaxPool", ["x"], ["pooled", "argmax"], **window),
        aux("MaxUnpool", ["pooled", "argmax"], ["y"], **window),
    ]
    return net("MaxUnpool", nodes, {})


def _eye_like(spec: Spec) -> onnx.ModelProto:
    """``x + torch.eye``-like of a square matrix: EyeLike reads its input's shape."""
    nodes = [aux("EyeLike", ["x"], ["eye"]), aux("Add", ["x", "eye"], ["y"])]
    return net("EyeLike", nodes, {}, {"x": (H, W)})


def _one_hot(spec: Spec) -> onnx.ModelProto:
    """A segmentation map's one-hot mask: OneHot of the channel ArgMax, back to [n, c, h, w]."""
    nodes = [
        aux("ArgMax", ["x"], ["labels"], axis=1, keepdims=0),
        aux("OneHot", ["labels", "depth", "values"], ["y"], axis=1),
    ]
    return net("OneHot", nodes, {"depth": i64(C), "values": f32([0.0, 1.0])})


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
            *("ReduceL1", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"),
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
limit probes recorded with another op (ethos-u55@3.10's batch limit lists Abs before Add)."""

"""Probe models of the blocks users export, not of one op: the forms exporters actually write.

A profile can list every op of a block and still be wrong about the block: a compiler fuses
Sigmoid + Mul into one SiLU layer, re-fuses a decomposed LayerNorm, refuses the rank-5
Transpose of a channel shuffle, or crashes in a fuse rule on an attention pattern. These
probes put each block between the usual carriers and judge it as a whole: every node of the
block is named ``probe.<role>``, and the block is on the CPU when any of them is.

Each builder returns a bare model (``recipes.embed`` adds the carriers); a recipe
``{"block": NAME}`` rebuilds it byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from portlint.probe.parts import IR_FOR_OPSET, NODE_NAME, OPSET, Unsupported

FEATURES = (1, 16, 8, 8)
"""A feature map [n, c, h, w]: channel counts a little above the NPUs' minimum widths."""
TOKENS, WIDTH, HEADS = 49, 64, 4
"""A 7x7 window of 64-wide tokens in 4 heads: a small ViT/Swin block."""
ANCHORS, CLASSES, BINS = 84, 4, 16
"""A detector head on a 64x64 input (8x8 + 4x4 + 2x2 = 84 anchors), 16 DFL bins per side."""


def _node(role: str, op: str, inputs: Sequence[str], outputs: Sequence[str], **attrs: Any):
    return helper.make_node(op, list(inputs), list(outputs), name=f"{NODE_NAME}.{role}", **attrs)


def _weights(shape: Sequence[int], seed: int) -> np.ndarray:
    """Fixed-seed weights scaled as a trained layer's: the recipe rebuilds the same bytes."""
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])
    values = np.random.default_rng(seed).standard_normal(list(shape)) / math.sqrt(fan_in)
    return values.astype(np.float32)


def _block(
    nodes: list[onnx.NodeProto],
    constants: Mapping[str, np.ndarray],
    inputs: Mapping[str, Sequence[int | str]],
    opset: int = OPSET,
) -> onnx.ModelProto:
    """A float network from ``inputs`` to one output ``y``."""
    graph = helper.make_graph(
        nodes,
        "probe",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v)) for k, v in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_FOR_OPSET[opset]
    return model


def _scalar(value: float) -> np.ndarray:
    return np.array(value, np.float32)


def silu() -> onnx.ModelProto:
    """``x * sigmoid(x)``: how torch exports nn.SiLU (ONNX has no SiLU op) in YOLOv5/v8/11 and
    EfficientNet."""
    nodes = [_node("sigmoid", "Sigmoid", ["x"], ["s"]), _node("mul", "Mul", ["x", "s"], ["y"])]
    return _block(nodes, {}, {"x": FEATURES})


def hardswish_relu6() -> onnx.ModelProto:
    """``x * relu6(x + 3) / 6``: MobileNetV3 as Keras and older torch code write it."""
    nodes = [
        _node("add", "Add", ["x", "three"], ["shifted"]),
        _node("clip", "Clip", ["shifted", "zero", "six"], ["gate"]),
        _node("mul", "Mul", ["x", "gate"], ["scaled"]),
        _node("div", "Div", ["scaled", "six"], ["y"]),
    ]
    constants = {"three": _scalar(3), "zero": _scalar(0), "six": _scalar(6)}
    return _block(nodes, constants, {"x": FEATURES})


def hardswish_hardsigmoid() -> onnx.ModelProto:
    """``x * hardsigmoid(x)``: torch's HardSwish decomposed by exporters before opset 14."""
    nodes = [
        _node("hardsigmoid", "HardSigmoid", ["x"], ["gate"], alpha=1 / 6, beta=0.5),
        _node("mul", "Mul", ["x", "gate"], ["y"]),
    ]
    return _block(nodes, {}, {"x": FEATURES})


def gelu_erf() -> onnx.ModelProto:
    """``x * 0.5 * (1 + erf(x / sqrt(2)))`` as torch exports nn.GELU before opset 20 (ViT,
    ConvNeXt, BERT)."""
    nodes = [
        _node("div", "Div", ["x", "sqrt2"], ["scaled"]),
        _node("erf", "Erf", ["scaled"], ["erf"]),
        _node("add", "Add", ["erf", "one"], ["gate"]),
        _node("mul", "Mul", ["x", "gate"], ["gated"]),
        _node("half", "Mul", ["gated", "half"], ["y"]),
    ]
    constants = {"sqrt2": _scalar(math.sqrt(2)), "one": _scalar(1), "half": _scalar(0.5)}
    return _block(nodes, constants, {"x": (1, TOKENS, WIDTH)})


def gelu_tanh() -> onnx.ModelProto:
    """``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``: GELU(approximate='tanh') and
    the NewGELU of transformer code."""
    nodes = [
        _node("cube", "Pow", ["x", "three"], ["cubed"]),
        _node("coef", "Mul", ["cubed", "coef"], ["small"]),
        _node("add", "Add", ["x", "small"], ["inner"]),
        _node("scale", "Mul", ["inner", "root"], ["arg"]),
        _node("tanh", "Tanh", ["arg"], ["t"]),
        _node("one", "Add", ["t", "one"], ["gate"]),
        _node("mul", "Mul", ["x", "gate"], ["gated"]),
        _node("half", "Mul", ["gated", "half"], ["y"]),
    ]
    constants = {
        "three": _scalar(3),
        "coef": _scalar(0.044715),
        "root": _scalar(math.sqrt(2 / math.pi)),
        "one": _scalar(1),
        "half": _scalar(0.5),
    }
    return _block(nodes, constants, {"x": (1, TOKENS, WIDTH)})


def _affine() -> dict[str, np.ndarray]:
    return {"gamma": np.ones(WIDTH, np.float32), "beta": np.zeros(WIDTH, np.float32)}


def layernorm_native() -> onnx.ModelProto:
    """LayerNormalization over the last axis of [1, tokens, width], epsilon written (as torch
    exports nn.LayerNorm at opset 17)."""
    nodes = [
        _node("norm", "LayerNormalization", ["x", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5)
    ]
    return _block(nodes, _affine(), {"x": (1, TOKENS, WIDTH)})


def layernorm_decomposed() -> onnx.ModelProto:
    """LayerNorm as torch exports it below opset 17: ReduceMean, Sub, Pow, ReduceMean, Add,
    Sqrt, Div, then the affine Mul and Add (keepdims written, as torch writes it)."""
    nodes = [
        _node("mean", "ReduceMean", ["x"], ["mean"], axes=[-1], keepdims=1),
        _node("center", "Sub", ["x", "mean"], ["centered"]),
        _node("square", "Pow", ["centered", "two"], ["squared"]),
        _node("variance", "ReduceMean", ["squared"], ["variance"], axes=[-1], keepdims=1),
        _node("eps", "Add", ["variance", "eps"], ["shifted"]),
        _node("sqrt", "Sqrt", ["shifted"], ["std"]),
        _node("div", "Div", ["centered", "std"], ["normed"]),
        _node("gamma", "Mul", ["normed", "gamma"], ["scaled"]),
        _node("beta", "Add", ["scaled", "beta"], ["y"]),
    ]
    constants = {"two": _scalar(2), "eps": _scalar(1e-5), **_affine()}
    return _block(nodes, constants, {"x": (1, TOKENS, WIDTH)})


def attention() -> onnx.ModelProto:
    """Multi-head self-attention over [1, tokens, width]: projections, heads split by
    Reshape/Transpose, MatMul-Softmax-MatMul, heads merged, output projection."""
    head = WIDTH // HEADS
    split, merged = [1, TOKENS, HEADS, head], [1, TOKENS, WIDTH]
    nodes = []
    for name in "qkv":
        nodes += [
            _node(f"{name}_proj", "MatMul", ["x", f"w{name}"], [f"{name}_flat"]),
            _node(f"{name}_split", "Reshape", [f"{name}_flat", "split"], [f"{name}_heads"]),
        ]
        perm = [0, 2, 3, 1] if name == "k" else [0, 2, 1, 3]  # k transposed for q @ k^T
        nodes.append(_node(f"{name}_perm", "Transpose", [f"{name}_heads"], [name], perm=perm))
    nodes += [
        _node("scores", "MatMul", ["q", "k"], ["scores"]),
        _node("scale", "Mul", ["scores", "scale"], ["scaled"]),
        _node("softmax", "Softmax", ["scaled"], ["weights"], axis=-1),
        _node("context", "MatMul", ["weights", "v"], ["context"]),
        _node("merge_perm", "Transpose", ["context"], ["tokens"], perm=[0, 2, 1, 3]),
        _node("merge", "Reshape", ["tokens", "merged"], ["joined"]),
        _node("out_proj", "MatMul", ["joined", "wo"], ["y"]),
    ]
    constants = {
        **{f"w{name}": _weights([WIDTH, WIDTH], seed=i + 1) for i, name in enumerate("qkvo")},
        "split": np.array(split, np.int64),
        "merged": np.array(merged, np.int64),
        "scale": _scalar(1 / math.sqrt(head)),
    }
    return _block(nodes, constants, {"x": (1, TOKENS, WIDTH)})


def channel_shuffle() -> onnx.ModelProto:
    """ShuffleNet's channel shuffle: Reshape to [n, groups, c/groups, h, w], swap the two
    channel axes (a rank-5 Transpose), Reshape back."""
    n, c, h, w = FEATURES
    nodes = [
        _node("split", "Reshape", ["x", "grouped"], ["grouped_x"]),
        _node("swap", "Transpose", ["grouped_x"], ["swapped"], perm=[0, 2, 1, 3, 4]),
        _node("merge", "Reshape", ["swapped", "flat"], ["y"]),
    ]
    constants = {
        "grouped": np.array([n, 2, c // 2, h, w], np.int64),
        "flat": np.array([n, c, h, w], np.int64),
    }
    return _block(nodes, constants, {"x": FEATURES})


def dfl_decode() -> onnx.ModelProto:
    """Ultralytics YOLOv8/11's head tail: DFL (Reshape, Transpose, Softmax over 16 bins, a
    1x1 Conv with weights 0..15), box decode against anchors and strides, class Sigmoid,
    and the Concat into [1, 4 + classes, anchors]."""
    distance = [
        _node("dfl_split", "Reshape", ["box", "bins_shape"], ["bins"]),
        _node("dfl_perm", "Transpose", ["bins"], ["bins_first"], perm=[0, 2, 1, 3]),
        _node("dfl_softmax", "Softmax", ["bins_first"], ["probabilities"], axis=1),
        _node("dfl_conv", "Conv", ["probabilities", "dfl_weights"], ["expected"]),
        _node("dfl_merge", "Reshape", ["expected", "sides_shape"], ["sides"]),
        _node("split", "Split", ["sides", "halves"], ["lt", "rb"], axis=1),
    ]
    decode = [
        _node("x1y1", "Sub", ["anchors", "lt"], ["x1y1"]),
        _node("x2y2", "Add", ["anchors", "rb"], ["x2y2"]),
        _node("centre_sum", "Add", ["x1y1", "x2y2"], ["centre_sum"]),
        _node("centre", "Div", ["centre_sum", "two"], ["centre"]),
        _node("size", "Sub", ["x2y2", "x1y1"], ["size"]),
        _node("boxes", "Concat", ["centre", "size"], ["boxes_grid"], axis=1),
        _node("stride", "Mul", ["boxes_grid", "strides"], ["boxes"]),
        _node("scores", "Sigmoid", ["cls"], ["scores"]),
        _node("concat", "Concat", ["boxes", "scores"], ["y"], axis=1),
    ]
    rng = np.random.default_rng(7)
    constants = {
        "bins_shape": np.array([1, 4, BINS, ANCHORS], np.int64),
        "dfl_weights": np.arange(BINS, dtype=np.float32).reshape(1, BINS, 1, 1),
        "sides_shape": np.array([1, 4, ANCHORS], np.int64),
        "halves": np.array([2, 2], np.int64),
        "anchors": (rng.random((1, 2, ANCHORS)) * 8).astype(np.float32),
        "two": _scalar(2),
        "strides": np.full((1, 1, ANCHORS), 8.0, np.float32),
    }
    inputs = {"box": (1, 4 * BINS, ANCHORS), "cls": (1, CLASSES, ANCHORS)}
    return _block([*distance, *decode], constants, inputs)


def nms_tail() -> onnx.ModelProto:
    """A detector's NMS tail: NonMaxSuppression over [1, anchors, 4] boxes and
    [1, classes, anchors] scores, then the kept boxes gathered (as torchvision and
    ``export(nms=True)`` graphs end)."""
    nodes = [
        _node("nms", "NonMaxSuppression", ["boxes", "scores", "top", "iou", "score"], ["kept"]),
        _node("index", "Gather", ["kept", "column"], ["box_index"], axis=1),
        _node("gather", "Gather", ["boxes", "box_index"], ["y"], axis=1),
    ]
    constants = {
        "top": np.array([10], np.int64),
        "iou": np.array([0.5], np.float32),
        "score": np.array([0.25], np.float32),
        "column": np.array(2, np.int64),
    }
    inputs = {"boxes": (1, ANCHORS, 4), "scores": (1, CLASSES, ANCHORS)}
    return _block(nodes, constants, inputs)


def _conv(group: int, batch: int | str = 1) -> onnx.ModelProto:
    _, c, h, w = FEATURES
    nodes = [_node("conv", "Conv", ["x", "w", "b"], ["y"], group=group, pads=[1, 1, 1, 1])]
    constants = {"w": _weights([c, c // group, 3, 3], seed=3), "b": np.zeros(c, np.float32)}
    return _block(nodes, constants, {"x": (batch, c, h, w)})


def dynamic_batch() -> onnx.ModelProto:
    """A 3x3 Conv whose input batch is the symbolic ``batch`` (``dynamic_axes={0: ...}``)."""
    return _conv(group=1, batch="batch")


def grouped_conv() -> onnx.ModelProto:
    """A 3x3 Conv in 4 groups of 4 channels (ResNeXt, RegNet): neither dense nor depthwise."""
    return _conv(group=4)


def _resize(mode: str, scale: int) -> onnx.ModelProto:
    n, c, _, _ = FEATURES
    attrs = {"mode": mode, "nearest_mode": "floor"} if mode == "nearest" else {"mode": mode}
    if mode == "linear":
        attrs["coordinate_transformation_mode"] = "half_pixel"
    nodes = [_node("resize", "Resize", ["x", "", "scales"], ["y"], **attrs)]
    constants = {"scales": np.array([1, 1, scale, scale], np.float32)}
    return _block(nodes, constants, {"x": (n, c, 4, 4)})


def resize_nearest_x16() -> onnx.ModelProto:
    """Nearest upsampling by 16 in one Resize (segmentation decoders, FPN shortcuts)."""
    return _resize("nearest", 16)


def resize_bilinear_x8() -> onnx.ModelProto:
    """Bilinear (half-pixel) upsampling by 8 in one Resize (DeepLab, U-Net outputs)."""
    return _resize("linear", 8)


BLOCKS: dict[str, Callable[[], onnx.ModelProto]] = {
    "silu": silu,
    "hardswish-relu6": hardswish_relu6,
    "hardswish-hardsigmoid": hardswish_hardsigmoid,
    "gelu-erf": gelu_erf,
    "gelu-tanh": gelu_tanh,
    "layernorm-native": layernorm_native,
    "layernorm-decomposed": layernorm_decomposed,
    "attention": attention,
    "channel-shuffle": channel_shuffle,
    "dfl-decode": dfl_decode,
    "nms-tail": nms_tail,
    "dynamic-batch": dynamic_batch,
    "grouped-conv": grouped_conv,
    "resize-nearest-x16": resize_nearest_x16,
    "resize-bilinear-x8": resize_bilinear_x8,
}
"""Every block probe by name; a probe's fact is ``blocks.<name>``."""


def build_block(name: str) -> onnx.ModelProto:
    if name not in BLOCKS:
        raise Unsupported(f"no block probe {name!r} (known: {', '.join(BLOCKS)})")
    return BLOCKS[name]()


def describe(name: str) -> str:
    """The block's docstring up to its first full stop, on one line, for reports and docs."""
    text = " ".join((BLOCKS[name].__doc__ or name).split()).replace("``", "")
    return text.split(". ", 1)[0].rstrip(".")

"""The parts every probe model is made of: the default input, the probed node's name, the
``Spec`` a profile field sets, and the helpers that assemble a small float network.

Shared by ``factory`` (models a limit's field varies), ``fixed_models`` (one model per op no
field reaches) and ``blocks`` (the blocks users export), which build on it and not on each
other (``factory`` dispatches to ``fixed_models``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

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


def is_probed(node_name: str) -> bool:
    """Whether a node is the probed one, or one of a probed block's (``probe.<role>``)."""
    return node_name == NODE_NAME or node_name.startswith(f"{NODE_NAME}.")


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
    activation_inputs: int = 1  # a binary op's second input: a constant (1) or x itself (2)
    attrs: dict[str, Any] = field(default_factory=dict)


def value_info(name: str, dtype: int, dims: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, dims)


def make_model(
    nodes: list[onnx.NodeProto], inputs: list, outputs: list, inits: list, opset: int = OPSET
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "probe", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_FOR_OPSET[opset]
    return model


def probe_node(
    op: str, inputs: list[str], outputs: list[str], attrs: dict[str, Any]
) -> onnx.NodeProto:
    """The probe node; attributes set to ``None`` are left out (``has_attr`` probes)."""
    written = {k: v for k, v in attrs.items() if v is not None}
    return helper.make_node(op, inputs, outputs, name=NODE_NAME, **written)


def normal(shape: list[int], seed: int = 0) -> np.ndarray:
    """Weights with a fixed seed: the same recipe must rebuild the same bytes."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


Builder = Callable[[Spec], onnx.ModelProto]
X = (N, C, H, W)
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
"""Gate blocks stacked in a recurrent layer's weights (ONNX order: iofc, zrh, one)."""


def recurrent_weights(channels: int, gates: int, directions: int = 1) -> dict[str, np.ndarray]:
    """W and R of a recurrent layer whose hidden size is its input's ``channels``."""
    return {
        "W": normal([directions, gates * channels, channels], seed=1),
        "R": normal([directions, gates * channels, channels], seed=2),
    }


def f32(values: Any) -> np.ndarray:
    return np.array(values, np.float32)


def i64(values: Any) -> np.ndarray:
    return np.array(values, np.int64)


def aux(op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> onnx.NodeProto:
    """A node of the network around the probed one, named after its first output."""
    return helper.make_node(op, inputs, outputs, name=outputs[0], **attrs)


def net(
    op: str,
    nodes: list[onnx.NodeProto],
    constants: Mapping[str, np.ndarray],
    inputs: Mapping[str, Sequence[int]] | None = None,
    outputs: Mapping[str, Sequence[int] | None] | None = None,
    opset: int | None = None,
) -> onnx.ModelProto:
    """A small float network whose one node of type ``op`` is the probed one: every graph
    input and output is float, so the carriers wrap it as layers would; bool and integer
    tensors stay inside, between the nodes that make and read them. ``opset``: default
    the op's own (``OPSET_OF``) or ``OPSET``."""
    [probed] = [node for node in nodes if node.op_type == op]
    probed.name = NODE_NAME
    return make_model(
        nodes,
        [
            value_info(name, TensorProto.FLOAT, list(dims))
            for name, dims in (inputs or {"x": X}).items()
        ],
        [
            value_info(name, TensorProto.FLOAT, None if dims is None else list(dims))
            for name, dims in (outputs or {"y": None}).items()
        ],
        [numpy_helper.from_array(values, name) for name, values in constants.items()],
        opset=opset or OPSET_OF.get(op, OPSET),
    )

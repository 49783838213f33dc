"""What a model read for checking is: the shape-inferred graph, and where its weights are.

Also the limits that decide which initializers keep their values when a model is read for
checking (small constants do, weights do not), shared by the reader and the light copies.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from portlint.weights import WeightSource

IN_MEMORY = Path("<in memory>")
"""The path reported for a model that only exists in memory (``fix``'s intermediate ones)."""


KEEP_CONSTANT_ELEMENTS = 4096
"""Integer initializers up to this many elements keep their values (Reshape targets, Slice
starts, pads, sizes, axes); every initializer up to this size is validated."""


KEEP_SMALL_ELEMENTS = 64
"""Any other initializer keeps its value up to this many elements: Resize scales and roi,
Clip bounds, Pad values, quantization parameters, a DFL head's bins. Weights do not (a 3x3
Conv's are 576 and up): structural rules never read them, numerics rules ask for them."""


SHAPE_TYPES = frozenset({onnx.TensorProto.INT64, onnx.TensorProto.INT32})


STRIPPED_LOCATION = "__portlint_stripped__"


PROTOBUF_LIMIT = 2**31 - 1
"""A model this big cannot be serialised in one piece (onnxruntime, onnxsim, the checker)."""


@dataclass
class LoadedModel:
    """A shape-inferred model whose large weights were left out on purpose."""

    path: Path
    model: onnx.ModelProto
    ir_version: int
    opsets: dict[str, int]
    stripped: frozenset[str] = frozenset()
    pinned_inputs: dict[str, list[int]] = field(default_factory=dict)
    inference_error: str | None = None
    weight_source: WeightSource | None = None
    """Where the stripped weights can still be read: the file, or the caller's model."""
    payloads: Mapping[str, Payload] = field(default_factory=dict)
    """Where in ``path`` the raw bytes of initializers left out while reading are."""
    nodes: NodeTable | None = None
    """The nodes as plain data (``model.graph.node`` in order)."""
    computed: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Small values that follow from static shapes and constants (``model_io.fold``): the
    reshape targets, pads and sizes a raw export computes at run time."""


@dataclass(frozen=True)
class Payload:
    """The raw bytes of one initializer, left in the file: where, in which file, and what
    they hold (``numpy_helper.to_array`` of the tensor is ``frombuffer(bytes, dtype)``
    reshaped to ``dims``)."""

    offset: int
    length: int
    stamp: tuple[int, int]
    """(size, mtime_ns) of the file when it was read: a rewritten file is not trusted."""
    data_type: int
    dims: tuple[int, ...]


@dataclass(frozen=True)
class NodeTable:
    """The graph's nodes as plain Python data, read from protobuf once (validation, the view,
    patterns and folding all walk them)."""

    names: list[str]
    ops: list[str]
    domains: list[str]
    inputs: list[tuple[str, ...]]
    outputs: list[tuple[str, ...]]

    @classmethod
    def of(cls, nodes) -> NodeTable:
        names: list[str] = []
        ops: list[str] = []
        domains: list[str] = []
        inputs: list[tuple[str, ...]] = []
        outputs: list[tuple[str, ...]] = []
        for node in nodes:
            names.append(node.name)
            ops.append(node.op_type)
            domains.append(node.domain)
            inputs.append(tuple(node.input))
            outputs.append(tuple(node.output))
        return cls(names, ops, domains, inputs, outputs)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a big graph's plain data is read or built.

    Those objects (node tuples, views, findings) hold no cycles, yet every few hundred
    allocations the collector would walk all of them again: about a quarter of the time on a
    100,000-node model. Reference counting still frees everything as usual.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def element_count(tensor: onnx.TensorProto) -> int:
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count


def keep_limit(data_type: int) -> int:
    """How many elements an initializer of this type may have and still keep its value."""
    return KEEP_CONSTANT_ELEMENTS if data_type in SHAPE_TYPES else KEEP_SMALL_ELEMENTS

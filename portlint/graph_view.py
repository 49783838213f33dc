"""A read-only view of a shape-inferred ONNX graph: the only thing rules ever see.

Rules should not re-derive ONNX semantics (attribute defaults per opset, where a kernel
shape comes from, which nodes a toolchain folds away before it looks at them). The view
does that once, so every rule reasons about the graph the vendor compiler will actually see.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import numpy_helper

from portlint.activations import TensorStats
from portlint.model_io import LoadedModel, corrupt_tensor, malformed_node
from portlint.onnx_defaults import AttributeTypeError, resolved_attributes
from portlint.patterns import find_patterns
from portlint.weights import WeightStore

if TYPE_CHECKING:
    import networkx as nx

Dim = int | str | None
"""A dimension: an int when static, the dim_param name when symbolic, None when unknown."""

_DTYPE_NAMES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.BFLOAT16: "bfloat16",
}
NONDETERMINISTIC_OPS = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
    }
)
SHAPE_OF_INPUT_OPS = frozenset({"Shape", "Size"})


def dtype_name(elem_type: int) -> str | None:
    """Name an ONNX element type the way users write it (float32, int64, ...)."""
    if not elem_type:
        return None
    return _DTYPE_NAMES.get(elem_type, onnx.TensorProto.DataType.Name(elem_type).lower())


@dataclass(frozen=True)
class TensorInfo:
    """What is known about one tensor: dtype and shape, never its weight values."""

    name: str
    dtype: str | None
    shape: tuple[Dim, ...] | None
    kind: str = "activation"  # activation | initializer | graph_input | constant

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def dynamic_axes(self) -> list[tuple[int, Dim]]:
        """Axes whose size is not a known integer, with their symbolic name if any."""
        if self.shape is None:
            return []
        return [(i, d) for i, d in enumerate(self.shape) if not isinstance(d, int)]


@dataclass(frozen=True)
class NodeView:
    """One node, with attributes resolved to the values ONNX semantics give them."""

    index: int
    name: str
    op_type: str
    domain: str
    opset: int
    attributes: Mapping[str, Any]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    folded: bool = False
    pattern: str | None = None
    explicit_attributes: frozenset[str] = frozenset()
    """Attributes the exporter wrote; some toolchains mishandle a defaulted one."""

    @property
    def qualified_op(self) -> str:
        return self.op_type if self.domain in ("", "ai.onnx") else f"{self.domain}::{self.op_type}"


@dataclass
class GraphView:
    """The shape-inferred graph, its tensors, producers, consumers and a networkx DiGraph."""

    nodes: tuple[NodeView, ...]
    tensors: Mapping[str, TensorInfo]
    graph_inputs: tuple[TensorInfo, ...]
    graph_outputs: tuple[TensorInfo, ...]
    opsets: Mapping[str, int]
    ir_version: int
    constants: Mapping[str, np.ndarray] = field(default_factory=dict)
    inference_error: str | None = None
    weights: WeightStore | None = None
    activations: Mapping[str, TensorStats] | None = None
    """Measured on sample inputs (``--inputs``); None when only the float model is known."""

    @cached_property
    def _producers(self) -> dict[str, NodeView]:
        return {out: node for node in self.nodes for out in node.outputs if out}

    @cached_property
    def _consumers(self) -> dict[str, list[NodeView]]:
        table: dict[str, list[NodeView]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    table.setdefault(name, []).append(node)
        return table

    def producer(self, tensor: str) -> NodeView | None:
        return self._producers.get(tensor)

    def consumers(self, tensor: str) -> list[NodeView]:
        return list(self._consumers.get(tensor, ()))

    def tensor(self, name: str) -> TensorInfo | None:
        return self.tensors.get(name) if name else None

    def constant_value(self, name: str) -> np.ndarray | None:
        """The value of a small constant (initializer or Constant node), else None."""
        return self.constants.get(name)

    def weight(self, name: str) -> np.ndarray | None:
        """The value of any constant, large ones read from the model on demand (numerics rules
        only: structural rules must not depend on weight bytes)."""
        if self.weights is None:
            return self.constants.get(name) if name else None
        return self.weights.get(name)

    @cached_property
    def live_by_op(self) -> dict[str, list[NodeView]]:
        """Live nodes grouped by op type, so a limit on Conv never walks the Relus."""
        table: dict[str, list[NodeView]] = {}
        for node in self.live_nodes():
            table.setdefault(node.op_type, []).append(node)
        return table

    def live_nodes(self) -> Iterator[NodeView]:
        """Nodes a vendor compiler keeps after folding constants: the ones worth judging."""
        return (n for n in self.nodes if not n.folded)

    @cached_property
    def edges(self) -> list[tuple[str, str]]:
        """(producer, consumer) node-name pairs, one per tensor passed between them."""
        pairs = []
        for node in self.nodes:
            for name in node.inputs:
                source = self._producers.get(name) if name else None
                if source is not None:
                    pairs.append((source.name, node.name))
        return pairs

    @cached_property
    def digraph(self) -> nx.DiGraph:
        """Nodes keyed by name, an edge for every tensor passed from producer to consumer."""
        import networkx as nx  # imported on first use: most runs never need it

        graph = nx.DiGraph()
        graph.add_nodes_from((n.name, {"view": n}) for n in self.nodes)
        graph.add_edges_from(self.edges)
        return graph


def build_view(loaded: LoadedModel) -> GraphView:
    """Turn a loaded, shape-inferred model into the read-only view rules work on."""
    model = loaded.model
    graph = model.graph
    opsets = MappingProxyType(dict(loaded.opsets))
    constants = _collect_constants(graph, loaded.stripped, loaded.path)
    tensors = _collect_tensors(graph, constants)
    raw_nodes = list(graph.node)
    names = display_names(raw_nodes)
    folded = _folded_nodes(raw_nodes, graph, tensors)
    patterns = find_patterns(raw_nodes)
    nodes = tuple(
        NodeView(
            index=i,
            name=names[i],
            op_type=n.op_type,
            domain=n.domain or "",
            opset=opsets.get(n.domain or "", opsets.get("ai.onnx", 0)),
            attributes=_attributes(n, opsets, tensors, loaded.path),
            inputs=tuple(n.input),
            outputs=tuple(n.output),
            folded=i in folded,
            pattern=patterns.get(i),
            explicit_attributes=frozenset(a.name for a in n.attribute),
        )
        for i, n in enumerate(raw_nodes)
    )
    initializer_names = {t.name for t in graph.initializer}
    inputs = tuple(tensors[i.name] for i in graph.input if i.name not in initializer_names)
    outputs = tuple(tensors[o.name] for o in graph.output)
    return GraphView(
        nodes,
        MappingProxyType(tensors),
        inputs,
        outputs,
        opsets,
        loaded.ir_version,
        MappingProxyType(constants),
        loaded.inference_error,
        WeightStore(loaded.weight_source, constants),
    )


def _attributes(
    node: onnx.NodeProto, opsets: Mapping[str, int], tensors: Mapping[str, TensorInfo], path: Path
) -> Mapping[str, Any]:
    try:
        return MappingProxyType(resolved_attributes(node, opsets, tensors))
    except AttributeTypeError as exc:
        raise malformed_node(path, node, str(exc)) from exc


def _shape_of(value_type: onnx.TypeProto) -> tuple[Dim, ...] | None:
    if not value_type.tensor_type.HasField("shape"):
        return None
    dims: list[Dim] = []
    for dim in value_type.tensor_type.shape.dim:
        kind = dim.WhichOneof("value")
        if kind == "dim_value" and dim.dim_value > 0:
            dims.append(dim.dim_value)
        else:
            dims.append(dim.dim_param or None if kind == "dim_param" else None)
    return tuple(dims)


def _collect_tensors(
    graph: onnx.GraphProto, constants: Mapping[str, np.ndarray]
) -> dict[str, TensorInfo]:
    tensors: dict[str, TensorInfo] = {}
    kinds = (
        ("activation", graph.value_info),
        ("activation", graph.output),
        ("graph_input", graph.input),
    )
    for kind, values in kinds:
        for value in values:
            tensors[value.name] = TensorInfo(
                value.name,
                dtype_name(value.type.tensor_type.elem_type),
                _shape_of(value.type),
                kind,
            )
    for init in graph.initializer:
        tensors[init.name] = TensorInfo(
            init.name, dtype_name(init.data_type), tuple(int(d) for d in init.dims), "initializer"
        )
    for node in graph.node:
        value = (
            constants.get(node.output[0]) if node.op_type == "Constant" and node.output else None
        )
        if value is not None:
            tensors[node.output[0]] = TensorInfo(
                node.output[0],
                dtype_name(onnx.helper.np_dtype_to_tensor_dtype(value.dtype)),
                tuple(int(d) for d in value.shape),
                "constant",
            )
    return tensors


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
            if attr.t.data_location == onnx.TensorProto.EXTERNAL:
                return None
            return numpy_helper.to_array(attr.t)
        if attr.name in ("value_float", "value_int"):
            return np.array(onnx.helper.get_attribute_value(attr))
        if attr.name in ("value_floats", "value_ints"):
            return np.array(list(onnx.helper.get_attribute_value(attr)))
    return None


def _collect_constants(
    graph: onnx.GraphProto, stripped: frozenset[str], path: Path
) -> dict[str, np.ndarray]:
    constants: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        if init.name not in stripped:
            try:
                constants[init.name] = numpy_helper.to_array(init)
            except Exception as exc:
                raise corrupt_tensor(path, f"initializer {init.name!r}", exc) from exc
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            try:
                value = _constant_node_value(node)
            except Exception as exc:
                what = f"the value of Constant node {node.name or node.op_type!r}"
                raise corrupt_tensor(path, what, exc) from exc
            if value is not None:
                constants[node.output[0]] = value
    return constants


def display_names(nodes: list[onnx.NodeProto]) -> list[str]:
    """Node names as users see them, made unique: ONNX allows empty and repeated names."""
    seen: set[str] = set()
    names = []
    for i, node in enumerate(nodes):
        name = node.name or f"{node.op_type}_{i}"
        if name in seen:
            name = f"{name}#{i}"
        seen.add(name)
        names.append(name)
    return names


def _folded_nodes(
    nodes: list[onnx.NodeProto], graph: onnx.GraphProto, tensors: Mapping[str, TensorInfo]
) -> set[int]:
    """Nodes whose outputs are compile-time constants, which every toolchain folds away.

    A node folds when it is deterministic and all its inputs are constants, or when it only
    reads the (static) shape of its input. Judging such nodes would flood users with
    findings on export noise (Shape->Gather->Concat->Reshape chains) that never reach the NPU.
    """
    constant = {t.name for t in graph.initializer} | {""}
    folded: set[int] = set()
    for i, node in enumerate(nodes):
        if node.op_type in NONDETERMINISTIC_OPS:
            continue
        reads_static_shape = (
            node.op_type in SHAPE_OF_INPUT_OPS
            and node.input
            and (info := tensors.get(node.input[0])) is not None
            and info.is_static
        )
        if reads_static_shape or all(name in constant for name in node.input):
            folded.add(i)
            constant.update(node.output)
    return folded

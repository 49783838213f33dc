"""A read-only view of a shape-inferred ONNX graph: the only thing rules ever see.

Rules should not re-derive ONNX semantics (attribute defaults per opset, where a kernel
shape comes from, which nodes a toolchain folds away before it looks at them). The view
does that once, so every rule reasons about the graph the vendor compiler will actually see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import onnx
from onnx import numpy_helper

from portlint.activations import TensorStats
from portlint.model_io.fold import NONDETERMINISTIC_OPS, SHAPE_OPS
from portlint.model_io.loaded import LoadedModel, NodeTable, gc_paused
from portlint.model_io.payload import PayloadReader
from portlint.model_io.validate import ITEM_SIZES, constant_source, corrupt_tensor, malformed_node
from portlint.onnx_defaults import AttributeTypeError, attributes_key, resolved_attributes
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


def dtype_name(elem_type: int) -> str | None:
    """Name an ONNX element type the way users write it (float32, int64, ...)."""
    if not elem_type:
        return None
    return _DTYPE_NAMES.get(elem_type, onnx.TensorProto.DataType.Name(elem_type).lower())


@lru_cache(maxsize=4096)
def _all_static(shape: tuple[Dim, ...]) -> bool:
    return all(isinstance(d, int) for d in shape)


T = TypeVar("T")
_MISSING = object()


@dataclass(frozen=True, slots=True)
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
        shape = self.shape
        if type(shape) is tuple:
            return _all_static(shape)
        return shape is not None and all(isinstance(d, int) for d in shape)

    def dynamic_axes(self) -> list[tuple[int, Dim]]:
        """Axes whose size is not a known integer, with their symbolic name if any."""
        if self.shape is None:
            return []
        return [(i, d) for i, d in enumerate(self.shape) if not isinstance(d, int)]


@dataclass(frozen=True, slots=True)
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

    def derived(self, key: str, compute: Callable[[GraphView], T]) -> T:
        """A fact worked out from the whole graph (the detector tail, range estimates),
        computed once per view however many rules and targets ask for it."""
        found = self.__dict__.get(key, _MISSING)
        if found is _MISSING:
            found = self.__dict__[key] = compute(self)
        return found

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

    def is_constant(self, name: str) -> bool:
        """Initializers, Constant outputs and outputs of folded nodes: known before run time."""
        info = self.tensor(name)
        if info is not None and info.kind in ("initializer", "constant"):
            return True
        producer = self.producer(name)
        return producer is not None and producer.folded

    def constant_value(self, name: str) -> np.ndarray | None:
        """The value of a small constant (initializer, Constant node or a value folded from
        static shapes), else None."""
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


@gc_paused()
def build_view(loaded: LoadedModel) -> GraphView:
    """Turn a loaded, shape-inferred model into the read-only view rules work on."""
    model = loaded.model
    graph = model.graph
    opsets = MappingProxyType(dict(loaded.opsets))
    raw_nodes = list(graph.node)
    table = loaded.nodes if loaded.nodes is not None else NodeTable.of(raw_nodes)
    constants = _collect_constants(graph, raw_nodes, table, loaded.stripped, loaded.path)
    constants.values.update(loaded.computed)
    tensors = _collect_tensors(graph, raw_nodes, table, constants)
    names = _display_names(table.names, table.ops)
    folded = _folded_nodes(table, graph, tensors)
    patterns = find_patterns(graph, raw_nodes, table)
    default_opset = opsets.get("ai.onnx", 0)
    attributes = _Attributes(opsets, tensors, loaded.path)
    nodes = []
    ops, domains, node_inputs, node_outputs = table.ops, table.domains, table.inputs, table.outputs
    for i, node in enumerate(raw_nodes):
        domain = domains[i] or ""
        resolved, explicit = attributes.of(node, ops[i], domain, node_inputs[i])
        nodes.append(
            NodeView(
                i,
                names[i],
                ops[i],
                domain,
                opsets.get(domain, default_opset),
                resolved,
                node_inputs[i],
                node_outputs[i],
                i in folded,
                patterns.get(i),
                explicit,
            )
        )
    initializer_names = {t.name for t in graph.initializer}
    inputs = tuple(tensors[i.name] for i in graph.input if i.name not in initializer_names)
    outputs = tuple(tensors[o.name] for o in graph.output)
    return GraphView(
        tuple(nodes),
        MappingProxyType(tensors),
        inputs,
        outputs,
        opsets,
        loaded.ir_version,
        constants,
        loaded.inference_error,
        WeightStore(loaded.weight_source, _Weights(constants, loaded)),
    )


class _Attributes:
    """Each node's resolved attributes; nodes that write the same attributes (every 3x3 Conv
    of a backbone) share one read-only mapping, resolved once."""

    def __init__(self, opsets: Mapping[str, int], tensors: Mapping[str, TensorInfo], path: Path):
        self.opsets, self.tensors, self.path = opsets, tensors, path
        self.cache: dict[Any, tuple[Mapping[str, Any], frozenset[str]]] = {}

    def of(
        self, node: onnx.NodeProto, op_type: str, domain: str, inputs: tuple[str, ...]
    ) -> tuple[Mapping[str, Any], frozenset[str]]:
        key = attributes_key(node, self.opsets, self.tensors, op_type, domain, inputs)
        found = self.cache.get(key) if key is not None else None
        if found is None:
            try:
                values = resolved_attributes(node, self.opsets, self.tensors)
            except AttributeTypeError as exc:
                raise malformed_node(self.path, node, str(exc)) from exc
            found = (MappingProxyType(values), frozenset(a.name for a in node.attribute))
            if key is not None:
                self.cache[key] = found
        return found


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
    graph: onnx.GraphProto,
    raw_nodes: list[onnx.NodeProto],
    table: NodeTable,
    constants: _Constants,
) -> dict[str, TensorInfo]:
    tensors: dict[str, TensorInfo] = {}
    types: dict[bytes, tuple[str | None, tuple[Dim, ...] | None]] = {}
    kinds = (
        ("activation", graph.value_info),
        ("activation", graph.output),
        ("graph_input", graph.input),
    )
    known_type = types.get
    for kind, values in kinds:
        for value in values:
            value_type = value.type
            key = value_type.SerializeToString()  # one C call: most tensors share a type
            known = known_type(key)
            if known is None:
                elem_type = value_type.tensor_type.elem_type
                known = types[key] = (dtype_name(elem_type), _shape_of(value_type))
            name = value.name
            tensors[name] = TensorInfo(name, known[0], known[1], kind)
    for init in graph.initializer:
        name, dtype = init.name, dtype_name(init.data_type)
        tensors[name] = TensorInfo(name, dtype, tuple(init.dims), "initializer")
    for index in constants.node_outputs:
        name = table.outputs[index][0]
        if name in constants:
            dtype, shape = constants.type_of(name)
            tensors[name] = TensorInfo(name, dtype, shape, "constant")
    return tensors


_PLAIN_TYPES = frozenset(range(1, 16)) - {onnx.TensorProto.STRING}
"""Types whose numpy dtype names the same ONNX type back (a decoded value is not needed)."""


class _Constants(Mapping[str, np.ndarray]):
    """Small constants by name, decoded on first read (checking reads a handful of them).

    Initializers that kept their payload, the values of Constant nodes and the small values
    folding computed (``model_io.fold``); weights are not here (``GraphView.weight`` reads
    those)."""

    def __init__(self, path: Path):
        self.path = path
        self.sources: dict[str, tuple[str, onnx.TensorProto | onnx.AttributeProto]] = {}
        self.values: dict[str, np.ndarray] = {}
        self.node_outputs: list[int] = []

    def __getitem__(self, name: str) -> np.ndarray:
        value = self.values.get(name)
        if value is None:
            what, source = self.sources[name]
            value = self.values[name] = _decode(source, what, self.path)
        return value

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.values:
            return self.values[name]
        return self[name] if name in self.sources else default

    def __contains__(self, name: object) -> bool:
        return name in self.sources or name in self.values

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self.sources), **dict.fromkeys(self.values)})

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def type_of(self, name: str) -> tuple[str | None, tuple[int, ...]]:
        """dtype and shape of the constant, decoding it only when its proto cannot tell."""
        _, source = self.sources[name]
        if (
            isinstance(source, onnx.TensorProto)
            and source.data_type in _PLAIN_TYPES
            and all(d >= 0 for d in source.dims)
        ):
            return dtype_name(source.data_type), tuple(int(d) for d in source.dims)
        value = self[name]
        dtype = dtype_name(onnx.helper.np_dtype_to_tensor_dtype(value.dtype))
        return dtype, tuple(int(d) for d in value.shape)


def _decode(source: onnx.TensorProto | onnx.AttributeProto, what: str, path: Path) -> np.ndarray:
    try:
        if isinstance(source, onnx.TensorProto):
            return numpy_helper.to_array(source)
        value = onnx.helper.get_attribute_value(source)
        return np.array(list(value) if source.name.endswith("s") else value)
    except Exception as exc:
        raise corrupt_tensor(path, what, exc) from exc


def _collect_constants(
    graph: onnx.GraphProto,
    raw_nodes: list[onnx.NodeProto],
    table: NodeTable,
    stripped: frozenset[str],
    path: Path,
) -> _Constants:
    constants = _Constants(path)
    sources = constants.sources
    for init in graph.initializer:
        name = init.name
        if name not in stripped:
            sources[name] = (f"initializer {name!r}", init)
    for index, op in enumerate(table.ops):
        if op == "Constant" and table.outputs[index]:
            node = raw_nodes[index]
            source = constant_source(node)
            if source is not None:
                what = f"the value of Constant node {node.name or node.op_type!r}"
                sources[table.outputs[index][0]] = (what, source)
                constants.node_outputs.append(index)
    return constants


class _Weights(Mapping[str, np.ndarray]):
    """What the view's ``WeightStore`` finds without parsing the model again: the small
    constants, and the weights whose bytes were left in the file while reading (read from
    there, one tensor at a time, never kept)."""

    def __init__(self, constants: _Constants, loaded: LoadedModel):
        self.constants = constants
        self.payloads = loaded.payloads
        self.reader = PayloadReader(loaded.path)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.constants.get(name)
        if value is not None:
            return value
        payload = self.payloads.get(name)
        if payload is None or payload.data_type not in ITEM_SIZES:
            return default
        data = self.reader.read(payload)
        if data is None:
            return default
        dtype = onnx.helper.tensor_dtype_to_np_dtype(payload.data_type)
        return np.frombuffer(data, dtype=dtype).reshape(payload.dims)

    def __getitem__(self, name: str) -> np.ndarray:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self.constants), **dict.fromkeys(self.payloads)})

    def __len__(self) -> int:
        return sum(1 for _ in self)


def display_names(nodes: list[onnx.NodeProto]) -> list[str]:
    """Node names as users see them, made unique: ONNX allows empty and repeated names."""
    return _display_names([n.name for n in nodes], [n.op_type for n in nodes])


def _display_names(names: list[str], ops: list[str]) -> list[str]:
    seen: set[str] = set()
    shown = []
    for i, node_name in enumerate(names):
        name = node_name or f"{ops[i]}_{i}"
        if name in seen:
            name = f"{name}#{i}"
        seen.add(name)
        shown.append(name)
    return shown


def _folded_nodes(
    table: NodeTable, graph: onnx.GraphProto, tensors: Mapping[str, TensorInfo]
) -> set[int]:
    """Nodes whose outputs are compile-time constants, which every toolchain folds away.

    A node folds when it is deterministic and all its inputs are constants, or when it only
    reads the (static) shape of its input. Judging such nodes would flood users with
    findings on export noise (Shape->Gather->Concat->Reshape chains) that never reach the NPU.
    """
    constant = {t.name for t in graph.initializer} | {""}
    folded: set[int] = set()
    for i, op in enumerate(table.ops):
        if op in NONDETERMINISTIC_OPS:
            continue
        inputs = table.inputs[i]
        reads_static_shape = (
            op in SHAPE_OPS
            and inputs
            and (info := tensors.get(inputs[0])) is not None
            and info.is_static
        )
        if reads_static_shape or all(name in constant for name in inputs):
            folded.add(i)
            constant.update(table.outputs[i])
    return folded

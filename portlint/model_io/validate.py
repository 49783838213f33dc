"""Validate a model file before anything trusts it: one clear line for each way it can be bad.

Not a file, a Git LFS pointer, truncated protobuf, a graph that references nothing or loops,
unknown element types, attributes of the wrong type, constants whose bytes do not match their
dims, and external data that is missing, short or outside the model's folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from portlint.errors import ModelLoadError, first_line
from portlint.model_io.loaded import KEEP_CONSTANT_ELEMENTS, NodeTable, element_count
from portlint.onnx_defaults import attribute_type_problem

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"


def check_file(path: Path) -> None:
    """A file, not a folder, an empty file or a Git LFS pointer."""
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a directory, not an ONNX file")
    with open(path, "rb") as handle:
        head = handle.read(len(LFS_POINTER_PREFIX))
    if head == LFS_POINTER_PREFIX:
        raise ModelLoadError(
            f"{path}: is a Git LFS pointer, not the model; run 'git lfs pull' to fetch it"
        )
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: file is empty")


def parse(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as exc:
        raise ModelLoadError(
            f"{path}: not a readable ONNX model (truncated or corrupt protobuf: {first_line(exc)})"
        ) from exc


def validate_structure(model: onnx.ModelProto, path: Path) -> NodeTable:
    """Reject files that parsed as protobuf by accident, or graphs that reference nothing."""
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise ModelLoadError(
            f"{path}: not an ONNX model (no IR version, graph or opset import; corrupt file?)"
        )
    graph = model.graph
    table = NodeTable.of(graph.node)
    known = dict.fromkeys([i.name for i in graph.initializer], -1)
    known.update(dict.fromkeys([i.name for i in graph.input], -1))
    for index, outputs in enumerate(table.outputs):
        for name in outputs:
            if name and known.get(name, -1) >= 0:  # ONNX graphs assign each tensor once
                first, node_name = known[name], table.names[index] or table.ops[index]
                raise ModelLoadError(
                    f"{path}: malformed graph: tensor {name!r} is produced twice, by node "
                    f"{table.names[first] or table.ops[first]!r} and by node {node_name!r}"
                )
            known[name] = index
    known[""] = -1
    in_order = True  # while every node reads only what comes before it, there is no cycle
    get = known.get
    for index, inputs in enumerate(table.inputs):
        for name in inputs:
            source = get(name)
            if source is None:
                node_name = table.names[index] or table.ops[index]
                raise ModelLoadError(
                    f"{path}: malformed graph: input {name!r} of node {node_name!r} "
                    "is not produced by any node, initializer or graph input"
                )
            if source >= index:
                in_order = False
    for output in graph.output:
        if output.name not in known:
            raise ModelLoadError(
                f"{path}: malformed graph: output {output.name!r} is never produced"
            )
    if not in_order:  # nodes out of order (allowed): make sure they do not loop
        _validate_acyclic(graph, path)
    _validate_types(graph, path)
    return table


def _validate_acyclic(graph: onnx.GraphProto, path: Path) -> None:
    """Nodes may come in any order, but no node may depend (through others) on itself."""
    import networkx as nx  # only for graphs whose nodes come out of order (rare)

    nodes = list(graph.node)
    producers: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in filter(None, node.output):
            producers.setdefault(name, []).append(index)
    flow = nx.DiGraph()
    flow.add_edges_from(
        (source, index)
        for index, node in enumerate(nodes)
        for name in node.input
        if name
        for source in producers.get(name, ())
    )
    try:
        loop = [edge[0] for edge in nx.find_cycle(flow)]
    except nx.NetworkXNoCycle:
        return
    names = [repr(nodes[i].name or nodes[i].op_type) for i in loop][:4]
    raise ModelLoadError(
        f"{path}: malformed graph: a cycle through node"
        f"{'s ' + ' -> '.join(names) if len(loop) > 1 else ' ' + names[0]}"
        f"{', ...' if len(loop) > len(names) else ''} (a node depends on its own output)"
    )


DATA_TYPES = frozenset(onnx.TensorProto.DataType.values())


def _validate_types(graph: onnx.GraphProto, path: Path) -> None:
    """Every tensor's element type must be one ONNX defines (0: unknown, allowed but on data)."""
    for value in (*graph.input, *graph.output, *graph.value_info):
        kind = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else 0
        if kind not in DATA_TYPES:
            raise ModelLoadError(
                f"{path}: malformed graph: tensor {value.name!r} has an unknown element type {kind}"
            )
    for tensor in graph.initializer:
        if tensor.data_type not in DATA_TYPES or tensor.data_type == onnx.TensorProto.UNDEFINED:
            raise ModelLoadError(
                f"{path}: malformed graph: initializer {tensor.name!r} has an unknown element "
                f"type {tensor.data_type}"
            )


def validate_attributes(model: onnx.ModelProto, path: Path) -> None:
    """Attributes must carry the type their op's schema declares (kernel_shape is INTS).

    ``check`` finds the same problem as it reads the attributes (``build_view``).
    """
    opsets = {o.domain or "": o.version for o in model.opset_import}
    for node in model.graph.node:
        problem = attribute_type_problem(node, opsets)
        if problem is not None:
            raise malformed_node(path, node, problem)


def malformed_node(path: Path, node: onnx.NodeProto, problem: str) -> ModelLoadError:
    return ModelLoadError(
        f"{path}: malformed node {node.name or node.op_type!r} ({node.op_type}): {problem}"
    )


def validate_constants(model: onnx.ModelProto, path: Path) -> None:
    """The small constants checking reads (shapes, scales) must decode as their dims say.

    ``check`` validates the same tensors as it leaves the weights out (``_prepare``).
    """
    for tensor in model.graph.initializer:
        if (
            tensor.data_location != onnx.TensorProto.EXTERNAL
            and element_count(tensor) <= KEEP_CONSTANT_ELEMENTS
        ):
            check_tensor(tensor, path, f"initializer {tensor.name!r}")
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if (
                    a.type == onnx.AttributeProto.TENSOR
                    and a.t.data_location != onnx.TensorProto.EXTERNAL
                ):
                    check_tensor(
                        a.t, path, f"the value of Constant node {node.name or node.op_type!r}"
                    )


def validate_constant_nodes(model: onnx.ModelProto, table: NodeTable, path: Path) -> None:
    """Each Constant node's value must decode as its dims say (the tensor ``check`` reads)."""
    nodes = model.graph.node
    for index, op in enumerate(table.ops):
        if op != "Constant" or not table.outputs[index]:
            continue
        node = nodes[index]
        value = constant_source(node)
        if isinstance(value, onnx.TensorProto):
            check_tensor(value, path, f"the value of Constant node {node.name or node.op_type!r}")


def constant_source(node: onnx.NodeProto) -> onnx.TensorProto | onnx.AttributeProto | None:
    """Where a Constant node's value is read from: its ``value`` tensor, or its
    ``value_float(s)``/``value_int(s)`` attribute; None for the other kinds of value and for
    a tensor held in external data (not a constant ``check`` reads)."""
    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
            return None if attr.t.data_location == onnx.TensorProto.EXTERNAL else attr.t
        if attr.name in ("value_float", "value_int", "value_floats", "value_ints"):
            return attr
    return None


ITEM_SIZES = {
    onnx.TensorProto.FLOAT: 4,
    onnx.TensorProto.UINT8: 1,
    onnx.TensorProto.INT8: 1,
    onnx.TensorProto.UINT16: 2,
    onnx.TensorProto.INT16: 2,
    onnx.TensorProto.INT32: 4,
    onnx.TensorProto.INT64: 8,
    onnx.TensorProto.BOOL: 1,
    onnx.TensorProto.FLOAT16: 2,
    onnx.TensorProto.DOUBLE: 8,
    onnx.TensorProto.UINT32: 4,
    onnx.TensorProto.UINT64: 8,
    onnx.TensorProto.COMPLEX64: 8,
    onnx.TensorProto.COMPLEX128: 16,
    onnx.TensorProto.BFLOAT16: 2,
    onnx.TensorProto.FLOAT8E4M3FN: 1,
    onnx.TensorProto.FLOAT8E4M3FNUZ: 1,
    onnx.TensorProto.FLOAT8E5M2: 1,
    onnx.TensorProto.FLOAT8E5M2FNUZ: 1,
    onnx.TensorProto.FLOAT8E8M0: 1,
}
"""Bytes per element of the types whose raw data numpy reads as is (not the packed 2-, 4- and
6-bit types, not strings): ``numpy_helper.to_array`` decodes such raw data exactly when its
length is the element count times this."""


LITTLE_ENDIAN = sys.byteorder == "little"


def holds_its_data(tensor: onnx.TensorProto) -> bool:
    """True when ``numpy_helper.to_array`` surely decodes ``tensor`` (raw data of exactly the
    size its dims and type say), without decoding it; False when only decoding can tell."""
    size = ITEM_SIZES.get(tensor.data_type)
    if size is None or not LITTLE_ENDIAN or not tensor.HasField("raw_data"):
        return False
    if tensor.HasField("segment") or any(d < 0 for d in tensor.dims):
        return False
    return len(tensor.raw_data) == element_count(tensor) * size


def check_tensor(tensor: onnx.TensorProto, path: Path, what: str) -> None:
    """Raise the one-line error for a tensor whose payload does not match its dims and type."""
    if holds_its_data(tensor):
        return
    try:
        numpy_helper.to_array(tensor)
    except Exception as exc:
        raise corrupt_tensor(path, what, exc) from exc


def corrupt_tensor(path: Path, what: str, exc: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"{path}: malformed graph: {what} does not hold the data its type and dims say "
        f"({first_line(exc)})"
    )


def _all_tensors(
    model: onnx.ModelProto, skip: frozenset[int] = frozenset()
) -> Iterator[onnx.TensorProto]:
    """Every tensor onnx would load external data for, in the order
    ``onnx.external_data_helper._get_all_tensors`` gives them: the initializers (a subgraph's
    after its parent's), then the node attributes' tensors, then the functions'. ``skip``:
    indices of the main graph's initializers left out while reading (they have no data)."""
    initializers: list[onnx.TensorProto] = [
        t for i, t in enumerate(model.graph.initializer) if i not in skip
    ]
    attributes: list[onnx.TensorProto] = []
    _walk_nodes(model.graph.node, initializers, attributes)
    for function in model.functions:
        _walk_nodes(function.node, None, attributes)
    yield from initializers
    yield from attributes


_GRAPH, _GRAPHS = onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS


def _walk_nodes(
    nodes, initializers: list[onnx.TensorProto] | None, attributes: list[onnx.TensorProto]
) -> None:
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                attributes.append(attr.t)
            if attr.tensors:
                attributes.extend(attr.tensors)
            kind = attr.type
            if kind == _GRAPH:
                _walk_graph(attr.g, initializers, attributes)
            elif kind == _GRAPHS:
                for graph in attr.graphs:
                    _walk_graph(graph, initializers, attributes)


def _walk_graph(
    graph: onnx.GraphProto,
    initializers: list[onnx.TensorProto] | None,
    attributes: list[onnx.TensorProto],
) -> None:
    if initializers is not None:
        initializers.extend(graph.initializer)
    _walk_nodes(graph.node, initializers, attributes)


def validate_external_data(
    model: onnx.ModelProto, path: Path, skip: frozenset[int] = frozenset()
) -> None:
    """External data must exist, be large enough and stay inside the model's folder.

    Every tensor onnx would load counts: initializers, node attributes (Constant values),
    subgraphs and functions. The folder is the one onnx and onnxruntime read from, beside the
    model path as given (a symlinked model reads its data beside the link). A location is
    resolved with symlinks followed, so ``../``, an absolute path, a link inside the folder
    that leads out of it and a path through a symlinked subfolder that does are all refused,
    before any byte is read. ``skip``: main-graph initializers whose payload was left in the
    file while reading (``read_slim``), which are not external data.
    """
    base: Path | None = None
    for tensor in _all_tensors(model, skip):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            base = base or path.absolute().parent.resolve()
            _validate_location(tensor, base, path)


def _validate_location(tensor: onnx.TensorProto, base: Path, path: Path) -> None:
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    where = f"external data location {location!r} of tensor {tensor.name!r}"
    if not location or "\0" in location:
        raise ModelLoadError(f"{path}: invalid {where}: not a file name")
    lexical = Path(os.path.normpath(base / location))
    try:
        target = (base / location).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
        raise ModelLoadError(f"{path}: cannot resolve {where}: {first_line(exc)}") from exc
    if os.path.isabs(location) or not lexical.is_relative_to(base):
        raise ModelLoadError(f"{path}: refusing {where}: it points outside the model's folder")
    if not target.is_relative_to(base) or target == base:
        raise ModelLoadError(
            f"{path}: refusing {where}: a symbolic link leads outside the model's folder "
            f"(to {target}); copy the data beside the model"
        )
    if not target.is_file():
        raise ModelLoadError(
            f"{path}: missing external data file {location!r} (needed by tensor {tensor.name!r})"
        )
    try:
        offset, length = int(info.get("offset") or 0), int(info.get("length") or 0)
    except ValueError:
        offset = length = -1
    if offset < 0 or length < 0:
        raise ModelLoadError(
            f"{path}: invalid offset or length in the {where}: "
            f"{info.get('offset')!r}, {info.get('length')!r}"
        )
    if offset + length > target.stat().st_size:
        raise ModelLoadError(
            f"{path}: external data file {location!r} is shorter than tensor "
            f"{tensor.name!r} needs (truncated?)"
        )


def external_tensors(model: onnx.ModelProto):
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor

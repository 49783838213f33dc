"""Read an ONNX model for checking without ever touching its weight bytes.

Checking needs the graph, the shapes and a few tiny constants (Resize scales, Reshape
targets); it never needs weights. So external data is not loaded (only its presence and
location are validated), and large embedded initializers are emptied before shape
inference, which would otherwise re-serialise every weight byte. That is what keeps
``check`` fast on big models and lets it run on >2 GB external-data models at all.

For a protobuf file, the weights are left out while it is read (``_read_slim``): a pass over
the wire format copies everything but the payloads of initializers ``check`` will not read,
so those bytes never enter memory at all, and their offsets in the file are kept for the
numerics rules that ask for one (``LoadedModel.payloads``).
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import os
import sys
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from portlint.errors import ModelLoadError, first_line, suggest
from portlint.onnx_defaults import attribute_type_problem
from portlint.weights import WeightSource

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
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


@gc_paused()
def load_for_check(
    path: str | Path, input_shapes: dict[str, list[int]] | None = None
) -> LoadedModel:
    """Load, validate and shape-infer ``path``; raise ``ModelLoadError`` with one clear line."""
    path = Path(path)
    _check_file(path)
    slim = _read_slim(path)
    model, skipped, payloads = slim if slim is not None else (_parse(path), frozenset(), {})
    del slim
    table = _validate_structure(model, path)
    _validate_external_data(model, path, skipped)
    pending = [model]
    del model  # _prepare holds the only reference, and lets go of it once it is serialised
    loaded = _prepare(pending, path, input_shapes, path, table)
    loaded.payloads = payloads
    return loaded


def load_for_fix(path: str | Path) -> tuple[onnx.ModelProto, list[Path]]:
    """Load ``path`` with its weights for rewriting; also return its external data files.

    The same validation as ``load_for_check`` runs first, so a location that leaves the
    model's folder is refused before any byte of it is read.
    """
    path = Path(path)
    model = _read_proto(path)
    _validate_structure(model, path)
    _validate_attributes(model, path)  # ``check`` finds these as it reads them (build_view)
    _validate_external_data(model, path)
    files = external_data_files(model, path)
    if files:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
        except (ValueError, OSError) as exc:
            raise ModelLoadError(f"{path}: cannot read external data: {first_line(exc)}") from exc
    _validate_constants(model, path)
    return model, files


def external_data_files(model: onnx.ModelProto, path: Path) -> list[Path]:
    """The files beside ``path`` that hold ``model``'s external initializers."""
    locations = {
        e.value for t in _external_tensors(model) for e in t.external_data if e.key == "location"
    }
    return sorted(path.parent / location for location in locations)


def view_model(
    model: onnx.ModelProto, path: Path, input_shapes: dict[str, list[int]] | None = None
) -> LoadedModel:
    """Prepare an in-memory model (``fix``'s intermediate results) for checking.

    Works on a copy with the large weights left out, so the caller's model is untouched.
    """
    return _prepare([copy_model(model)], path, input_shapes, model)


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _prepare(
    pending: list[onnx.ModelProto],
    path: Path,
    input_shapes: dict[str, list[int]] | None,
    weight_source: WeightSource,
    table: NodeTable | None = None,
) -> LoadedModel:
    """Strip, validate and shape-infer the model in ``pending`` (taken out of it: the proto is
    freed as soon as it is serialised for inference, before the inferred one is parsed)."""
    model = pending.pop()
    pins = dict(input_shapes or {})
    if pins:
        _pin_input_shapes(model, pins, path)
    stripped = _strip_large_initializers(model, path)
    table = table or NodeTable.of(model.graph.node)
    _validate_constant_nodes(model, table, path)
    data = model.SerializeToString()
    del model
    big = len(data) > TRIM_BYTES
    if big:
        _return_freed_memory()  # the proto's pages, before inference allocates its own
    model, inference_error = _infer_shapes(data)
    del data
    if big:
        _return_freed_memory()  # inference's working memory, before the view is built
    opsets = {o.domain or "": o.version for o in model.opset_import}
    return LoadedModel(
        path,
        model,
        model.ir_version,
        opsets,
        frozenset(stripped),
        pins,
        inference_error,
        weight_source,
        nodes=table,
    )


TRIM_BYTES = 1 << 20
"""Models this big (serialised, weights left out) have the C heap trimmed around inference."""


def _return_freed_memory() -> None:
    """Hand memory freed by protobuf and onnx's C++ back to the OS (glibc keeps it otherwise,
    where Python's own allocator cannot reuse it: the peak would count it twice)."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except Exception:  # not glibc: nothing to hand back this way
        pass


def _read_proto(path: Path) -> onnx.ModelProto:
    _check_file(path)
    return _parse(path)


def _check_file(path: Path) -> None:
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


def _parse(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as exc:
        raise ModelLoadError(
            f"{path}: not a readable ONNX model (truncated or corrupt protobuf: {first_line(exc)})"
        ) from exc


def _validate_structure(model: onnx.ModelProto, path: Path) -> NodeTable:
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
    nodes = list(graph.node)
    producers: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in filter(None, node.output):
            producers.setdefault(name, []).append(index)
    needs = [{p for name in node.input if name for p in producers.get(name, ())} for node in nodes]
    waiting = [len(n) for n in needs]
    users: list[list[int]] = [[] for _ in nodes]
    for index, sources in enumerate(needs):
        for source in sources:
            users[source].append(index)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    while ready:
        for user in users[ready.pop()]:
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    stuck = next((i for i, count in enumerate(waiting) if count), None)
    if stuck is None:
        return
    seen: dict[int, int] = {}
    while stuck not in seen:  # walk back through unresolved inputs until a node repeats
        seen[stuck] = len(seen)
        stuck = next(p for p in needs[stuck] if waiting[p])
    loop = [i for i, _ in sorted(seen.items(), key=lambda kv: kv[1]) if seen[i] >= seen[stuck]]
    names = [repr(nodes[i].name or nodes[i].op_type) for i in reversed(loop)][:4]
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


def _validate_attributes(model: onnx.ModelProto, path: Path) -> None:
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


def _validate_constants(model: onnx.ModelProto, path: Path) -> None:
    """The small constants checking reads (shapes, scales) must decode as their dims say.

    ``check`` validates the same tensors as it leaves the weights out (``_prepare``).
    """
    for tensor in model.graph.initializer:
        if (
            tensor.data_location != onnx.TensorProto.EXTERNAL
            and _element_count(tensor) <= KEEP_CONSTANT_ELEMENTS
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


def _validate_constant_nodes(model: onnx.ModelProto, table: NodeTable, path: Path) -> None:
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
_LITTLE_ENDIAN = sys.byteorder == "little"


def holds_its_data(tensor: onnx.TensorProto) -> bool:
    """True when ``numpy_helper.to_array`` surely decodes ``tensor`` (raw data of exactly the
    size its dims and type say), without decoding it; False when only decoding can tell."""
    size = ITEM_SIZES.get(tensor.data_type)
    if size is None or not _LITTLE_ENDIAN or not tensor.HasField("raw_data"):
        return False
    if tensor.HasField("segment") or any(d < 0 for d in tensor.dims):
        return False
    return len(tensor.raw_data) == _element_count(tensor) * size


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


def _validate_external_data(
    model: onnx.ModelProto, path: Path, skip: frozenset[int] = frozenset()
) -> None:
    """External data must exist, be large enough and stay inside the model's folder.

    Every tensor onnx would load counts: initializers, node attributes (Constant values),
    subgraphs and functions. The folder is the one onnx and onnxruntime read from, beside the
    model path as given (a symlinked model reads its data beside the link). A location is
    resolved with symlinks followed, so ``../``, an absolute path, a link inside the folder
    that leads out of it and a path through a symlinked subfolder that does are all refused,
    before any byte is read. ``skip``: main-graph initializers whose payload was left in the
    file while reading (``_read_slim``), which are not external data.
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


def _external_tensors(model: onnx.ModelProto):
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor


def _element_count(tensor: onnx.TensorProto) -> int:
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count


def keep_limit(data_type: int) -> int:
    """How many elements an initializer of this type may have and still keep its value."""
    return KEEP_CONSTANT_ELEMENTS if data_type in SHAPE_TYPES else KEEP_SMALL_ELEMENTS


_PAYLOAD_FIELDS = (
    "raw_data",
    "float_data",
    "int32_data",
    "int64_data",
    "double_data",
    "uint64_data",
    "string_data",
)


def _strip_large_initializers(model: onnx.ModelProto, path: Path = Path()) -> set[str]:
    """Empty the payload of every initializer but small constants, keeping dims and dtype for
    shape inference; validate the ones up to ``KEEP_CONSTANT_ELEMENTS`` elements on the way."""
    stripped: set[str] = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            stripped.add(tensor.name)
            continue
        count = _element_count(tensor)
        if count <= KEEP_CONSTANT_ELEMENTS:
            check_tensor(tensor, path, f"initializer {tensor.name!r}")
            if count <= keep_limit(tensor.data_type):
                continue
        for payload in _PAYLOAD_FIELDS:
            tensor.ClearField(payload)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", STRIPPED_LOCATION
        stripped.add(tensor.name)
    return stripped


# --- reading a protobuf file without its weights ----------------------------------------------

_MODEL_GRAPH = (7 << 3) | 2  # ModelProto.graph
_GRAPH_INITIALIZER = (5 << 3) | 2  # GraphProto.initializer
_TENSOR_TYPED_PAYLOADS = frozenset({4, 5, 6, 7, 10, 11})  # float_data ... uint64_data
_RELEASE_BYTES = 16 << 20
"""The file is mapped; pages already read are handed back every this many bytes, so the
whole file never counts in the resident memory at once."""


class _Unusual(Exception):
    """Something the wire-format reader leaves to protobuf: the file is read the ordinary way."""


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_field(number: int, data: bytes) -> bytes:
    return _varint_bytes((number << 3) | 2) + _varint_bytes(len(data)) + data


_STRIPPED_MARK = b"\x70\x01" + _length_field(  # data_location: EXTERNAL
    13, _length_field(1, b"location") + _length_field(2, STRIPPED_LOCATION.encode())
)
"""What ``_strip_large_initializers`` adds to a stripped tensor, as wire-format bytes."""


def _varint_at(buf, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it (IndexError past the end)."""
    result = shift = 0
    while shift < 64:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise _Unusual("varint too long")


def _skip_at(buf, pos: int, wire: int) -> int:
    """The position after a field's value of wire type ``wire`` starting at ``pos``."""
    if wire == 2:
        length, pos = _varint_at(buf, pos)
        return pos + length
    if wire == 0:
        return _varint_at(buf, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 5:
        return pos + 4
    raise _Unusual(f"wire type {wire}")


def _packed_varints(data: bytes) -> list[int]:
    values, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            values.append(value)
            value = shift = 0
        else:
            shift += 7
    if shift:
        raise _Unusual("bad packed varint")
    return values


class _SlimReader:
    """Copy a ModelProto's wire format without the payloads of the main graph's initializers
    that ``_strip_large_initializers`` would empty, and note where those payloads are."""

    def __init__(self, buf: mmap.mmap, stamp: tuple[int, int]):
        self.buf, self.stamp = buf, stamp
        self.released = 0
        self.skipped: set[int] = set()
        self.payloads: dict[str, Payload] = {}

    def _release(self, pos: int) -> None:
        """Hand back the pages before ``pos`` (they are in the page cache if needed again)."""
        start = self.released - self.released % mmap.PAGESIZE
        end = pos - pos % mmap.PAGESIZE
        if end > start:
            self.buf.madvise(mmap.MADV_DONTNEED, start, end - start)
        self.released = pos

    def model(self) -> bytes:
        buf, size = self.buf, len(self.buf)
        out: list[bytes] = []
        pos = run = 0
        seen_graph = False
        while pos < size:
            start = pos
            tag, pos = _varint_at(buf, pos)
            if tag != _MODEL_GRAPH:
                pos = _skip_at(buf, pos, tag & 7)
                continue
            if seen_graph:  # a second graph field merges into the first: rare, leave it be
                raise _Unusual("two graphs")
            seen_graph = True
            length, pos = _varint_at(buf, pos)
            graph = self.graph(pos, pos + length)
            out += [buf[run:start], _length_field(7, graph)]
            pos = run = pos + length
        if pos != size:
            raise _Unusual("model length")
        out.append(buf[run:size])
        return b"".join(out)

    def graph(self, pos: int, end: int) -> bytes:
        buf, out, index, run = self.buf, [], 0, pos
        while pos < end:
            start = pos
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint_at(buf, pos)
            if tag != _GRAPH_INITIALIZER:
                if tag & 7 == 2:
                    length = buf[pos]
                    pos = pos + 1 + length if length < 0x80 else _skip_at(buf, pos, 2)
                else:
                    pos = _skip_at(buf, pos, tag & 7)
                continue
            length, pos = _varint_at(buf, pos)
            if pos + length > end:
                raise _Unusual("initializer past the graph's end")
            tensor = self.tensor(pos, pos + length, index)
            index += 1
            pos += length
            if tensor is not None:
                out += [buf[run:start], tensor]
                run = pos
            if pos - self.released > _RELEASE_BYTES:
                self._release(min(pos, run))
        if pos != end:
            raise _Unusual("graph length")
        out.append(buf[run:end])
        return b"".join(out)

    def tensor(self, pos: int, end: int, index: int) -> bytes | None:
        """The tensor without its payload, or None to keep it whole."""
        buf = self.buf
        kept: list[int] = []  # start, stop, start, stop... of the fields kept
        dims: list[int] = []
        data_type = location = 0
        name: bytes | None = None
        raw_at = raw_length = -1
        whole = False  # typed payloads, segments, external data: kept whole, stripped later
        while pos < end:
            start = pos
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint_at(buf, pos)
            number, wire = tag >> 3, tag & 7
            if number == 9 and wire == 2:
                raw_length, raw_at = _varint_at(buf, pos)
                pos = raw_at + raw_length
                continue
            if wire == 0:
                value = buf[pos]
                if value < 0x80:
                    pos += 1
                else:
                    value, pos = _varint_at(buf, pos)
                if number == 1:
                    dims.append(value)
                elif number == 2:
                    data_type = value
                elif number == 14:
                    location = value
                else:
                    whole = whole or number in _TENSOR_TYPED_PAYLOADS
            elif number == 1 and wire == 2:
                length, pos = _varint_at(buf, pos)
                dims += _packed_varints(buf[pos : pos + length])
                pos += length
            elif number == 8 and wire == 2:
                length, pos = _varint_at(buf, pos)
                name = buf[pos : pos + length]
                pos += length
            else:
                whole = whole or number in _TENSOR_TYPED_PAYLOADS or number in (3, 13)
                pos = _skip_at(buf, pos, wire)
            if kept and kept[-1] == start:
                kept[-1] = pos
            else:
                kept += [start, pos]
        if pos != end:
            raise _Unusual("tensor length")
        size = ITEM_SIZES.get(data_type)
        if whole or location or raw_at < 0 or size is None or any(d >= 2**63 for d in dims):
            return None
        count = 1
        for dim in dims:
            count *= dim
        if count <= keep_limit(data_type):
            return None
        fits = raw_length == count * size
        if count <= KEEP_CONSTANT_ELEMENTS and not fits:
            return None  # validated (and reported) the ordinary way
        if fits and name is not None:
            with contextlib.suppress(UnicodeDecodeError):  # protobuf would not read it either
                self.payloads[name.decode()] = Payload(
                    raw_at, raw_length, self.stamp, data_type, tuple(dims)
                )
        self.skipped.add(index)
        slim = b"".join(
            [*(buf[a:b] for a, b in zip(kept[::2], kept[1::2], strict=True)), _STRIPPED_MARK]
        )
        return _varint_bytes(_GRAPH_INITIALIZER) + _varint_bytes(len(slim)) + slim


def _read_slim(
    path: Path,
) -> tuple[onnx.ModelProto, frozenset[int], dict[str, Payload]] | None:
    """The model at ``path`` with weight payloads left in the file, the indices of the
    initializers they belong to and where they are; None when the file should be read the
    ordinary way (not the protobuf format, anything unusual: protobuf then says what)."""
    _, suffix = os.path.splitext(path)
    fmt = onnx.serialization.registry.get_format_from_file_extension(suffix)
    if (fmt or "protobuf") != "protobuf" or not _LITTLE_ENDIAN:
        return None
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                reader = _SlimReader(buf, (info.st_size, info.st_mtime_ns))
                data = reader.model()
        model = onnx.ModelProto()  # with nothing left out, ``data`` is the file as it is
        model.ParseFromString(data)
    except Exception:  # _Unusual, DecodeError, OSError: protobuf reads it and says what is wrong
        return None
    return model, frozenset(reader.skipped), reader.payloads


class PayloadReader:
    """Reads initializer payloads left in the model file, through one open file descriptor.

    The file is opened on the first read (and closed when the reader goes away); its size and
    modification time are compared with the ones it had when it was read, before every read:
    a file rewritten since is not read at old offsets (``read`` returns None and the caller
    parses the file again).
    """

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._failed = False

    def read(self, payload: Payload) -> bytes | None:
        if self._failed:
            return None
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                weakref.finalize(self, os.close, self._fd)
            info = os.fstat(self._fd)
            if (info.st_size, info.st_mtime_ns) != payload.stamp:
                return None
            data = os.pread(self._fd, payload.length, payload.offset)
        except (OSError, AttributeError):  # AttributeError: no os.pread (Windows)
            self._failed = True
            return None
        return data if len(data) == payload.length else None


def _pin_input_shapes(model: onnx.ModelProto, pins: dict[str, list[int]], path: Path) -> None:
    """Fix graph-input dims before inference, and drop stale intermediate shapes."""
    inputs = {i.name: i for i in model.graph.input}
    for name, dims in pins.items():
        if name not in inputs:
            raise suggest(name, list(inputs), "graph input in --input-shape")
        shape = inputs[name].type.tensor_type.shape
        if shape.dim and len(shape.dim) != len(dims):
            raise ModelLoadError(
                f"{path}: --input-shape {name} gives {len(dims)} dims but the input has rank "
                f"{len(shape.dim)}"
            )
        shape.ClearField("dim")
        for value in dims:
            shape.dim.add().dim_value = value
    del model.graph.value_info[:]


def _infer_shapes(data: bytes) -> tuple[onnx.ModelProto, str | None]:
    """The serialised model shape-inferred; the model as it was, and why, when that fails."""
    try:
        inferred = onnx.shape_inference.infer_shapes(data, strict_mode=False, data_prop=True)
        return inferred, None
    except Exception as exc:
        model = onnx.ModelProto()
        model.ParseFromString(data)
        return model, first_line(exc)

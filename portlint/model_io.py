"""Read an ONNX model for checking without ever touching its weight bytes.

Checking needs the graph, the shapes and a few tiny constants (Resize scales, Reshape
targets); it never needs weights. So external data is not loaded (only its presence and
location are validated), and large embedded initializers are emptied before shape
inference, which would otherwise re-serialise every weight byte. That is what keeps
``check`` fast on big models and lets it run on >2 GB external-data models at all.
"""

from __future__ import annotations

import os
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
"""Initializers up to this many elements keep their values (shape constants, scales)."""
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


def load_for_check(
    path: str | Path, input_shapes: dict[str, list[int]] | None = None
) -> LoadedModel:
    """Load, validate and shape-infer ``path``; raise ``ModelLoadError`` with one clear line."""
    path = Path(path)
    model = _read_proto(path)
    _validate_structure(model, path)
    _validate_external_data(model, path)
    return _prepare(model, path, input_shapes, path)


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
    locations = {
        e.value for t in _external_tensors(model) for e in t.external_data if e.key == "location"
    }
    if locations:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
        except (ValueError, OSError) as exc:
            raise ModelLoadError(f"{path}: cannot read external data: {first_line(exc)}") from exc
    _validate_constants(model, path)
    return model, sorted(path.parent / location for location in locations)


def view_model(
    model: onnx.ModelProto, path: Path, input_shapes: dict[str, list[int]] | None = None
) -> LoadedModel:
    """Prepare an in-memory model (``fix``'s intermediate results) for checking.

    Works on a copy with the large weights left out, so the caller's model is untouched.
    """
    return _prepare(copy_model(model), path, input_shapes, model)


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _prepare(
    model: onnx.ModelProto,
    path: Path,
    input_shapes: dict[str, list[int]] | None,
    weight_source: WeightSource,
) -> LoadedModel:
    stripped = _strip_large_initializers(model)
    pins = dict(input_shapes or {})
    if pins:
        _pin_input_shapes(model, pins, path)
    model, inference_error = _infer_shapes(model)
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
    )


def _read_proto(path: Path) -> onnx.ModelProto:
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
    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as exc:
        raise ModelLoadError(
            f"{path}: not a readable ONNX model (truncated or corrupt protobuf: {first_line(exc)})"
        ) from exc


def _validate_structure(model: onnx.ModelProto, path: Path) -> None:
    """Reject files that parsed as protobuf by accident, or graphs that reference nothing."""
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise ModelLoadError(
            f"{path}: not an ONNX model (no IR version, graph or opset import; corrupt file?)"
        )
    graph = model.graph
    known = {n: -1 for n in (*(i.name for i in graph.initializer), *(i.name for i in graph.input))}
    known.update((name, i) for i, node in enumerate(graph.node) for name in node.output)
    known[""] = -1
    in_order = True  # while every node reads only what comes before it, there is no cycle
    for index, node in enumerate(graph.node):
        for name in node.input:
            source = known.get(name)
            if source is None:
                node_name = node.name or node.op_type
                raise ModelLoadError(
                    f"{path}: malformed graph: input {name!r} of node {node_name!r} "
                    "is not produced by any node, initializer or graph input"
                )
            in_order = in_order and source < index
    for output in graph.output:
        if output.name not in known:
            raise ModelLoadError(
                f"{path}: malformed graph: output {output.name!r} is never produced"
            )
    if not in_order:  # nodes out of order (allowed): make sure they do not loop
        _validate_acyclic(graph, path)
    _validate_types(graph, path)


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

    ``check`` finds the same problem as it decodes them (``build_view``).
    """
    tensors = [
        (t, f"initializer {t.name!r}")
        for t in model.graph.initializer
        if t.data_location != onnx.TensorProto.EXTERNAL
        and _element_count(t) <= KEEP_CONSTANT_ELEMENTS
    ]
    tensors += [
        (a.t, f"the value of Constant node {n.name or n.op_type!r}")
        for n in model.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.type == onnx.AttributeProto.TENSOR and a.t.data_location != onnx.TensorProto.EXTERNAL
    ]
    for tensor, what in tensors:
        try:
            numpy_helper.to_array(tensor)
        except Exception as exc:
            raise corrupt_tensor(path, what, exc) from exc


def corrupt_tensor(path: Path, what: str, exc: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"{path}: malformed graph: {what} does not hold the data its type and dims say "
        f"({first_line(exc)})"
    )


def _validate_external_data(model: onnx.ModelProto, path: Path) -> None:
    """External data must exist, be large enough and stay inside the model's folder.

    Every tensor onnx would load counts: initializers, node attributes (Constant values),
    subgraphs and functions. The folder is the one onnx and onnxruntime read from, beside the
    model path as given (a symlinked model reads its data beside the link). A location is
    resolved with symlinks followed, so ``../``, an absolute path, a link inside the folder
    that leads out of it and a path through a symlinked subfolder that does are all refused,
    before any byte is read.
    """
    from onnx.external_data_helper import _get_all_tensors

    base = path.absolute().parent.resolve()
    for tensor in _get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
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
                f"{path}: missing external data file {location!r} "
                f"(needed by tensor {tensor.name!r})"
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


def _strip_large_initializers(model: onnx.ModelProto) -> set[str]:
    """Empty the payload of large initializers, keeping dims and dtype for shape inference."""
    stripped: set[str] = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            stripped.add(tensor.name)
            continue
        if _element_count(tensor) <= KEEP_CONSTANT_ELEMENTS:
            continue
        for payload in (
            "raw_data",
            "float_data",
            "int32_data",
            "int64_data",
            "double_data",
            "uint64_data",
            "string_data",
        ):
            tensor.ClearField(payload)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", STRIPPED_LOCATION
        stripped.add(tensor.name)
    return stripped


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


def _infer_shapes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        return inferred, None
    except Exception as exc:
        return model, first_line(exc)

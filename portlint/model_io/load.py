"""Load a model for checking (weights left out, shapes inferred) or for fixing (all of it).

Checking needs the graph, the shapes and a few tiny constants (Resize scales, Reshape
targets); it never needs weights. So external data is not loaded (only its presence and
location are validated), and large embedded initializers are emptied before shape
inference, which would otherwise re-serialise every weight byte. That is what keeps
``check`` fast on big models and lets it run on >2 GB external-data models at all.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from portlint.errors import ModelLoadError, first_line, suggest
from portlint.model_io.fold import fold_static_shapes
from portlint.model_io.loaded import (
    KEEP_CONSTANT_ELEMENTS,
    STRIPPED_LOCATION,
    LoadedModel,
    NodeTable,
    copy_model,
    element_count,
    gc_paused,
    keep_limit,
)
from portlint.model_io.validate import (
    check_file,
    check_tensor,
    external_tensors,
    parse,
    validate_attributes,
    validate_constant_nodes,
    validate_constants,
    validate_external_data,
    validate_structure,
)
from portlint.model_io.wire import read_slim
from portlint.weights import WeightSource


@gc_paused()
def load_for_check(
    path: str | Path, input_shapes: dict[str, list[int]] | None = None
) -> LoadedModel:
    """Load, validate and shape-infer ``path``; raise ``ModelLoadError`` with one clear line."""
    path = Path(path)
    check_file(path)
    slim = read_slim(path)
    model, skipped, payloads = slim if slim is not None else (parse(path), frozenset(), {})
    del slim
    table = validate_structure(model, path)
    validate_external_data(model, path, skipped)
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
    validate_structure(model, path)
    validate_attributes(model, path)  # ``check`` finds these as it reads them (build_view)
    validate_external_data(model, path)
    files = external_data_files(model, path)
    if files:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
        except (ValueError, OSError) as exc:
            raise ModelLoadError(f"{path}: cannot read external data: {first_line(exc)}") from exc
    validate_constants(model, path)
    return model, files


def external_data_files(model: onnx.ModelProto, path: Path) -> list[Path]:
    """The files beside ``path`` that hold ``model``'s external initializers."""
    locations = {
        e.value for t in external_tensors(model) for e in t.external_data if e.key == "location"
    }
    return sorted(path.parent / location for location in locations)


def view_model(
    model: onnx.ModelProto, path: Path, input_shapes: dict[str, list[int]] | None = None
) -> LoadedModel:
    """Prepare an in-memory model (``fix``'s intermediate results) for checking.

    Works on a copy with the large weights left out, so the caller's model is untouched.
    """
    return _prepare([copy_model(model)], path, input_shapes, model)


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
    stripped = strip_large_initializers(model, path)
    table = table or NodeTable.of(model.graph.node)
    validate_constant_nodes(model, table, path)
    data = model.SerializeToString()
    del model
    big = len(data) > TRIM_BYTES
    if big:
        _return_freed_memory()  # the proto's pages, before inference allocates its own
    model, inference_error = _infer_shapes(data)
    del data
    if big:
        _return_freed_memory()  # inference's working memory, before the view is built
    folding = fold_static_shapes(model, table)
    folding.apply(model)
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
        computed=folding.values,
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
    check_file(path)
    return parse(path)


_PAYLOAD_FIELDS = (
    "raw_data",
    "float_data",
    "int32_data",
    "int64_data",
    "double_data",
    "uint64_data",
    "string_data",
)


def strip_large_initializers(model: onnx.ModelProto, path: Path = Path()) -> set[str]:
    """Empty the payload of every initializer but small constants, keeping dims and dtype for
    shape inference; validate the ones up to ``KEEP_CONSTANT_ELEMENTS`` elements on the way."""
    stripped: set[str] = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            stripped.add(tensor.name)
            continue
        count = element_count(tensor)
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

"""onnx-graphsurgeon in and out, without losing what graphsurgeon does not carry.

graphsurgeon's export writes the current IR version and drops model-level fields; a user's
model must come back with its own IR version, opsets, producer and metadata (onnxruntime
and vendor toolchains refuse IR versions newer than they know).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

if TYPE_CHECKING:
    import onnx_graphsurgeon as gs


def to_graph(model: onnx.ModelProto, shapes: bool = False) -> gs.Graph:
    """``model`` in graphsurgeon; its constants are read from ``model`` only when used.

    ``shapes`` adds the shapes and types onnx infers. They are inferred on a copy without
    the weights: inference serialises the model it gets, which would copy every weight and
    fails outright past protobuf's 2 GB.
    """
    import onnx_graphsurgeon as gs  # imported on use: ``check`` never needs it
    from onnx_graphsurgeon.ir.tensor import LazyValues

    from portlint.model_io.weightless import is_stripped, light_copy

    if not shapes:
        return gs.import_onnx(model)
    inferred = onnx.shape_inference.infer_shapes(light_copy(model))
    graph = gs.import_onnx(inferred)
    weights = {t.name: t for t in model.graph.initializer}
    for tensor in graph.tensors().values():
        values = getattr(tensor, "_values", None)
        if isinstance(values, LazyValues) and is_stripped(values.tensor):
            source = weights[tensor.name]  # the weights come from ``model`` itself
            tensor._values = LazyValues(source)
            located = source.HasField("data_location")
            tensor.data_location = int(source.data_location) if located else None
    return graph


def to_model(graph: gs.Graph, like: onnx.ModelProto) -> onnx.ModelProto:
    """Export ``graph`` cleaned and sorted, with ``like``'s IR version, opsets and metadata."""
    import onnx_graphsurgeon as gs

    from portlint.model_io.weightless import reattach

    _share_constants(graph, {value.name for value in like.graph.input})
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    with _weights_left_out(graph) as weights:
        model = gs.export_onnx(graph, do_type_check=False)
    reattach(model, weights)
    keep_model_fields(model, like)
    return model


@contextlib.contextmanager
def _weights_left_out(graph: gs.Graph) -> Iterator[Mapping[str, onnx.TensorProto]]:
    """Export the graph's large constants as shells; yield their tensors, made when asked.

    graphsurgeon's export copies each initializer into a graph and that graph into a model:
    three copies of every weight at once. Left out, each is copied once, into the exported
    model (``weightless.reattach``), one at a time; the model's own weights are copied from
    the tensors they were read from, which are never renamed on the way.
    """
    from onnx_graphsurgeon.ir.tensor import LazyValues

    from portlint.model_io.weightless import weightless_tensor

    held: dict[str, tuple[Any, Any]] = {}
    for name, tensor in graph.tensors().items():
        values = getattr(tensor, "_values", None)
        if _large(tensor, values):
            held[name] = (tensor, values)
            tensor._values = LazyValues(weightless_tensor(_tensor_proto(tensor)))
    try:
        yield _Exported({name: tensor for name, (tensor, _) in held.items()})
    finally:
        for tensor, values in held.values():
            tensor._values = values


def _large(tensor: gs.Tensor, values: Any) -> bool:
    """A constant's own weights (not small constants, not data left in external files)."""
    from onnx_graphsurgeon.ir.tensor import LazyValues

    from portlint.model_io.weightless import strips

    if type(values) is LazyValues:
        return strips(values.tensor)
    if not isinstance(values, np.ndarray) or tensor.data_location is not None:
        return False
    return values.size > SHARED_CONSTANT_LIMIT


def _tensor_proto(constant: gs.Constant) -> onnx.TensorProto:
    """The constant as graphsurgeon exports it; the model's own tensor for one read from it."""
    from onnx_graphsurgeon.exporters.onnx_exporter import OnnxExporter
    from onnx_graphsurgeon.ir.tensor import LazyValues

    if type(constant._values) is LazyValues:
        return constant._values.tensor
    return OnnxExporter.export_tensor_proto(constant)


class _Exported(Mapping[str, onnx.TensorProto]):
    """Constants by name, each exported only when asked for (and then let go)."""

    def __init__(self, constants: dict[str, gs.Constant]):
        self._constants = constants

    def __getitem__(self, name: str) -> onnx.TensorProto:
        return _tensor_proto(self._constants[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._constants)

    def __len__(self) -> int:
        return len(self._constants)


SHARED_CONSTANT_LIMIT = 4096
"""Elements up to which equal constants are merged. Larger ones are weights: passes never
duplicate them, and comparing them would load every weight of a big model."""


def _share_constants(graph: gs.Graph, interface: set[str]) -> None:
    """Equal small constants become one tensor, as onnxsim leaves them.

    Passes add Slice bounds, axes and epsilons that may equal each other or the model's own;
    left apart, ``simplify`` in a second ``fix`` would merge them, so ``fix`` would change its
    own output. Initializers listed as graph inputs are the interface and stay apart.
    """
    import onnx_graphsurgeon as gs

    first: dict[tuple, gs.Constant] = {}
    for node in graph.nodes:
        for index, tensor in enumerate(node.inputs):
            if not isinstance(tensor, gs.Constant) or tensor.name in interface:
                continue
            if int(np.prod(tensor.shape)) > SHARED_CONSTANT_LIMIT:
                continue
            value = np.asarray(tensor.values)
            key = (value.dtype.str, value.shape, value.tobytes())
            node.inputs[index] = first.setdefault(key, tensor)


def keep_model_fields(model: onnx.ModelProto, like: onnx.ModelProto) -> None:
    """Copy IR version, opset imports, producer, metadata and functions from ``like``."""
    model.ir_version = like.ir_version
    kept = {o.domain for o in like.opset_import}
    added = [
        onnx.OperatorSetIdProto(domain=o.domain, version=o.version)
        for o in model.opset_import
        if o.domain not in kept
    ]  # a pass added a domain
    del model.opset_import[:]
    model.opset_import.extend([*like.opset_import, *added])
    for name in ("producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(model, name, getattr(like, name))
    del model.metadata_props[:]
    model.metadata_props.extend(like.metadata_props)
    del model.functions[:]
    model.functions.extend(like.functions)
    model.graph.name = like.graph.name
    _keep_initializer_inputs(model, like)


def _keep_initializer_inputs(model: onnx.ModelProto, like: onnx.ModelProto) -> None:
    """Initializers the original also listed as graph inputs stay listed, and stay (required
    before IR 4; overridable inputs, part of the interface, after); graphsurgeon drops them."""
    listed = {i.name for i in model.graph.input}
    initializers = {t.name for t in model.graph.initializer}
    originals = {t.name: t for t in like.graph.initializer}
    for value in like.graph.input:
        if value.name in listed or value.name not in originals:
            continue
        if value.name not in initializers:
            model.graph.initializer.append(originals[value.name])
        model.graph.input.append(value)


def constant(name: str, value: np.ndarray) -> gs.Constant:
    import onnx_graphsurgeon as gs

    return gs.Constant(name, np.ascontiguousarray(value))


def unique_name(graph: gs.Graph, base: str) -> str:
    """A tensor/node name not used in ``graph`` yet, remembered so it is never handed out twice.

    The set of names is built once per graph and kept on it, so a pass that adds thousands of
    nodes stays linear; every name a pass invents must come from here.
    """
    taken = graph.__dict__.get("_portlint_names")
    if taken is None:
        taken = set(graph.tensors()) | {n.name for n in graph.nodes}
        graph.__dict__["_portlint_names"] = taken
    name, index = base, 0
    while name in taken:
        index += 1
        name = f"{base}_{index}"
    taken.add(name)
    return name


def constant_value(tensor: gs.Tensor) -> np.ndarray | None:
    """The value of an initializer or of a Constant node's output; None for computed tensors."""
    import onnx_graphsurgeon as gs

    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    if len(tensor.inputs) != 1 or tensor.inputs[0].op != "Constant":
        return None
    attrs = tensor.inputs[0].attrs
    if isinstance(attrs.get("value"), gs.Constant):
        return np.asarray(attrs["value"].values)
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    for key in ("value_int", "value_ints"):
        if key in attrs:
            return np.asarray(attrs[key], dtype=np.int64)
    return None


def default_opset(model: onnx.ModelProto) -> int:
    """The model's ai.onnx opset version (written "" or "ai.onnx")."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)

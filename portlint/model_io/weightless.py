"""Models without their weights: what structure checks, shape inference and proofs look at.

A model's weights are most of its bytes and none of its structure. Shape inference, the
onnx checker, graphsurgeon's cleanup and ``check``'s view all serialise or copy the model
they are given: a copy of every weight, and an error once the model is past protobuf's 2 GB.
They get a light copy instead, built without ever copying a weight: large initializers keep
their name, type and dims and lose their payload (marked as ``check`` marks them, see
``model_io.load.strip_large_initializers``), and the weights stay in the one model that has them.

Above the protobuf limit onnxruntime cannot take the model from memory either, so a proof
runs it from a file: ``save_for_proof`` writes the light copy and streams the weights, one
tensor at a time, to a data file beside it, which onnxruntime maps rather than copies. That
is also the cheaper way for any model with a few hundred MB of weights (``STAGE_BYTES``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import onnx
from google.protobuf.message import Message
from onnx import numpy_helper

from portlint.model_io import loaded
from portlint.model_io.load import view_model
from portlint.model_io.loaded import (
    IN_MEMORY,
    KEEP_CONSTANT_ELEMENTS,
    STRIPPED_LOCATION,
    LoadedModel,
)
from portlint.model_io.write import protobuf_size

PAYLOAD_FIELDS = frozenset(
    {
        "raw_data",
        "float_data",
        "int32_data",
        "string_data",
        "int64_data",
        "double_data",
        "uint64_data",
    }
)
STAGE_BYTES = 2**29
"""From this size on, ``fix`` proves a model from a staged file and checks its structure
without the weights, as it must past the protobuf limit. Measured on a 0.6 GB model (one
decompose): 2.2 times its weights at the peak instead of 4.9 (the serialised bytes,
onnxruntime's own copy, the checker's), and 2.5 s instead of 18 s in ``fix_model``."""
PROOF_NAME = "model.onnx"
DATA_ALIGNMENT = 4096
"""Offsets of tensors in a proof's data file: page aligned, so onnxruntime maps each one."""


def too_big(model: onnx.ModelProto) -> bool:
    """Whether ``model`` is beyond what one protobuf holds (``loaded.PROTOBUF_LIMIT``, read
    at each call so that a test can lower it)."""
    return model_size(model) >= loaded.PROTOBUF_LIMIT


def staged(model: onnx.ModelProto) -> bool:
    """Whether ``fix`` proves ``model`` from a staged file and checks it without its weights:
    past the protobuf limit it must, from ``STAGE_BYTES`` on it is the cheaper way."""
    return model_size(model) >= min(STAGE_BYTES, loaded.PROTOBUF_LIMIT)


def model_size(model: onnx.ModelProto) -> int:
    """The model's size as one protobuf, near enough to compare with the limit, without
    encoding its weights: upb's ``ByteSize`` encodes the whole message to measure it, which
    takes a copy of every weight (and fails past 2 GB). The light copy is measured, and the
    payloads it leaves out are counted from their dims (an upper bound for varint data)."""
    weights = [t for t in model.graph.initializer if strips(t)]
    if not weights:  # nothing to leave out: measuring is cheap
        return protobuf_size(model)
    return protobuf_size(light_copy(model)) + sum(_payload_size(t) for t in weights)


def _payload_size(tensor: onnx.TensorProto) -> int:
    if tensor.data_type == onnx.TensorProto.STRING:
        return tensor.ByteSize()
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        itemsize = 16
    if not tensor.HasField("raw_data") and (len(tensor.int32_data) or len(tensor.int64_data)):
        itemsize = 10  # varints
    return _elements(tensor) * max(itemsize, 1)


def gigabytes(size: int) -> str:
    """``2.4 GB`` (``1.6 MB`` below a gigabyte: a test's lowered limit)."""
    return f"{size / 1e9:.1f} GB" if size >= 10**9 else f"{size / 1e6:.1f} MB"


def _elements(tensor: onnx.TensorProto) -> int:
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count


def strips(tensor: onnx.TensorProto) -> bool:
    """Large initializers lose their payload; those already in external data have none."""
    return (
        tensor.data_location != onnx.TensorProto.EXTERNAL
        and _elements(tensor) > KEEP_CONSTANT_ELEMENTS
    )


def is_stripped(tensor: onnx.TensorProto) -> bool:
    """A payload ``light_copy`` left out (as opposed to a tensor really in external data)."""
    return tensor.data_location == onnx.TensorProto.EXTERNAL and any(
        e.key == "location" and e.value == STRIPPED_LOCATION for e in tensor.external_data
    )


def _copy_fields(source: Message, target: Message, skip: Iterable[str] = ()) -> None:
    """Copy every set field but ``skip`` from ``source``; skipped fields are never read, so a
    large payload left out costs nothing (reading a bytes field copies it)."""
    skipped = set(skip)
    for field in source.DESCRIPTOR.fields:
        name = field.name
        if name in skipped:
            continue
        if field.is_repeated:
            values = getattr(source, name)
            if len(values):
                getattr(target, name).extend(values)
        elif source.HasField(name):
            if field.message_type is not None:
                getattr(target, name).CopyFrom(getattr(source, name))
            else:
                setattr(target, name, getattr(source, name))


def light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with the payload of its large initializers left out (dims and type kept).

    What ``check`` sees of a model is the same for the model and for its light copy: it
    strips the same initializers the same way.
    """
    light = onnx.ModelProto()
    _copy_fields(model, light, ["graph"])
    graph = model.graph
    _copy_fields(graph, light.graph, ["initializer"])
    for tensor in graph.initializer:
        if strips(tensor):
            light.graph.initializer.append(weightless_tensor(tensor))
        else:
            light.graph.initializer.add().CopyFrom(tensor)
    return light


def weightless_tensor(tensor: onnx.TensorProto) -> onnx.TensorProto:
    """``tensor`` without its payload, marked as left out (``is_stripped``)."""
    shell = onnx.TensorProto()
    _copy_fields(tensor, shell, PAYLOAD_FIELDS | {"data_location", "external_data"})
    shell.data_location = onnx.TensorProto.EXTERNAL
    entry = shell.external_data.add()
    entry.key, entry.value = "location", STRIPPED_LOCATION
    return shell


def light_loaded(
    model: onnx.ModelProto, input_shapes: Mapping[str, list[int]] | None = None
) -> LoadedModel:
    """``view_model`` without copying the weights: the light copy is prepared, and
    a rule that reads a weight (the numerics rules) reads it from ``model`` itself."""
    prepared = view_model(light_copy(model), IN_MEMORY, dict(input_shapes or {}))
    prepared.weight_source = model
    return prepared


def checkable(light: onnx.ModelProto) -> onnx.ModelProto:
    """A light copy the onnx checker accepts: left-out initializers become graph inputs of
    their type and shape (the checker would look for their payload in a file). Edits
    ``light`` in place and returns it."""
    graph = light.graph
    stripped = [t for t in graph.initializer if is_stripped(t)]
    if not stripped:
        return light
    kept = [t for t in graph.initializer if not is_stripped(t)]
    listed = {value.name for value in graph.input}
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for tensor in stripped:
        if tensor.name not in listed:
            graph.input.append(
                onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
            )
    return light


def reattach(
    light: onnx.ModelProto, heavy: onnx.ModelProto | Mapping[str, onnx.TensorProto]
) -> onnx.ModelProto:
    """Fill the initializers left out of ``light`` (or of a model made from it) with their
    payload, by name: from the model ``heavy``, which must have every one, or from the
    tensors ``heavy`` maps names to, where it has them. Edits ``light`` in place."""
    every = isinstance(heavy, onnx.ModelProto)
    weights = {t.name: t for t in heavy.graph.initializer} if every else heavy
    for tensor in light.graph.initializer:
        name = tensor.name
        if not is_stripped(tensor):
            continue
        if name not in weights:
            if every:
                raise ValueError(f"no weights for initializer {name!r}")
            continue
        tensor.CopyFrom(weights[name])
        tensor.name = name
    return light


def _payload(tensor: onnx.TensorProto) -> bytes:
    """The tensor's bytes as external data holds them (raw, little-endian)."""
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    values = numpy_helper.to_array(tensor)
    return values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()


def save_for_proof(model: onnx.ModelProto, folder: Path, outputs: Iterable[str] = ()) -> Path:
    """Save ``model`` in ``folder`` with its large weights in a data file beside it, without
    copying them in memory; ``outputs`` names tensors to expose as extra graph outputs.
    Returns the model file's path. A model that is too big even without its weights raises
    ``ValueError``."""
    light = light_copy(model)
    if too_big(light):
        raise ValueError(
            f"the model is {gigabytes(model_size(light))} even without its large weights, "
            "beyond the 2 GB protobuf limit"
        )
    listed = {o.name for o in light.graph.output}
    for name in outputs:
        if name not in listed:
            light.graph.output.add().name = name
            listed.add(name)
    weights = {t.name: t for t in model.graph.initializer}
    data_name = f"{PROOF_NAME}.data"
    offset = 0
    with open(folder / data_name, "wb") as handle:
        for tensor in light.graph.initializer:
            if not is_stripped(tensor):
                continue
            source = weights[tensor.name]
            if source.data_type == onnx.TensorProto.STRING:  # strings cannot be external
                tensor.CopyFrom(source)
                continue
            payload = _payload(source)
            padding = -offset % DATA_ALIGNMENT
            handle.write(b"\0" * padding)
            offset += padding
            handle.write(payload)
            del tensor.external_data[:]
            where = (("location", data_name), ("offset", offset), ("length", len(payload)))
            for key, value in where:
                entry = tensor.external_data.add()
                entry.key, entry.value = key, str(value)
            offset += len(payload)
            del payload
    path = folder / PROOF_NAME
    path.write_bytes(light.SerializeToString())
    return path

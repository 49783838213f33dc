"""Activation statistics measured by running the model on sample inputs.

The hazard rules estimate ranges from weights and BatchNorm statistics; given sample inputs
they use what the model actually produced instead, and say so.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from portlint.errors import PortlintError, first_line
from portlint.model_io.loaded import PROTOBUF_LIMIT, copy_model


@dataclass(frozen=True)
class TensorStats:
    """What one tensor held over all samples: its range, and each channel's largest |value|.

    Channels are axis 1 (NCHW activations, [N, C] features); ``channel_absmax`` is None for
    tensors of rank < 2.
    """

    minimum: float
    maximum: float
    channel_absmax: np.ndarray | None
    samples: int

    @property
    def absmax(self) -> float:
        return max(abs(self.minimum), abs(self.maximum))


FLOAT_TYPES = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE})
"""Element types whose ranges are measured and compared (what quantization maps)."""
DATA_FILE = "model.onnx.data"
EXTERNAL_BYTES = 1024
"""Staged beyond 2 GB, tensors of at least this many bytes go to the data file."""


class RunError(PortlintError):
    """onnxruntime cannot load or run the model on the samples."""


class StagedModel:
    """A model prepared to run in onnxruntime with any of its tensors exposed as outputs.

    Shape inference gives each tensor its element type (only typed float tensors are
    measured). onnxruntime's graph optimizations are off so every intermediate name survives.
    A model over the 2 GB protobuf limit is written to a temporary folder with its weights as
    external data and loaded by path; ``close()`` (or leaving the ``with`` block) removes it.
    """

    def __init__(self, model: onnx.ModelProto):
        from portlint.model_io.write import protobuf_size

        self._folder: str | None = None
        staged = copy_model(model)
        if protobuf_size(model) >= PROTOBUF_LIMIT:
            self._folder = tempfile.mkdtemp(prefix="portlint-run-")
            path = os.path.join(self._folder, "model.onnx")
            onnx.save(  # turns the copy's weights into references to the data file
                staged,
                path,
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=DATA_FILE,
                size_threshold=EXTERNAL_BYTES,
            )
            inferred_path = os.path.join(self._folder, "inferred.onnx")
            try:
                onnx.shape_inference.infer_shapes_path(path, inferred_path)
                self.model = onnx.load(inferred_path, load_external_data=False)
            except Exception:  # no types: measure the graph outputs' declared types only
                self.model = staged
        else:
            try:
                self.model = onnx.shape_inference.infer_shapes(staged)
            except Exception:
                self.model = staged
        graph = self.model.graph
        self.types: dict[str, int] = {}
        self.shapes: dict[str, tuple[int | None, ...] | None] = {}
        for value in (*graph.input, *graph.value_info, *graph.output):
            tensor_type = value.type.tensor_type if value.type.HasField("tensor_type") else None
            if tensor_type is None:
                continue
            if tensor_type.elem_type:
                self.types[value.name] = tensor_type.elem_type
            if tensor_type.HasField("shape"):
                self.shapes[value.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim
                )
        initializers = {t.name for t in graph.initializer}
        self.inputs = [v.name for v in graph.input if v.name not in initializers]
        self.outputs = [v.name for v in graph.output]
        self.producers: dict[str, onnx.NodeProto] = {}
        for node in graph.node:
            for out in node.output:
                if out:
                    self.producers[out] = node

    def float_tensors(self, include_inputs: bool = False) -> list[str]:
        """Typed float tensors in graph order: the inputs (if asked), then node outputs
        (Constant nodes' left out: they hold weights, not activations)."""
        names = (
            [n for n in self.inputs if self.types.get(n) in FLOAT_TYPES] if include_inputs else []
        )
        for node in self.model.graph.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                continue
            names += [o for o in node.output if o and self.types.get(o) in FLOAT_TYPES]
        return list(dict.fromkeys(names))

    def open(self, names: Sequence[str]) -> Session:
        """A session that returns ``names`` (graph outputs, intermediates or inputs)."""
        import onnxruntime as ort

        exposed = copy_model(self.model)
        present = {o.name for o in exposed.graph.output}
        value_types = {v.name: v for v in exposed.graph.value_info}
        fed = set(self.inputs)
        for name in names:
            if name in present or name in fed:
                continue
            if name in value_types:
                exposed.graph.output.append(value_types[name])
            else:
                exposed.graph.output.add().name = name
            present.add(name)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 4
        ort.set_default_logger_severity(4)
        try:
            if self._folder is not None:
                path = os.path.join(self._folder, "run.onnx")
                onnx.save(exposed, path)  # weights stay in the staged data file beside it
                session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            else:
                session = ort.InferenceSession(
                    exposed.SerializeToString(), options, providers=["CPUExecutionProvider"]
                )
        except Exception as exc:
            raise RunError(f"onnxruntime cannot load the model: {first_line(exc)}") from exc
        return Session(session, list(names), fed)

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> StagedModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Session:
    """One onnxruntime session returning chosen tensors; a graph input is echoed from the feed."""

    def __init__(self, session, names: list[str], inputs: set[str]):
        self._session = session
        self._names = names
        self._inputs = inputs
        self._needed = {i.name for i in session.get_inputs()}
        self._computed = [n for n in names if n not in inputs]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = sorted(self._needed - set(feed))
        if missing:
            raise RunError(f"the samples have no value for input {missing[0]!r}")
        try:
            values = self._session.run(
                self._computed, {k: v for k, v in feed.items() if k in self._needed}
            )
        except Exception as exc:
            raise RunError(f"onnxruntime failed to run the model: {first_line(exc)}") from exc
        result = dict(zip(self._computed, values, strict=True))
        for name in self._names:
            if name in self._inputs:
                result[name] = np.asarray(feed[name])
        return result


class _Range:
    """Running minimum, maximum and per-channel |max| of one tensor's finite values."""

    def __init__(self) -> None:
        self.minimum = math.inf
        self.maximum = -math.inf
        self.channels: np.ndarray | None = None
        self.channel_count: int | None = None  # -1 once the channel count varied
        self.samples = 0

    def add(self, value: np.ndarray) -> None:
        self.samples += 1
        if value.size == 0:
            return
        if not np.issubdtype(value.dtype, np.floating):
            value = value.astype(np.float64)
        finite = np.isfinite(value)
        everything = bool(finite.all())
        picked = value if everything else value[finite]
        if picked.size:
            self.minimum = min(self.minimum, float(picked.min()))
            self.maximum = max(self.maximum, float(picked.max()))
        if value.ndim < 2 or self.channel_count == -1:
            return
        magnitude = np.abs(value) if everything else np.where(finite, np.abs(value), 0)
        axes = tuple(i for i in range(value.ndim) if i != 1)
        per_channel = magnitude.max(axis=axes).astype(np.float64)
        if self.channels is None:
            self.channels, self.channel_count = per_channel, per_channel.shape[0]
        elif per_channel.shape[0] != self.channel_count:
            self.channels, self.channel_count = None, -1
        else:
            np.maximum(self.channels, per_channel, out=self.channels)

    def stats(self) -> TensorStats | None:
        if self.minimum > self.maximum:
            return None  # only empty or non-finite values: no range to report
        channels = self.channels if self.channel_count not in (None, -1) else None
        return TensorStats(self.minimum, self.maximum, channels, self.samples)


def measure(
    model: onnx.ModelProto,
    samples: Iterable[Mapping[str, np.ndarray]],
    tensors: Collection[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, TensorStats]:
    """Each float tensor's range over ``samples``, from onnxruntime runs of ``model``.

    ``model`` needs its weights. Every typed float tensor of the main graph is measured (graph
    inputs included; ``tensors`` narrows that down), one sample at a time, so memory holds one
    sample's activations; ``progress`` is called with the number of samples done. Non-finite
    values are left out of the ranges; a tensor that held none has no entry. ``samples``
    counts the feeds run (a feed may hold a batch).
    """
    with StagedModel(model) as staged:
        names = staged.float_tensors(include_inputs=True)
        if tensors is not None:
            wanted = set(tensors)
            names = [n for n in names if n in wanted]
        session = staged.open(names)
        ranges = {name: _Range() for name in names}
        done = 0
        for feed in samples:
            values = session.run(feed)
            for name, value in values.items():
                ranges[name].add(value)
            del values
            done += 1
            if progress is not None:
                progress(done)
    if done == 0:
        raise RunError("no samples to measure activations on")
    measured = {name: r.stats() for name, r in ranges.items()}
    return {name: s for name, s in measured.items() if s is not None}

"""Run models in onnxruntime on seeded random inputs and measure how far outputs moved.

This is how ``fix`` proves a pass: the same inputs through the model before and after it,
with onnxruntime's own graph optimizations off so that what is compared is the graph the
pass wrote, not what onnxruntime would have fused it into.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from portlint.errors import PortlintError, first_line
from portlint.model_io.loaded import copy_model

SEED = 20261123
MAX_INPUT_ELEMENTS = 2**28
"""Random inputs beyond this many elements (1 GiB of float32) are not built: no proof."""
TOLERANCES = {
    # dtype: (atol, rtol, share of the output's largest magnitude added to atol)
    np.dtype(np.float64): (1e-7, 1e-6, 1e-9),
    np.dtype(np.float32): (1e-5, 1e-4, 1e-6),
    np.dtype(np.float16): (1e-3, 1e-2, 1e-3),
}
"""An exact pass may move each element by atol + rtol * |reference| + share * max|reference|.

Element by element, so a small class score cannot hide behind a large box coordinate in
the same output; the small share of the output's range forgives rounding where large
values cancel. Half precision rounds about 8000 times coarser than single precision.
"""


class NumericsError(PortlintError):
    """onnxruntime cannot run the model, so a pass cannot be proven."""


@dataclass(frozen=True)
class Deviation:
    """How far one output moved: the figures engineers compare models by."""

    name: str
    cosine: float
    mean_abs: float
    max_abs: float
    max_reference: float
    integral: bool = False  # int/bool outputs (NMS indices, counts) have no rounding to forgive
    worst_excess: float = 0.0  # largest |a-b| minus its allowance; > 0 means not exact

    def within(self) -> bool:
        return self.max_abs == 0 if self.integral else self.worst_excess <= 0

    def describe(self) -> str:
        return (
            f"{self.name}: cosine {self.cosine:.6f}, mean abs {self.mean_abs:.3g}, "
            f"max abs {self.max_abs:.3g}"
        )


def _session(model: onnx.ModelProto | Path):
    """A session with graph optimizations off; a path lets onnxruntime map external data."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4  # its errors become NumericsError's one line, not log noise
    ort.set_default_logger_severity(4)
    try:
        source = str(model) if isinstance(model, Path) else model.SerializeToString()
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise NumericsError(f"onnxruntime cannot load the model: {first_line(exc)}") from exc


def _dims(value: onnx.ValueInfoProto, pinned: Mapping[str, list[int]]) -> list[int]:
    if value.name in pinned:
        return list(pinned[value.name])
    dims = value.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in dims]


def random_inputs(
    model: onnx.ModelProto, pinned: Mapping[str, list[int]] | None = None, seed: int = SEED
) -> dict[str, np.ndarray]:
    """Seeded inputs of each graph input's dtype and shape (unknown dims become 1)."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    elements = 0
    for value in model.graph.input:
        if value.name in initializers:
            continue
        if not value.type.HasField("tensor_type"):
            raise NumericsError(f"input {value.name!r} is not a tensor; no random input for it")
        try:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        except (KeyError, ValueError) as exc:
            raise NumericsError(f"input {value.name!r} has no numpy element type") from exc
        shape = _dims(value, pinned or {})
        elements += math.prod(shape)
        if elements > MAX_INPUT_ELEMENTS or max(shape, default=0) > MAX_INPUT_ELEMENTS:
            raise NumericsError(
                f"input {value.name!r} of shape {shape} is too large to run (over "
                f"{MAX_INPUT_ELEMENTS} input elements)"
            )
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[value.name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            feeds[value.name] = rng.integers(0, 4, shape).astype(dtype)
    return feeds


def run(
    model: onnx.ModelProto | Path,
    feeds: Mapping[str, np.ndarray],
    outputs: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Outputs by name; ``outputs`` may name intermediate tensors, which are exposed first
    (of a model file, only its outputs: it is run as written)."""
    if outputs and not isinstance(model, Path):
        exposed = copy_model(model)
        present = {o.name for o in exposed.graph.output}
        for name in outputs:
            if name not in present:
                exposed.graph.output.add().name = name
        model = exposed
    session = _session(model)
    wanted = outputs or [o.name for o in session.get_outputs()]
    needed = {i.name for i in session.get_inputs()}
    try:
        values = session.run(wanted, {k: v for k, v in feeds.items() if k in needed})
    except Exception as exc:
        raise NumericsError(f"onnxruntime failed to run the model: {first_line(exc)}") from exc
    return dict(zip(wanted, values, strict=True))


def deviation(name: str, reference: np.ndarray, candidate: np.ndarray) -> Deviation:
    """Cosine similarity, mean and max absolute error; NaNs in the same places agree."""
    if reference.shape != candidate.shape:
        raise NumericsError(
            f"output {name!r} changed shape from {list(reference.shape)} to {list(candidate.shape)}"
        )
    ref = reference.astype(np.float64).ravel()
    got = candidate.astype(np.float64).ravel()
    both_nan = np.isnan(ref) & np.isnan(got)
    ref, got = np.where(both_nan, 0.0, ref), np.where(both_nan, 0.0, got)
    integral = not np.issubdtype(reference.dtype, np.floating)
    if ref.size == 0:
        return Deviation(name, 1.0, 0.0, 0.0, 0.0, integral)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(ref - got)
        diff = np.where(np.isnan(diff), np.inf, diff)
        norm = float(np.linalg.norm(ref) * np.linalg.norm(got))
        cosine = float(np.dot(ref, got) / norm) if norm > 0 else float(np.array_equal(ref, got))
    finite = np.abs(ref[np.isfinite(ref)])
    largest = float(finite.max()) if finite.size else 0.0
    atol, rtol, share = TOLERANCES.get(reference.dtype, TOLERANCES[np.dtype(np.float32)])
    with np.errstate(invalid="ignore"):
        allowance = atol + rtol * np.abs(ref) + share * largest
        excess = np.where(ref == got, 0.0, diff - allowance)  # equal infinities agree
        excess = np.where(np.isnan(excess), np.inf, excess)  # inf or NaN became something else
    return Deviation(
        name,
        cosine,
        float(diff.mean()),
        float(diff.max()),
        largest,
        integral,
        float(excess.max()),
    )


def compare(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]
) -> list[Deviation]:
    return [deviation(name, reference[name], candidate[name]) for name in reference]

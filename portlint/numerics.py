"""Run models in onnxruntime on seeded random inputs and measure how far outputs moved.

This is how ``fix`` proves a pass: the same inputs through the model before and after it,
with onnxruntime's own graph optimizations off so that what is compared is the graph the
pass wrote, not what onnxruntime would have fused it into.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from portlint.errors import PortlintError, first_line
from portlint.model_io import copy_model

SEED = 20261123
EXACT_ATOL = 1e-5
EXACT_RTOL = 1e-4
"""An exact pass may move an output by at most atol + rtol * max|reference| (float rounding)."""


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

    def within(self, atol: float = EXACT_ATOL, rtol: float = EXACT_RTOL) -> bool:
        if self.integral:
            return self.max_abs == 0
        return self.max_abs <= atol + rtol * self.max_reference

    def describe(self) -> str:
        return (
            f"{self.name}: cosine {self.cosine:.6f}, mean abs {self.mean_abs:.3g}, "
            f"max abs {self.max_abs:.3g}"
        )


def _session(model: onnx.ModelProto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
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
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        shape = _dims(value, pinned or {})
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[value.name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            feeds[value.name] = rng.integers(0, 4, shape).astype(dtype)
    return feeds


def run(
    model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], outputs: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Outputs by name; ``outputs`` may name intermediate tensors, which are exposed first."""
    if outputs:
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
    return Deviation(
        name,
        cosine,
        float(diff.mean()),
        float(diff.max()),
        float(finite.max()) if finite.size else 0.0,
        integral,
    )


def compare(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]
) -> list[Deviation]:
    return [deviation(name, reference[name], candidate[name]) for name in reference]

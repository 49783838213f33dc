"""Run the same inputs through two models and measure, tensor by tensor, where they part.

Per output, and with ``per_layer`` per tensor the two models share (in model A's graph
order): cosine similarity, mean absolute error (L1), max absolute error and SNR in dB
(``10·log10(Σref² / Σ(ref−x)²)``, A being the reference). Each figure is over all samples
together, as if their values were one long vector, accumulated one sample at a time so
memory holds one sample's tensors, never all outputs.

``b_names`` lets another module say which tensor of B carries the value of a tensor of A:
in a fake-quantized QDQ copy, what the next layer sees is the DequantizeLinear output, not
the float tensor of the same name. Names it leaves out match by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx

from portlint.activations import RunError, StagedModel
from portlint.errors import PortlintError

DEFAULT_THRESHOLD = 0.99
NEGLIGIBLE_ENERGY = 1e-12
"""A channel with less than this share of the largest channel's reference energy has no
cosine of its own (``None``): it is (next to) all zero."""


class CompareError(PortlintError):
    """The two models cannot be compared (different outputs, inputs or shapes)."""


@dataclass(frozen=True)
class Metrics:
    """How far B's values are from A's (the reference), over every element of every sample."""

    cosine: float
    mean_abs: float
    max_abs: float
    snr_db: float
    elements: int
    channel_cosine: tuple[float | None, ...] | None = None
    """Per channel (axis 1) for tensors of rank ≥ 2: one crushed channel among many wide ones
    barely moves the tensor's cosine, but the next layer may weigh it heavily."""

    def below(self, threshold: float) -> bool:
        """True when cosine similarity is under ``threshold`` (NaN counts as under)."""
        return not self.cosine >= threshold

    def channels_below(self, threshold: float) -> int | None:
        if self.channel_cosine is None:
            return None
        return sum(
            1 for value in self.channel_cosine if value is not None and not value >= threshold
        )


class Accumulator:
    """Sums from which the metrics follow; ``add`` one sample's pair of arrays at a time.

    NaNs in the same places and equal infinities agree (they count as no error and add
    nothing to the sums); any other non-finite value makes the figures NaN or infinite.
    """

    def __init__(self) -> None:
        self.elements = 0
        self.ref_sq = 0.0  # Σ ref²
        self.got_sq = 0.0  # Σ x²
        self.dot = 0.0  # Σ ref·x
        self.abs_sum = 0.0  # Σ |ref − x|
        self.abs_max = 0.0
        self.err_sq = 0.0  # Σ (ref − x)²
        self.channels: np.ndarray | None = None  # per channel: Σ ref·x, Σ ref², Σ x², Σ err²
        self.per_channel = True

    def _add_channels(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        """The same sums per channel (axis 1), while every sample has the same channels."""
        if not self.per_channel:
            return
        if reference.ndim < 2 or reference.shape != candidate.shape:
            self.per_channel, self.channels = False, None
            return
        count = reference.shape[1]
        if self.channels is not None and self.channels.shape[1] != count:
            self.per_channel, self.channels = False, None
            return
        with np.errstate(invalid="ignore", over="ignore"):
            ref = np.moveaxis(reference, 1, 0).reshape(count, -1).astype(np.float64)
            got = np.moveaxis(candidate, 1, 0).reshape(count, -1).astype(np.float64)
            if not (np.isfinite(ref).all() and np.isfinite(got).all()):  # as for the tensor
                same = ~np.isfinite(ref) & ((ref == got) | (np.isnan(ref) & np.isnan(got)))
                ref, got = np.where(same, 0, ref), np.where(same, 0, got)
            diff = ref - got
            sums = np.stack(
                [(ref * got).sum(1), (ref * ref).sum(1), (got * got).sum(1), (diff * diff).sum(1)]
            )
        self.channels = sums if self.channels is None else self.channels + sums

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        ref = _flat(reference)
        got = _flat(candidate)
        if ref.shape != got.shape:
            raise ValueError(f"shapes differ: {reference.shape} vs {candidate.shape}")
        if ref.size == 0:
            return
        if ref.dtype != got.dtype:
            ref, got = ref.astype(np.float64), got.astype(np.float64)
        self._add_channels(np.asarray(reference), np.asarray(candidate))
        self.elements += ref.size
        if np.array_equal(ref, got):  # a common case (shared layers): one sum instead of six
            square = _dot(ref, ref)
            self.ref_sq += square
            self.got_sq += square
            self.dot += square
            return
        with np.errstate(invalid="ignore", over="ignore"):
            if not (np.isfinite(ref).all() and np.isfinite(got).all()):
                same = ~np.isfinite(ref) & ((ref == got) | (np.isnan(ref) & np.isnan(got)))
                ref = np.where(same, 0, ref)
                got = np.where(same, 0, got)
            self.ref_sq += _dot(ref, ref)
            self.got_sq += _dot(got, got)
            self.dot += _dot(ref, got)
            diff = np.subtract(ref, got)
            self.err_sq += _dot(diff, diff)
            magnitude = np.abs(diff, out=diff)
            self.abs_sum += float(magnitude.sum(dtype=np.float64))
            largest = float(magnitude.max())
            self.abs_max = largest if math.isnan(largest) else max(self.abs_max, largest)

    def metrics(self) -> Metrics:
        return Metrics(
            cosine(self.dot, self.ref_sq, self.got_sq, self.err_sq),
            self.abs_sum / self.elements if self.elements else 0.0,
            self.abs_max,
            snr_db(self.ref_sq, self.err_sq),
            self.elements,
            None if self.channels is None else _channel_cosines(self.channels),
        )


def _channel_cosines(sums: np.ndarray) -> tuple[float | None, ...]:
    """Each channel's cosine; None for a channel whose reference is (next to) all zero, such
    as a dead ReLU channel: noise against nothing says nothing about the model."""
    energy = sums[1]
    floor = NEGLIGIBLE_ENERGY * float(energy.max()) if energy.size else 0.0
    return tuple(None if column[1] <= floor else cosine(*column) for column in sums.T.tolist())


def _flat(array: np.ndarray) -> np.ndarray:
    """One flat float array: float32 and float64 stay as they are, anything else is widened."""
    array = np.asarray(array)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float32 if array.dtype == np.float16 else np.float64)
    return array.ravel()


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b summed in float64 (float32 BLAS sums drift by ~1e-5 over a million elements)."""
    return float(np.einsum("i,i->", a, b, dtype=np.float64))


def cosine(dot: float, ref_sq: float, got_sq: float, err_sq: float = math.nan) -> float:
    """Σref·x / (‖ref‖·‖x‖); 1 when the two are equal (zero vectors included), 0 when only
    one of them is zero."""
    if err_sq == 0:
        return 1.0
    if ref_sq == 0 and got_sq == 0:
        return 1.0
    if ref_sq == 0 or got_sq == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        value = dot / (math.sqrt(ref_sq) * math.sqrt(got_sq))
    return value if math.isnan(value) else min(1.0, max(-1.0, value))


def snr_db(ref_sq: float, err_sq: float) -> float:
    """10·log10(Σref² / Σ(ref−x)²): inf when there is no error, −inf when ref is all zero."""
    if math.isnan(ref_sq) or math.isnan(err_sq):
        return math.nan
    if err_sq == 0:
        return math.inf
    if ref_sq == 0:
        return -math.inf
    if math.isinf(err_sq):
        return -math.inf if not math.isinf(ref_sq) else math.nan
    return 10 * math.log10(ref_sq / err_sq) if not math.isinf(ref_sq) else math.inf


def metrics(reference: np.ndarray, candidate: np.ndarray) -> Metrics:
    """The metrics of one pair of arrays."""
    accumulator = Accumulator()
    accumulator.add(reference, candidate)
    return accumulator.metrics()


@dataclass(frozen=True)
class TensorComparison:
    """One tensor of A against the tensor of B that carries its value."""

    name: str
    b_name: str
    op: str | None  # the op that produces it in A
    node: str | None
    shape: tuple[int, ...] | None  # one sample's shape
    metrics: Metrics
    output: bool = False

    def below(self, threshold: float) -> bool:
        return self.metrics.below(threshold)


@dataclass
class Comparison:
    """What ``compare_models`` measured: outputs, and with ``per_layer`` every shared tensor."""

    outputs: list[TensorComparison]
    layers: list[TensorComparison]
    threshold: float
    samples: int
    per_layer: bool
    skipped: list[str] = field(default_factory=list)
    inputs: str = ""  # where the samples came from
    notes: list[str] = field(default_factory=list)

    @property
    def first_below(self) -> TensorComparison | None:
        """The first tensor in graph order below threshold (outputs only, without per-layer;
        an output the layers do not hold, such as an integer one, comes after them)."""
        measured = {row.name for row in self.layers}
        rows = [*self.layers, *(row for row in self.outputs if row.name not in measured)]
        return next((row for row in rows if row.below(self.threshold)), None)

    @property
    def passed(self) -> bool:
        return not any(row.below(self.threshold) for row in self.outputs)


def _dims(shape: tuple[int | None, ...] | None) -> str:
    return "[?]" if shape is None else "[" + ",".join("?" if not d else str(d) for d in shape) + "]"


def _check_interfaces(a: StagedModel, b: StagedModel, outputs: dict[str, str], mapped: bool):
    """Same outputs (by name, or as ``b_names`` maps them), inputs B needs that A takes."""
    if not mapped:
        only_a = [o for o in a.outputs if o not in b.outputs]
        only_b = [o for o in b.outputs if o not in a.outputs]
        if only_a or only_b:
            parts = []
            if only_a:
                parts.append(f"only in A: {', '.join(only_a)}")
            if only_b:
                parts.append(f"only in B: {', '.join(only_b)}")
            raise CompareError(
                "the models have different outputs (" + "; ".join(parts) + "); compare needs "
                "the same output names"
            )
    else:
        known = set(b.outputs) | set(b.producers) | set(b.inputs)
        for name, b_name in outputs.items():
            if b_name not in known:
                raise CompareError(f"output {name!r} maps to {b_name!r}, which B does not have")
    for name in b.inputs:
        if name not in a.inputs:
            raise CompareError(f"model B needs input {name!r}, which model A does not take")
        shape_a, shape_b = a.shapes.get(name), b.shapes.get(name)
        if _static(shape_a) and _static(shape_b) and shape_a != shape_b:
            raise CompareError(f"input {name!r} is {_dims(shape_a)} in A and {_dims(shape_b)} in B")
    for name, b_name in outputs.items():
        shape_a, shape_b = a.shapes.get(name), b.shapes.get(b_name)
        if _static(shape_a) and _static(shape_b) and shape_a != shape_b:
            raise CompareError(
                f"output {name!r} is {_dims(shape_a)} in A and {_dims(shape_b)} in B"
            )


def _static(shape: tuple[int | None, ...] | None) -> bool:
    return shape is not None and all(shape)


def compare_models(
    a: onnx.ModelProto,
    b: onnx.ModelProto,
    samples: Iterable[Mapping[str, np.ndarray]],
    per_layer: bool = False,
    b_names: Mapping[str, str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    progress: Callable[[int], None] | None = None,
) -> Comparison:
    """Feed every sample to A (the reference) and B; measure outputs and, with ``per_layer``,
    every float tensor of A whose value B also has (``b_names[name]``, else the same name).

    Raises ``CompareError`` when the outputs differ in name or shape, or B needs an input A
    does not take. An intermediate tensor whose shape differs between the two is left out
    and listed in ``skipped``.
    """
    mapping = dict(b_names or {})
    with StagedModel(a) as staged_a, StagedModel(b) as staged_b:
        outputs = {name: mapping.get(name, name) for name in staged_a.outputs}
        _check_interfaces(staged_a, staged_b, outputs, b_names is not None)
        layers: dict[str, str] = {}
        if per_layer:
            b_float = set(staged_b.float_tensors())
            for name in staged_a.float_tensors():
                b_name = mapping.get(name, name)
                if b_name in b_float:
                    layers[name] = b_name
        wanted_a = list(dict.fromkeys([*outputs, *layers]))
        wanted_b = list(dict.fromkeys([*outputs.values(), *layers.values()]))
        session_a = staged_a.open(wanted_a)
        session_b = staged_b.open(wanted_b)
        sums = {name: Accumulator() for name in wanted_a}
        shapes: dict[str, tuple[int, ...]] = {}
        skipped: dict[str, str] = {}
        done = 0
        for feed in samples:
            values_a = session_a.run(feed)
            values_b = session_b.run(feed)
            for name in wanted_a:
                if name in skipped:
                    continue
                b_name = outputs.get(name) or layers[name]
                ref, got = values_a[name], values_b[b_name]
                if not isinstance(ref, np.ndarray) or not isinstance(got, np.ndarray):
                    raise CompareError(f"output {name!r} is not a tensor; cannot compare it")
                if ref.shape != got.shape:
                    if name in outputs:
                        raise CompareError(
                            f"output {name!r} has shape {list(ref.shape)} in A and "
                            f"{list(got.shape)} in B"
                        )
                    skipped[name] = f"{name}: shape {list(ref.shape)} in A, {list(got.shape)} in B"
                    continue
                if ref.dtype.kind in "OSUV" or got.dtype.kind in "OSUV":
                    raise CompareError(f"tensor {name!r} holds {ref.dtype}; cannot compare it")
                sums[name].add(ref, got)
                shapes[name] = ref.shape
            del values_a, values_b
            done += 1
            if progress is not None:
                progress(done)
    if done == 0:
        raise RunError("no samples to compare the models on")

    def row(name: str, b_name: str) -> TensorComparison:
        node = staged_a.producers.get(name)
        return TensorComparison(
            name,
            b_name,
            node.op_type if node is not None else None,
            node.name or None if node is not None else None,
            shapes.get(name),
            sums[name].metrics(),
            name in outputs,
        )

    return Comparison(
        [row(name, b_name) for name, b_name in outputs.items()],
        [row(name, b_name) for name, b_name in layers.items() if name not in skipped],
        threshold,
        done,
        per_layer,
        list(skipped.values()),
    )

"""Quantization simulation: a fake-quantized (QDQ) copy of a float model, built per a target's
quantization scheme, so that ``compare --simulate`` can run both and say where they part.

onnxruntime's quantization tooling does what it models (``ort.py``): calibration (min-max,
percentile, entropy), QuantizeLinear/DequantizeLinear pairs on every activation and weight,
per-tensor or per-channel symmetric weights, 8/16-bit symmetric or asymmetric activations,
and its own rule that data-movement ops keep their input's scale. What it cannot express is
then written into its QDQ model (``scales.py``): the target's shared, inherited and fixed
scales, power-of-two scales, and the Relu/Clip an integer kernel applies inside the layer.

Before that, BatchNorm after a Conv/Gemm is folded (vendor converters quantize the folded
layer). Every numeric op runs in integer, including ops a target's NPU lacks; biases stay in
float (the NPU adds them in int32). Each assumption lands in ``Simulation.notes``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx

from portlint.errors import first_line
from portlint.model_io.loaded import copy_model
from portlint.model_io.weightless import model_size
from portlint.quant_scheme import CALIBRATIONS
from portlint.simulate.plan import Plan, SimulationError, plan_of
from portlint.target import Target, load_target

__all__ = ["Simulation", "SimulationError", "simulate"]

MAX_MODEL_BYTES = 2**31 - 1
"""Beyond this a model needs external data, which the simulation does not handle yet."""


@dataclass
class Simulation:
    """The fake-quantized model and how to read it against the float one.

    ``seen_as`` maps each float tensor to the tensor of ``model`` holding what the NPU computes
    for it: the DequantizeLinear output after its Q/DQ, or the same name where it is not
    quantized (a layer's output before a fused Relu, the int32 accumulator on the NPU; shape
    tensors). Tensors the NPU never computes (a Conv's output before the BatchNorm folded into
    it) are absent. Graph outputs keep their names.
    """

    model: onnx.ModelProto
    seen_as: dict[str, str]
    notes: list[str] = field(default_factory=list)


def simulate(
    model: onnx.ModelProto,
    target: Target | str,
    samples: Iterable[dict[str, np.ndarray]],
    bits: int | None = None,
    calibration: str = "minmax",
) -> Simulation:
    """Build the fake-quantized copy of ``model`` that ``target`` would run.

    ``samples`` (input name -> array) calibrate the activation ranges; they are read once, one
    at a time. ``bits`` (8 or 16, one the target lists) defaults to the target's default width;
    ``calibration`` is minmax, percentile (99.999%) or entropy (KL divergence, TensorRT's
    2048-bin histogram; about 0.06 s per tensor). The input model is not modified.
    """
    from portlint.simulate import ort, scales

    if isinstance(target, str):
        target = load_target(target)
    if calibration not in CALIBRATIONS:
        raise SimulationError(
            f"unknown calibration method {calibration!r} (one of {', '.join(CALIBRATIONS)})"
        )
    _refuse_unloaded_or_large(model)
    notes: list[str] = []
    plan = plan_of(target.scheme, target.name, bits, notes)
    work = _fold_batchnorm(copy_model(model), target, notes)
    work = _raise_opset(work, plan, notes)
    with ort.quiet():
        qdq, ranges, count = ort.quantize(work, samples, plan, calibration)
    notes.insert(
        0,
        f"{target.name}: {plan.describe()}; {calibration} calibration on {count} "
        f"sample{'s' if count != 1 else ''}",
    )
    numeric = frozenset(n.op_type for n in work.graph.node) - ort.NON_NUMERIC_OPS
    seen_as = scales.rewrite(qdq, model, ranges, plan, numeric, notes)
    _keep_model_fields(qdq, work, model, notes)
    notes.append(
        "biases stay in float (the NPU adds them in int32; their rounding is negligible); "
        "rounding is half to even (onnxruntime) where shift kernels may truncate"
    )
    notes.append(
        "every op runs in integer, including ops the target's NPU lacks or leaves to the CPU "
        "(see `portlint check`); a float CPU fallback would stay closer to the float model"
    )
    return Simulation(qdq, seen_as, notes)


def _refuse_unloaded_or_large(model: onnx.ModelProto) -> None:
    external = [
        t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise SimulationError(
            f"cannot simulate a model whose weights are not loaded ({len(external)} tensors "
            f"in external data, e.g. {external[0]!r})"
        )
    if model_size(model) > MAX_MODEL_BYTES:
        raise SimulationError("cannot simulate a model over 2 GB yet: it would need external data")


def _fold_batchnorm(model: onnx.ModelProto, target: Target, notes: list[str]) -> onnx.ModelProto:
    """The fold-batchnorm pass (exact, proven by ``portlint fix``), as vendors fold first."""
    from portlint.passes import fold_batchnorm
    from portlint.passes.base import PassContext

    if not any(n.op_type == "BatchNormalization" for n in model.graph.node):
        return model
    result = fold_batchnorm.run(PassContext(model=model, target=target))
    if result.changes:
        notes.append(
            f"{len(result.changes)} BatchNormalization folded into the layer before them, as "
            "vendor converters do before quantizing (the tensor between them no longer exists)"
        )
    left = sum(n.op_type == "BatchNormalization" for n in result.model.graph.node)
    if left:
        notes.append(f"{left} BatchNormalization not after a Conv/Gemm: quantized on its own")
    return result.model


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _raise_opset(model: onnx.ModelProto, plan: Plan, notes: list[str]) -> onnx.ModelProto:
    """Per-channel DequantizeLinear (its ``axis``) needs opset 13; raise older models to it."""
    opset = _opset(model)
    if opset >= 13 or not plan.per_channel:
        return model
    try:
        raised = onnx.version_converter.convert_version(model, 13)
    except Exception as exc:
        raise SimulationError(
            f"cannot raise the model from opset {opset} to 13 for per-channel "
            f"DequantizeLinear: {first_line(exc)}"
        ) from exc
    notes.append(f"opset raised from {opset} to 13: per-channel DequantizeLinear needs it")
    return raised


def _keep_model_fields(
    qdq: onnx.ModelProto, work: onnx.ModelProto, original: onnx.ModelProto, notes: list[str]
) -> None:
    """The float model's IR version, producer and metadata; opsets only where QDQ needs more
    (onnxruntime raises the opset to 21 for 16-bit QuantizeLinear)."""
    if _opset(qdq) > _opset(work):
        reason = "16-bit QuantizeLinear needs it" if _opset(qdq) >= 21 else "QDQ needs it"
        notes.append(f"opset raised from {_opset(work)} to {_opset(qdq)}: {reason}")
    qdq.ir_version = original.ir_version
    if _opset(qdq) >= 21 and qdq.ir_version < 10:
        qdq.ir_version = 10  # opset 21 needs IR version 10
    for name in ("producer_name", "producer_version", "domain", "model_version", "doc_string"):
        setattr(qdq, name, getattr(original, name))
    del qdq.metadata_props[:]
    qdq.metadata_props.extend(original.metadata_props)

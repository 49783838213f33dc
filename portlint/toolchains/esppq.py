"""ESP-PPQ (``esp-ppq``) for ESP-DL on ESP32-S3 and ESP32-P4.

``espdl_quantize_onnx`` simplifies the model (onnxsim), runs the whole graph in PyTorch to
calibrate, quantizes and exports a ``.espdl``; it stops at the first op it cannot run (no
backend for ``If``; NonMaxSuppression needs ``mmcv``). The worker
(``workers/esppq_worker.py``) records each stage, the failing op and the op types of the
exported model.

An export can succeed and still not load on the chip: the ESP-DL runtime builds each node
from a registry of modules and refuses one it does not have ("Do not support %s, please
implement and register it first."). So the exported op types are checked against that
registry (``ESPDL_MODULES``), and such a model is reported as refused at load on the chip:
an inference from the runtime's source, not a run on a board.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portlint.toolchains.base import (
    CONVERTS,
    CRASHED,
    REFUSES,
    CompileRequest,
    CompileResult,
    Toolchain,
    one_line,
)

ESPDL_SOURCE = (
    "https://github.com/espressif/esp-dl/blob/12c0616de145b704e1149c474b9a1e852e631d67/"
    "esp-dl/dl/module/include/dl_module_creator.hpp (esp-dl 3.3.9)"
)
ESPDL_MODULES = frozenset(
    {
        "Conv",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Mod",
        "Resize",
        "GlobalAveragePool",
        "AveragePool",
        "Concat",
        "Sigmoid",
        "Tanh",
        "Relu",
        "LeakyRelu",
        "HardSigmoid",
        "HardSwish",
        "Gelu",
        "LUT",
        "Gemm",
        "QuantizeLinear",
        "DequantizeLinear",
        "RequantizeLinear",
        "PRelu",
        "Clip",
        "Flatten",
        "Reshape",
        "Transpose",
        "Exp",
        "Log",
        "Sqrt",
        "Squeeze",
        "Unsqueeze",
        "Softmax",
        "LogSoftmax",
        "MaxPool",
        "Slice",
        "Pad",
        "MatMul",
        "Neg",
        "SpaceToDepth",
        "Split",
        "Gather",
        "Elu",
        "Greater",
        "GreaterOrEqual",
        "Equal",
        "Less",
        "LessOrEqual",
        "ReverseSequence",
        "ScatterND",
        "Identity",
        "Swish",
        "ReduceL1",
        "ReduceL2",
        "ReduceMin",
        "ReduceMax",
        "ReduceSum",
        "ReduceProd",
        "ReduceMean",
        "ReduceSumSquare",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "GRU",
        "LSTM",
        "DepthToSpace",
        "StreamingCache",
        "InsertZeros",
        "LayerNormalization",
        "LpNormalization",
        "RMSNormalization",
    }
)
"""Op types the ESP-DL runtime registers (``ModuleCreator::register_dl_modules``), from
``ESPDL_SOURCE``."""
UNSUPPORTED_KINDS = frozenset({"NotImplementedError", "ModuleNotFoundError", "ImportError"})
"""Exceptions that mean "esp-ppq cannot run this op" (a refusal), not a bug of its own."""


def _failing_nodes(result: Mapping[str, Any], names: Mapping[str, str]) -> tuple[str, ...]:
    """The original model's node for esp-ppq's failing op (onnxsim renames unnamed nodes;
    its output tensors keep their names)."""
    failing = result.get("failing_op") or {}
    for name in (failing.get("name"), *failing.get("outputs", [])):
        if name and name in names:
            return (names[name],)
    return ()


def parse_log(
    request: CompileRequest, log: str, result: Mapping[str, Any], onnx_names: Mapping[str, str]
) -> CompileResult:
    steps = result.get("steps") or {}
    versions = result.get("versions") or {}
    version = str(versions.get("esp-ppq", ""))
    details: dict[str, Any] = {"versions": versions, "chip": request.platform}
    warnings = tuple(
        f"grouped Conv {c['name']!r} (group {c['group']} of {c['in_channels']} channels) is "
        "exported as it is, but the ESP-DL runtime runs every group != 1 as depthwise: wrong "
        "results on the chip"
        for c in result.get("grouped_convs") or []
    )
    exported = list(result.get("exported_ops") or [])
    if steps.get("quantize") == 0 and steps.get("export") == 0:
        missing = sorted({op for op in exported if op not in ESPDL_MODULES})
        if not missing:
            return CompileResult(
                "esp-ppq",
                version,
                request.target,
                CONVERTS,
                details=details,
                log=log,
                warnings=warnings,
            )
        details["espdl_registry"] = ESPDL_SOURCE
        return CompileResult(
            "esp-ppq",
            version,
            request.target,
            REFUSES,
            stage="load on the chip",
            error=f"the .espdl exports {', '.join(missing)}, which the ESP-DL runtime "
            "registers no module for: it would not load ('Do not support …, please implement "
            "and register it first')",
            error_kind="unregistered module",
            details=details,
            log=log,
        )
    exc = result.get("exception") or {}
    kind = exc.get("type") or "error"
    message = str(exc.get("message") or "").strip().splitlines()
    failing = result.get("failing_op") or {}
    where = f" at {failing.get('type')} {failing.get('name')!r}" if failing else ""
    outcome = REFUSES if kind in UNSUPPORTED_KINDS else CRASHED
    if exc.get("frame"):
        details["frame"] = exc["frame"]
    return CompileResult(
        "esp-ppq",
        version,
        request.target,
        outcome,
        stage=result.get("stage"),
        error=one_line(f"{kind}{where}: {message[0] if message else 'failed'}"),
        error_kind=kind,
        failing_nodes=_failing_nodes(result, onnx_names),
        details=details,
        log=log,
    )


class EspPpq(Toolchain):
    name = "esp-ppq"
    package = "esp-ppq"
    display_name = "ESP-PPQ"
    install_hint = (
        "python3 -m venv ~/.venvs/esppq && ~/.venvs/esppq/bin/pip install torch==2.13.0 "
        "&& ~/.venvs/esppq/bin/pip install esp-ppq torch==2.13.0"
    )
    platforms: Mapping[str, str] = {"esp32-s3": "esp32s3", "esp32-p4": "esp32p4"}
    worker = Path(__file__).with_name("workers") / "esppq_worker.py"

    def quantize_for(self, target: str, ops: frozenset[str] = frozenset()) -> bool:
        return True  # ESP-DL runs int8 (or int16) models only

    def worker_args(self, request: CompileRequest, workdir: Path) -> list[str]:
        return [
            "--model",
            str(request.model),
            "--target",
            request.platform,
            "--input-shapes",
            json.dumps({k: list(v) for k, v in request.input_shapes.items()}),
        ]

    parse = staticmethod(parse_log)

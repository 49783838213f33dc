"""Arm Vela (``ethos-u-vela``) for Ethos-U55/U65/U85, behind onnx2tf.

Vela compiles int8 TFLite, so the worker (``workers/vela_worker.py``) first converts the
ONNX model with onnx2tf (full-integer quantization on random calibration samples), then
runs ``vela --show-cpu-operations``. What each stage printed is split on the worker's
marker lines. A converter failure is the converter's outcome (``converter failed``), never
an Ethos-U verdict.

Vela 5.x has two compiler cores. The default one lists CPU layers as ``CPU: Passthrough =
<tensor>`` and gives the op type and reason in an earlier ``Warning (supported operators)
operator: OP, ofm: '<tensor>'`` block, so the two are joined on the tensor name. TFLite
names its tensors, not ONNX nodes, so layers carry the ONNX op type they come from where
the mapping is one to one; the QUANTIZE/DEQUANTIZE pairs the converter wraps around float
ops are marked as inserted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portlint.toolchains.base import (
    CONVERTER_FAILED,
    CONVERTS,
    CPU,
    CRASHED,
    NPU,
    REFUSES,
    CompileRequest,
    CompileResult,
    Layer,
    Toolchain,
    one_line,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
MARK = re.compile(r"^=== portlint stage: (\S+) ===$", re.MULTILINE)
_WARNING = re.compile(r"^Warning \(supported operators\) operator: (\w+), ofm: '([^']*)'")
_SUMMARY_ROW = re.compile(r"^\s+(CPU|NPU): (\w+) = (.*?)(?: \(outputs \[.*\]\))?\s*$")
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)):\s*(.*)$")
_ONNX_OP_LINE = re.compile(r"onnx_op_name:\s*(\S+)")
_NOT_IMPLEMENTED = re.compile(r"ERROR:\s*(\w+) OP is not yet implemented")
_REASON = re.compile(r"^.*\bnot supported\b.*$", re.MULTILINE)
WRAPPERS = frozenset({"QUANTIZE", "DEQUANTIZE"})
TFLITE_TO_ONNX = {
    "ABS": "Abs",
    "ADD": "Add",
    "ARG_MAX": "ArgMax",
    "ARG_MIN": "ArgMin",
    "AVERAGE_POOL_2D": "AveragePool",
    "BATCH_MATMUL": "MatMul",
    "CONCATENATION": "Concat",
    "CONV_2D": "Conv",
    "COS": "Cos",
    "DEPTHWISE_CONV_2D": "Conv",
    "DIV": "Div",
    "ELU": "Elu",
    "EXP": "Exp",
    "FULLY_CONNECTED": "Gemm",
    "GATHER": "Gather",
    "GELU": "Gelu",
    "HARD_SWISH": "HardSwish",
    "LEAKY_RELU": "LeakyRelu",
    "LOG": "Log",
    "LOGISTIC": "Sigmoid",
    "MAX_POOL_2D": "MaxPool",
    "MEAN": "ReduceMean",
    "MUL": "Mul",
    "NON_MAX_SUPPRESSION_V4": "NonMaxSuppression",
    "NON_MAX_SUPPRESSION_V5": "NonMaxSuppression",
    "PAD": "Pad",
    "POW": "Pow",
    "PRELU": "PRelu",
    "REDUCE_MAX": "ReduceMax",
    "RELU": "Relu",
    "RESHAPE": "Reshape",
    "RESIZE_BILINEAR": "Resize",
    "RESIZE_NEAREST_NEIGHBOR": "Resize",
    "RSQRT": "Sqrt",
    "SIN": "Sin",
    "SOFTMAX": "Softmax",
    "SQRT": "Sqrt",
    "SUB": "Sub",
    "SUM": "ReduceSum",
    "TANH": "Tanh",
    "TOPK_V2": "TopK",
    "TRANSPOSE": "Transpose",
    "TRANSPOSE_CONV": "ConvTranspose",
}
"""TFLite op -> the ONNX op it comes from, where onnx2tf maps one to one."""


def _sections(log: str) -> dict[str, str]:
    text = ANSI.sub("", log)
    parts = MARK.split(text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _layers(vela_log: str) -> list[Layer]:
    warned = {}  # ofm tensor -> TFLite op type
    for line in vela_log.splitlines():
        match = _WARNING.match(line)
        if match:
            warned[match.group(2)] = match.group(1)
    layers = []
    for line in vela_log.splitlines():
        match = _SUMMARY_ROW.match(line)
        if not match:
            continue
        where, op, tensor = match.groups()
        if op == "Passthrough":
            op = warned.get(tensor, op)
        upper = op.upper() if op.isupper() else _snake(op)
        layers.append(
            Layer(
                name=tensor,
                op=op,
                placement=CPU if where == "CPU" else NPU,
                inserted=upper in WRAPPERS,
                onnx_op=TFLITE_TO_ONNX.get(upper),
            )
        )
    return layers


def _snake(op: str) -> str:
    """``Conv2D`` (the old core's names) -> ``CONV_2D``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Za-z])(?=\d)", "_", op).upper()


def _last_exception(text: str) -> tuple[str | None, str | None]:
    found = None
    for line in text.splitlines():
        match = _EXCEPTION.match(line.strip())
        if match:
            found = match
    if found is None:
        return None, None
    kind = found.group(1).rsplit(".", 1)[-1]
    return kind, f"{kind}: {found.group(2)}".strip(": ")


def parse_log(
    request: CompileRequest, log: str, result: Mapping[str, Any], onnx_names: Mapping[str, str]
) -> CompileResult:
    sections = _sections(log)
    steps = result.get("steps") or {}
    versions = result.get("versions") or {}
    version = str(versions.get("ethos-u-vela", ""))
    details: dict[str, Any] = {"versions": versions, "accelerator": request.platform}
    if result.get("cpu_report_failed"):
        details["cpu_report_failed"] = True
    converter = sections.get("onnx2tf", "")
    if steps.get("convert") != 0:
        missing = _NOT_IMPLEMENTED.search(converter)
        kind, error = _last_exception(converter)
        reason = _REASON.search(converter)
        if reason:  # TF's own words, under its generic "Exception encountered when calling"
            error = f"{kind or 'error'}: {reason.group(0).strip()}"
        if missing:
            kind, error = "NotImplemented", f"onnx2tf: {missing.group(1)} OP is not yet implemented"
        nodes = [onnx_names[n] for n in _ONNX_OP_LINE.findall(converter) if n in onnx_names]
        exc = result.get("exception") or {}
        return CompileResult(
            "vela",
            version,
            request.target,
            CONVERTER_FAILED,
            stage="convert",
            error=one_line(
                f"onnx2tf {versions.get('onnx2tf', '')}: {error or exc.get('message') or 'failed'}"
            ),
            error_kind=kind or exc.get("type"),
            failing_nodes=tuple(dict.fromkeys(nodes)),
            details=details,
            log=log,
        )
    vela = sections.get("vela", "")
    layers = tuple(_layers(vela))
    if steps.get("vela") == 0:
        return CompileResult(
            "vela", version, request.target, CONVERTS, layers=layers, details=details, log=log
        )
    kind, error = _last_exception(vela)
    outcome = CRASHED if "Traceback" in vela else REFUSES
    lines = [line.strip() for line in vela.splitlines() if line.strip()]
    return CompileResult(
        "vela",
        version,
        request.target,
        outcome,
        stage="vela",
        error=one_line(error or (lines[-1] if lines else "vela failed without a message")),
        error_kind=kind,
        layers=layers,
        details=details,
        log=log,
    )


class Vela(Toolchain):
    name = "vela"
    package = "ethos-u-vela"
    display_name = "Arm Vela"
    install_hint = (
        "python3 -m venv ~/.venvs/vela && ~/.venvs/vela/bin/pip install ethos-u-vela "
        "onnx2tf==1.29.24 tensorflow==2.19.0 tf_keras==2.19.0 onnx onnxsim "
        "onnx_graphsurgeon sng4onnx ai-edge-litert psutil"
    )
    platforms: Mapping[str, str] = {
        "ethos-u55": "ethos-u55-128",
        "ethos-u65": "ethos-u65-256",
        "ethos-u85": "ethos-u85-256",
    }
    worker = Path(__file__).with_name("workers") / "vela_worker.py"
    option_names = ("system_config", "memory_mode", "config")

    def quantize_for(self, target: str, ops: frozenset[str] = frozenset()) -> bool:
        return True  # Vela compiles int8 (or int16) TFLite only

    def worker_args(self, request: CompileRequest, workdir: Path) -> list[str]:
        return [
            "--model",
            str(request.model),
            "--accelerator",
            request.platform,
            "--options",
            json.dumps(dict(request.options)),
        ]

    parse = staticmethod(parse_log)

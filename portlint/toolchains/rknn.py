"""rknn-toolkit2 (Rockchip RK3588, RK3576, RK3566/RK3568, RK3562, RV1106/RV1103, RV1126B).

Flow (``workers/rknn_worker.py``): ``RKNN(verbose=True)``, ``config(target_platform=...)``,
``load_onnx``, ``build``, ``export_rknn``. A model converts when all four return 0 and
nothing raised: the log can hold ``E`` lines on a build that succeeds, and the toolkit
catches many of its own exceptions, logs their traceback as ``E`` lines and returns -1.

Where layers run is read from the verbose "Network Layer Information Table", the only place
the toolkit says which layers it put on the CPU. When one of its graph rewrites ("fuse
rules") crashes, it suggests ``disable_rules=['<rule>']`` for ``config()``; that rule name
is kept, because it identifies the defect better than the exception does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portlint.toolchains.base import (
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
TABLE_TITLE = "Network Layer Information Table"
_PREFIX = re.compile(r"^(?:[DIWE] )?(?:RKNN: )?(?:\[[0-9:.]+\] ?)?")
_ROW = re.compile(r"^(\d+)\s+(\S+)\s+(\S+)\s+(NPU|CPU)\s+.*\s(\S+)\s*$")
_DISABLE = re.compile(r"disable_rules=\[\s*'([^']+)'")
_ERROR_LINE = re.compile(r"^E (?:RKNN: )?(?:\[[0-9:.]+\] ?)?(?:(\w+): )?(.*)$")
_EXCEPTION = re.compile(
    r"^(?:E \w+: )?([A-Za-z_][\w.]*(?:Error|Exception|Interrupt))(?::\s*(.*))?$"
)
_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+, in (\S+)')
_NODE_IN_ERROR = re.compile(r"""(?:node|layer|op)\s*[:=]?\s*['"]([^'"]+)['"]""", re.IGNORECASE)
_OP_NODE = re.compile(r"""\b[A-Z][A-Za-z0-9]*\(\s*['"]([^'"]+)['"]\s*\)""")
"""rknn names nodes as ``NonZero('y')`` in its 'need to be constant' errors."""
NOT_LAYERS = ("InputOperator", "OutputOperator")
INT8_ONLY = frozenset({"rv1106", "rv1103", "rv1103b", "rv1106b", "rk2118"})
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul"})
"""Ops of a model that was quantized before export (QDQ or QOperator form)."""


def _layers(lines: list[str], names: Mapping[str, str]) -> list[Layer]:
    """The last layer table in the log (a build prints one per compiled graph)."""
    layers: list[Layer] = []
    in_table = False
    for line in lines:
        body = _PREFIX.sub("", line)
        if TABLE_TITLE in body:
            in_table, layers = True, []
            continue
        if not in_table:
            continue
        if body.startswith(("<<<<", ">>>>", "===")) and layers:
            in_table = False
            continue
        match = _ROW.match(body)
        if not match or match.group(2) in NOT_LAYERS:
            continue
        name = match.group(5)
        node = _resolve(name, names)
        layers.append(
            Layer(
                name=name,
                op=match.group(2),
                placement=CPU if match.group(4) == "CPU" else NPU,
                onnx_node=node,
                inserted=node is None and bool(names),
            )
        )
    return layers


def _resolve(layer_name: str, names: Mapping[str, str]) -> str | None:
    """The ONNX node behind a layer name such as ``Conv:/model.0/conv/Conv`` or
    ``exSoftmax13:/model.22/dfl/Softmax_output_0#1`` (2.2.0 prefixes the op type to a tensor
    name as ``TopK_y``); None for layers the toolkit inserted itself."""
    name = layer_name.split(":", 1)[-1]
    name = re.sub(r"#\d+$", "", name)
    for candidate in (name, name.split("_", 1)[-1]):
        if candidate in names:
            return names[candidate]
    return None


def _failure(lines: list[str], result: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(error kind, one-line error): the innermost exception of the last traceback the
    toolkit logged (it wraps its own ``IndexError`` in a ``ValueError`` holding the whole
    traceback), else the worker's exception, else the first ``E`` line."""
    raised = [
        match
        for line in lines
        if (match := _EXCEPTION.match(line.strip())) and not line.startswith(("W ", "D ", "I "))
    ]
    inner = [m for m in raised if not (m.group(2) or "").startswith("Traceback")]
    if inner:
        match = inner[-1]
        kind = match.group(1).rsplit(".", 1)[-1]
        return kind, f"{kind}: {match.group(2) or ''}".strip(": ")
    exc = result.get("exception") or {}
    if exc:
        message = exc.get("message") or ""
        nested = _EXCEPTION.match(message)
        if nested:
            return nested.group(1), message
        return exc.get("type"), f"{exc.get('type')}: {message}".strip(": ")
    for line in lines:
        match = _ERROR_LINE.match(line.rstrip())
        if not line.startswith("E ") or "rknn-toolkit2 version" in line or not match:
            continue
        text = match.group(2).strip()
        if text and not text.startswith(("Traceback", "Catch exception")):
            return "error", text
    return None, None


def _raising_frame(lines: list[str]) -> dict[str, str]:
    """The toolkit's innermost frame of the last traceback: ``rules/conv.py``,
    ``_p_seperate_conv_rs_split``. Its own ``rknn_log`` wrappers are skipped."""
    frame: dict[str, str] = {}
    for line in lines:
        match = _FRAME.match(line)
        if match and "rknn_log" not in match.group(1) and "rknn_worker" not in match.group(1):
            frame = {"file": match.group(1), "function": match.group(2).rsplit(".", 1)[-1]}
    return frame


def _last_frame(lines: list[str]) -> str | None:
    """The file of the last traceback frame the log shows (the worker's own left out)."""
    last = None
    for line in lines:
        match = _FRAME.match(line)
        if match and "rknn_worker" not in match.group(1) and "site-packages" not in match.group(1):
            last = match.group(1)
    return last


def _fuse_match(lines: list[str], names: Mapping[str, str]) -> list[str]:
    """ONNX nodes of the subgraph the toolkit printed under "Show op fuse match nodes":
    by node name, else by an output tensor (the toolkit renames nodes it rewrote)."""
    found: list[str] = []
    inside = False
    section = ""
    for line in lines:
        text = line.strip()
        if "Show op fuse match nodes" in text:
            inside, found = True, []
            continue
        if not inside:
            continue
        if text.startswith(("W You can add", "E ")) or "disable_rules" in text:
            break
        if text.startswith("Op name:"):
            name = text.split(":", 1)[1].strip()
            if name in names and names[name] not in found:
                found.append(names[name])
            section = ""
        elif text in ("Input:", "Output:", "Attribute:"):
            section = text
        elif section == "Output:" and ":" in text:
            tensor = text.rsplit(" : ", 1)[0].strip()
            node = names.get(tensor)
            if node and node not in found:
                found.append(node)
    return found


def _fuse_rule(log: str, frame: Mapping[str, str]) -> str | None:
    """The fuse rule that crashed: named in the toolkit's own ``disable_rules`` hint, or by
    the frame that raised (``rules/conv.py _p_seperate_conv_rs_split``)."""
    hint = _DISABLE.findall(log)
    if hint:
        return hint[-1]
    function = frame.get("function", "")
    return function[3:] if function.startswith("_p_") else None


def parse_log(
    request: CompileRequest, log: str, result: Mapping[str, Any], onnx_names: Mapping[str, str]
) -> CompileResult:
    """``onnx_names`` maps every node name and output tensor name of the model to its node."""
    text = ANSI.sub("", log)
    lines = text.splitlines()
    steps = result.get("steps") or {}
    version = str(result.get("version") or "")
    converted = all(
        steps.get(step) == 0 for step in ("config", "load", "build", "export")
    ) and not result.get("exception")
    layers = tuple(_layers(lines, onnx_names))
    if converted:
        return CompileResult(
            "rknn",
            version,
            request.target,
            CONVERTS,
            layers=layers,
            log=log,
            details={"quantized": request.quantize},
        )
    kind, error = _failure(lines, result)
    # the log's traceback first; the worker's own record when the log was clipped
    frame = _raising_frame(lines) or (result.get("exception") or {}).get("frame") or {}
    rule = _fuse_rule(text, frame)
    stage = result.get("stage")
    # the toolkit reports the errors it detects by raising from its logger (rknn_log.e): a
    # refusal; an exception from anywhere else in its code is a crash, its own bug
    last = _last_frame(lines)
    crashed = bool(rule) or (last is not None and "rknn_log" not in last)
    outcome = CRASHED if crashed else REFUSES
    if not crashed and error and kind == "ValueError":  # the toolkit's own error message
        kind, error = "error", error.removeprefix("ValueError:").strip()
    failing = _fuse_match(lines, onnx_names) if rule else []
    for pattern in (_OP_NODE, _NODE_IN_ERROR):
        for name in pattern.findall(error or ""):
            node = onnx_names.get(name)
            if node and node not in failing:
                failing.append(node)
    details: dict[str, Any] = {"quantized": request.quantize}
    if rule:
        details["fuse_rule"] = rule
    if frame:
        details["frame"] = frame
        if rule:
            error = f"{error} in fuse rule {rule} ({frame['file']} {frame['function']})"
    return CompileResult(
        "rknn",
        version,
        request.target,
        outcome,
        stage=stage,
        error=one_line(error or "the toolkit stopped without an error line"),
        error_kind=kind,
        failing_nodes=tuple(failing),
        layers=layers,
        suggested_options={"disable_rules": [rule]} if rule else {},
        details=details,
        log=log,
    )


class Rknn(Toolchain):
    name = "rknn"
    package = "rknn-toolkit2"
    display_name = "RKNN-Toolkit2"
    install_hint = (
        "python3 -m venv ~/.venvs/rknn && ~/.venvs/rknn/bin/pip install rknn-toolkit2==2.5.0"
        "  (then --toolchain-python ~/.venvs/rknn/bin/python, or [tool.portlint.toolchains]"
        ' rknn = "~/.venvs/rknn/bin/python")'
    )
    platforms: Mapping[str, str] = {
        "rk3588": "rk3588",
        "rk3576": "rk3576",
        "rk3566": "rk3566",
        "rk3568": "rk3568",
        "rk3562": "rk3562",
        "rv1106": "rv1106",
        "rv1103": "rv1103",
        "rv1126b": "rv1126b",
    }
    worker = Path(__file__).with_name("workers") / "rknn_worker.py"
    option_names = ("disable_rules", "quantized_dtype", "quantized_method", "optimization_level")
    list_options = ("disable_rules",)

    def quantize_for(self, target: str, ops: frozenset[str] = frozenset()) -> bool:
        """rv1106/rv1103 refuse ``do_quantization=False`` for a float model; the others are
        judged in fp16, which places layers as an int8 build does and needs no calibration
        data. A model with Q/DQ nodes is quantized already: the toolkit refuses to quantize
        it again ("If a quantized model has been import, please set do_quantization =
        False"), so it is built as it is."""
        if ops & QDQ_OPS:
            return False
        return (self.platform_for(target) or "") in INT8_ONLY

    def worker_args(self, request: CompileRequest, workdir: Path) -> list[str]:
        args = [
            "--model",
            str(request.model),
            "--platform",
            request.platform,
            "--quantize",
            str(int(request.quantize)),
            "--options",
            json.dumps(dict(request.options)),
            "--input-shapes",
            json.dumps({k: list(v) for k, v in request.input_shapes.items()}),
            "--output",
            str(workdir / "model.rknn"),
        ]
        dataset = workdir / "dataset.txt"
        if request.quantize and dataset.is_file():
            args += ["--dataset", str(dataset)]
        return args

    parse = staticmethod(parse_log)

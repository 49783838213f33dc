"""Both sides of a probe in one vocabulary: reject, cpu or npu.

``check`` predicts it from the profile; the compiler's run shows it. ``reject``: the build
fails (refused or crashed). ``cpu``: it builds with the probed node on the host CPU.
``npu``: it builds with the node on the NPU (slow paths count as the NPU). ``untestable``:
the compiler gave no verdict on the NPU (timed out, or a converter in front of it failed).
"""

from __future__ import annotations

import onnx

from portlint.engine import DOES_NOT_COMPILE
from portlint.in_memory import check_in_memory
from portlint.probe.factory import NODE_NAME
from portlint.target import Target
from portlint.toolchains.base import CPU, CompileResult

REJECT, ON_CPU, ON_NPU, UNTESTABLE = "reject", "cpu", "npu", "untestable"
CLASSES = (REJECT, ON_CPU, ON_NPU)


def predicted(model: onnx.ModelProto, target: Target) -> str:
    """What ``check`` says the compiler does with the probe model."""
    report = check_in_memory(model, target)
    if report.verdict == DOES_NOT_COMPILE:
        return REJECT
    return ON_CPU if report.placement.get(NODE_NAME) == "cpu" else ON_NPU


def observed(result: CompileResult, op: str) -> str:
    """What the compiler did with the probe model: where the probed node went.

    Toolchains that name layers by ONNX node (rknn) are read by node; those that only know
    op types (Vela, behind a converter) by the probed op. A node the compiler folds away
    leaves no layer and costs the NPU nothing: it counts as the NPU.
    """
    if not result.judges_profile:
        return UNTESTABLE
    if not result.converts:
        return REJECT
    mine = [layer for layer in result.layers if layer.onnx_node == NODE_NAME]
    mine = mine or [layer for layer in result.layers if layer.onnx_op == op and not layer.inserted]
    return ON_CPU if any(layer.placement == CPU for layer in mine) else ON_NPU

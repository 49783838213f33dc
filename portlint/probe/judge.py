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
from portlint.toolchains.base import CPU, CompileResult, Layer

REJECT, ON_CPU, SLOW, ON_NPU, UNTESTABLE = "reject", "cpu", "slow", "npu", "untestable"
CLASSES = (REJECT, ON_CPU, SLOW, ON_NPU)
LABELS = {
    REJECT: "fails",
    ON_CPU: "CPU",
    SLOW: "NPU + CPU layout layers",
    ON_NPU: "NPU",
    UNTESTABLE: "no verdict",
}
"""Each class in a word or two, for tables and fact lines."""


def predicted(model: onnx.ModelProto, target: Target) -> str:
    """What ``check`` says the compiler does with the probe model."""
    report = check_in_memory(model, target)
    if report.verdict == DOES_NOT_COMPILE:
        return REJECT
    if report.placement.get(NODE_NAME) == "cpu":
        return ON_CPU
    slow = any(f.location == NODE_NAME and f.effect == SLOW for f in report.findings)
    return SLOW if slow else ON_NPU


def agrees(predicted: str, observed: str) -> bool | None:
    """Whether the compiler did what ``check`` predicts (None: no verdict to compare).

    A ``slow`` prediction is confirmed by a build that keeps the node on the NPU: a profile
    says ``slow`` where the toolchain splits a layer into several NPU layers (stride 8 ->
    Conv Conv), which a build shows only in its layer count, not per node. The other way
    round it is a contradiction: CPU layers the profile does not know about.
    """
    if observed == UNTESTABLE:
        return None
    return predicted == observed or (predicted == SLOW and observed == ON_NPU)


def probe_tensors(model: onnx.ModelProto) -> frozenset[str]:
    """The tensors the probed node reads and writes."""
    node = next(n for n in model.graph.node if n.name == NODE_NAME)
    return frozenset(filter(None, (*node.input, *node.output)))


def _caused_by(layer: Layer, tensors: frozenset[str]) -> bool:
    """A layer the toolchain inserted for one of ``tensors`` (rknn names it after the
    tensor: ``Gather:x_carried_gather`` for a Conv reading ``x_carried``)."""
    name = layer.name.split(":", 1)[-1]
    return layer.onnx_node is None and any(name.startswith(t) for t in tensors)


def cpu_layers(result: CompileResult, op: str, tensors: frozenset[str] = frozenset()) -> list[str]:
    """The CPU layers the probed node accounts for: its own, then those the toolchain
    inserted for its tensors (``tensors``: rknn lowers a MatMul on rk3566 to a Conv between
    two Transposes it runs on the CPU, and splits a dilation-32 Conv into two Gathers on its
    input and a Conv). Toolchains that name layers by ONNX node (rknn) are read by node;
    those that only know op types (Vela, behind a converter) by the probed op."""
    mine = [layer for layer in result.layers if layer.onnx_node == NODE_NAME]
    mine = mine or [layer for layer in result.layers if layer.onnx_op == op and not layer.inserted]
    inserted = [layer for layer in result.layers if _caused_by(layer, tensors)]
    return [
        f"{layer.op}:{'inserted' if layer in inserted else 'probe'}"
        for layer in (*mine, *inserted)
        if layer.placement == CPU
    ]


def observed(result: CompileResult, op: str, tensors: frozenset[str] = frozenset()) -> str:
    """What the compiler did with the probe model: where the probed node went.

    ``cpu`` when its own layer runs on the CPU; ``slow`` when it stays on the NPU but the
    toolchain adds layers of its own on the CPU for it (layout Transposes, Gathers: the op
    works, slower); ``npu`` otherwise. A node the compiler folds away leaves no layer and
    costs the NPU nothing: NPU.
    """
    if not result.judges_profile:
        return UNTESTABLE
    if not result.converts:
        return REJECT
    on_cpu = cpu_layers(result, op, tensors)
    if any(name.endswith(":probe") for name in on_cpu):
        return ON_CPU
    return SLOW if on_cpu else ON_NPU

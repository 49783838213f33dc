"""Both sides of a probe in one vocabulary: reject, cpu or npu.

``check`` predicts it from the profile; the compiler's run shows it. ``reject``: the build
fails (refused or crashed). ``cpu``: it builds with the probed node on the host CPU.
``npu``: it builds with the node on the NPU (slow paths count as the NPU). ``untestable``:
the compiler gave no verdict on the NPU (timed out, or a converter in front of it failed).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from portlint.engine import DOES_NOT_COMPILE
from portlint.in_memory import check_in_memory
from portlint.probe.parts import NODE_NAME, is_probed
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


@dataclass(frozen=True)
class Probed:
    """What a probe model probes: one node named ``probe``, or a block's ``probe.<role>``
    nodes, with their op types and the tensors they read and write."""

    nodes: frozenset[str]
    ops: frozenset[str]
    tensors: frozenset[str] = frozenset()

    @classmethod
    def of(cls, model: onnx.ModelProto) -> Probed:
        mine = [n for n in model.graph.node if is_probed(n.name)]
        return cls(
            frozenset(n.name for n in mine),
            frozenset(n.op_type for n in mine),
            frozenset(filter(None, (t for n in mine for t in (*n.input, *n.output)))),
        )

    @classmethod
    def op(cls, op: str, tensors: frozenset[str] = frozenset()) -> Probed:
        """The single node ``probe`` of type ``op``."""
        return cls(frozenset({NODE_NAME}), frozenset({op}), tensors)

    @property
    def block(self) -> bool:
        return self.nodes != {NODE_NAME}


def prediction(model: onnx.ModelProto, target: Target) -> tuple[str, bool]:
    """What ``check`` says the compiler does with the probe model (with a block: the worst
    of its nodes), and whether a predicted rejection comes only from limits the device's
    runtime enforces (``enforced_by: runtime``), which a converter cannot confirm."""
    report = check_in_memory(model, target)
    if report.verdict == DOES_NOT_COMPILE:
        rejecting = [f for f in report.findings if f.effect == REJECT]
        return REJECT, bool(rejecting) and all(f.enforced_by == "runtime" for f in rejecting)
    if any(is_probed(name) and where == "cpu" for name, where in report.placement.items()):
        return ON_CPU, False
    slow = any(is_probed(f.location or "") and f.effect == SLOW for f in report.findings)
    return (SLOW if slow else ON_NPU), False


def predicted(model: onnx.ModelProto, target: Target) -> str:
    """What ``check`` says the compiler does with the probe model."""
    return prediction(model, target)[0]


def agrees(predicted: str, observed: str, runtime: bool = False) -> bool | None:
    """Whether the compiler did what ``check`` predicts (None: no verdict to compare).

    A ``slow`` prediction is confirmed by a build that keeps the node on the NPU: a profile
    says ``slow`` where the toolchain splits a layer into several NPU layers (stride 8 ->
    Conv Conv), which a build shows only in its layer count, not per node. The other way
    round it is a contradiction: CPU layers the profile does not know about.

    ``runtime``: the probe tests a limit the device's runtime enforces (``enforced_by:
    runtime``); a converter that builds the violating model says nothing about it.
    """
    if observed == UNTESTABLE:
        return None
    if runtime and predicted == REJECT and observed != REJECT:
        return None
    return predicted == observed or (predicted == SLOW and observed == ON_NPU)


def _caused_by(layer: Layer, tensors: frozenset[str]) -> bool:
    """A layer the toolchain inserted for one of ``tensors`` (rknn names it after the
    tensor: ``Gather:x_carried_gather`` for a Conv reading ``x_carried``)."""
    name = layer.name.split(":", 1)[-1]
    return layer.onnx_node is None and any(name.startswith(t) for t in tensors)


def _own(result: CompileResult, probed: Probed) -> list[Layer]:
    """The layers of the probed node(s).

    A toolchain that names its layers after ONNX nodes (rknn) is read by node, then by the
    probed op types. One that only knows op types, behind a converter (Vela after onnx2tf),
    cannot say which layer came from which node, and a converter may turn an op into other
    ops (Erf into a CUSTOM op, Div by a constant into MUL, LayerNorm into several): there
    every layer of the probe model counts but the converter's own (QUANTIZE/DEQUANTIZE
    wrappers) and the Relu carriers.
    """
    if any(layer.onnx_node for layer in result.layers):
        mine = [layer for layer in result.layers if layer.onnx_node in probed.nodes]
        return mine or [
            layer for layer in result.layers if layer.onnx_op in probed.ops and not layer.inserted
        ]
    carrier = "Relu" not in probed.ops
    return [
        layer
        for layer in result.layers
        if not layer.inserted and not (carrier and layer.onnx_op == "Relu")
    ]


def cpu_layers(result: CompileResult, probed: Probed) -> list[str]:
    """The CPU layers the probed node accounts for: its own, then those the toolchain
    inserted for its tensors (rknn lowers a MatMul on rk3566 to a Conv between two
    Transposes it runs on the CPU, and splits a dilation-32 Conv into two Gathers on its
    input and a Conv)."""
    mine = _own(result, probed)
    inserted = [layer for layer in result.layers if _caused_by(layer, probed.tensors)]
    return [
        f"{layer.op}:{'inserted' if layer in inserted else 'probe'}"
        for layer in (*mine, *inserted)
        if layer.placement == CPU
    ]


def observed(result: CompileResult, probed: Probed) -> str:
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
    on_cpu = cpu_layers(result, probed)
    if any(name.endswith(":probe") for name in on_cpu):
        return ON_CPU
    return SLOW if on_cpu else ON_NPU

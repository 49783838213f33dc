"""Multi-node patterns that toolchains recognise as one layer.

Exporters write SiLU as ``Mul(x, Sigmoid(x))`` and HardSwish as ``Mul(x, HardSigmoid(x))``.
A toolchain that supports SiLU fuses the pair, so judging the two halves separately reports
the wrong thing. Rules see the pattern name on both member nodes and judge it as one.
"""

from __future__ import annotations

import onnx

HARD_SWISH_ALPHA = 1.0 / 6.0
HARD_SWISH_BETA = 0.5


def _hard_sigmoid_is_hardswish_gate(node: onnx.NodeProto) -> bool:
    attrs = {a.name: a.f for a in node.attribute}
    alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
    return abs(alpha - HARD_SWISH_ALPHA) < 1e-4 and abs(beta - HARD_SWISH_BETA) < 1e-6


PATTERN_NAMES = ("SiLU", "HardSwish", "GeluErf")
"""Pattern names a profile may list under ``patterns`` (or ``ops``)."""

GATES = {
    "Sigmoid": ("SiLU", lambda node: True),
    "HardSigmoid": ("HardSwish", _hard_sigmoid_is_hardswish_gate),
}


def find_patterns(nodes: list[onnx.NodeProto]) -> dict[int, str]:
    """Map node index -> pattern name for every node that belongs to a recognised pattern."""
    producer = {out: i for i, n in enumerate(nodes) for out in n.output}
    uses: dict[str, int] = {}
    for node in nodes:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    found = _gates(nodes, producer, uses)
    found.update(_gelu_erf(nodes, producer, uses))
    return found


def _gates(
    nodes: list[onnx.NodeProto], producer: dict[str, int], uses: dict[str, int]
) -> dict[int, str]:
    """``Mul(x, Gate(x))`` where the gate feeds only that Mul: SiLU and HardSwish."""
    found: dict[int, str] = {}
    for i, node in enumerate(nodes):
        if node.op_type != "Mul" or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            continue
        for gate_input, other in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
            gate_index = producer.get(gate_input)
            if gate_index is None:
                continue
            gate = nodes[gate_index]
            match = GATES.get(gate.op_type)
            sole_use = uses.get(gate_input, 0) == 1
            if match and sole_use and gate.input and gate.input[0] == other and match[1](gate):
                found[i] = found[gate_index] = match[0]
                break
    return found


def _sole_consumer(
    nodes: list[onnx.NodeProto], tensor: str, op_type: str, uses: dict[str, int]
) -> int | None:
    if uses.get(tensor, 0) != 1:
        return None
    for i, node in enumerate(nodes):
        if tensor in node.input:
            return i if node.op_type == op_type else None
    return None


def _gelu_erf(
    nodes: list[onnx.NodeProto], producer: dict[str, int], uses: dict[str, int]
) -> dict[int, str]:
    """GELU as exporters write it: ``x * 0.5 * (1 + Erf(x / sqrt(2)))``, in either Mul order.

    Matched structurally (Div|Mul -> Erf -> Add -> Mul [-> Mul]) with the scaled input and the
    outer Mul reading the same ``x``; constant values are not compared, which is enough to
    tell a GELU block from anything else an exporter writes around an Erf.
    """
    found: dict[int, str] = {}
    for i, node in enumerate(nodes):
        if node.op_type != "Erf" or not node.input:
            continue
        scale = producer.get(node.input[0])
        if scale is None or nodes[scale].op_type not in ("Div", "Mul"):
            continue
        x = nodes[scale].input[0]
        add = _sole_consumer(nodes, node.output[0], "Add", uses)
        if add is None:
            continue
        mul = _sole_consumer(nodes, nodes[add].output[0], "Mul", uses)
        if mul is None:
            continue
        members = [scale, i, add, mul]
        outer = mul
        if x not in nodes[mul].input:
            half = producer.get(
                next((n for n in nodes[mul].input if n != nodes[add].output[0]), "")
            )
            if half is None or nodes[half].op_type != "Mul" or x not in nodes[half].input:
                continue
            members.append(half)
        else:
            follow = _sole_consumer(nodes, nodes[outer].output[0], "Mul", uses)
            if follow is not None and all(
                n == nodes[outer].output[0] or _is_constant(n, nodes, producer)
                for n in nodes[follow].input
            ):
                members.append(follow)
        found.update(dict.fromkeys(members, "GeluErf"))
    return found


def _is_constant(tensor: str, nodes: list[onnx.NodeProto], producer: dict[str, int]) -> bool:
    """An initializer (no producer) or the output of a Constant node."""
    index = producer.get(tensor)
    return index is None or nodes[index].op_type == "Constant"

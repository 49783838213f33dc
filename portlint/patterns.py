"""Multi-node patterns that toolchains recognise as one layer.

Exporters write SiLU as ``Mul(x, Sigmoid(x))`` and HardSwish as ``Mul(x, HardSigmoid(x))``.
A toolchain that supports SiLU fuses the pair, so judging the two halves separately reports
the wrong thing. Rules see the pattern name on both member nodes and judge it as one.
"""

from __future__ import annotations

import onnx

from portlint.model_io import NodeTable

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


def find_patterns(nodes: list[onnx.NodeProto], table: NodeTable | None = None) -> dict[int, str]:
    """Map node index -> pattern name for every node that belongs to a recognised pattern.

    ``table``: the same nodes as plain data, when the caller has read them already.
    """
    table = table or NodeTable.of(nodes)
    producer = {out: i for i, outputs in enumerate(table.outputs) for out in outputs}
    uses: dict[str, int] = {}
    first_use: dict[str, int] = {}
    for i, inputs in enumerate(table.inputs):
        for name in inputs:
            uses[name] = uses.get(name, 0) + 1
            first_use.setdefault(name, i)
    graph = _Graph(nodes, table, producer, uses, first_use)
    found = _gates(graph)
    found.update(_gelu_erf(graph))
    return found


class _Graph:
    """The nodes plus the indices the matchers look things up in."""

    def __init__(
        self,
        nodes: list[onnx.NodeProto],
        table: NodeTable,
        producer: dict[str, int],
        uses: dict[str, int],
        first_use: dict[str, int],
    ):
        self.nodes, self.ops, self.inputs, self.outputs = (
            nodes,
            table.ops,
            table.inputs,
            table.outputs,
        )
        self.domains = table.domains
        self.producer, self.uses, self.first_use = producer, uses, first_use

    def sole_consumer(self, tensor: str, op_type: str) -> int | None:
        """The one node reading ``tensor``, if it is an ``op_type``."""
        if self.uses.get(tensor, 0) != 1:
            return None
        index = self.first_use[tensor]
        return index if self.ops[index] == op_type else None

    def is_constant(self, tensor: str) -> bool:
        """An initializer (no producer) or the output of a Constant node."""
        index = self.producer.get(tensor)
        return index is None or self.ops[index] == "Constant"


def _gates(g: _Graph) -> dict[int, str]:
    """``Mul(x, Gate(x))`` where the gate feeds only that Mul: SiLU and HardSwish."""
    found: dict[int, str] = {}
    for i, op in enumerate(g.ops):
        inputs = g.inputs[i]
        if op != "Mul" or g.domains[i] not in ("", "ai.onnx") or len(inputs) != 2:
            continue
        for gate_input, other in ((inputs[0], inputs[1]), (inputs[1], inputs[0])):
            gate_index = g.producer.get(gate_input)
            if gate_index is None:
                continue
            match = GATES.get(g.ops[gate_index])
            sole_use = g.uses.get(gate_input, 0) == 1
            gate_inputs = g.inputs[gate_index]
            if (
                match
                and sole_use
                and gate_inputs
                and gate_inputs[0] == other
                and match[1](g.nodes[gate_index])
            ):
                found[i] = found[gate_index] = match[0]
                break
    return found


def _gelu_erf(g: _Graph) -> dict[int, str]:
    """GELU as exporters write it: ``x * 0.5 * (1 + Erf(x / sqrt(2)))``, in either Mul order.

    Matched structurally (Div|Mul -> Erf -> Add -> Mul [-> Mul]) with the scaled input and the
    outer Mul reading the same ``x``; constant values are not compared, which is enough to
    tell a GELU block from anything else an exporter writes around an Erf.
    """
    found: dict[int, str] = {}
    ops, inputs, outputs = g.ops, g.inputs, g.outputs
    for i, op in enumerate(ops):
        if op != "Erf" or not inputs[i]:
            continue
        scale = g.producer.get(inputs[i][0])
        if scale is None or ops[scale] not in ("Div", "Mul"):
            continue
        x = inputs[scale][0]
        add = g.sole_consumer(outputs[i][0], "Add")
        if add is None:
            continue
        mul = g.sole_consumer(outputs[add][0], "Mul")
        if mul is None:
            continue
        members = [scale, i, add, mul]
        outer = mul
        if x not in inputs[mul]:
            half = g.producer.get(next((n for n in inputs[mul] if n != outputs[add][0]), ""))
            if half is None or ops[half] != "Mul" or x not in inputs[half]:
                continue
            members.append(half)
        else:
            follow = g.sole_consumer(outputs[outer][0], "Mul")
            if follow is not None and all(
                n == outputs[outer][0] or g.is_constant(n) for n in inputs[follow]
            ):
                members.append(follow)
        found.update(dict.fromkeys(members, "GeluErf"))
    return found

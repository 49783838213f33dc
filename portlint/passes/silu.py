"""silu-to-relu and silu-to-hardswish: swap SiLU for an activation the NPU has.

Many NPUs lack SiLU (x·sigmoid(x)) or run its Sigmoid half on a lookup table or on the CPU.
ReLU is native everywhere; HardSwish (x·relu6(x+3)/6) is much closer to SiLU where the
target has it. Either way the numbers change: the weights were trained for SiLU, so the
model must be fine-tuned or retrained after this pass. The deviation is measured and shown.
"""

from __future__ import annotations

from portlint.passes import Pass, PassContext, PassResult, Semantics, register
from portlint.passes.surgery import default_opset, to_graph, to_model, unique_name
from portlint.patterns import HARD_SWISH_ALPHA, HARD_SWISH_BETA

SILU_OPS = ("SiLU", "Silu", "Swish")
RETRAIN = "the model's numbers change: fine-tune or retrain it before deployment"


def _silus(graph) -> list[tuple[object, object, list]]:
    """(x, y, nodes) for each SiLU: Mul(x, Sigmoid(x)) with a private Sigmoid, or a SiLU op."""
    found = []
    for node in graph.nodes:
        if node.op in SILU_OPS and float(node.attrs.get("alpha", 1.0)) == 1.0:
            found.append((node.inputs[0], node.outputs[0], [node]))
        if node.op != "Mul" or len(node.inputs) != 2:
            continue
        for gate_out, x in ((node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])):
            gate = gate_out.inputs[0] if len(gate_out.inputs) == 1 else None
            private = len(gate_out.outputs) == 1  # the Sigmoid feeds only this Mul
            if gate is not None and gate.op == "Sigmoid" and gate.inputs[0] is x and private:
                found.append((x, node.outputs[0], [node, gate]))
                break
    return found


def _replace(graph, x, y, nodes, build) -> None:
    for node in nodes:
        node.outputs.clear()
    build(graph, x, y)


def _relu(graph, x, y) -> None:
    graph.layer(op="Relu", name=unique_name(graph, f"{y.name}/relu"), inputs=[x], outputs=[y])


def _hardswish_op(graph, x, y) -> None:
    graph.layer(
        op="HardSwish", name=unique_name(graph, f"{y.name}/hardswish"), inputs=[x], outputs=[y]
    )


def _hardswish_gate(graph, x, y) -> None:
    """x * HardSigmoid(x; 1/6, 0.5): HardSwish for opsets before 14."""
    gate = graph.layer(
        op="HardSigmoid",
        name=unique_name(graph, f"{y.name}/hardsigmoid"),
        inputs=[x],
        outputs=[unique_name(graph, f"{y.name}/hardsigmoid_out")],
        attrs={"alpha": HARD_SWISH_ALPHA, "beta": HARD_SWISH_BETA},
    )
    graph.layer(op="Mul", name=unique_name(graph, f"{y.name}/mul"), inputs=[x, *gate], outputs=[y])


def _hardswish_builder(ctx: PassContext):
    """HardSwish as one op where the opset and target have it, else x*HardSigmoid(x)."""
    opset = default_opset(ctx.model)
    if opset >= 14 and ctx.target.runs_on_npu("HardSwish"):
        return _hardswish_op, None
    if ctx.target.runs_on_npu("HardSigmoid") or ctx.target.runs_on_npu("HardSwish"):
        return _hardswish_gate, None
    return None, f"{ctx.target.name} lists neither HardSwish nor HardSigmoid: use silu-to-relu"


def _rewrite(ctx: PassContext, build, label: str) -> PassResult:
    graph = to_graph(ctx.model)
    silus = _silus(graph)
    if not silus:
        return PassResult(ctx.model)
    for x, y, nodes in silus:
        _replace(graph, x, y, nodes, build)
    changes = [f"{len(silus)} SiLU activation(s) -> {label}; {RETRAIN}"]
    return PassResult(to_model(graph, ctx.model), changes)


def run_relu(ctx: PassContext) -> PassResult:
    return _rewrite(ctx, _relu, "ReLU")


def run_hardswish(ctx: PassContext) -> PassResult:
    build, problem = _hardswish_builder(ctx)
    if build is None:
        return PassResult(ctx.model, skipped=[problem])
    return _rewrite(ctx, build, "HardSwish")


def wanted(ctx: PassContext) -> str | None:
    count = len(_silus(to_graph(ctx.model)))
    return f"{count} SiLU activation(s)" if count else None


for name, summary, run in (
    ("silu-to-relu", "Replace SiLU (x*sigmoid(x)) with ReLU; needs fine-tuning.", run_relu),
    (
        "silu-to-hardswish",
        "Replace SiLU with HardSwish (closer than ReLU); needs fine-tuning.",
        run_hardswish,
    ),
):
    register(
        Pass(
            name=name,
            summary=summary,
            semantics=Semantics.APPROXIMATE,
            resolves=("PL101", "PL102", "PL107"),
            run=run,
            wanted=wanted,
            why=__doc__.split("\n\n", 1)[1].strip(),
            edits_in_place=False,
        )
    )

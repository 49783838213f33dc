"""simplify: fold constant subgraphs with onnxsim and drop Identity and Dropout nodes.

Exporters leave shape arithmetic (Shape, Gather, Concat, Unsqueeze) that is constant once
shapes are static; vendor parsers choke on it or place it on the CPU. onnxsim folds it with
onnxruntime; Identity and inference-mode Dropout nodes are then bypassed. onnxsim's other
optimizations are not run: they rewrite the graph (MatMul+Add on 3-D tensors into
Reshape → Gemm → Reshape, a constant Mul moved into the next Conv, merged Slices), and
rknn-toolkit2 2.5.0 put 9, 10 and 2 of the Reshapes that rewrite left in timm's coatnet_0,
fastvit_t8 and mobilevit_xxs on the CPU, where the same exports folded and nothing else ran
entirely on the NPU. onnxsim cannot handle models beyond the 2 GB protobuf limit, so those
are skipped with a note rather than half-simplified.
"""

from __future__ import annotations

from typing import Any

import onnx

from portlint.errors import first_line
from portlint.in_memory import view_of
from portlint.model_io import loaded
from portlint.model_io.loaded import PROTOBUF_LIMIT, copy_model
from portlint.model_io.weightless import gigabytes, model_size
from portlint.passes.base import PassContext, PassResult, Rewrite
from portlint.passes.surgery import constant_value, keep_model_fields, to_graph, to_model

NOOP_OPS = ("Identity", "Dropout")


def wanted(ctx: PassContext) -> str | None:
    view = view_of(ctx.model, ctx.input_shapes)
    folded = sum(1 for n in view.nodes if n.folded and n.op_type != "Constant")
    noops = sum(1 for n in view.nodes if n.op_type in NOOP_OPS)
    parts = [f"{folded} node(s) fold to constants"] if folded else []
    parts += [f"{noops} Identity/Dropout node(s)"] if noops else []
    return "; ".join(parts) or None


def _without_noops(model: onnx.ModelProto) -> onnx.ModelProto:
    """Identity and inference-mode Dropout bypassed: their consumers read what they read. One
    that writes a graph output hands the output's name to the node before it, so the
    model's interface keeps its names; one between a graph input and output stays."""
    import onnx_graphsurgeon as gs

    graph = to_graph(model)
    bypassed = 0
    for node in [n for n in graph.nodes if n.op in NOOP_OPS]:
        if not _is_noop(node):
            continue
        source, result = node.inputs[0], node.outputs[0]
        named = result in graph.outputs  # the producer of ``source`` takes the output's name
        producer = source.inputs[0] if source.inputs else None
        if named and (
            producer is None or isinstance(source, gs.Constant) or source in graph.outputs
        ):
            continue
        old, new = (source, result) if named else (result, source)
        readers = [c for c in old.outputs if c is not node]
        node.inputs.clear()
        node.outputs.clear()
        if named:
            producer.outputs[producer.outputs.index(source)] = result
        for reader in readers:
            reader.inputs[reader.inputs.index(old)] = new
        bypassed += 1
    if not bypassed:  # graphsurgeon's export would reorder what it did not change
        return model
    return to_model(graph, model)


def _is_noop(node: Any) -> bool:
    """An Identity, or a Dropout whose mask nobody reads and that is not set to train."""
    if not node.inputs or not node.outputs:
        return False
    if node.op == "Identity":
        return True
    if len(node.outputs) > 1 and node.outputs[1].outputs:
        return False
    training = node.inputs[2] if len(node.inputs) > 2 else None
    if training is None or not training.name:
        return True  # training_mode defaults to false
    values = constant_value(training)
    return values is not None and not bool(values)


def _same_graph(graph: onnx.GraphProto, other: onnx.GraphProto) -> bool:
    """Equal but for value_info and the order of nodes and initializers: onnxsim annotates
    shapes and may reorder nodes even when it simplifies nothing, and that alone is no change
    (``fix`` on its own output must change nothing)."""
    unordered = ("node", "initializer", "value_info")

    def fields(g: onnx.GraphProto) -> list:
        return [(f.name, value) for f, value in g.ListFields() if f.name not in unordered]

    def nodes(g: onnx.GraphProto) -> list[bytes]:
        return sorted(node.SerializeToString(deterministic=True) for node in g.node)

    def initializers(g: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
        return {tensor.name: tensor for tensor in g.initializer}

    return (
        fields(graph) == fields(other)
        and nodes(graph) == nodes(other)
        and initializers(graph) == initializers(other)
    )


def run(ctx: PassContext) -> PassResult:
    size = model_size(ctx.model)  # PROTOBUF_LIMIT here too: a test lowers it for this pass
    if size >= min(PROTOBUF_LIMIT, loaded.PROTOBUF_LIMIT):
        reason = f"model exceeds the 2 GB protobuf limit onnxsim needs ({gigabytes(size)})"
        return PassResult(ctx.model, skipped=[reason])
    import onnxsim

    before = len(ctx.model.graph.node)
    given = copy_model(ctx.model)  # onnxsim's own: fix hands this pass its current model
    try:
        simplified, _ = onnxsim.simplify(given, check_n=0, perform_optimization=False)
    except Exception as exc:  # onnxsim raises bare RuntimeErrors from C++
        reason = f"onnxsim could not simplify the model: {first_line(exc)}"
        return PassResult(ctx.model, skipped=[reason])
    keep_model_fields(simplified, ctx.model)
    if any(node.op_type in NOOP_OPS for node in simplified.graph.node):
        simplified = _without_noops(simplified)
    after = len(simplified.graph.node)
    if after == before and _same_graph(simplified.graph, ctx.model.graph):
        return PassResult(ctx.model)
    return PassResult(simplified, [f"{before} -> {after} nodes (constants folded, no-ops removed)"])


REWRITE = Rewrite(run, wanted)

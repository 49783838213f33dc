"""simplify: fold constant subgraphs and drop no-op nodes with onnxsim.

Exporters leave shape arithmetic (Shape, Gather, Concat, Unsqueeze) that is constant once
shapes are static; vendor parsers choke on it or place it on the CPU. onnxsim folds it with
onnxruntime and removes identities. It cannot handle models beyond the 2 GB protobuf limit,
so those are skipped with a note rather than half-simplified.
"""

from __future__ import annotations

import onnx

from portlint.errors import first_line
from portlint.in_memory import view_of
from portlint.model_io import loaded
from portlint.model_io.loaded import PROTOBUF_LIMIT, copy_model
from portlint.model_io.weightless import gigabytes, model_size
from portlint.passes.base import PassContext, PassResult, Rewrite
from portlint.passes.surgery import keep_model_fields

NOOP_OPS = ("Identity", "Dropout")


def wanted(ctx: PassContext) -> str | None:
    view = view_of(ctx.model, ctx.input_shapes)
    folded = sum(1 for n in view.nodes if n.folded and n.op_type != "Constant")
    noops = sum(1 for n in view.nodes if n.op_type in NOOP_OPS)
    parts = [f"{folded} node(s) fold to constants"] if folded else []
    parts += [f"{noops} Identity/Dropout node(s)"] if noops else []
    return "; ".join(parts) or None


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
        simplified, _ = onnxsim.simplify(given, check_n=0, perform_optimization=True)
    except Exception as exc:  # onnxsim raises bare RuntimeErrors from C++
        reason = f"onnxsim could not simplify the model: {first_line(exc)}"
        return PassResult(ctx.model, skipped=[reason])
    keep_model_fields(simplified, ctx.model)
    after = len(simplified.graph.node)
    if after == before and _same_graph(simplified.graph, ctx.model.graph):
        return PassResult(ctx.model)
    return PassResult(simplified, [f"{before} -> {after} nodes (constants folded, no-ops removed)"])


REWRITE = Rewrite(run, wanted)

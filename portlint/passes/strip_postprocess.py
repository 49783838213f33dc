"""strip-postprocess: end the model at its head outputs and hand the decode/NMS tail to the host.

This is what the vendors' detector recipes do (RKNN's YOLOv5/YOLOv8 exports, the Hailo Model
Zoo's end nodes): the NPU runs the network up to the head Convs, the host runs sigmoid, DFL,
box decode and NMS, which NPUs run slowly, badly quantized or not at all. The cut changes
the model's outputs, so the removed tail is returned as a model of its own:
tail(head(x)) equals the original model's outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import onnx

from portlint.checks.postprocess import off_npu, worth_cutting
from portlint.errors import PortlintError, suggest
from portlint.graph_view import GraphView, build_view
from portlint.model_io.loaded import LoadedModel
from portlint.model_io.weightless import light_loaded
from portlint.pass_catalog import pass_info
from portlint.passes.base import PassContext, PassResult, Rewrite
from portlint.passes.surgery import keep_model_fields
from portlint.postprocess import count_ops, find_tail, is_postprocess_op, quoted

RULES = pass_info("strip-postprocess").resolves


def _inspect(model: onnx.ModelProto) -> tuple[LoadedModel, GraphView]:
    """The shape-inferred light copy (for the cut tensors' types) and its view."""
    prepared = light_loaded(model)  # without copying the weights
    return prepared, build_view(prepared)


def _requested(option: Any) -> list[str]:
    items = option.split(",") if isinstance(option, str) else list(option or ())
    return list(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


def _resolve_cuts(view: GraphView, names: list[str]) -> list[str]:
    """Tensor names for the ``cut`` option; a node name stands for its outputs."""
    nodes = {n.name: n for n in view.nodes}
    graph_inputs = {t.name for t in view.graph_inputs}
    cuts: list[str] = []
    for name in names:
        if view.producer(name) is None and name not in graph_inputs and name in nodes:
            tensors = [t for t in nodes[name].outputs if t]
        else:
            tensors = [name]
        for tensor in tensors:
            if tensor in graph_inputs:
                raise PortlintError(f"cannot cut at {tensor!r}: it is a graph input")
            if view.producer(tensor) is None and view.tensor(tensor) is None:
                raise suggest(tensor, [*view.tensors, *nodes], "cut point (tensor or node)")
            if view.is_constant(tensor):
                raise PortlintError(f"cannot cut at {tensor!r}: it is a constant")
        cuts.extend(t for t in tensors if t not in cuts)
    return cuts


def _value_infos(loaded: LoadedModel) -> dict[str, onnx.ValueInfoProto]:
    graph = loaded.model.graph
    return {v.name: v for v in [*graph.value_info, *graph.input, *graph.output]}


def _cut_infos(loaded: LoadedModel, cuts: list[str]) -> list[onnx.ValueInfoProto]:
    """The cut tensors' dtype and shape, as the head's outputs and the tail's inputs."""
    infos = _value_infos(loaded)
    for name in cuts:
        if name not in infos or not infos[name].type.tensor_type.elem_type:
            failed = loaded.inference_error
            reason = f" (shape inference failed: {failed})" if failed else ""
            raise PortlintError(f"cannot cut at {name!r}: its dtype is unknown{reason}")
    return [infos[name] for name in cuts]


def _reads(node: onnx.NodeProto) -> Iterator[str]:
    """Names a node reads, including outer-scope names used inside If/Loop/Scan bodies."""
    yield from filter(None, node.input)
    for attr in node.attribute:
        for graph in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
            for inner in graph.node:
                yield from _reads(inner)


def _reachable(graph: onnx.GraphProto, outputs: list[str], stop: set[str]) -> list[int]:
    """Indices of the nodes needed for ``outputs`` when ``stop`` tensors are given."""
    producer = {name: i for i, node in enumerate(graph.node) for name in node.output if name}
    keep: set[int] = set()
    pending = list(outputs)
    while pending:
        name = pending.pop()
        index = producer.get(name)
        if name in stop or index is None or index in keep:
            continue
        keep.add(index)
        pending.extend(_reads(graph.node[index]))
    return sorted(keep)


def _extract(
    model: onnx.ModelProto,
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    keep: list[int],
    required: int = 0,
) -> onnx.ModelProto:
    """The sub-model of nodes ``keep``; the first ``required`` inputs stay even if unread."""
    graph = model.graph
    nodes = [graph.node[i] for i in keep]
    read = {name for node in nodes for name in _reads(node)} | {o.name for o in outputs}
    used = [v for i, v in enumerate(inputs) if i < required or v.name in read]
    boundary = {v.name for v in [*used, *outputs]}
    sub = onnx.helper.make_graph(
        nodes,
        graph.name,
        used,
        outputs,
        initializer=[t for t in graph.initializer if t.name in read],
        value_info=[v for v in graph.value_info if v.name in read and v.name not in boundary],
    )
    result = onnx.helper.make_model(sub, opset_imports=list(model.opset_import))
    keep_model_fields(result, model)
    return result


def split(
    model: onnx.ModelProto, view: GraphView, cut_infos: list[onnx.ValueInfoProto]
) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(head, tail): inputs -> cut tensors, and cut tensors (+ graph inputs) -> outputs.

    Original outputs that do not depend on a cut stay head outputs too, and the tail passes
    them through, so that tail(head(x)) has every original output.
    """
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    input_names = {v.name for v in inputs}
    after = _after(graph, [v.name for v in cut_infos])
    boundary = [*cut_infos, *(o for o in graph.output if o.name not in after)]
    names = [v.name for v in boundary]
    head_nodes = _reachable(graph, names, input_names)
    tail_nodes = _reachable(graph, [o.name for o in graph.output], {*names, *input_names})
    if not tail_nodes:
        raise PortlintError(
            f"the cut at {quoted([v.name for v in cut_infos])} removes nothing: no node "
            "lies between it and the graph outputs"
        )
    missing = _missing_cut(view, after, tail_nodes)
    if missing is not None:
        raise PortlintError(
            f"the cut at {quoted([v.name for v in cut_infos])} misses a path: the tail also "
            f"needs {missing!r}, which the network computes; add it to cut"
        )
    head = _extract(model, inputs, boundary, head_nodes)
    tail = _extract(model, [*boundary, *inputs], list(graph.output), tail_nodes, len(boundary))
    return head, tail


def _after(graph: onnx.GraphProto, cuts: list[str]) -> set[str]:
    """The cut tensors and every tensor computed from them."""
    after = set(cuts)
    for node in graph.node:
        if any(name in after for name in _reads(node)):
            after.update(node.output)
    return after


def _missing_cut(view: GraphView, after: set[str], tail_nodes: list[int]) -> str | None:
    """A tensor the network computes that the tail needs but the cut does not provide.

    Post-processing ops on graph inputs or constants may run in the tail (an image size
    input, say); network work (a Conv, or anything computed from one) must not.
    """
    network: set[str] = set()
    for index in tail_nodes:
        node = view.nodes[index]
        if any(name in after for name in node.outputs):
            missing = [name for name in node.inputs if name in network]
            if missing:
                return missing[0]
        elif not node.folded and (
            not is_postprocess_op(node, view) or any(name in network for name in node.inputs)
        ):
            network.update(node.outputs)
    return None


def run(ctx: PassContext) -> PassResult:
    model = ctx.model
    loaded, view = _inspect(model)
    requested = _requested(ctx.options.get("cut"))
    tail = None if requested else find_tail(view)
    if not requested and tail is None:
        return PassResult(model)
    cuts = _resolve_cuts(view, requested) if tail is None else list(tail.cuts)
    head, tail_model = split(model, view, _cut_infos(loaded, cuts))
    where = f"after {tail.head_label()}" if tail else "where requested"
    what = f"{tail.kind} ({', '.join(tail.signals)})" if tail else "tail"
    kept = [o.name for o in head.graph.output if o.name not in cuts]
    also = f" (and keeps its outputs {quoted(kept)})" if kept else ""
    change = (
        f"cut {where}: the model now ends at {quoted(cuts)}{also}; the "
        f"{len(tail_model.graph.node)}-node {what} moves to the tail model for the host"
    )
    return PassResult(head, [change], tail=tail_model)


def wanted(ctx: PassContext) -> str | None:
    """Whenever PL108 would fire: a detector's tail, or a top-k the target runs off the NPU."""
    requested = _requested(ctx.options.get("cut"))
    if requested:
        return f"cut requested at {quoted(requested)}"
    view = _inspect(ctx.model)[1]
    tail = find_tail(view)
    if tail is None:
        return None
    if tail.detector:
        return f"{tail.describe()}: NPU toolchains expect the model to end at the head outputs"
    off = off_npu(tail, view, ctx.target)
    if not worth_cutting(tail, off):
        return None
    return f"{tail.describe()}: {ctx.target.name} does not run {count_ops(off)} on the NPU"


REWRITE = Rewrite(run, wanted)

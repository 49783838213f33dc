"""Graph patterns that some compiler version is known to fail on, declared once.

A profile's ``defects`` entry names one of these patterns; the ``toolchain_defect`` check
finds it in the model and reports it for the toolchain versions the profile says fail. Each
matcher is pure (the graph view in, the matches out) and says in words what it looks for,
for the generated docs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from portlint.graph_view import GraphView, NodeView
from portlint.pattern_catalog import DEFECT_PATTERNS as DESCRIPTIONS
from portlint.pattern_catalog import check_implemented
from portlint.postprocess import is_dfl_conv

RESHAPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})


@dataclass(frozen=True)
class Match:
    """One occurrence: the node a finding is reported on, and every node of the pattern."""

    anchor: str
    op_type: str
    nodes: tuple[str, ...]
    shape: str  # the op sequence in words: "Conv → Reshape → 2 × Slice"


@dataclass(frozen=True)
class DefectPattern:
    name: str
    description: str
    find: Callable[[GraphView], list[Match]]


def _through_reshapes(view: GraphView, tensor: str) -> tuple[list[NodeView], list[NodeView]]:
    """(the reshapes passed, the first non-reshape consumers) from ``tensor`` onwards."""
    passed: list[NodeView] = []
    consumers = view.consumers(tensor)
    while len(consumers) == 1 and consumers[0].op_type in RESHAPES:
        passed.append(consumers[0])
        consumers = view.consumers(consumers[0].outputs[0])
    return passed, consumers


DFL_INPUT_OPS = frozenset({"Softmax", "Transpose", *RESHAPES})


def _fed_by_head_concat(view: GraphView, conv: NodeView) -> bool:
    """Whether the DFL conv reads, through its Softmax, Transpose and Reshapes, the Concat of
    the detection heads' outputs. rknn-toolkit2 2.5.0 crashes on the whole head (head
    Reshapes, Concat, ... DFL Conv, Reshape, Split) and converts the DFL tail fed directly
    (portlint verify --reduce on YOLOv8n; probe block:dfl-decode on rk3588, rk3566, rv1106)."""
    producer = view.producer(conv.inputs[0])
    for _ in range(6):
        if producer is None:
            return False
        if producer.op_type == "Concat":
            return True
        if producer.op_type not in DFL_INPUT_OPS:
            return False
        producer = view.producer(producer.inputs[0])
    return False


def _dfl_split(view: GraphView) -> list[Match]:
    matches = []
    for node in view.live_by_op.get("Conv", []):
        if not is_dfl_conv(node, view) or not _fed_by_head_concat(view, node):
            continue
        reshapes, consumers = _through_reshapes(view, node.outputs[0])
        if not reshapes:
            continue
        splits = [c for c in consumers if c.op_type == "Split"]
        slices = [c for c in consumers if c.op_type == "Slice"]
        if splits:
            end, count = splits, "Split"
        elif len(slices) >= 2:
            end, count = slices, f"{len(slices)} × Slice"
        else:
            continue
        chain = " → ".join(["Conv", *(r.op_type for r in reshapes), count])
        members = (node.name, *(r.name for r in reshapes), *(e.name for e in end))
        matches.append(Match(node.name, node.op_type, members, f"DFL decode head: {chain}"))
    return matches


def _values(view: GraphView, name: str) -> np.ndarray | None:
    """A constant's values, through the Identity nodes exporters put on shared weights."""
    producer = view.producer(name)
    while producer is not None and producer.op_type == "Identity":
        name = producer.inputs[0]
        producer = view.producer(name)
    return view.weight(name)


def _linear_before(view: GraphView, node: NodeView) -> list[NodeView]:
    """The MatMul (with a constant weight) and its bias Add that feed ``node``, when that bias
    holds one value throughout (zeros, as an untrained export has).

    rknn-toolkit2 2.5.0 crashes on a uniform bias ("cannot reshape array of size 1") and
    converts the same ViT with varied (trained) biases, or with the bias folded into a Gemm:
    both measured. So the bias values are read, only for projections that match otherwise.
    """
    bias = view.producer(node.inputs[0]) if node.inputs else None
    if bias is None or bias.op_type != "Add":
        return []
    constants = [i for i in bias.inputs if view.is_constant(i)]
    other = [i for i in bias.inputs if i not in constants]
    source = view.producer(other[0]) if len(other) == 1 and len(constants) == 1 else None
    if source is None or source.op_type != "MatMul" or not view.is_constant(source.inputs[1]):
        return []
    values = _values(view, constants[0])
    if values is None or values.size == 0 or not (values == values.flat[0]).all():
        return []
    return [source, bias]


def _qkv_split(view: GraphView) -> list[Match]:
    matches = []
    for reshape in view.live_by_op.get("Reshape", []):
        linear = _linear_before(view, reshape)
        if not linear:
            continue
        info = view.tensor(reshape.outputs[0])
        shape = info.shape if info is not None else None
        if not shape or len(shape) != 5 or shape[2] != 3 or shape[0] != 1:
            continue  # [1, tokens, 3 (q, k, v), heads, dim]; a batch of windows converts
        consumers = view.consumers(reshape.outputs[0])
        transposes = [c for c in consumers if c.op_type == "Transpose"]
        if len(consumers) == 1 and transposes:
            consumers = view.consumers(transposes[0].outputs[0])
        ends = [c for c in consumers if c.op_type in ("Split", "Gather", "Slice")]
        if not ends:
            continue
        ops = [*(n.op_type for n in linear), "Reshape", *(t.op_type for t in transposes)]
        shown = " → ".join([*ops, f"{len(ends)} × {ends[0].op_type}" if len(ends) > 1 else "Split"])
        members = (*(n.name for n in linear), reshape.name, *(t.name for t in transposes))
        matches.append(
            Match(
                linear[0].name,
                "MatMul",
                (*members, *(e.name for e in ends)),
                f"attention qkv projection: {shown}",
            )
        )
    return matches


def _single_consumer(view: GraphView, node: NodeView, op: str) -> NodeView | None:
    consumers = view.consumers(node.outputs[0])
    return consumers[0] if len(consumers) == 1 and consumers[0].op_type == op else None


def _attention_transposed(view: GraphView) -> list[Match]:
    matches = []
    for softmax in view.live_by_op.get("Softmax", []):
        scores = view.producer(softmax.inputs[0])
        if scores is None or scores.op_type != "MatMul":
            continue
        transpose = _single_consumer(view, softmax, "Transpose")
        if transpose is None:
            continue
        values = _single_consumer(view, transpose, "MatMul")
        if values is None:
            continue
        members = (scores.name, softmax.name, transpose.name, values.name)
        matches.append(
            Match(
                softmax.name,
                "Softmax",
                members,
                "attention with transposed probabilities: MatMul → Softmax → Transpose → MatMul",
            )
        )
    return matches


def _activation_matmul(view: GraphView, node: NodeView | None) -> bool:
    """A MatMul of two computed tensors (not a projection with constant weights)."""
    return (
        node is not None
        and node.op_type == "MatMul"
        and not any(view.is_constant(name) for name in node.inputs)
    )


def _attention(view: GraphView) -> list[Match]:
    matches = []
    for softmax in view.live_by_op.get("Softmax", []):
        scale = view.producer(softmax.inputs[0])
        scores = scale
        if scale is not None and scale.op_type in ("Mul", "Div"):
            if not any(view.is_constant(name) for name in scale.inputs):
                continue
            scores = view.producer(next(n for n in scale.inputs if not view.is_constant(n)))
        if not _activation_matmul(view, scores):
            continue
        values = _single_consumer(view, softmax, "MatMul")
        if values is None or not _activation_matmul(view, values):
            continue
        middle = [scale] if scale is not scores and scale is not None else []
        members = (scores.name, *(n.name for n in middle), softmax.name, values.name)
        shown = " → ".join(["MatMul", *(n.op_type for n in middle), "Softmax", "MatMul"])
        matches.append(Match(softmax.name, "Softmax", members, f"attention: {shown}"))
    return matches


def _gemm_source(view: GraphView, tensor: str) -> tuple[list[NodeView], str] | None:
    """(the Gemm and the BatchNormalization before it, if any; the tensor they read)."""
    gemm = view.producer(tensor)
    if gemm is None or gemm.op_type != "Gemm":
        return None
    source = gemm.inputs[0]
    norm = view.producer(source)
    if norm is not None and norm.op_type == "BatchNormalization":
        return [norm, gemm], norm.inputs[0]
    return [gemm], source


def _gemm_pair_add(view: GraphView) -> list[Match]:
    matches = []
    for add in view.live_by_op.get("Add", []):
        if len(add.inputs) != 2:
            continue
        a, b = (_gemm_source(view, name) for name in add.inputs)
        if a is None or b is None or a[1] != b[1]:
            continue
        nodes = (*(n.name for n in a[0]), *(n.name for n in b[0]), add.name)
        chain = " → ".join(n.op_type for n in a[0])
        matches.append(
            Match(
                add.name,
                "Add",
                nodes,
                f"two linear heads on one input, summed: 2 × ({chain}) → Add",
            )
        )
    return matches


FINDERS: dict[str, Callable[[GraphView], list[Match]]] = {
    "dfl-split": _dfl_split,
    "qkv-split": _qkv_split,
    "attention-transposed": _attention_transposed,
    "attention": _attention,
    "gemm-pair-add": _gemm_pair_add,
}
check_implemented("defect", DESCRIPTIONS, set(FINDERS))
DEFECT_PATTERNS: dict[str, DefectPattern] = {
    name: DefectPattern(name, DESCRIPTIONS[name], find) for name, find in FINDERS.items()
}

"""Find a detector's post-processing tail: the decode/NMS sub-graph after the head outputs.

RKNN and Hailo both compile detectors cut at the head Conv outputs and run DFL, box decode
and NMS on the host: those ops quantize badly, run slowly on the NPU or not at all. The
PL108 rule and the strip-postprocess pass must agree on where that cut is, so the detection
lives here, as a pure function of the weight-free ``GraphView`` that ``check`` builds
(initializers over 4096 elements have a shape but no value there).

A classifier's final TopK is post-processing too, but no detector: such a tail is found
(``Tail.detector`` is False) and left to the caller to judge against the target, since
cutting it is only worth it when the target cannot run the top-k.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from portlint.graph_view import GraphView, NodeView, TensorInfo

SHAPE_OPS = frozenset(
    {
        "Reshape",
        "Transpose",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "Squeeze",
        "Unsqueeze",
        "Flatten",
        "Expand",
        "Shape",
        "Cast",
        "Identity",
        "Tile",
        "ConstantOfShape",
    }
)
DECODE_OPS = frozenset({"Sigmoid", "Softmax", "Exp", "Log"})
ELEMENTWISE_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Clip"})
"""Tail members only with a constant or tail-computed operand: x * Sigmoid(x) is a layer."""
SELECTION_OPS = frozenset(
    {
        "NonMaxSuppression",
        "TopK",
        "NonZero",
        "Range",
        "GatherND",
        "GatherElements",
        "ArgMax",
        "ReduceMax",
        "ReduceSum",
        "Greater",
        "Less",
        "Equal",
        "Where",
        "Not",
        "And",
    }
)
NAMED_SIGNALS = {
    "NonMaxSuppression": "NMS",
    "TopK": "TopK",
    "NonZero": "NonZero",
    "GatherND": "GatherND",
    "Range": "Range",
    "Pow": "Pow decode",
}
DETECTOR_SIGNALS = frozenset(
    {"DFL", "NMS", "NonZero", "GatherND", "Range", "anchor grid", "Pow decode"}
)
"""Signals no classifier tail has; Sigmoid/Softmax alone do not make a detector."""
TOP_K_SIGNALS = frozenset({"TopK"})
"""Detectors select top-k candidates, but a classifier's top-5 ends in a TopK as well."""
TAIL_SIGNALS = DETECTOR_SIGNALS | TOP_K_SIGNALS
"""A tail needs one of these to be found at all."""
SIGNAL_ORDER = (
    "DFL",
    "NMS",
    "TopK",
    "NonZero",
    "GatherND",
    "Range",
    "anchor grid",
    "Pow decode",
    "Sigmoid decode",
    "Softmax",
    "Exp decode",
)
CUSTOM_NMS_MARKERS = ("NMS", "NonMaxSuppression", "Detection_PostProcess")
"""Custom-op names for NMS (EfficientNMS_TRT, TFLite_Detection_PostProcess...)."""
COORDINATE_SIZES = (2, 4)
GRID_POSITIONS = 64
"""An anchor/grid constant holds 2 or 4 coordinates for at least this many positions."""
DEFAULT_DOMAINS = ("", "ai.onnx")
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Tail:
    """The post-processing tail of a model and where to cut it off.

    ``cuts`` are the head outputs in graph order of their producers (the model's new
    outputs after the cut); ``head_ends`` their producers; ``nodes`` the live tail nodes.
    """

    nodes: tuple[str, ...]
    cuts: tuple[str, ...]
    head_ends: tuple[str, ...]
    head_ops: tuple[str, ...]
    signals: tuple[str, ...]
    graph_inputs: tuple[str, ...] = ()
    """Graph inputs the tail reads besides the cuts (e.g. an original image size)."""

    @property
    def detector(self) -> bool:
        """Whether a detector signal shows (a top-k alone may be a classifier's)."""
        return bool(DETECTOR_SIGNALS & set(self.signals))

    @property
    def kind(self) -> str:
        """'post-processing tail', or 'top-k tail' when nothing marks it a detector's."""
        return "post-processing tail" if self.detector else "top-k tail"

    def head_label(self) -> str:
        """'6 head Convs' or '2 head nodes': what the model ends at after the cut."""
        kinds = set(self.head_ops)
        count = len(self.head_ends)
        if len(kinds) == 1:
            return f"{count} head {self.head_ops[0]}{'' if count == 1 else 's'}"
        return f"{count} head node{'' if count == 1 else 's'}"

    def describe(self) -> str:
        return (
            f"{self.kind} of {len(self.nodes)} nodes ({', '.join(self.signals)}) "
            f"after {self.head_label()}"
        )


def find_tail(view: GraphView) -> Tail | None:
    """The post-processing tail of ``view`` (worked out once per view: PL108 and PL307 ask
    for every target)."""
    return view.derived("postprocess-tail", _find_tail)


def _find_tail(view: GraphView) -> Tail | None:
    """The post-processing tail of ``view``, or None when there is none worth cutting.

    A node is in the tail when its op is post-processing-like and every consumer of its
    outputs is in the tail too (or the output is a graph output). A tail counts only with a
    detector signal (DFL, NMS, an anchor grid...) or a TopK: a classifier's final Softmax is
    not worth a cut. A tail whose only such signal is TopK may be a classifier's top-k
    (``Tail.detector`` is False); whether that is worth a cut depends on the target.
    """
    members = _members(view)
    nodes = [n for n in view.nodes if n.name in members]
    cuts, graph_inputs = _boundary(view, nodes, members)
    signals = _signals(view, nodes)
    if not cuts or not TAIL_SIGNALS & set(signals):
        return None
    producers = [view.producer(name) for name in cuts]
    heads = list({p.name: p for p in producers if p is not None}.values())
    return Tail(
        nodes=tuple(n.name for n in nodes if not n.folded),
        cuts=tuple(cuts),
        head_ends=tuple(p.name for p in heads),
        head_ops=tuple(p.op_type for p in heads),
        signals=signals,
        graph_inputs=tuple(graph_inputs),
    )


def is_dfl_conv(node: NodeView, view: GraphView) -> bool:
    """A 1x1 Conv to one channel with weights arange(C): DFL's expectation over C bins."""
    if node.op_type != "Conv" or len(node.inputs) < 2:
        return False
    weight = view.constant_value(node.inputs[1])
    if weight is None or weight.ndim != 4 or weight.shape[0] != 1 or weight.shape[2:] != (1, 1):
        return False
    bins = weight.shape[1]
    if bins < 2 or not np.allclose(weight.reshape(-1), np.arange(bins)):
        return False
    bias = node.inputs[2] if len(node.inputs) > 2 else ""
    if not bias:
        return True
    value = view.constant_value(bias)
    return value is not None and not value.any()


def _is_custom_nms(node: NodeView) -> bool:
    return any(marker in node.op_type for marker in CUSTOM_NMS_MARKERS)


def is_postprocess_op(node: NodeView, view: GraphView) -> bool:
    """Whether the op alone could be post-processing (folded constant maths always can)."""
    if node.folded or _is_custom_nms(node):
        return True
    if node.pattern is not None or node.domain not in DEFAULT_DOMAINS:
        return False  # SiLU's Sigmoid and Mul are a network layer, not a decode
    op = node.op_type
    if op in SHAPE_OPS or op in DECODE_OPS or op in ELEMENTWISE_OPS or op in SELECTION_OPS:
        return True
    return is_dfl_conv(node, view)


def _stays(node: NodeView, view: GraphView, members: set[str], outputs: set[str]) -> bool:
    used = False
    for name in filter(None, node.outputs):
        consumers = view.consumers(name)
        if any(c.name not in members for c in consumers):
            return False
        used = used or bool(consumers) or name in outputs
    if not used:
        return False
    if node.op_type in ELEMENTWISE_OPS and not node.folded:
        return any(
            view.is_constant(name) or _produced_in(view, name, members)
            for name in filter(None, node.inputs)
        )
    return True


def _produced_in(view: GraphView, name: str, members: set[str]) -> bool:
    producer = view.producer(name)
    return producer is not None and producer.name in members


def _members(view: GraphView) -> set[str]:
    """The largest set of candidates in which every member keeps its conditions.

    Starts from every candidate and drops the nodes that break a condition. Dropping a node
    can only break its producers (a consumer left the tail) and its consumers (an operand
    is no longer tail-computed), so only those are looked at again: linear in graph size.
    """
    outputs = {t.name for t in view.graph_outputs}
    candidates = [n for n in view.nodes if is_postprocess_op(n, view)]
    members = {n.name for n in candidates}
    pending = list(candidates)  # popped last-first: consumers before their producers
    while pending:
        node = pending.pop()
        if node.name not in members or _stays(node, view, members, outputs):
            continue
        members.discard(node.name)
        neighbours = [view.producer(name) for name in node.inputs if name]
        neighbours += [c for name in node.outputs if name for c in view.consumers(name)]
        pending.extend(n for n in neighbours if n is not None and n.name in members)
    return members


def _boundary(
    view: GraphView, nodes: Iterable[NodeView], members: set[str]
) -> tuple[list[str], list[str]]:
    """The tail's inputs computed by the head (the cuts), and graph inputs it reads."""
    input_names = {t.name for t in view.graph_inputs}
    cuts: dict[str, tuple[int, int]] = {}
    graph_inputs: dict[str, None] = {}
    for node in nodes:
        for name in filter(None, node.inputs):
            producer = view.producer(name)
            if name in input_names:
                graph_inputs[name] = None
            elif (
                producer is not None and producer.name not in members and not view.is_constant(name)
            ):
                cuts[name] = (producer.index, producer.outputs.index(name))
    return sorted(cuts, key=cuts.__getitem__), list(graph_inputs)


def _is_grid(info: TensorInfo | None) -> bool:
    """Anchor points, grids, anchor boxes: [1,2,8400], [1,3,80,80,2], [1917,4]..."""
    if info is None or not info.is_static or info.rank is None or info.rank < 2:
        return False
    shape = [int(d) for d in info.shape]  # type: ignore[union-attr, arg-type]
    for axis, size in enumerate(shape):
        if size in COORDINATE_SIZES:
            rest = int(np.prod(shape[:axis] + shape[axis + 1 :]))
            if rest >= GRID_POSITIONS:
                return True
    return False


def _node_signal(node: NodeView, view: GraphView) -> str | None:
    op = node.op_type
    if op == "Conv":
        return "DFL" if is_dfl_conv(node, view) else None
    if op in NAMED_SIGNALS:
        return NAMED_SIGNALS[op]
    if _is_custom_nms(node):
        return "NMS"
    if op in ELEMENTWISE_OPS and any(
        view.is_constant(name) and _is_grid(view.tensor(name)) for name in filter(None, node.inputs)
    ):
        return "anchor grid"
    return {"Sigmoid": "Sigmoid decode", "Softmax": "Softmax", "Exp": "Exp decode"}.get(op)


def _signals(view: GraphView, nodes: Iterable[NodeView]) -> tuple[str, ...]:
    """What the tail computes, from its live nodes: a folded Range is constant maths (an
    attention bias's ``arange``); a grid it builds shows as the anchor grid it feeds."""
    live = (n for n in nodes if not n.folded)
    found = {s for s in (_node_signal(n, view) for n in live) if s is not None}
    if "DFL" in found:
        found.discard("Softmax")  # DFL's own softmax over the bins
    return tuple(s for s in SIGNAL_ORDER if s in found)


def count_ops(nodes: Iterable[NodeView]) -> str:
    """Op types in first-seen order with their counts: 'Softmax, Slice(TIMES)2'."""
    counts = Counter(n.op_type for n in nodes)
    return ", ".join(op if k == 1 else f"{op}{TIMES}{k}" for op, k in counts.items())


def quoted(names: Iterable[str]) -> str:
    """Names as a message lists them: '"a", "b"'."""
    return ", ".join(f'"{name}"' for name in names)

"""The declared graph patterns, asked of the graph view: what the BatchNorm rules need.

Rules about BatchNorm (PL305 an unfoldable one, PL301 weights measured after the fold, PL307
tensors that vanish in it) each used to decide for themselves when a BatchNorm folds into
the layer before it; they now ask ``graph_patterns.BATCHNORM_FOLD``, as ``fold-batchnorm`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from portlint.graph_patterns import BATCHNORM_FOLD, Match
from portlint.graph_view import GraphView, NodeView


class ViewGraph:
    """``PatternGraph`` over the graph view: nodes are NodeViews (live ones), tensors names."""

    def __init__(self, view: GraphView):
        self.view = view
        self.graph_outputs = frozenset(t.name for t in view.graph_outputs)

    def nodes_of(self, op: str) -> Sequence[NodeView]:
        return self.view.live_by_op.get(op, ())

    def op(self, node: NodeView) -> str:
        return node.op_type

    def domain(self, node: NodeView) -> str:
        return node.domain

    def inputs(self, node: NodeView) -> Sequence[str]:
        return node.inputs

    def outputs(self, node: NodeView) -> Sequence[str]:
        return node.outputs

    def attribute(self, node: NodeView, name: str, default: Any) -> Any:
        return node.attributes.get(name, default)

    def producer(self, tensor: str) -> NodeView | None:
        return self.view.producer(tensor)

    def uses(self, tensor: str) -> int:
        if not tensor:
            return 0
        return len(self.view.consumers(tensor)) + (tensor in self.graph_outputs)

    def sole_reader(self, tensor: str) -> NodeView | None:
        readers = self.view.consumers(tensor)
        if len(readers) != 1 or tensor in self.graph_outputs:
            return None
        return readers[0]

    def is_constant(self, tensor: str) -> bool:
        info = self.view.tensor(tensor)
        return info is not None and info.kind in ("initializer", "constant")


def view_graph(view: GraphView) -> ViewGraph:
    """The adapter for ``view``, built once however many rules ask."""
    return view.derived("pattern-graph", ViewGraph)


def batchnorm_fold(view: GraphView, batchnorm: NodeView) -> Match | None:
    """The fold of ``batchnorm`` into the layer before it, when toolchains make it."""
    return BATCHNORM_FOLD.match(view_graph(view), batchnorm)


def folded_batchnorm(view: GraphView, layer: NodeView) -> NodeView | None:
    """The BatchNorm toolchains fold into ``layer`` (so its own output never exists), if any."""
    g = view_graph(view)
    reader = g.sole_reader(layer.outputs[0]) if layer.outputs else None
    if reader is None or reader.op_type != BATCHNORM_FOLD.anchor:
        return None
    found = BATCHNORM_FOLD.match(g, reader)
    return reader if found is not None and found.nodes[0] is layer else None

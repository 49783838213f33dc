"""The outline of a model's graph that reports draw: live nodes, their edges, tensor producers.

Names and op types only (no attributes, shapes or weights, and strings the view already
holds), so a report can keep one for a model of any size and draw the graph, or name it, without
the model: the HTML report and the Model Explorer node data both read this, never the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portlint.graph_view import GraphView


@dataclass(frozen=True)
class GraphOutline:
    """The live graph of one model, as ``portlint check`` saw it."""

    name: str
    """The ONNX graph's name ("" when the file leaves it unnamed)."""
    nodes: tuple[tuple[str, str], ...]
    """(node name, op type) of every live node (folded constants left out), in model order."""
    edges: tuple[tuple[str, str], ...]
    """(producer, consumer) between live nodes, each pair once, in model order."""
    producers: Mapping[str, str]
    """Tensor name -> the live node that writes it."""


def outline(view: GraphView, name: str = "") -> GraphOutline:
    """The outline of ``view``'s live nodes; ``name`` is the graph's (the view has none)."""
    nodes: list[tuple[str, str]] = []
    producers: dict[str, str] = {}
    for node in view.live_nodes():
        nodes.append((node.name, node.op_type))
        for output in node.outputs:
            if output:
                producers[output] = node.name
    live = {n for n, _ in nodes}
    edges = dict.fromkeys((a, b) for a, b in view.edges if a in live and b in live)
    return GraphOutline(name, tuple(nodes), tuple(edges), producers)


def read_outline(path: Path) -> GraphOutline:
    """The outline of the model at ``path``, read from the file (structure only, no weights).

    For reports whose ``ModelReport`` does not carry the outline of the check that made it.
    """
    from portlint.graph_view import build_view
    from portlint.model_io.load import load_for_check

    loaded = load_for_check(path)
    return outline(build_view(loaded), loaded.model.graph.name)

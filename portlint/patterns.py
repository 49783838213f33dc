"""Tag the nodes of fused patterns while the graph view is built, so rules judge them as one.

Exporters write SiLU as ``Mul(x, Sigmoid(x))`` and HardSwish as ``Mul(x, HardSigmoid(x))``.
A toolchain that supports SiLU fuses the pair, so judging the two halves separately reports
the wrong thing. Rules see the pattern name on every member node and judge it as one. The
patterns themselves are declared in ``portlint.graph_patterns`` (``fix`` uses the same ones);
this module answers their questions from the plain node table, which stays fast on 100k nodes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from functools import cached_property
from itertools import chain
from typing import Any

import onnx

from portlint.graph_patterns import FUSED
from portlint.model_io.loaded import NodeTable
from portlint.pattern_catalog import FUSED_PATTERNS, check_implemented

check_implemented("fused", FUSED_PATTERNS, {pattern.name for pattern in FUSED})


def find_patterns(
    graph: onnx.GraphProto,
    nodes: list[onnx.NodeProto] | None = None,
    table: NodeTable | None = None,
) -> dict[int, str]:
    """Map node index -> pattern name for every node that belongs to a recognised pattern.

    ``nodes`` and ``table``: the graph's nodes (as protos and as plain data), when the caller
    has read them already.
    """
    indexed = IndexedGraph(graph, nodes, table)
    found: dict[int, str] = {}
    for pattern in FUSED:
        for match in pattern.find(indexed):
            found.update(dict.fromkeys(match.nodes, pattern.name))
    return found


class IndexedGraph:
    """``PatternGraph`` over the node table: nodes are indices, tensors are names.

    The simple questions are answered by the lists' and dicts' own lookups, bound as
    attributes: no Python call per question, which keeps tagging a 100k-node model cheap.
    """

    def __init__(
        self,
        graph: onnx.GraphProto,
        nodes: list[onnx.NodeProto] | None = None,
        table: NodeTable | None = None,
    ):
        self.graph = graph
        self.nodes = nodes if nodes is not None else list(graph.node)
        table = table or NodeTable.of(self.nodes)
        self.op: Callable[[int], str] = table.ops.__getitem__
        self.domain: Callable[[int], str] = table.domains.__getitem__
        self.inputs: Callable[[int], Sequence[str]] = table.inputs.__getitem__
        self.outputs: Callable[[int], Sequence[str]] = table.outputs.__getitem__
        producers = {out: i for i, outputs in enumerate(table.outputs) for out in outputs if out}
        self.producer: Callable[[str], int | None] = producers.get
        uses = Counter(chain.from_iterable(table.inputs))
        uses.update(output.name for output in graph.output)
        del uses[""]  # an optional input left out is no use of anything
        self._uses = uses
        self._inputs = table.inputs
        self._by_op: defaultdict[str, list[int]] = defaultdict(list)
        for i, op in enumerate(table.ops):
            self._by_op[op].append(i)
        self._graph_inputs = frozenset(i.name for i in graph.input)

    @cached_property
    def _first_use(self) -> dict[str, int]:
        """The first node reading each tensor; built when a matcher first asks for a reader
        (GELU and LayerNorm candidates), which most CNNs never do."""
        inputs = self._inputs
        return {name: i for i in range(len(inputs) - 1, -1, -1) for name in inputs[i]}

    @cached_property
    def _initializers(self) -> frozenset[str]:
        """Read only for a model that lists its initializers as graph inputs (IR < 4)."""
        return frozenset(t.name for t in self.graph.initializer)

    def nodes_of(self, op: str) -> list[int]:
        return self._by_op.get(op, [])

    def attribute(self, node: int, name: str, default: Any) -> Any:
        found = next((a for a in self.nodes[node].attribute if a.name == name), None)
        if found is None:
            return default
        if found.type == onnx.AttributeProto.FLOAT:  # the common case, read directly
            return found.f
        return onnx.helper.get_attribute_value(found)

    def uses(self, tensor: str) -> int:
        return self._uses.get(tensor, 0)

    def sole_reader(self, tensor: str) -> int | None:
        if self._uses.get(tensor) != 1:
            return None
        return self._first_use.get(tensor)  # None: the one use is as a graph output

    def is_constant(self, tensor: str) -> bool:
        """A Constant's output, or a tensor nothing produces that is not a real graph input
        (an initializer; reading every initializer's name would cost more than the rest)."""
        index = self.producer(tensor)
        if index is not None:
            return self.op(index) == "Constant"
        return tensor not in self._graph_inputs or tensor in self._initializers

"""The declared graph patterns on onnx-graphsurgeon's graph: found by passes, written by them.

``portlint.graph_patterns`` declares each pattern once; ``SurgeonGraph`` answers its matchers
from a graphsurgeon graph (so a pass rewrites exactly what ``check`` judged as the pattern),
and ``NodeBuilder`` is where a pattern's replacement writes its nodes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from portlint.graph_patterns import FusedOp
from portlint.passes.surgery import constant, unique_name

if TYPE_CHECKING:
    import onnx_graphsurgeon as gs


class SurgeonGraph:
    """``PatternGraph`` over a graphsurgeon graph, answered from the live graph: a pass that
    rewrites one match before asking for the next sees its own change."""

    def __init__(self, graph: gs.Graph):
        self.graph = graph
        self.graph_outputs = frozenset(t.name for t in graph.outputs)

    def nodes_of(self, op: str) -> Iterator[gs.Node]:
        return (node for node in self.graph.nodes if node.op == op)

    def op(self, node: gs.Node) -> str:
        return node.op

    def domain(self, node: gs.Node) -> str:
        return node.domain or ""

    def inputs(self, node: gs.Node) -> Sequence[gs.Tensor]:
        return node.inputs

    def outputs(self, node: gs.Node) -> Sequence[gs.Tensor]:
        return node.outputs

    def attribute(self, node: gs.Node, name: str, default: Any) -> Any:
        return node.attrs.get(name, default)

    def producer(self, tensor: gs.Tensor) -> gs.Node | None:
        return tensor.inputs[0] if len(tensor.inputs) == 1 else None

    def uses(self, tensor: gs.Tensor) -> int:
        return len(tensor.outputs) + (tensor.name in self.graph_outputs) if tensor.name else 0

    def sole_reader(self, tensor: gs.Tensor) -> gs.Node | None:
        return tensor.outputs[0] if self.uses(tensor) == 1 and tensor.outputs else None

    def is_constant(self, tensor: gs.Tensor) -> bool:
        import onnx_graphsurgeon as gs

        producer = self.producer(tensor)
        return isinstance(tensor, gs.Constant) or (
            producer is not None and producer.op == "Constant"
        )


class NodeBuilder:
    """An ``Emitter`` into a graphsurgeon graph: nodes named ``{base}/{op}`` (``lowercase``:
    ``{base}/{op.lower()}``), outputs after their node, constants of ``dtype``; all unique."""

    def __init__(
        self, graph: gs.Graph, base: str, opset: int, dtype: Any = None, lowercase: bool = False
    ):
        self.graph, self.base, self.opset = graph, base, opset
        self.dtype = np.dtype(dtype or np.float32)
        self.lowercase = lowercase

    def const(self, value: Any, dtype: Any = None) -> gs.Constant:
        name = unique_name(self.graph, f"{self.base}/const")
        return constant(name, np.asarray(value, dtype=dtype or self.dtype))

    def add(
        self,
        op: str,
        inputs: list,
        attrs: dict[str, Any] | None = None,
        output: gs.Tensor | None = None,
    ) -> gs.Tensor:
        name = unique_name(self.graph, f"{self.base}/{op.lower() if self.lowercase else op}")
        out = output if output is not None else unique_name(self.graph, f"{name}_out")
        return self.graph.layer(op=op, name=name, inputs=inputs, outputs=[out], attrs=attrs)[0]


def fused_op(node: gs.Node) -> FusedOp:
    """A fused op as a ``Form``'s builder reads it: inputs (None where left out), attributes,
    the first input's rank."""
    shape = node.inputs[0].shape
    return FusedOp(
        tuple(t if t.name else None for t in node.inputs),
        node.outputs[0],
        dict(node.attrs),
        len(shape) if shape is not None else None,
    )

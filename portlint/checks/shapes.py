"""Dynamic shapes: which input is dynamic, and which node makes shapes data-dependent."""

from __future__ import annotations

from collections.abc import Iterator

from portlint.checks.base import CheckContext, check
from portlint.findings import GRAPH_INPUT, NODE, RawFinding
from portlint.graph_view import GraphView, TensorInfo
from portlint.predicates import format_value


def _describe_axes(info: TensorInfo) -> str:
    parts = [
        f"axis {axis}" + (f" ({dim!r})" if isinstance(dim, str) else "")
        for axis, dim in info.dynamic_axes()
    ]
    return ", ".join(parts)


def _first_consumer(view: GraphView, name: str) -> str | None:
    consumers = [n for n in view.consumers(name) if not n.folded]
    return min(consumers, key=lambda n: n.index).name if consumers else None


def _suggested_pin(info: TensorInfo) -> str:
    dims = [
        d if isinstance(d, int) else 1 if i == 0 else "N" for i, d in enumerate(info.shape or ())
    ]
    return f"--input-shape {info.name}:{format_value(dims).strip('[]').replace(' ', '')}"


class _StaticShapes(dict):
    """Tensor name -> whether its shape is static (None: the tensor is unknown), worked out
    once per tensor (each is read as one node's output and as its consumers' input)."""

    def __init__(self, view: GraphView):
        super().__init__()
        self.tensors = view.tensors

    def __missing__(self, name: str) -> bool | None:
        info = self.tensors.get(name)
        static = self[name] = None if info is None else info.is_static
        return static


@check("dynamic_shape")
def dynamic_shape(ctx: CheckContext) -> Iterator[RawFinding]:
    """Inputs with dynamic dims, and nodes whose output shape depends on data."""
    constraints = ctx.target.constraints_for(ctx.rule)
    if not constraints:
        return
    fact = constraints[0]
    view = ctx.view
    for info in view.graph_inputs:
        if info.shape is None or info.dynamic_axes():
            axes = _describe_axes(info) if info.shape is not None else "unknown rank"
            first = _first_consumer(view, info.name)
            where = f"; first node affected: {first}" if first else ""
            yield RawFinding(
                info.name,
                GRAPH_INPUT,
                f"input {info.name!r} has dynamic dims: {axes}{where}; "
                f"pin them with {_suggested_pin(info)}",
                None,
                axes,
                "static shape",
                fact.source,
                fact.verified,
                fact.effect,
                note=fact.note,
            )
    static = _StaticShapes(view)
    for node in view.live_nodes():
        if all(static[name] for name in node.inputs if name) and any(
            static[name] is False for name in node.outputs if name
        ):
            yield RawFinding(
                node.name,
                NODE,
                f"{node.op_type} output shape depends on the data, not on the input shapes",
                node.op_type,
                "data-dependent shape",
                "static shape",
                fact.source,
                fact.verified,
                fact.effect,
                note=fact.note,
            )

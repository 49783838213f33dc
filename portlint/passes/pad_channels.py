"""``pad-channels``: raise Conv output channels to the target's multiple with zero filters.

NPUs such as Intel GNA work on channels in fixed-width vectors and refuse convolutions whose
channel counts are not a multiple of that width. A zero filter with a zero bias yields an
all-zero channel, which is exact to add: ops that keep channels apart (activations, BatchNorm,
pooling, Resize, residual Adds, Concat) carry the extra channels along, and the next Conv reads
them with zero weights. So the padding is propagated as far as it can go, which also gives the
next Conv the aligned input channels the same targets ask for, and is sliced off only where an
op would mix it into real values (Flatten, Gemm, Softmax, ...) or at a graph output.

Every padded tensor carries a mask of which of its channels (axis 1) are real. Padded channels
hold finite values (zeros through finite ops), so zero weights read them as exact zeros.

What stays unpadded, reported in ``skipped``: input channels that come from a graph input (the
model's interface), a grouped Conv's input (padding would cross its group boundaries; its
output grows every group instead), a depthwise Conv whose input cannot be padded (its outputs
follow its inputs), Convs whose weights are not constants, and PL220 limits on fields padding
does not change (group, channels per group). A limit's when/unless conditions are judged by the
checker's own code; a condition the model leaves open counts as holding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx_graphsurgeon as gs
from networkx.utils import UnionFind

from portlint.checks.constraint import conditions_hold, evaluate
from portlint.fields import NODE, Unknown
from portlint.graph_view import GraphView, NodeView
from portlint.in_memory import view_of
from portlint.pass_catalog import pass_info
from portlint.passes.base import PassContext, PassResult, Rewrite
from portlint.passes.surgery import (
    constant,
    constant_value,
    default_opset,
    to_graph,
    to_model,
    unique_name,
)
from portlint.target import Constraint, Target

(RULE,) = pass_info("pad-channels").resolves
UNARY = frozenset(
    {
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Clip",
        "Tanh",
        "Elu",
        "Selu",
        "Celu",
        "Identity",
        "Neg",
        "Abs",
        "Softplus",
        "Softsign",
        "Mish",
        "Gelu",
        "Erf",
        "ThresholdedRelu",
    }
)
"""Per-element ops that map finite values to finite values (no Log, Reciprocal, Sqrt...)."""
ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "PRelu"})
"""Broadcasting ops: padding passes when every operand agrees on the channel layout."""
POOLS = frozenset(
    {"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"}
)
LAYOUT = frozenset({"BatchNormalization", "Resize", "Upsample", "Pad", "Concat", "Split", "Slice"})
PROPAGATING = UNARY | ELEMENTWISE | POOLS | LAYOUT
"""Ops the plan follows padding through (the rewrite checks their attributes and may slice)."""
Source = frozenset[tuple[int, int]]
"""The Convs whose padding a tensor carries: (id of the Conv node, channels per its channel)."""


@dataclass(frozen=True)
class Padded:
    """A tensor whose axis 1 carries padding: ``mask[i]`` says whether channel i is real."""

    mask: np.ndarray
    rank: int

    @property
    def real(self) -> int:
        return int(self.mask.sum())

    def same(self, other: Padded) -> bool:
        return self.rank == other.rank and np.array_equal(self.mask, other.mask)


@dataclass
class ConvInfo:
    """A Conv with constant weights, and the channel multiples the target asks of it."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    group: int
    in_multiple: int
    out_multiple: int
    unchanged: list[str] = field(default_factory=list)
    """Its PL220 violations on fields padding does not change (group, channels per group)."""
    source: Source = frozenset()

    @property
    def kind(self) -> str:
        if self.group == 1:
            return "regular"
        return "depthwise" if self.weight.shape[1] == 1 else "grouped"

    @property
    def out(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1]) * self.group


@dataclass
class Plan:
    """What to pad: Convs by node id, and the output mask of each Conv that grows."""

    convs: dict[int, ConvInfo] = field(default_factory=dict)
    out_masks: dict[int, np.ndarray] = field(default_factory=dict)
    opaque: dict[int, str] = field(default_factory=dict)
    """Convs off their multiples whose weights are not constants, by node id: their names."""

    def fixes(self) -> set[str]:
        """Convs the rewrite changes: padded outputs, or inputs fed by a padded Conv."""
        padded = set(self.out_masks)
        return {self.convs[i].name for i in padded} | {
            c.name
            for c in self.convs.values()
            if c.kind != "grouped" and any(conv in padded for conv, _ in c.source)
        }


def _present(node: gs.Node, index: int) -> bool:
    return len(node.inputs) > index and bool(node.inputs[index].name)


def _scatter(value: np.ndarray, mask: np.ndarray, axis: int, fill: float = 0) -> np.ndarray:
    """``value`` laid out on the real positions of ``mask`` along ``axis``, ``fill`` elsewhere."""
    shape = list(value.shape)
    shape[axis] = len(mask)
    out = np.full(shape, fill, dtype=value.dtype)
    index: list[slice | np.ndarray] = [slice(None)] * value.ndim
    index[axis] = np.flatnonzero(mask)
    out[tuple(index)] = value
    return out


def _conditions_hold(c: Constraint, node: NodeView, view: GraphView) -> bool:
    """The constraint's when/unless, judged as the checker judges them.

    A condition the model leaves open (a dynamic dim) counts as holding: padding more
    channels than needed is still exact, and the checker cannot clear such a Conv anyway.
    """
    try:
        return conditions_hold(c, node, view)
    except Unknown:
        return True


def _multiple(target: Target, node: NodeView, view: GraphView, field_name: str) -> int:
    """The LCM of the target's PL220 ``multiple_of`` limits on ``field_name`` for ``node``."""
    result = 1
    for c in target.constraints_for(RULE):
        if (
            c.scope == NODE
            and c.field == field_name
            and c.predicate == "multiple_of"
            and c.applies_to_op(node.op_type)
            and _conditions_hold(c, node, view)
        ):
            result = math.lcm(result, int(c.operand))
    return result


def _is_onnx(node: gs.Node) -> bool:
    return node.domain in ("", "ai.onnx", None)


def _conv_info(node: gs.Node, seen: NodeView, view: GraphView, target: Target) -> ConvInfo | None:
    """The Conv's weights and multiples; None when its weights or bias are not constants."""
    weight = constant_value(node.inputs[1]) if len(node.inputs) > 1 else None
    bias = constant_value(node.inputs[2]) if _present(node, 2) else None
    if weight is None or weight.ndim < 3 or (_present(node, 2) and bias is None):
        return None
    group = int(node.attrs.get("group", 1))
    conv = ConvInfo(seen.name, weight, bias, group, 1, 1)
    conv.in_multiple = _multiple(target, seen, view, "in_channels")
    conv.out_multiple = _multiple(target, seen, view, "out_channels")
    handled = {"in_channels", "out_channels"}
    if conv.kind == "depthwise":  # its group count is its input channel count
        conv.in_multiple = math.lcm(conv.in_multiple, _multiple(target, seen, view, "group"))
        handled.add("group")
    conv.unchanged = _findings(seen, view, target, handled)
    return conv


def _findings(node: NodeView, view: GraphView, target: Target, skip: set[str]) -> list[str]:
    """Messages of ``node``'s PL220 violations, except on the fields in ``skip``."""
    messages = []
    for c in target.constraints_for(RULE):
        if c.scope == NODE and c.applies_to_op(node.op_type) and c.field not in skip:
            finding = evaluate(c, node, view)
            if finding is not None and finding.rule is None:  # not "could not evaluate"
                messages.append(finding.message)
    return messages


def _filters(count: int) -> str:
    return f"{count} zero filter{'s' * (count != 1)}"


def _out_mask(conv: ConvInfo, multiple: int) -> np.ndarray:
    """Real output channels after padding to ``multiple``.

    A grouped Conv grows every group by the same number of filters, so its input stays as is.
    """
    groups = 1 if conv.kind == "regular" else conv.group
    per_group = conv.out // groups
    step = multiple // math.gcd(multiple, groups)
    return np.tile(np.arange(-(-per_group // step) * step) < per_group, groups)


def make_plan(graph: gs.Graph, view: GraphView, target: Target) -> Plan:
    """Decide every Conv's padded output width (``graph`` is toposorted as a side effect).

    A Conv's own out_channels multiple is raised by the in_channels multiple of every Conv its
    padding reaches (so a consumer's input is aligned too), then unified across Convs whose
    outputs meet in an elementwise op (their layouts must agree for the padding to pass).
    """
    plan = Plan()
    seen = dict(zip((id(n) for n in graph.nodes), view.nodes, strict=True))
    graph.toposort()
    need: dict[int, int] = {}
    sources: dict[str, Source] = {}
    classes = UnionFind()  # Convs whose outputs meet in an elementwise op: they pad alike

    def push(source: Source, multiple: int) -> None:
        for conv, factor in source:
            need[conv] = math.lcm(need[conv], multiple // math.gcd(multiple, factor))

    for node in graph.nodes:
        if not _is_onnx(node):
            continue
        if node.op == "Conv" and id(node) in seen:
            conv = _conv_info(node, seen[id(node)], view, target)
            if conv is None:
                if _findings(seen[id(node)], view, target, set()):
                    plan.opaque[id(node)] = seen[id(node)].name
                continue
            plan.convs[id(node)] = conv
            if conv.kind != "grouped":
                conv.source = sources.get(node.inputs[0].name, frozenset())
                push(conv.source, conv.in_multiple)
            if conv.kind == "depthwise":
                mult = conv.out // conv.group
                out = frozenset((c, f * mult) for c, f in conv.source)
                push(out, conv.out_multiple)
            else:
                need[id(node)] = conv.out_multiple
                out = frozenset({(id(node), 1)})
            sources[node.outputs[0].name] = out
        elif node.op in PROPAGATING:
            source = frozenset().union(*(sources.get(t.name, frozenset()) for t in node.inputs))
            if node.op in ELEMENTWISE:
                classes.union(*(conv for conv, _ in source))
            for out_tensor in node.outputs:
                sources[out_tensor.name] = source
    by_class: dict[int, int] = {}
    for conv, multiple in need.items():
        root = classes[conv]
        by_class[root] = math.lcm(by_class.get(root, 1), multiple)
    for conv, _ in need.items():
        mask = _out_mask(plan.convs[conv], by_class[classes[conv]])
        if len(mask) > plan.convs[conv].out:
            plan.out_masks[conv] = mask
    return plan


def _subgraph_reads(graph: gs.Graph) -> set[str]:
    """Outer tensors that If/Loop/Scan bodies read by name (they must keep their layout)."""
    names: set[str] = set()
    for node in graph.nodes:
        for value in node.attrs.values():
            for sub in value if isinstance(value, list) else [value]:
                if isinstance(sub, gs.Graph):
                    names |= {t.name for n in sub.nodes for t in n.inputs}
                    names |= _subgraph_reads(sub)
    return names


class Padder:
    """Walks the sorted graph once, padding Convs and carrying masks through what follows."""

    def __init__(self, graph: gs.Graph, plan: Plan, view: GraphView, opset: int) -> None:
        self.graph, self.plan, self.view, self.opset = graph, plan, view, opset
        self.masks: dict[str, Padded] = {}
        self.real: dict[str, gs.Variable] = {}
        self.outputs = {t.name for t in graph.outputs}
        self.pinned = self.outputs | _subgraph_reads(graph)
        self.graph_inputs = {t.name for t in graph.inputs}
        self.changes: list[str] = []
        self.skipped: list[str] = []

    def run(self) -> None:
        for node in list(self.graph.nodes):
            if node.op == "Conv" and _is_onnx(node):
                out = self.conv(node)
            elif any(t.name in self.masks for t in node.inputs):
                handler = HANDLERS.get(node.op) if _is_onnx(node) else None
                out = handler(self, node) if handler else None
                if out is None:
                    for index in range(len(node.inputs)):
                        self.use_real(node, index)
            else:
                continue
            for index, var in enumerate(node.outputs):
                if out is not None and var.name:
                    self.mark(node, index, out)

    # -- bookkeeping -------------------------------------------------------------------------

    def mark(self, node: gs.Node, index: int, padded: Padded) -> None:
        """Record that ``node.outputs[index]`` is padded; a pinned name gets the real channels."""
        var = node.outputs[index]
        shape = None
        if var.shape is not None and len(var.shape) > 1:
            shape = [var.shape[0], len(padded.mask), *var.shape[2:]]
        if var.name not in self.pinned:
            var.shape = shape or var.shape
            self.masks[var.name] = padded
            return
        wide = gs.Variable(unique_name(self.graph, f"{var.name}_padded"), var.dtype, shape)
        outer = {id(n) for n in self.graph.nodes}
        for consumer in list(var.outputs):
            if id(consumer) in outer:
                for i, tensor in enumerate(consumer.inputs):
                    if tensor is var:
                        consumer.inputs[i] = wide
        node.outputs[index] = wide
        self.masks[wide.name] = padded
        self.sliced(
            wide, padded, "the graph output" if var.name in self.outputs else "a subgraph", var
        )

    def sliced(
        self, var: gs.Variable, padded: Padded, reader: str, out: gs.Variable | None = None
    ) -> gs.Variable:
        """``var`` cut back to its real channels for ``reader``: one Slice/Gather per tensor."""
        if var.name in self.real:
            return self.real[var.name]
        keep = np.flatnonzero(padded.mask)
        if out is None:
            shape = None if var.shape is None else [var.shape[0], keep.size, *var.shape[2:]]
            out = gs.Variable(unique_name(self.graph, f"{var.name}_real"), var.dtype, shape)
        name = unique_name(self.graph, f"{var.name}_unpad")
        if keep[-1] != keep.size - 1:
            indices = constant(unique_name(self.graph, f"{name}_indices"), keep.astype(np.int64))
            node = gs.Node("Gather", name, {"axis": 1}, [var, indices], [out])
        elif self.opset >= 10:
            bounds = [
                constant(unique_name(self.graph, f"{name}_{key}"), np.array([value], np.int64))
                for key, value in (("starts", 0), ("ends", keep.size), ("axes", 1))
            ]
            node = gs.Node("Slice", name, {}, [var, *bounds], [out])
        else:
            attrs = {"starts": [0], "ends": [int(keep.size)], "axes": [1]}
            node = gs.Node("Slice", name, attrs, [var], [out])
        self.graph.nodes.append(node)
        self.real[var.name] = out
        self.changes.append(
            f'"{var.name}": {node.op} back to its {keep.size} real channels (of '
            f"{len(padded.mask)}) for {reader}"
        )
        return out

    def use_real(self, node: gs.Node, index: int) -> None:
        var = node.inputs[index]
        if var.name in self.masks:
            node.inputs[index] = self.sliced(var, self.masks[var.name], f"{node.op} '{node.name}'")

    def replaceconstant_value(self, node: gs.Node, index: int, value: np.ndarray) -> None:
        base = node.inputs[index].name or f"{node.name}_input{index}"
        node.inputs[index] = constant(unique_name(self.graph, f"{base}_padded"), value)

    def shape(self, tensor: gs.Tensor) -> tuple | None:
        """The shape of an unpadded tensor: its constant, the inferred view, or graphsurgeon's."""
        value = constant_value(tensor)
        if value is not None:
            return value.shape
        info = self.view.tensor(tensor.name)
        if info is not None and info.shape is not None:
            return info.shape
        return tuple(tensor.shape) if tensor.shape is not None else None

    def source(self, tensor: gs.Tensor) -> str:
        if tensor.name in self.graph_inputs:
            return f"graph input '{tensor.name}'"
        producer = tensor.inputs[0] if tensor.inputs else None
        return f"{producer.op} '{producer.name}'" if producer else f"'{tensor.name}'"

    # -- Conv --------------------------------------------------------------------------------

    def conv(self, node: gs.Node) -> Padded | None:
        """Absorb a padded input (scatter weights), then grow the output if the plan says so."""
        info = self.plan.convs.get(id(node))
        x = node.inputs[0]
        padded = self.masks.get(x.name)
        if info is None:
            self.use_real(node, 0)
            if id(node) in self.plan.opaque:
                name = self.plan.opaque[id(node)]
                self.skipped.append(f'"{name}": its weights are not constants, so it is not padded')
            return None
        weight, bias, group, notes = info.weight, info.bias, info.group, []
        out: Padded | None = None
        if padded is not None and info.kind == "regular":
            weight = _scatter(weight, padded.mask, 1)
            notes.append(f"input channels {padded.real} -> {len(padded.mask)}")
        elif padded is not None and info.kind == "depthwise":
            mask = np.repeat(padded.mask, info.out // info.group)
            weight = _scatter(weight, mask, 0)
            bias = None if bias is None else _scatter(bias, mask, 0)
            group = len(padded.mask)
            out = Padded(mask, weight.ndim)
            notes.append(
                f"depthwise groups {info.group} -> {group}, output channels {info.out} -> "
                f"{len(mask)} ({_filters(len(mask) - info.out)})"
            )
        else:
            self.use_real(node, 0)
        mask = self.plan.out_masks.get(id(node))
        if mask is not None:
            weight = _scatter(weight, mask, 0)
            bias = None if bias is None else _scatter(bias, mask, 0)
            out = Padded(mask, weight.ndim)
            notes.append(
                f"output channels {info.out} -> {len(mask)} ({_filters(len(mask) - info.out)})"
            )
        self.explain(node, info, padded if info.kind != "grouped" else None, out)
        if not notes:
            return None
        self.replaceconstant_value(node, 1, weight)
        if bias is not None:
            self.replaceconstant_value(node, 2, bias)
        if group != info.group:
            node.attrs["group"] = group
        self.changes.append(f'"{info.name}": ' + "; ".join(notes))
        return out

    def explain(
        self, node: gs.Node, info: ConvInfo, inp: Padded | None, out: Padded | None
    ) -> None:
        """Say why a Conv's channels stay off the target's multiple after padding."""
        for message in info.unchanged:
            self.skipped.append(f'"{info.name}": {message}; padding channels does not change it')
        width = len(inp.mask) if inp is not None else info.in_channels
        if width % info.in_multiple:
            x = node.inputs[0]
            if x.name in self.graph_inputs:
                why = f"they come from graph input '{x.name}', whose shape is the interface"
            elif info.kind == "grouped":
                why = "padding a grouped Conv's input would cross its group boundaries"
            else:
                why = f"padding cannot bring its input from {self.source(x)} to that multiple"
            self.skipped.append(
                f'"{info.name}": input channels {width} stay off the multiple of '
                f"{info.in_multiple}: {why}"
            )
        width = len(out.mask) if out is not None else info.out
        if width % info.out_multiple:  # only a depthwise Conv: its outputs follow its inputs
            self.skipped.append(
                f'"{info.name}": output channels {width} stay off the multiple of '
                f"{info.out_multiple}: a depthwise Conv's outputs follow its inputs, which come "
                f"from {self.source(node.inputs[0])} and could not be padded to fit"
            )

    # -- ops the padding passes through -------------------------------------------------------

    def data_only(self, node: gs.Node) -> Padded | None:
        """The mask of input 0 when it is the only padded input and no extra output is used."""
        padded = self.masks.get(node.inputs[0].name)
        if padded is None or any(t.name in self.masks for t in node.inputs[1:]):
            return None
        if any(o.name for o in node.outputs[1:]):  # MaxPool indices, BN training stats
            return None
        return padded

    def unary(self, node: gs.Node) -> Padded | None:
        return self.data_only(node)

    def elementwise(self, node: gs.Node) -> Padded | None:
        """Operands agree on the padding, or do not span the channel axis, or are constants."""
        found = [self.masks[t.name] for t in node.inputs if t.name in self.masks]
        first = found[0]
        if any(not p.same(first) for p in found):
            return None
        if node.op == "Div" and node.inputs[1].name in self.masks:
            return None  # a divisor's padded channels may be zeros: 0/0 would poison them
        fill = 1.0 if node.op in ("Mul", "Div") else 0.0
        replace: dict[int, np.ndarray] = {}
        for index, tensor in enumerate(node.inputs):
            if tensor.name in self.masks:
                continue
            value = constant_value(tensor)
            shape = value.shape if value is not None else self.shape(tensor)
            if shape is None or len(shape) > first.rank:
                return None
            axis = 1 - (first.rank - len(shape))
            if axis < 0 or shape[axis] == 1:
                continue
            if value is None or shape[axis] != first.real:
                return None
            replace[index] = _scatter(value, first.mask, axis, fill)
        for index, value in replace.items():
            self.replaceconstant_value(node, index, value)
        return first

    def batchnorm(self, node: gs.Node) -> Padded | None:
        """Per-channel scale, bias, mean and variance, padded with 0, 0, 0 and 1."""
        padded = self.data_only(node)
        values = [constant_value(t) for t in node.inputs[1:5]]
        if padded is None or len(values) != 4 or node.attrs.get("training_mode", 0):
            return None
        if any(v is None or v.shape != (padded.real,) for v in values):
            return None
        for index, (value, fill) in enumerate(zip(values, (0, 0, 0, 1), strict=True), start=1):
            self.replaceconstant_value(node, index, _scatter(value, padded.mask, 0, fill))
        return padded

    def resize(self, node: gs.Node) -> Padded | None:
        """Resize with a channel scale of 1; a ``sizes`` input gets the padded channel count."""
        padded = self.data_only(node)
        if padded is None or node.attrs.get("coordinate_transformation_mode") == (
            "tf_crop_and_resize"
        ):
            return None
        axes = node.attrs.get("axes")
        axes = list(range(padded.rank)) if axes is None else [a % padded.rank for a in axes]
        if 1 not in axes:
            return padded
        channel = axes.index(1)
        scales_at = 2 if node.op == "Resize" and self.opset >= 11 else 1
        if node.op == "Upsample" and "scales" in node.attrs:
            return padded if node.attrs["scales"][channel] == 1 else None
        if _present(node, scales_at):
            scales = constant_value(node.inputs[scales_at])
            if scales is None or (scales.size and scales[channel] != 1):
                return None
            if scales.size:
                return padded
        sizes = constant_value(node.inputs[3]) if _present(node, 3) and scales_at == 2 else None
        if sizes is None or sizes[channel] != padded.real:
            return None
        sizes = sizes.copy()
        sizes[channel] = len(padded.mask)
        self.replaceconstant_value(node, 3, sizes)
        return padded

    def pad(self, node: gs.Node) -> Padded | None:
        """Pad that leaves axis 1 alone."""
        padded = self.data_only(node)
        if padded is None:
            return None
        pads = node.attrs.get("pads") if self.opset < 11 else constant_value(node.inputs[1])
        axes = constant_value(node.inputs[3]) if self.opset >= 11 and _present(node, 3) else None
        if pads is None or (_present(node, 3) and axes is None):
            return None
        axes = range(padded.rank) if axes is None else [int(a) % padded.rank for a in axes]
        pads = np.asarray(pads).reshape(2, -1)
        touched = [j for j, a in enumerate(axes) if a == 1]
        return None if any(pads[:, j].any() for j in touched) else padded

    def concat(self, node: gs.Node) -> Padded | None:
        """On axis 1 the masks concatenate; on any other axis every input must agree."""
        first = next(self.masks[t.name] for t in node.inputs if t.name in self.masks)
        if int(node.attrs.get("axis", 0)) % first.rank != 1:
            found = [self.masks.get(t.name) for t in node.inputs]
            return first if all(p is not None and p.same(first) for p in found) else None
        parts = []
        for tensor in node.inputs:
            if tensor.name in self.masks:
                padded = self.masks[tensor.name]
                if padded.rank != first.rank:
                    return None
                parts.append(padded.mask)
                continue
            shape = self.shape(tensor)
            if shape is None or len(shape) != first.rank or not isinstance(shape[1], int):
                return None
            parts.append(np.ones(shape[1], dtype=bool))
        return Padded(np.concatenate(parts), first.rank)

    def split(self, node: gs.Node) -> Padded | None:
        """Split on any axis but the channels: every part keeps the mask."""
        padded = self.masks.get(node.inputs[0].name)
        if padded is None or any(t.name in self.masks for t in node.inputs[1:]):
            return None
        return padded if int(node.attrs.get("axis", 0)) % padded.rank != 1 else None

    def slice(self, node: gs.Node) -> Padded | None:
        """Slice that leaves axis 1 alone."""
        padded = self.data_only(node)
        if padded is None:
            return None
        if self.opset < 10:
            starts, axes = node.attrs.get("starts"), node.attrs.get("axes")
        else:
            starts = constant_value(node.inputs[1])
            axes = constant_value(node.inputs[3]) if _present(node, 3) else None
            if _present(node, 3) and axes is None:
                return None
        if axes is None and starts is None:
            return None
        axes = range(len(starts)) if axes is None else axes
        return padded if all(int(a) % padded.rank != 1 for a in axes) else None


HANDLERS: dict[str, Callable[[Padder, gs.Node], Padded | None]] = {
    **dict.fromkeys(UNARY | POOLS, Padder.unary),
    **dict.fromkeys(ELEMENTWISE, Padder.elementwise),
    "BatchNormalization": Padder.batchnorm,
    "Resize": Padder.resize,
    "Upsample": Padder.resize,
    "Pad": Padder.pad,
    "Concat": Padder.concat,
    "Split": Padder.split,
    "Slice": Padder.slice,
}


def _prepare(ctx: PassContext) -> tuple[gs.Graph, GraphView, Plan]:
    graph = to_graph(ctx.model)
    view = view_of(ctx.model, ctx.input_shapes)
    return graph, view, make_plan(graph, view, ctx.target)


def run(ctx: PassContext) -> PassResult:
    """Pad as planned; the model comes back untouched when nothing needs padding."""
    graph, view, plan = _prepare(ctx)
    rewrite = Padder(graph, plan, view, default_opset(ctx.model))
    rewrite.run()
    if not rewrite.changes:
        return PassResult(ctx.model, [], rewrite.skipped)
    return PassResult(to_model(graph, ctx.model), rewrite.changes, rewrite.skipped)


def wanted(ctx: PassContext) -> str | None:
    """Why to run: the Convs with PL220 findings that the plan would change."""
    if not any(f.rule == RULE and f.op_type == "Conv" for f in ctx.report.findings):
        return None
    fixes = _prepare(ctx)[2].fixes()
    count = len({f.location for f in ctx.report.findings if f.rule == RULE and f.location in fixes})
    if not count:
        return None
    layers = f"{count} Conv layer{'s' * (count != 1)} violate{'s' * (count == 1)}"
    return f"{layers} {RULE} channel multiples"


REWRITE = Rewrite(run, wanted)

"""What onnxruntime's quantizer cannot express, written into its QDQ model.

onnxruntime gives every tensor its own calibrated scale, except that data-movement ops
(Reshape, MaxPool, Split, Slice, Resize, AveragePool...) reuse their input's. A target adds its
own rules, applied here by rewriting the scale and zero point of each Q/DQ pair (always into
fresh initializers, so a rewrite never leaks into a tensor onnxruntime happened to share with):

- shared scales: the inputs of a shared-scale op (Concat, Add... per the profile) and, for ops
  that do not compute new values, its output get one scale, covering the widest range;
- inherited scales: the output of an op that cannot rescale keeps its input's; average pooling
  on other targets gets its own output scale instead of onnxruntime's reused one;
- fixed ranges: outputs pinned to [-1, 1) (NNoM's Q0.7 Sigmoid, Softmax...);
- power-of-two scales, rounded up (nothing clips), for activations and weights;
- fused activations: no Q/DQ between a layer and the Relu/Clip its kernel applies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from networkx.utils import UnionFind
from onnx import numpy_helper

from portlint.simulate.plan import AVERAGE_POOLS, Plan

RESCALING_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Sum"})
"""Arithmetic: a shared scale binds their inputs; the output is requantized (NNoM's note:
Add/Sub/Mult re-scale; TFLite shares input and output only for data movement)."""
ACTIVATION_DTYPES = {
    (8, False): np.dtype(np.uint8),
    (8, True): np.dtype(np.int8),
    (16, False): np.dtype(np.uint16),
    (16, True): np.dtype(np.int16),
}
FUSED_ACTIVATIONS = frozenset({"Relu", "Clip"})
FUSING_LAYERS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Add"})
"""Layers whose integer kernels apply a following Relu/Clip before requantizing (TFLite's fused
activation; onnxruntime's own rule for removable activations)."""


@dataclass
class Pair:
    """One QuantizeLinear and its DequantizeLinear(s): how one tensor is quantized."""

    name: str  # the tensor's name in the float model
    source: str  # what the QuantizeLinear reads
    q: onnx.NodeProto
    dqs: list[onnx.NodeProto]
    weight: bool

    @property
    def seen(self) -> str:
        """The tensor carrying the quantized values."""
        return self.dqs[0].output[0]


def rewrite(
    qdq: onnx.ModelProto,
    original: onnx.ModelProto,
    ranges: Mapping[str, tuple[float, float]],
    plan: Plan,
    numeric: frozenset[str],
    notes: list[str],
) -> dict[str, str]:
    """Apply the target's rules to onnxruntime's QDQ model in place; return ``seen_as``.

    ``numeric`` are the op types quantized (inputs and outputs) by onnxruntime."""
    g = _Graph(qdq)
    leftovers = _quantize_leftovers(g, ranges, plan, numeric)
    if leftovers:
        notes.append(
            f"{leftovers} tensor{'s' if leftovers != 1 else ''} onnxruntime left in float "
            "between integer ops quantized too"
        )
        g.index()
    pairs = _pairs(g, {o.name for o in original.graph.output})
    activations = [p for p in pairs if not p.weight]
    fused = _fuse_activations(g, activations, plan)
    if fused:
        activations = [p for p in activations if p not in fused]
        notes.append(
            f"{len(fused)} Relu/Clip fused into the layer before them: that layer's output is "
            "not quantized before the activation"
        )
    _set_activation_scales(g, activations, ranges, plan, notes)
    if plan.power_of_two:
        _set_weight_scales(g, [p for p in pairs if p.weight], plan)
        notes.append("every scale rounded up to a power of two (shift requantization)")
    g.drop_unused_initializers()
    return _seen_as(g, original, activations)


class _Graph:
    """Producers, consumers and initializers of the QDQ model."""

    def __init__(self, model: onnx.ModelProto):
        self.graph = model.graph
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.outputs = {o.name for o in self.graph.output}
        self.index()

    def index(self) -> None:
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for name in node.output:
                self.producer[name] = node
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.initializers[name])

    def add_initializer(self, base: str, value: np.ndarray) -> str:
        """A new initializer named after ``base``; returns its (unique) name."""
        name, n = base, 1
        while name in self.initializers or name in self.producer:
            n += 1
            name = f"{base}_{n}"
        self.graph.initializer.append(numpy_helper.from_array(value, name))
        self.initializers[name] = self.graph.initializer[-1]
        return name

    def drop_unused_initializers(self) -> None:
        used = {name for node in self.graph.node for name in node.input}
        used |= {i.name for i in self.graph.input} | self.outputs
        keep = [t for t in self.graph.initializer if t.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(keep)
        self.initializers = {t.name: t for t in self.graph.initializer}


def _pairs(g: _Graph, float_outputs: set[str]) -> list[Pair]:
    pairs = []
    for node in g.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        dqs = [c for c in g.consumers.get(node.output[0], []) if c.op_type == "DequantizeLinear"]
        if not dqs:
            continue
        source = name = node.input[0]
        for dq in dqs:  # a graph output keeps its name, on the DequantizeLinear
            if dq.output[0] in float_outputs and source == f"{dq.output[0]}_QuantizeLinear_Input":
                name = dq.output[0]
        pairs.append(Pair(name, source, node, dqs, source in g.initializers))
    return pairs


def _quantize_leftovers(
    g: _Graph, ranges: Mapping[str, tuple[float, float]], plan: Plan, numeric: frozenset[str]
) -> int:
    """Q/DQ pairs on calibrated tensors that onnxruntime left in float: it quantizes a Relu or
    Clip only once its input is, so one straight on a graph input stays float, and so does a
    graph output it produces. Their scales are set with everyone else's afterwards."""
    dtype = ACTIVATION_DTYPES[plan.activation_bits, plan.activation_symmetric]
    scale_dtype = next(
        (g.array(n.input[1]).dtype for n in g.graph.node if n.op_type == "QuantizeLinear"),
        np.dtype(np.float32),
    )
    dequantized = {n.output[0] for n in g.graph.node if n.op_type == "DequantizeLinear"}
    quantized = {n.input[0] for n in g.graph.node if n.op_type == "QuantizeLinear"}
    made: dict[str, str] = {}
    before: dict[int, list[onnx.NodeProto]] = {}  # new nodes, by the node they go before

    def pair(tensor: str, source: str, output: str, position: int) -> None:
        scale, zp = _params(*ranges[tensor], dtype, plan)
        scale_name = g.add_initializer(f"{tensor}_scale", np.asarray(scale, scale_dtype))
        zp_name = g.add_initializer(f"{tensor}_zero_point", np.asarray(zp, dtype))
        q_out = f"{tensor}_QuantizeLinear_Output"
        before.setdefault(position, []).extend(
            [
                onnx.helper.make_node(
                    "QuantizeLinear", [source, scale_name, zp_name], [q_out], f"{tensor}_Q"
                ),
                onnx.helper.make_node(
                    "DequantizeLinear", [q_out, scale_name, zp_name], [output], f"{tensor}_DQ"
                ),
            ]
        )

    nodes = list(g.graph.node)
    for index, node in enumerate(nodes):
        if node.op_type not in numeric:
            continue
        for slot, tensor in enumerate(node.input):
            if tensor not in ranges or tensor in dequantized or tensor in quantized:
                continue
            if tensor not in made:
                made[tensor] = f"{tensor}_DequantizeLinear_Output"
                producer = g.producer.get(tensor)
                position = 0 if producer is None else nodes.index(producer) + 1
                pair(tensor, tensor, made[tensor], position)
            node.input[slot] = made[tensor]
        for slot, tensor in enumerate(node.output):
            if tensor in g.outputs and tensor in ranges and tensor not in quantized:
                source = f"{tensor}_QuantizeLinear_Input"  # onnxruntime's naming
                node.output[slot] = source
                made[tensor] = tensor
                pair(tensor, source, tensor, index + 1)
    if made:
        ordered = []
        for index, node in enumerate([*nodes, None]):
            ordered.extend(before.get(index, []))
            if node is not None:
                ordered.append(node)
        del g.graph.node[:]
        g.graph.node.extend(ordered)
    return len(made)


def _seen_as(g: _Graph, original: onnx.ModelProto, activations: list[Pair]) -> dict[str, str]:
    """Each float tensor -> its quantized value, or itself where it is not quantized (fused,
    not numeric); tensors folded away (a Conv's output before its BatchNorm) are left out."""
    quantized = {p.name: p.seen for p in activations}
    present = {i.name for i in g.graph.input} | set(g.producer)
    initializers = {t.name for t in original.graph.initializer}
    names = [i.name for i in original.graph.input if i.name not in initializers]
    names += [o for n in original.graph.node for o in n.output if o]
    seen_as = {}
    for name in names:
        if name in quantized:
            seen_as[name] = quantized[name]
        elif name in present:
            seen_as[name] = name
    return seen_as


def _fuse_activations(g: _Graph, pairs: list[Pair], plan: Plan) -> list[Pair]:
    """Drop the Q/DQ between a layer and the Relu/Clip an integer kernel applies inside it."""
    fused = []
    for pair in pairs:
        if len(pair.dqs) != 1 or pair.name in g.outputs:
            continue
        users = g.consumers.get(pair.seen, [])
        layer = g.producer.get(pair.source)
        if (
            len(users) == 1
            and users[0].op_type in FUSED_ACTIVATIONS
            and plan.fuses(users[0].op_type)
            and layer is not None
            and layer.op_type in FUSING_LAYERS
            and len(g.consumers.get(pair.source, [])) == 1
        ):
            users[0].input[0] = pair.source
            g.graph.node.remove(pair.q)
            g.graph.node.remove(pair.dqs[0])
            fused.append(pair)
    if fused:
        g.index()
    return fused


def _in_order(groups: UnionFind, names: Iterable[str]) -> list[list[str]]:
    """The sets of ``groups``, each in ``names`` order, ordered by their first member.

    networkx names a set by whichever member its union kept as the root (ties go by hash
    order), so the first member in the model's order names the shared scale instead: the
    same tensors get the same initializer names on every run.
    """
    found: dict[str, list[str]] = {}
    for name in names:
        found.setdefault(groups[name], []).append(name)
    return list(found.values())


def _set_activation_scales(
    g: _Graph,
    pairs: list[Pair],
    ranges: Mapping[str, tuple[float, float]],
    plan: Plan,
    notes: list[str],
) -> None:
    by_name = {p.name: p for p in pairs}
    by_seen = {dq.output[0]: p for p in pairs for dq in p.dqs}
    by_source = {p.source: p for p in pairs}
    groups = UnionFind(by_name)  # tensors that end up with one scale
    applied: dict[str, set[str]] = {"shared": set(), "inherit": set(), "fixed": set()}
    fixed: set[str] = set()
    for node in g.graph.node:
        op = node.op_type
        inputs = [by_seen[t] for t in node.input if t in by_seen]
        outputs = [by_source[t] for t in node.output if t in by_source]
        first = by_seen.get(node.input[0]) if node.input else None
        rescales = op in AVERAGE_POOLS and not plan.keeps_input_scale(op)
        for out in outputs:  # onnxruntime's reuse of the input's scale (data movement)
            if first is not None and out.q.input[1] == first.q.input[1] and not rescales:
                groups.union(first.name, out.name)
        if op in plan.shared:
            members = inputs + ([] if op in RESCALING_OPS else outputs)
            if len(members) > 1:
                groups.union(*(p.name for p in members))
                applied["shared"].add(op)
        if plan.keeps_input_scale(op) and first is not None and outputs:
            groups.union(first.name, outputs[0].name)
            applied["inherit"].add(op)
        if op in plan.fixed and outputs:
            fixed.update(p.name for p in outputs)
            applied["fixed"].add(op)
    widened = []
    for names in _in_order(groups, by_name):
        root = names[0]
        pair = by_name[root]
        zero_point = g.array(pair.q.input[2])
        lo = min(_range(g, by_name[n], ranges)[0] for n in names)
        hi = max(_range(g, by_name[n], ranges)[1] for n in names)
        pinned = [n for n in names if n in fixed]
        if pinned and lo >= -1.0 and hi <= 1.0:
            scale, zp = _fixed_params(zero_point.dtype)
        else:
            scale, zp = _params(lo, hi, zero_point.dtype, plan)
            widened.extend(pinned)
        scale_name = g.add_initializer(
            f"{root}_sim_scale", np.asarray(scale, dtype=g.array(pair.q.input[1]).dtype)
        )
        zp_name = g.add_initializer(f"{root}_sim_zero_point", np.asarray(zp, zero_point.dtype))
        for name in names:
            for node in (by_name[name].q, *by_name[name].dqs):
                node.input[1], node.input[2] = scale_name, zp_name
    _note_rules(notes, applied, fixed, widened)


def _note_rules(
    notes: list[str], applied: Mapping[str, set[str]], fixed: set[str], widened: list[str]
) -> None:
    if applied["shared"]:
        whole = sorted(applied["shared"] - RESCALING_OPS)
        notes.append(
            f"one scale, the widest, shared by the inputs of {', '.join(sorted(applied['shared']))}"
            + (f" and by the output too for {', '.join(whole)}" if whole else "")
        )
    if applied["inherit"]:
        notes.append(f"outputs keep their input's scale: {', '.join(sorted(applied['inherit']))}")
    if fixed:
        notes.append(
            f"outputs of {', '.join(sorted(applied['fixed']))} pinned to the range [-1, 1) "
            f"({len(fixed) - len(widened)} of {len(fixed)})"
        )
    if widened:
        notes.append(
            f"{len(widened)} fixed-range outputs share a scale with wider tensors and are "
            f"simulated at the wider one, e.g. {widened[0]!r}"
        )


def _range(g: _Graph, pair: Pair, ranges: Mapping[str, tuple[float, float]]) -> tuple[float, float]:
    """The calibrated range of a tensor, else the range onnxruntime's parameters cover."""
    for key in (pair.name, pair.source):
        if key in ranges:
            return ranges[key]
    scale = float(g.array(pair.q.input[1]))
    zero_point = g.array(pair.q.input[2])
    info = np.iinfo(zero_point.dtype)
    return (int(info.min) - int(zero_point)) * scale, (int(info.max) - int(zero_point)) * scale


def _params(lo: float, hi: float, dtype: np.dtype, plan: Plan) -> tuple[float, int]:
    """Scale and zero point covering [lo, hi] (onnxruntime's formula), power-of-two if the
    target shifts."""
    from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType

    symmetric = plan.activation_symmetric
    qtype = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    qmin, qmax = get_qmin_qmax_for_qType(qtype, symmetric=symmetric)
    zp, scale = compute_scale_zp(
        np.array(lo, np.float32), np.array(hi, np.float32), qmin, qmax, symmetric=symmetric
    )
    scale, zp = float(scale), int(zp)
    if plan.power_of_two:
        real_min = (int(qmin) - zp) * scale
        scale = pot_up(scale)
        if not symmetric:
            zp = int(np.clip(round(int(qmin) - real_min / scale), qmin, qmax))
    return scale, zp


def _fixed_params(dtype: np.dtype) -> tuple[float, int]:
    """[-1, 1) on the type's full range: Q0.7 (scale 2^-7, zero point 0) for int8."""
    info = np.iinfo(dtype)
    levels = int(info.max) - int(info.min) + 1
    return 2.0 / levels, int(info.min) + levels // 2


def pot_up(scale: float) -> float:
    """The smallest power of two not below ``scale`` (exact, from the float's exponent)."""
    if scale <= 0 or not math.isfinite(scale):
        return 1.0
    mantissa, exponent = math.frexp(scale)
    return math.ldexp(1.0, exponent - 1 if mantissa == 0.5 else exponent)


def _set_weight_scales(g: _Graph, pairs: list[Pair], plan: Plan) -> None:
    """Power-of-two weight scales, per channel where the weights are: rounded up, so no weight
    clips; an asymmetric zero point moves to keep the same lowest value."""
    for pair in pairs:
        scale = g.array(pair.q.input[1])
        new = np.vectorize(pot_up, otypes=[np.float64])(scale.astype(np.float64))
        scale_name = g.add_initializer(f"{pair.name}_sim_scale", new.astype(scale.dtype))
        zp_name = pair.q.input[2]
        if not plan.weight_symmetric:
            zp = g.array(zp_name)
            info = np.iinfo(zp.dtype)
            real_min = (int(info.min) - zp.astype(np.float64)) * scale.astype(np.float64)
            moved = np.clip(np.round(info.min - real_min / new), info.min, info.max)
            zp_name = g.add_initializer(f"{pair.name}_sim_zero_point", moved.astype(zp.dtype))
        for node in (pair.q, *pair.dqs):
            node.input[1], node.input[2] = scale_name, zp_name

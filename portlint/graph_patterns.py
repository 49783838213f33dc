"""Each multi-node graph pattern, declared once: its structure, its condition, its replacement.

The same patterns are looked for in three graphs: the plain node table the graph view is built
from (``check`` tags a SiLU's nodes so rules judge them as one layer), the graph view itself
(the BatchNorm rules) and onnx-graphsurgeon's graph (``fix``'s passes). Matched separately, the
two sides drifted apart (which SiLU a pass rewrote was not the SiLU a rule judged), so each
pattern is written here once, in the style of onnxscript's rewriter:

- a *structure*: the ops and how they connect, found from one anchor node;
- a *condition*: when a toolchain treats the match as one layer (by default ``fusible``: its
  nodes are standard ONNX ops and nothing outside it reads what they pass each other, since a
  toolchain still computes a tensor someone else needs);
- a *replacement*, where a pass writes the pattern in place of a fused op (``Form``).

A matcher only asks the questions of ``PatternGraph``; each graph answers them in its own
adapter (``portlint.patterns``, ``portlint.view_patterns``, ``portlint.passes.matching``), so
changing a pattern's condition is one edit here and check and fix follow it together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

Node = Any
"""A node as the adapter knows it (an index, a NodeView, a graphsurgeon Node): opaque here."""
Tensor = Any
"""A tensor as the adapter knows it (a name, a graphsurgeon Tensor); compared with ``==``."""

DEFAULT_DOMAINS = ("", "ai.onnx")
HARD_SWISH_ALPHA = 1.0 / 6.0
HARD_SWISH_BETA = 0.5
FOLDING_PRODUCERS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
"""Layers toolchains fold a BatchNorm that follows them into (per-output-channel weights)."""
FOLD_REWRITES = ("Conv", "ConvTranspose", "Gemm")
"""The producers whose weights and bias ``fold_batchnorm`` rewrites (a MatMul has no bias)."""


class PatternGraph(Protocol):
    """The questions a matcher asks of a graph, whichever representation answers them."""

    def nodes_of(self, op: str) -> Iterable[Node]:
        """The nodes of one op type, in graph order (an iterator may see the graph change)."""
        ...

    def op(self, node: Node) -> str: ...

    def domain(self, node: Node) -> str: ...

    def inputs(self, node: Node) -> Sequence[Tensor]: ...

    def outputs(self, node: Node) -> Sequence[Tensor]: ...

    def attribute(self, node: Node, name: str, default: Any) -> Any: ...

    def producer(self, tensor: Tensor) -> Node | None: ...

    def uses(self, tensor: Tensor) -> int:
        """How many node inputs read ``tensor``, plus one if it is a graph output."""
        ...

    def sole_reader(self, tensor: Tensor) -> Node | None:
        """The node reading ``tensor`` when that is its only use."""
        ...

    def is_constant(self, tensor: Tensor) -> bool:
        """An initializer or a Constant node's output."""
        ...


class Match(NamedTuple):
    """One occurrence: its nodes (in the order its declaration names them), the tensor it
    computes from and the tensor it writes. A tuple: thousands are made on a big model."""

    nodes: tuple[Node, ...]
    x: Tensor
    y: Tensor


@dataclass(frozen=True)
class FusedOp:
    """The one op a ``Form`` is written in place of, as plain values (the pass reads them)."""

    inputs: tuple[Tensor | None, ...]  # None: an optional input left out
    output: Tensor
    attributes: Mapping[str, Any] = field(default_factory=dict)
    rank: int | None = None  # of the first input, when known


class Emitter(Protocol):
    """Where a replacement writes its nodes (each pass names them its own way)."""

    opset: int

    def add(
        self,
        op: str,
        inputs: list[Tensor],
        attrs: dict[str, Any] | None = None,
        output: Tensor | None = None,
    ) -> Tensor:
        """Add one node; its output is ``output``, else a new tensor, returned."""
        ...

    def const(self, value: Any, dtype: Any = None) -> Tensor:
        """A constant tensor (of the replaced op's dtype unless ``dtype`` says otherwise)."""
        ...


@dataclass(frozen=True)
class Form:
    """The nodes a pattern is written as: their ops (what the target must run) and a builder
    writing them in place of the fused op (False: its attributes do not allow it)."""

    ops: tuple[str, ...]
    build: Callable[[Emitter, FusedOp], bool]


def fusible(g: PatternGraph, match: Match) -> bool:
    """Standard ops, and no tensor passed inside the match is read outside it (nor is a graph
    output): a toolchain fuses the nodes into one layer only when nobody else needs them."""
    read_inside = [t for node in match.nodes for t in g.inputs(node)]
    for node in match.nodes:
        if g.domain(node) not in DEFAULT_DOMAINS:
            return False
        for tensor in g.outputs(node):
            if tensor != match.y and g.uses(tensor) != read_inside.count(tensor):
                return False
    return True


def _always(g: PatternGraph, node: Node) -> bool:
    return True


@dataclass(frozen=True)
class GraphPattern:
    """One pattern: found from nodes of ``anchor`` by ``structure``, kept when ``condition``
    holds. ``fused_ops`` compute the same in one node (when ``fused_condition`` holds);
    ``form`` writes the pattern in place of such an op."""

    name: str
    anchor: str
    structure: Callable[[PatternGraph, Node], Match | None]
    condition: Callable[[PatternGraph, Match], bool] = fusible
    fused_ops: tuple[str, ...] = ()
    fused_condition: Callable[[PatternGraph, Node], bool] = _always
    form: Form | None = None

    def match(self, g: PatternGraph, node: Node) -> Match | None:
        """The match anchored at ``node``, if its structure is there and its condition holds."""
        found = self.structure(g, node)
        return found if found is not None and self.condition(g, found) else None

    def find(self, g: PatternGraph) -> Iterator[Match]:
        """Every match, in graph order; lazily, so a pass may rewrite one before the next."""
        for node in g.nodes_of(self.anchor):
            found = self.match(g, node)
            if found is not None:
                yield found

    def match_fused(self, g: PatternGraph, node: Node) -> Match | None:
        """``node`` as a match of its own, when it is one of the ops computing this pattern."""
        if g.op(node) not in self.fused_ops or not self.fused_condition(g, node):
            return None
        return Match((node,), g.inputs(node)[0], g.outputs(node)[0])


def _produced_by(g: PatternGraph, tensor: Tensor | None, *ops: str) -> Node | None:
    node = g.producer(tensor) if tensor is not None else None
    return node if node is not None and g.op(node) in ops else None


def _read_by(g: PatternGraph, tensor: Tensor, op: str) -> Node | None:
    node = g.sole_reader(tensor)
    return node if node is not None and g.op(node) == op else None


def _first_input(g: PatternGraph, node: Node | None) -> Tensor | None:
    inputs = g.inputs(node) if node is not None else ()
    return inputs[0] if inputs else None


def _other_input(g: PatternGraph, node: Node, tensor: Tensor) -> Tensor | None:
    """The input of a two-input node that is not ``tensor``."""
    inputs = g.inputs(node)
    return next((t for t in inputs if t != tensor), None) if len(inputs) == 2 else None


# --- SiLU and HardSwish: Mul(x, Gate(x)) ----------------------------------------------------


def _gated(gate_op: str) -> Callable[[PatternGraph, Node], Match | None]:
    """``Mul(x, Gate(x))`` in either input order; nodes (gate, mul). Runs on every Mul of a
    100k-node graph, hence the plain loop."""

    def structure(g: PatternGraph, mul: Node) -> Match | None:
        inputs = g.inputs(mul)
        if len(inputs) != 2:
            return None
        for side in (0, 1):
            gate = g.producer(inputs[side])
            if gate is None or g.op(gate) != gate_op:
                continue
            gate_inputs, x = g.inputs(gate), inputs[1 - side]
            if gate_inputs and gate_inputs[0] == x:
                return Match((gate, mul), x, g.outputs(mul)[0])
        return None

    return structure


def _hardswish_gate(g: PatternGraph, match: Match) -> bool:
    """The HardSigmoid is HardSwish's: alpha 1/6 and beta 0.5 (ONNX's default is 0.2, 0.5)."""
    gate = match.nodes[0]
    alpha = float(g.attribute(gate, "alpha", 0.2))
    beta = float(g.attribute(gate, "beta", 0.5))
    return abs(alpha - HARD_SWISH_ALPHA) < 1e-4 and abs(beta - HARD_SWISH_BETA) < 1e-6


def _build_hardswish(emit: Emitter, op: FusedOp) -> bool:
    """x * HardSigmoid(x; 1/6, 0.5): HardSwish for opsets before 14 and targets without it."""
    x = op.inputs[0]
    gate = emit.add("HardSigmoid", [x], {"alpha": HARD_SWISH_ALPHA, "beta": HARD_SWISH_BETA})
    emit.add("Mul", [x, gate], output=op.output)
    return True


def _swish_is_silu(g: PatternGraph, node: Node) -> bool:
    """Swish(x) = x·sigmoid(alpha·x) is SiLU for alpha 1."""
    return float(g.attribute(node, "alpha", 1.0)) == 1.0


SILU = GraphPattern(
    "SiLU",
    "Mul",
    _gated("Sigmoid"),
    fused_ops=("SiLU", "Silu", "Swish"),
    fused_condition=_swish_is_silu,
)
"""Mul(x, Sigmoid(x)) with a Sigmoid nothing else reads; nodes (sigmoid, mul)."""

HARD_SWISH = GraphPattern(
    "HardSwish",
    "Mul",
    _gated("HardSigmoid"),
    condition=lambda g, m: fusible(g, m) and _hardswish_gate(g, m),
    fused_ops=("HardSwish",),
    form=Form(("HardSigmoid", "Mul"), _build_hardswish),
)
"""Mul(x, HardSigmoid(x; 1/6, 0.5)); nodes (hardsigmoid, mul)."""


# --- GELU, Erf form -------------------------------------------------------------------------


def _gelu_erf(g: PatternGraph, erf: Node) -> Match | None:
    """``x * 0.5 * (1 + Erf(x / sqrt(2)))``, in either Mul order.

    Matched structurally (Div|Mul -> Erf -> Add -> Mul [-> Mul]) with the scaled input and the
    outer Mul reading the same ``x``; constant values are not compared, which is enough to
    tell a GELU block from anything else an exporter writes around an Erf. Nodes (scale, erf,
    add, mul[, half or the trailing constant Mul]).
    """
    scale = _produced_by(g, _first_input(g, erf), "Div", "Mul")
    if scale is None:
        return None
    x = g.inputs(scale)[0]
    add = _read_by(g, g.outputs(erf)[0], "Add")
    mul = _read_by(g, g.outputs(add)[0], "Mul") if add is not None else None
    if mul is None:
        return None
    nodes, last = [scale, erf, add, mul], mul
    if x not in g.inputs(mul):  # (x * 0.5) * (1 + erf)
        half = _produced_by(g, _other_input(g, mul, g.outputs(add)[0]), "Mul")
        if half is None or x not in g.inputs(half):
            return None
        nodes.append(half)
    else:  # (x * (1 + erf)) * 0.5
        out = g.outputs(mul)[0]
        follow = _read_by(g, out, "Mul")
        if follow is not None and all(t == out or g.is_constant(t) for t in g.inputs(follow)):
            nodes.append(follow)
            last = follow
    return Match(tuple(nodes), x, g.outputs(last)[0])


def _build_gelu_erf(emit: Emitter, op: FusedOp) -> bool:
    if op.attributes.get("approximate", "none") == "tanh":
        return False
    x = op.inputs[0]
    erf = emit.add("Erf", [emit.add("Div", [x, emit.const(np.sqrt(2.0))])])
    gated = emit.add("Mul", [x, emit.add("Add", [erf, emit.const(1.0)])])
    emit.add("Mul", [gated, emit.const(0.5)], output=op.output)
    return True


GELU_ERF = GraphPattern(
    "GeluErf",
    "Erf",
    _gelu_erf,
    fused_ops=("Gelu",),
    form=Form(("Div", "Erf", "Add", "Mul"), _build_gelu_erf),
)


# --- LayerNorm, decomposed -------------------------------------------------------------------


def _affine_tail(g: PatternGraph, node: Node) -> list[Node]:
    """The ``* gamma`` Mul and ``+ beta`` Add after a normalisation, those present, in order."""
    tail: list[Node] = []
    for op in ("Mul", "Add"):
        out = g.outputs(tail[-1] if tail else node)[0]
        step = _read_by(g, out, op)
        other = _other_input(g, step, out) if step is not None else None
        if other is None or not g.is_constant(other):
            break
        tail.append(step)
    return tail


def _layer_norm(g: PatternGraph, div: Node) -> Match | None:
    """``(x - mean(x)) / sqrt(mean((x - mean(x))²) + eps) [* gamma] [+ beta]`` as exporters
    before opset 17 (and ``decompose``) write LayerNormalization: ReduceMean, Sub, Pow|Mul,
    ReduceMean, Add, Sqrt, Div [, Mul, Add]. Axes and constants are not compared. Nodes (mean,
    sub, square, variance, add, sqrt, div[, mul[, add]])."""
    inputs = g.inputs(div)
    if len(inputs) != 2:
        return None
    centred, deviation = inputs
    sqrt = _produced_by(g, deviation, "Sqrt")
    add = _produced_by(g, _first_input(g, sqrt), "Add")
    if add is None or not any(g.is_constant(t) for t in g.inputs(add)):
        return None
    found = (_produced_by(g, t, "ReduceMean") for t in g.inputs(add))
    variance = next((p for p in found if p is not None), None)
    square = _produced_by(g, _first_input(g, variance), "Pow", "Mul")
    if square is None or _first_input(g, square) != centred:
        return None
    other = g.inputs(square)[1] if len(g.inputs(square)) == 2 else None
    if other is None or not (other == centred if g.op(square) == "Mul" else g.is_constant(other)):
        return None
    sub = _produced_by(g, centred, "Sub")
    if sub is None:
        return None
    x = _first_input(g, sub)
    mean = _produced_by(g, _other_input(g, sub, x), "ReduceMean")
    if mean is None or _first_input(g, mean) != x:
        return None
    nodes = [mean, sub, square, variance, add, sqrt, div, *_affine_tail(g, div)]
    return Match(tuple(nodes), x, g.outputs(nodes[-1])[0])


def _reduce_mean(emit: Emitter, x: Tensor, axes: list[int]) -> Tensor:
    """ReduceMean keeping dims: axes an input from opset 18, an attribute before."""
    if emit.opset >= 18:
        return emit.add("ReduceMean", [x, emit.const(axes, np.int64)], {"keepdims": 1})
    return emit.add("ReduceMean", [x], {"axes": axes, "keepdims": 1})


def _build_layer_norm(emit: Emitter, op: FusedOp) -> bool:
    x = op.inputs[0]
    if op.rank is None:
        return False  # the axes to reduce are not known
    axis = int(op.attributes.get("axis", -1)) % op.rank
    axes = list(range(axis, op.rank))
    centred = emit.add("Sub", [x, _reduce_mean(emit, x, axes)])
    variance = _reduce_mean(emit, emit.add("Mul", [centred, centred]), axes)
    eps = emit.const(float(op.attributes.get("epsilon", 1e-5)))
    normed = emit.add("Div", [centred, emit.add("Sqrt", [emit.add("Add", [variance, eps])])])
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    scaled = emit.add("Mul", [normed, op.inputs[1]], output=None if bias is not None else op.output)
    if bias is not None:
        emit.add("Add", [scaled, bias], output=op.output)
    return True


LAYER_NORM = GraphPattern(
    "DecomposedLayerNorm",
    "Div",
    _layer_norm,
    fused_ops=("LayerNormalization",),
    form=Form(("ReduceMean", "Sub", "Mul", "Add", "Sqrt", "Div"), _build_layer_norm),
)

FUSED = (SILU, HARD_SWISH, GELU_ERF, LAYER_NORM)
"""The patterns toolchains run as one layer (``pattern_catalog.FUSED_PATTERNS``); where two
claim a node, the later one names it."""


# --- BatchNorm after the layer it folds into -------------------------------------------------


def _batchnorm_after_layer(g: PatternGraph, bn: Node) -> Match | None:
    """An inference-mode BatchNorm (one output, its four statistics) reading a Conv,
    ConvTranspose, Gemm or MatMul; nodes (layer, batchnorm)."""
    inputs, outputs = g.inputs(bn), g.outputs(bn)
    if len(inputs) != 5 or len(outputs) != 1 or g.attribute(bn, "training_mode", 0):
        return None
    layer = _produced_by(g, inputs[0], *FOLDING_PRODUCERS)
    if layer is None:
        return None
    return Match((layer, bn), _first_input(g, layer), outputs[0])


BATCHNORM_FOLD = GraphPattern("BatchNormFold", "BatchNormalization", _batchnorm_after_layer)
"""BatchNorm folded into the layer before it: the layer's output must feed only the BatchNorm
(and not be a graph output), else the unscaled tensor is still needed."""


def batchnorm_scale(gamma: np.ndarray, var: np.ndarray, epsilon: float) -> np.ndarray:
    """The per-channel factor a folded BatchNorm multiplies the layer's weights by."""
    gamma, var = gamma.astype(np.float64).reshape(-1), var.astype(np.float64).reshape(-1)
    return gamma / np.sqrt(var + epsilon)


def scaled_weight(
    op: str, attributes: Mapping[str, Any], weight: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """``weight`` with each output channel's slice multiplied by its scale."""
    if op == "Conv":
        return weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    if op == "ConvTranspose":  # [C_in, C_out / group, k...]
        group = int(attributes.get("group", 1))
        per_group = weight.shape[1]
        in_per_group = weight.shape[0] // group
        factor = np.stack(
            [
                scale[(i // in_per_group) * per_group : (i // in_per_group + 1) * per_group]
                for i in range(weight.shape[0])
            ]
        )
        return weight * factor.reshape(*factor.shape, *([1] * (weight.ndim - 2)))
    # Gemm: B is [K, N] or, with transB, [N, K]; alpha stays as it is
    return weight * (scale[:, None] if attributes.get("transB", 0) else scale[None, :])

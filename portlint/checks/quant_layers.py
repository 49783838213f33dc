"""PL304-PL306: layers whose integer version computes something else than the float one.

PL304 — an activation the target approximates (Intel GNA's piecewise-linear segments, NNoM's
fixed-point sigmoid), reported only where the source quantifies the damage: a stated maximum
error, or an input range beyond which the approximation breaks and the estimated (or measured)
input range exceeds it. An approximation without a number is the op-support rules' business.

PL305 — a BatchNormalization no convolution precedes: toolchains fold BN into the Conv/Gemm
before them, and one that follows a Concat, an Add or a graph input cannot be folded, so it
is quantized as a layer of its own (one more rounding; NNoM and GNA do not accept it at all).

PL306 — a ReLU whose widest channel spans many times its typical one, on a target where the
bounded ReLU6 (Clip 0..6) is native: the per-tensor activation scale is set by the widest
channel and the typical ones lose bits that ReLU6 would keep. Replacing it changes the model
(retrain or fine-tune), so it is advice, not a fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from portlint.checks.base import CheckContext, check
from portlint.checks.ops import in_target_domain
from portlint.findings import NODE, RawFinding
from portlint.graph_view import NodeView
from portlint.quant_math import bits_lost, fmt
from portlint.quant_scheme import Approximation
from portlint.ranges import tensor_range
from portlint.target import Target
from portlint.view_patterns import batchnorm_fold

RELU6_BOUND = 6.0
MIN_SPREAD_BITS = 3.0
"""PL306: typical channels lose at least this many bits to the widest (8×)."""
MAX_LISTED = 10
"""PL304 names this many of an activation's nodes in its note."""
MIN_GAIN_BITS = 1.0
"""PL306: and ReLU6 would give back at least one of them (the range exceeds 12)."""


def _approximated(node: NodeView, table: Mapping[str, Approximation]) -> Approximation | None:
    if node.pattern is not None and node.op_type == "Mul" and node.pattern in table:
        return table[node.pattern]
    return None if node.pattern and node.pattern in table else table.get(node.op_type)


def _approximation_damage(
    node: NodeView, entry: Approximation, ctx: CheckContext
) -> tuple[str, str, str] | None:
    """(message tail, actual, limit) when the source puts a number on the damage, else None."""
    if entry.max_error_percent is not None:
        return (
            f"up to {entry.max_error_percent:g} % error per value",
            f"max error {entry.max_error_percent:g} %",
            "exact activation",
        )
    if entry.input_range_limit is not None:
        found = tensor_range(ctx.view, node.inputs[0]) if node.inputs else None
        if found is None or found.absmax < entry.input_range_limit:
            return None
        return (
            f"its input spans ±{fmt(found.absmax)} ({found.how}), beyond the ±"
            f"{entry.input_range_limit:g} the approximation holds",
            f"input ±{fmt(found.absmax)}",
            f"input within ±{entry.input_range_limit:g}",
        )
    return None


@check(
    "approximated_activation",
    lambda t: any(
        a.max_error_percent is not None or a.input_range_limit is not None for a in t.approximations
    ),
)
def approximated_activation(ctx: CheckContext) -> Iterator[RawFinding]:
    """Activations the target approximates, where the source quantifies the error.

    A fixed error (GNA's 1 %) is the same on every node: one finding per activation, on its
    first node, counting the others (the note names them). A range limit depends on each
    node's input: one finding per node that exceeds it.
    """
    table = {a.name: a for a in ctx.target.approximations}
    if not table:
        return
    everywhere: dict[str, list[NodeView]] = {}
    for node in ctx.view.live_nodes():
        entry = _approximated(node, table)
        if entry is None or not in_target_domain(node, ctx.target):
            continue
        if entry.max_error_percent is not None:
            everywhere.setdefault(entry.name, []).append(node)
            continue
        damage = _approximation_damage(node, entry, ctx)
        if damage is not None:
            yield _approximation_finding(node, entry, ctx, damage, entry.note)
    for name, nodes in everywhere.items():
        entry = table[name]
        damage = _approximation_damage(nodes[0], entry, ctx)
        if damage is None:
            continue
        tail, actual, limit = damage
        if len(nodes) > 1:
            tail += f"; {len(nodes)} {name} nodes, the error compounding through each"
        listed = ", ".join(f'"{n.name}"' for n in nodes[:MAX_LISTED])
        more = f" and {len(nodes) - MAX_LISTED} more" if len(nodes) > MAX_LISTED else ""
        note = "; ".join(x for x in (entry.note, f"{name} nodes: {listed}{more}") if x)
        yield _approximation_finding(nodes[0], entry, ctx, (tail, actual, limit), note)


def _approximation_finding(
    node: NodeView,
    entry: Approximation,
    ctx: CheckContext,
    damage: tuple[str, str, str],
    note: str,
) -> RawFinding:
    tail, actual, limit = damage
    what = f"{entry.name} (as {node.op_type})" if entry.name != node.op_type else entry.name
    return RawFinding(
        node.name,
        NODE,
        f"{ctx.target.name} approximates {what}: {entry.how}; {tail}",
        node.op_type,
        actual,
        limit,
        entry.source,
        entry.verified,
        "accuracy",
        note=note,
    )


@check("unfolded_batchnorm", lambda t: t.scheme.known)
def unfolded_batchnorm(ctx: CheckContext) -> Iterator[RawFinding]:
    """BatchNormalization that no Conv/Gemm precedes, on targets that quantize."""
    if not ctx.target.scheme.known:
        return
    view = ctx.view
    for node in view.live_by_op.get("BatchNormalization", ()):
        if batchnorm_fold(view, node) is not None:
            continue
        source = view.producer(node.inputs[0]) if node.inputs else None
        after = f'{source.op_type} "{source.name}"' if source is not None else "a graph input"
        yield RawFinding(
            node.name,
            NODE,
            f"BatchNormalization follows {after}, so it cannot be folded into a convolution: "
            f"{ctx.target.name} quantizes it as a per-channel scale and shift of its own (one "
            "more rounding, one more layer); move it before the merge (one BatchNorm per branch) "
            "or retrain without it",
            node.op_type,
            f"after {source.op_type if source is not None else 'graph input'}",
            "directly after a Conv, ConvTranspose or Gemm whose only consumer it is",
            effect="accuracy",
        )


def _relu6_native(target: Target) -> bool:
    info = target.info.get("activations")
    return isinstance(info, Mapping) and "Clip" in info.get("native", ())


@check("unbounded_activation", lambda t: _relu6_native(t) and t.scheme.known)
def unbounded_activation(ctx: CheckContext) -> Iterator[RawFinding]:
    """ReLUs with a few very wide channels where the target runs ReLU6 natively."""
    if not (_relu6_native(ctx.target) and ctx.target.scheme.known):
        return
    info = ctx.target.info["activations"]
    for node in ctx.view.live_by_op.get("Relu", ()):
        found = tensor_range(ctx.view, node.outputs[0])
        if found is None or found.channel_absmax is None or found.high <= RELU6_BOUND:
            continue
        typical = float(np.median(found.channel_absmax))
        lost = bits_lost(typical, found.high)
        if lost < MIN_SPREAD_BITS:
            continue
        kept = bits_lost(RELU6_BOUND, found.high)
        if kept < MIN_GAIN_BITS:
            continue  # ReLU6 would hardly narrow the range: not worth a retraining
        yield RawFinding(
            node.name,
            NODE,
            f"Relu output reaches {fmt(found.high)} while its median channel reaches "
            f"{fmt(typical)} ({found.how}): one per-tensor scale costs the typical channel "
            f"{lost:.1f} bits; ReLU6 (Clip 0..6, native on {ctx.target.name}) would give back "
            f"{kept:.1f} of them — a change to the model: fine-tune or retrain with it",
            node.op_type,
            f"{lost:.1f} bits lost by the median channel",
            f"< {MIN_SPREAD_BITS:.0f} bits (widest within {2**MIN_SPREAD_BITS:.0f}× the median)",
            info.get("source"),
            bool(info.get("verified", True)),
            "accuracy",
        )

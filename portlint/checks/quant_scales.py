"""PL302 and PL303: values quantized on a scale made for someone else's range.

PL302 — a Concat (or NNoM's Multiply) whose inputs the target forces onto one scale: the
widest input sets the step, the narrowest loses log2(ratio) of its bits. Add, Sub, Max and
Min share a scale too on some targets, but their output is one tensor quantized on the widest
range anyway, so sharing the inputs' scale costs nothing more: they are left alone.

PL303 — an average pool on a target whose kernel cannot rescale its output (CMSIS-NN's
AVERAGE_POOL_2D keeps the input scale; NNoM's pools inherit their input's Q-format): the
average of small values is rounded to the *input's* step, and a channel whose average sits
below half a step reads 0 on the target.

Ranges are measured when the user gave sample inputs, else estimated (portlint/ranges.py);
a tensor whose range cannot be estimated keeps the rule silent.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from portlint.checks.base import CheckContext, check
from portlint.checks.ops import judged_ops
from portlint.findings import NODE, RawFinding
from portlint.graph_view import GraphView, NodeView
from portlint.quant_math import bits_lost, fmt, step
from portlint.quant_scheme import QuantScheme, SchemeFact
from portlint.ranges import Range, tensor_range

MIN_BITS_LOST = 4.0
"""PL302 fires when the narrowest input keeps at most half of an 8-bit code (16x narrower)."""
SHARED_SCALE_OPS = ("Concat", "Mul")
MIN_INPUT_STEPS = 8.0
VANISH_STEPS = 0.5
"""PL303: a channel that reaches MIN_INPUT_STEPS before the pool and averages below
VANISH_STEPS (rounds to 0) was wiped out by the pool, not by the layer before it."""
POOL_OPS = ("AveragePool", "GlobalAveragePool")
GLOBAL_POOL_NOTE = (
    "GlobalAveragePool becomes AVERAGE_POOL_2D or MEAN depending on the ONNX->TFLite converter; "
    "MEAN may rescale (unverified)"
)


def _symmetric(scheme: QuantScheme) -> bool:
    fact = scheme.activation_symmetric
    return bool(fact is not None and fact.value)


def _width(found: Range, symmetric: bool) -> float:
    """How much of the code a range needs: ±max for symmetric schemes, the span otherwise."""
    if symmetric:
        return found.absmax
    return max(found.high, 0.0) - min(found.low, 0.0)


def _activation_inputs(node: NodeView, view: GraphView) -> list[str]:
    """Inputs computed at run time (constants are quantized on their own)."""
    return [
        n
        for n in node.inputs
        if n and (t := view.tensor(n)) is not None and t.kind in ("activation", "graph_input")
    ]


def _finding(
    node: NodeView, message: str, actual: str, limit: str, fact: SchemeFact, note: str = ""
) -> RawFinding:
    notes = "; ".join(n for n in (note, fact.note) if n)
    return RawFinding(
        node.name,
        NODE,
        message,
        node.op_type,
        actual,
        limit,
        fact.source,
        fact.verified,
        "accuracy",
        note=notes,
    )


@check(
    "shared_scale_inputs",
    lambda t: any(t.scheme.shares_scale(op) for op in SHARED_SCALE_OPS),
)
def shared_scale_inputs(ctx: CheckContext) -> Iterator[RawFinding]:
    """Concat/Mul inputs far apart in range on targets that give them one scale."""
    scheme = ctx.target.scheme
    fact = scheme.shared_scale
    if fact is None:
        return
    symmetric = _symmetric(scheme)
    bits = scheme.bits()
    for node in judged_ops(ctx, tuple(op for op in SHARED_SCALE_OPS if scheme.shares_scale(op))):
        names = _activation_inputs(node, ctx.view)
        ranges = [tensor_range(ctx.view, n) for n in names]
        if len(names) < 2 or any(r is None for r in ranges):
            continue
        widths = [_width(r, symmetric) for r in ranges]
        narrow, wide = int(np.argmin(widths)), int(np.argmax(widths))
        lost = bits_lost(widths[narrow], widths[wide])
        if lost < MIN_BITS_LOST:
            continue
        kept = max(bits - lost, 0.0)
        yield _finding(
            node,
            f"{node.op_type} inputs share one int{bits} scale on {ctx.target.name}: "
            f'"{names[narrow]}" spans {fmt(widths[narrow])} while "{names[wide]}" spans '
            f"{fmt(widths[wide])} ({widths[wide] / widths[narrow]:.0f}×); the narrower loses "
            f"{lost:.1f} of its {bits} bits and keeps {kept:.1f} ({ranges[narrow].how})",
            f"{lost:.1f} bits lost by the narrowest input",
            f"< {MIN_BITS_LOST:.0f} bits lost: inputs within {2**MIN_BITS_LOST:.0f}× of each other",
            fact,
        )


def _pool_fact(scheme: QuantScheme, op: str) -> tuple[SchemeFact | None, str]:
    if scheme.inherit_scale is not None and op in scheme.inherit_scale.value:
        return scheme.inherit_scale, ""
    if scheme.shares_scale("AveragePool"):
        return scheme.shared_scale, GLOBAL_POOL_NOTE if op == "GlobalAveragePool" else ""
    return None, ""


@check(
    "pooled_small_values",
    lambda t: any(_pool_fact(t.scheme, op)[0] is not None for op in POOL_OPS),
)
def pooled_small_values(ctx: CheckContext) -> Iterator[RawFinding]:
    """Average pools whose channel averages drop below half a step of the input's scale."""
    scheme = ctx.target.scheme
    symmetric, bits = _symmetric(scheme), scheme.bits()
    for node in judged_ops(ctx, POOL_OPS):
        fact, note = _pool_fact(scheme, node.op_type)
        if fact is None:
            continue
        before, after = (tensor_range(ctx.view, n) for n in (node.inputs[0], node.outputs[0]))
        if before is None or after is None or after.channel_typical is None:
            continue
        size = step(before.low, before.high, bits, symmetric, scheme.pot_scales)
        if size <= 0 or before.channel_absmax is None:
            continue
        averages, peaks = after.channel_typical / size, before.channel_absmax / size
        if averages.shape != peaks.shape:
            continue
        # channels the pool itself wipes out: representable before it, zero after it
        wiped = (peaks >= MIN_INPUT_STEPS) & (averages < VANISH_STEPS)
        if not wiped.any():
            continue
        worst = int(np.argmax(np.where(wiped, peaks / np.maximum(averages, 1e-12), -1.0)))
        unverified = not fact.verified or bool(note)
        yield _finding(
            node,
            f"{node.op_type} keeps its input's int{bits} scale on {ctx.target.name} (step "
            f"{fmt(size)} for the input's range {fmt(before.low)}..{fmt(before.high)}): "
            f"{int(wiped.sum())} of {averages.size} channels reach {MIN_INPUT_STEPS:.0f} steps "
            f"or more before the pool but average below half a step, so they read 0 after it; "
            f"channel {worst} peaks at {fmt(before.channel_absmax[worst])} and averages "
            f"{fmt(after.channel_typical[worst])} = {averages[worst]:.2f} steps ({after.how})",
            f"{int(wiped.sum())} channels averaged to 0",
            "every channel's average ≥ half a step of the input scale",
            fact if not unverified else SchemeFact(fact.source, False, fact.note, fact.value),
            note,
        )

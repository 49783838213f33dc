"""PL307: layers the vendor itself quantizes at 16 bits, still at the default 8.

Vendors' own recipes keep some layers at 16 bits: Hailo's model zoo the output layers,
Espressif's YOLO recipe the detection heads, Amlogic's rule any tensor whose calibrated
values exceed ±256. The profile says which (``quantization.sixteen_bit``) and the finding
names the layers, so the user can set them in the toolchain's mixed-precision config. A
detector's heads are the convolutions before its post-processing tail (the one PL108 cuts):
on a model without that tail, the layers producing the outputs are the heads.

One finding per kind of layer, on the first one; the note lists them all.
"""

from __future__ import annotations

from collections.abc import Iterator

from portlint.checks.base import CheckContext, check
from portlint.findings import NODE, RawFinding
from portlint.graph_view import GraphView, NodeView
from portlint.postprocess import find_tail, quoted
from portlint.quant_math import fmt
from portlint.quant_scheme import SchemeFact
from portlint.ranges import tensor_range
from portlint.view_patterns import folded_batchnorm

SHOWN = 10


def _heads(view: GraphView, detector_only: bool) -> tuple[list[NodeView], str]:
    """The detector's head convolutions, else (unless ``detector_only``) the output layers."""
    by_name = {n.name: n for n in view.nodes}
    tail = find_tail(view)
    if tail is not None and tail.detector:
        return [by_name[n] for n in tail.head_ends if n in by_name], "detector head layer"
    if detector_only:
        return [], ""
    producers = (view.producer(t.name) for t in view.graph_outputs)
    unique = {p.name: p for p in producers if p is not None and not p.folded}
    return list(unique.values()), "output layer"


def _wide(view: GraphView, limit: float) -> list[tuple[NodeView, float, str]]:
    found = []
    for node in view.live_nodes():
        if folded_batchnorm(view, node) is not None:
            continue  # folded into that BatchNorm: the tensor does not exist on the target
        measured = tensor_range(view, node.outputs[0]) if node.outputs else None
        if measured is not None and measured.absmax > limit:
            found.append((node, measured.absmax, measured.how))
    return found


def _finding(
    nodes: list[NodeView], message: str, actual: str, limit: str, fact: SchemeFact
) -> RawFinding:
    listed = quoted([n.name for n in nodes[:SHOWN]])
    more = f" and {len(nodes) - SHOWN} more" if len(nodes) > SHOWN else ""
    note = "; ".join(x for x in (fact.note, f"layers: {listed}{more}") if x)
    first = nodes[0]
    return RawFinding(
        first.name,
        NODE,
        message,
        first.op_type,
        actual,
        limit,
        fact.source,
        fact.verified,
        "accuracy",
        note=note,
    )


@check("sixteen_bit_layers", lambda t: t.scheme.sixteen_bit is not None)
def sixteen_bit_layers(ctx: CheckContext) -> Iterator[RawFinding]:
    """Layers the target's vendor quantizes at 16 bits, on a model quantized at 8."""
    scheme = ctx.target.scheme
    fact = scheme.sixteen_bit
    if fact is None or scheme.bits() >= 16:
        return
    kinds, name = fact.value, ctx.target.name
    if "outputs" in kinds or "detector-heads" in kinds:
        heads, label = _heads(ctx.view, "outputs" not in kinds)
        if heads:
            which = (
                f"one of {len(heads)} {label}s, which {name}'s vendor recipes often quantize"
                if len(heads) > 1
                else f"the model's {label}, which {name}'s vendor recipes often quantize"
            )
            yield _finding(
                heads,
                f"{which} at 16 bits; at int{scheme.bits()} they lose accuracy: set "
                f"{'them' if len(heads) > 1 else 'it'} to 16 bits in the toolchain's "
                "mixed-precision config",
                f"{len(heads)} {label}s at int{scheme.bits()}",
                f"{label}s at 16 bits",
                fact,
            )
    if "wide-range" in kinds and scheme.sixteen_bit_range is not None:
        wide = _wide(ctx.view, scheme.sixteen_bit_range)
        if wide:
            node, largest, how = max(wide, key=lambda item: item[1])
            yield _finding(
                [node, *(n for n, _, _ in wide if n is not node)],
                f"{len(wide)} layer output{'s exceed' if len(wide) > 1 else ' exceeds'} "
                f"±{scheme.sixteen_bit_range:g}, the range "
                f"beyond which {name}'s vendor rule quantizes a layer at 16 bits; this one "
                f"spans ±{fmt(largest)} ({how})",
                f"±{fmt(largest)}",
                f"within ±{scheme.sixteen_bit_range:g} at int{scheme.bits()}",
                fact,
            )

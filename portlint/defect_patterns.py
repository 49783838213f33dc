"""Graph patterns that some compiler version is known to fail on, declared once.

A profile's ``defects`` entry names one of these patterns; the ``toolchain_defect`` check
finds it in the model and reports it for the toolchain versions the profile says fail. Each
matcher is pure (the graph view in, the matches out) and says in words what it looks for,
for the generated docs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from portlint.graph_view import GraphView, NodeView
from portlint.postprocess import is_dfl_conv

RESHAPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})


@dataclass(frozen=True)
class Match:
    """One occurrence: the node a finding is reported on, and every node of the pattern."""

    anchor: str
    op_type: str
    nodes: tuple[str, ...]
    shape: str  # the op sequence in words: "Conv → Reshape → 2 × Slice"


@dataclass(frozen=True)
class DefectPattern:
    name: str
    description: str
    find: Callable[[GraphView], list[Match]]


def _through_reshapes(view: GraphView, tensor: str) -> tuple[list[NodeView], list[NodeView]]:
    """(the reshapes passed, the first non-reshape consumers) from ``tensor`` onwards."""
    passed: list[NodeView] = []
    consumers = view.consumers(tensor)
    while len(consumers) == 1 and consumers[0].op_type in RESHAPES:
        passed.append(consumers[0])
        consumers = view.consumers(consumers[0].outputs[0])
    return passed, consumers


def _dfl_split(view: GraphView) -> list[Match]:
    matches = []
    for node in view.live_by_op.get("Conv", []):
        if not is_dfl_conv(node, view):
            continue
        reshapes, consumers = _through_reshapes(view, node.outputs[0])
        if not reshapes:
            continue
        splits = [c for c in consumers if c.op_type == "Split"]
        slices = [c for c in consumers if c.op_type == "Slice"]
        if splits:
            end, count = splits, "Split"
        elif len(slices) >= 2:
            end, count = slices, f"{len(slices)} × Slice"
        else:
            continue
        chain = " → ".join(["Conv", *(r.op_type for r in reshapes), count])
        members = (node.name, *(r.name for r in reshapes), *(e.name for e in end))
        matches.append(Match(node.name, node.op_type, members, f"DFL decode head: {chain}"))
    return matches


DEFECT_PATTERNS: dict[str, DefectPattern] = {
    p.name: p
    for p in (
        DefectPattern(
            "dfl-split",
            "a detector's DFL convolution (softmax over the distance bins, then a 1×1 Conv "
            "with arange weights) whose output is reshaped and split into the two box "
            "corners (Split, or two Slices of one tensor): Ultralytics YOLOv8/v5u/11 exports",
            _dfl_split,
        ),
    )
}

"""The rewrite passes ``portlint fix`` has, declared: what each promises and what it resolves.

Declarations only — no onnx, no graphsurgeon — so rules, reports and docs can say which
passes fix a finding without importing the passes (and paying for graphsurgeon at start-up).
The code of each pass is the ``Rewrite`` its ``implementation`` names; ``portlint.passes.
registry`` binds the two. The order here is the order ``fix`` runs them in, and it is
deliberate: shapes are pinned and constants folded before anything looks at the graph, the
post-processing tail is cut before ops in it are decomposed, and BatchNorm is folded before
channels are padded, so later passes see the simplest graph.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any

from portlint.errors import suggest


class Semantics(str, Enum):
    """What a pass promises about the model's outputs."""

    EXACT = "exact"  # identical outputs up to float rounding; applied by default
    INTERFACE = "interface-changing"  # outputs change (graph cut); needs --unsafe-fixes
    APPROXIMATE = "approximate"  # the numbers change; only when named; needs fine-tuning


@dataclass(frozen=True)
class PassOption:
    name: str
    help: str
    default: Any = None


@dataclass(frozen=True)
class PassInfo:
    """One pass as declared: its promise, the rules it resolves, where its code lives.

    ``edits_in_place`` False promises that the pass builds a new model and leaves the one it
    is given as it is, so ``fix`` need not copy the model, weights and all, for it.
    ``why`` is the pass module's docstring after its first paragraph (``why_paragraphs``
    limits it), read from the source rather than by importing the module.
    """

    name: str
    summary: str
    semantics: Semantics
    resolves: tuple[str, ...]
    implementation: str  # "module:ATTRIBUTE" naming a portlint.passes.base.Rewrite
    options: tuple[PassOption, ...] = ()
    edits_in_place: bool = True
    why_paragraphs: int | None = None

    @property
    def module(self) -> str:
        return self.implementation.split(":", 1)[0]

    @cached_property
    def why(self) -> str:
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"pass {self.name}: no module {self.module}")
        doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or ""
        paragraphs = doc.split("\n\n")[1:]
        if self.why_paragraphs is not None:
            paragraphs = paragraphs[: self.why_paragraphs]
        return "\n\n".join(paragraphs).strip()


CUT_OPTION = PassOption(
    "cut",
    "comma-separated tensor or node names to cut at instead of the detected head outputs "
    "(a node name stands for its outputs)",
)
SILU_RESOLVES = ("PL101", "PL102", "PL107")

CATALOG: dict[str, PassInfo] = {
    p.name: p
    for p in (
        PassInfo(
            "make-static",
            "Pin dynamic input dims (batch to 1, others from --input-shape).",
            Semantics.EXACT,
            ("PL200", "PL201"),
            "portlint.passes.make_static:REWRITE",
        ),
        PassInfo(
            "simplify",
            "Fold constant subgraphs and remove no-op nodes (onnxsim).",
            Semantics.EXACT,
            ("PL101", "PL102", "PL109"),
            "portlint.passes.simplify:REWRITE",
            edits_in_place=False,
        ),
        PassInfo(
            "strip-postprocess",
            "Cut a detector at its head outputs; decode, DFL and NMS move to a host model.",
            Semantics.INTERFACE,
            ("PL108", "PL101", "PL102", "PL106", "PL107", "PL109", "PL203", "PL204"),
            "portlint.passes.strip_postprocess:REWRITE",
            options=(CUT_OPTION,),
            edits_in_place=False,
        ),
        PassInfo(
            "decompose",
            "Rewrite HardSwish, Gelu, LayerNormalization, Gemm into ops the target has.",
            Semantics.EXACT,
            ("PL101", "PL102"),
            "portlint.passes.decompose:REWRITE",
            edits_in_place=False,
        ),
        PassInfo(
            "fold-batchnorm",
            "Fold inference BatchNormalization into the Conv, ConvTranspose or Gemm before it.",
            Semantics.EXACT,
            ("PL101", "PL102", "PL107"),
            "portlint.passes.fold_batchnorm:REWRITE",
            edits_in_place=False,
        ),
        PassInfo(
            "silu-to-relu",
            "Replace SiLU (x*sigmoid(x)) with ReLU; needs fine-tuning.",
            Semantics.APPROXIMATE,
            SILU_RESOLVES,
            "portlint.passes.silu:TO_RELU",
            edits_in_place=False,
        ),
        PassInfo(
            "silu-to-hardswish",
            "Replace SiLU with HardSwish (closer than ReLU); needs fine-tuning.",
            Semantics.APPROXIMATE,
            SILU_RESOLVES,
            "portlint.passes.silu:TO_HARDSWISH",
            edits_in_place=False,
        ),
        PassInfo(
            "pad-channels",
            "Pad Conv channels with zero filters to the target's multiple (exact).",
            Semantics.EXACT,
            ("PL220",),
            "portlint.passes.pad_channels:REWRITE",
            edits_in_place=False,
            why_paragraphs=1,
        ),
    )
}


def pass_info(name: str) -> PassInfo:
    """The declared pass ``name``; an unknown name fails with the closest names."""
    if name not in CATALOG:
        raise suggest(name, list(CATALOG), "pass")
    return CATALOG[name]


def passes_resolving(rule: str) -> tuple[str, ...]:
    """The passes that resolve ``rule``'s findings, in run order."""
    return tuple(p.name for p in CATALOG.values() if rule in p.resolves)

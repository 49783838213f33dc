"""The rewrite passes ``portlint fix`` can run, in the order it runs them.

The order is fixed and deliberate: shapes are pinned and constants folded before anything
looks at the graph, the post-processing tail is cut before ops in it are decomposed, and
BatchNorm is folded before channels are padded, so later passes see the simplest graph.
"""

from __future__ import annotations

from portlint.errors import suggest
from portlint.passes.base import Pass, PassContext, PassOption, PassResult, Semantics

PASSES: dict[str, Pass] = {}


def register(item: Pass) -> Pass:
    PASSES[item.name] = item
    return item


def get_pass(name: str) -> Pass:
    if name not in PASSES:
        raise suggest(name, list(PASSES), "pass")
    return PASSES[name]


RUN_ORDER = (
    "make-static",
    "simplify",
    "strip-postprocess",
    "decompose",
    "fold-batchnorm",
    "silu-to-relu",
    "silu-to-hardswish",
    "pad-channels",
)

from portlint.passes import (  # noqa: E402,F401  (registration)
    decompose,
    fold_batchnorm,
    make_static,
    pad_channels,
    silu,
    simplify,
    strip_postprocess,
)

_ordered = sorted(PASSES.items(), key=lambda item: RUN_ORDER.index(item[0]))
PASSES.clear()
PASSES.update(_ordered)

__all__ = ["PASSES", "Pass", "PassContext", "PassOption", "PassResult", "Semantics", "get_pass"]

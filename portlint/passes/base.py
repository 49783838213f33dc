"""What a rewrite pass is: a declared effect on the model's meaning, and a function.

Each pass says up front what it does to the numbers (``Semantics``). The fixer holds it to
that declaration: an exact pass whose outputs move is refused, an interface-changing pass is
proven on the part it keeps and on the tail it hands to the CPU, and an approximate pass has
its deviation measured and reported. Passes themselves are pure: model in, model out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import onnx

from portlint.config import Config
from portlint.pass_catalog import PassInfo, PassOption, Semantics
from portlint.target import Target


@dataclass
class PassContext:
    """The model a pass works on, the target it works for, and the user's options.

    ``model`` carries its weights. It is the pass's own copy, which it may edit in place,
    unless the pass says it never does (``Pass.edits_in_place``): then it is the fixer's
    current model, handed over without copying every weight.
    """

    model: onnx.ModelProto
    target: Target
    options: Mapping[str, Any] = field(default_factory=dict)
    input_shapes: Mapping[str, list[int]] = field(default_factory=dict)
    config: Config = field(default_factory=Config)

    @cached_property
    def report(self):
        """The target's findings on this model (after the user's select/ignore), for passes
        that fix what ``check`` flags."""
        from portlint.in_memory import check_in_memory

        return check_in_memory(self.model, self.target, self.input_shapes, self.config)

    def flagged(self, rules: tuple[str, ...] | None = None) -> dict[str, list[str]]:
        """Node name -> rule codes of the target's findings on it (optionally only ``rules``)."""
        found: dict[str, list[str]] = {}
        for finding in self.report.findings:
            if rules is None or finding.rule in rules:
                found.setdefault(finding.location, []).append(finding.rule)
        return found


@dataclass
class PassResult:
    """A pass's output: the new model and a human line per change and per thing skipped.

    Interface-changing passes that cut the graph also return the removed ``tail``: a model
    whose inputs are the new graph outputs and whose outputs are the original ones.
    """

    model: onnx.ModelProto
    changes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    tail: onnx.ModelProto | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True)
class Pass:
    """One rewrite: its name, what it promises, which rules it resolves, and how to run it.

    ``wanted`` says why the pass belongs in the default plan for this model and target
    (``None``: it has nothing to do), so ``fix`` runs only what resolves a finding; it only
    reads the model. ``edits_in_place`` False promises that ``run`` leaves ``ctx.model`` as it
    is (it builds a new model), so ``fix`` need not copy the model, weights and all, for it.
    """

    name: str
    summary: str
    semantics: Semantics
    resolves: tuple[str, ...]
    run: Callable[[PassContext], PassResult]
    wanted: Callable[[PassContext], str | None]
    why: str
    options: tuple[PassOption, ...] = ()
    edits_in_place: bool = True

    @classmethod
    def bound(cls, info: PassInfo, rewrite: Rewrite) -> Pass:
        """The declared pass ``info`` with the code that runs it."""
        return cls(
            info.name,
            info.summary,
            info.semantics,
            info.resolves,
            rewrite.run,
            rewrite.wanted,
            info.why,
            info.options,
            info.edits_in_place,
        )


@dataclass(frozen=True)
class Rewrite:
    """A pass's code: ``run`` rewrites the model; ``wanted`` says why the pass belongs in the
    default plan for this model and target (``None``: it has nothing to do), reading only."""

    run: Callable[[PassContext], PassResult]
    wanted: Callable[[PassContext], str | None]


__all__ = ["Pass", "PassContext", "PassOption", "PassResult", "Rewrite", "Semantics"]

"""Findings: what checks report, and what reports render."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from portlint.facts import Source
from portlint.rule import Severity

NODE, TENSOR, GRAPH_INPUT, GRAPH = "node", "tensor", "graph_input", "graph"


@dataclass(frozen=True)
class RawFinding:
    """What a check yields: where, what is wrong, and which sourced fact says so."""

    location: str
    kind: str  # node | tensor | graph_input | graph
    message: str
    op_type: str | None = None
    actual: str | None = None
    limit: str | None = None
    source: str | None = None
    verified: bool = True
    effect: str | None = None  # reject | cpu | slow; None = the rule's default
    rule: str | None = None  # set when a check reports under another rule (PL200)
    note: str = ""
    enforced_by: str = "compiler"  # or "runtime": the device refuses it, the converter does not


@dataclass(frozen=True)
class Finding:
    """A finding tied to a rule and a target, with its final severity."""

    rule: str
    rule_name: str
    severity: Severity
    target: str
    location: str
    kind: str
    op_type: str | None
    message: str
    actual: str | None
    limit: str | None
    source: Source | None
    verified: bool
    effect: str
    help: str
    note: str = ""
    enforced_by: str = "compiler"  # or "runtime": the device refuses it, the converter does not
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def fingerprint(self) -> str:
        """Stable across runs and unrelated edits: rule, target, location and op."""
        key = "\x1f".join((self.rule, self.target, self.kind, self.location, self.op_type or ""))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def moves_to_cpu(self) -> bool:
        return self.kind == NODE and self.effect == "cpu"

    @property
    def blocks_compile(self) -> bool:
        return self.effect == "reject"

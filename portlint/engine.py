"""Run the selected rules for each target over a graph view; pure, no I/O."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from portlint.checks.catalog import CheckContext, check_of
from portlint.config import Config
from portlint.findings import NODE, Finding, RawFinding
from portlint.graph_view import GraphView
from portlint.model_io.loaded import gc_paused
from portlint.rule import Rule, RuleRegistry, Severity
from portlint.target import EFFECTS, SEVERITY_EFFECT, Target, effect_severity

if TYPE_CHECKING:
    from portlint.graph_outline import GraphOutline

RUNS, RUNS_WITH_FALLBACK, DOES_NOT_COMPILE = "runs", "runs with CPU fallback", "does not compile"


@dataclass
class TargetReport:
    """Findings for one model on one target, and where its nodes end up."""

    target: Target
    findings: list[Finding]
    nodes: int
    npu_nodes: int
    cpu_nodes: int
    rejected_nodes: int
    partitions: int
    placement: dict[str, str] = field(default_factory=dict)
    accepted: list[Finding] = field(default_factory=list)  # in the baseline: not reported

    @property
    def verdict(self) -> str:
        if any(f.blocks_compile for f in (*self.findings, *self.accepted)):
            return DOES_NOT_COMPILE
        if self.cpu_nodes:
            return RUNS_WITH_FALLBACK
        return RUNS

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)


@dataclass
class ModelReport:
    path: Path
    ir_version: int
    opsets: dict[str, int]
    node_count: int
    live_nodes: int
    targets: list[TargetReport]
    inference_error: str | None = None
    foldable_nodes: int = 0
    """Folded nodes other than Constants: the shape arithmetic and constant subgraphs an
    unsimplified export carries, which simplification (onnxsim) would remove."""
    unmatched_ignores: list[str] = field(default_factory=list)
    graph: GraphOutline | None = None
    """The live graph as the check saw it (set by ``portlint.api``), so reports draw and name
    it without reading the model again."""

    @property
    def findings(self) -> list[Finding]:
        return [f for t in self.targets for f in t.findings]


def selected_rules(rules: RuleRegistry, config: Config) -> list[Rule]:
    """Rules after select/ignore (code prefixes or names); preview rules only when selected."""
    chosen = (
        [r for s in config.select for r in rules.matching(s)]
        if config.select
        else [r for r in rules if r.status == "stable"]
    )
    ignored = {r.code for s in config.ignore for r in rules.matching(s)}
    return sorted(
        {r.code: r for r in chosen if r.code not in ignored}.values(), key=lambda r: r.code
    )


def _finish(raw: RawFinding, rule: Rule, target: Target, config: Config) -> Finding:
    effect = raw.effect or SEVERITY_EFFECT[rule.severity]
    default = rule.severity if effect not in EFFECTS else effect_severity(effect, rule.severity)
    severity = config.severity.get(rule.code) or default
    return Finding(
        rule.code,
        rule.name,
        severity,
        target.name,
        raw.location,
        raw.kind,
        raw.op_type,
        raw.message,
        raw.actual,
        raw.limit,
        target.sources.get(raw.source or ""),
        raw.verified,
        effect,
        rule.help,
        raw.note,
        raw.enforced_by,
    )


class _IgnoreTracker:
    """Per-node ignores by glob; remembers which entries matched so stale ones surface."""

    def __init__(self, config: Config, rules: RuleRegistry):
        self._entries = [
            (glob, {r.code for s in codes for r in rules.matching(s)})
            for glob, codes in config.per_node_ignores.items()
        ]
        self.used: set[str] = set()

    def ignored(self, finding: Finding) -> bool:
        for glob, codes in self._entries:
            if finding.rule in codes and fnmatch.fnmatchcase(finding.location, glob):
                self.used.add(glob)
                return True
        return False

    def unmatched(self) -> list[str]:
        return [glob for glob, _ in self._entries if glob not in self.used]


def _placement(view: GraphView, findings: list[Finding], target: Target) -> dict[str, str]:
    """Where each live node ends up: "npu", "cpu" or "rejected".

    On single-partition toolchains (the Edge TPU compiler) the first node that leaves the NPU
    takes every later node with it, whatever their own support.
    """
    rejected = {f.location for f in findings if f.kind == NODE and f.blocks_compile}
    on_cpu = {f.location for f in findings if f.moves_to_cpu} - rejected
    places = {}
    tail = False
    for node in view.live_nodes():
        if node.name in rejected:
            places[node.name] = "rejected"
        elif node.name in on_cpu or tail:
            places[node.name] = "cpu"
        else:
            places[node.name] = "npu"
        tail = tail or (target.partitioning == "single" and places[node.name] != "npu")
    return places


def _tail_findings(
    view: GraphView,
    findings: list[Finding],
    places: dict[str, str],
    target: Target,
    rule: Rule,
    config: Config,
) -> list[Finding]:
    """One finding naming the op that cut the single partition and what it dragged along."""
    own = {f.location for f in findings if f.kind == NODE and f.effect in ("cpu", "reject")}
    dragged = [n for n in view.live_nodes() if places.get(n.name) == "cpu" and n.name not in own]
    if target.partitioning != "single" or not dragged:
        return []
    first = next(n for n in view.live_nodes() if n.name in own)
    fact = target.partitioning_fact
    raw = RawFinding(
        first.name,
        NODE,
        f"{len(dragged)} supported nodes after {first.op_type} "
        f"{first.name!r} run on the CPU: {target.name} builds a single NPU "
        "partition",
        first.op_type,
        f"{len(dragged)} nodes",
        "one NPU partition",
        fact.source if fact else None,
        fact.verified if fact else True,
        "cpu",
        note=fact.note if fact else "",
    )
    return [_finish(raw, rule, target, config)]


def _partitions(view: GraphView, npu: set[str]) -> int:
    """Connected groups of NPU nodes: each one is a separate NPU program (union-find over the
    edges between NPU nodes)."""
    parent = {name: name for name in npu}

    def root(name: str) -> str:
        while (up := parent[name]) != name:
            parent[name] = name = parent[up]  # path halving
        return name

    groups = len(parent)
    for a, b in view.edges:
        if a in parent and b in parent:
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[ra] = rb
                groups -= 1
    return groups


def check_target(
    view: GraphView,
    target: Target,
    rules: list[Rule],
    config: Config,
    tracker: _IgnoreTracker | None = None,
) -> TargetReport:
    """All findings of ``rules`` on ``target``, after severity overrides and per-node ignores."""
    by_code = {r.code: r for r in rules}
    findings: list[Finding] = []
    for rule in rules:
        for raw in check_of(rule)(CheckContext(view, target, rule.code)):
            actual_rule = by_code.get(raw.rule or rule.code)
            if actual_rule is None:
                continue  # reported under a rule the user did not select (e.g. PL200)
            finding = _finish(raw, actual_rule, target, config)
            if tracker is None or not tracker.ignored(finding):
                findings.append(finding)
    order = {n.name: n.index for n in view.nodes}
    findings.sort(key=lambda f: (-f.severity.rank, order.get(f.location, -1), f.rule))
    places = _placement(view, findings, target)
    if "PL106" in by_code:
        findings.extend(_tail_findings(view, findings, places, target, by_code["PL106"], config))
    npu = {name for name, place in places.items() if place == "npu"}
    counts = [sum(1 for p in places.values() if p == kind) for kind in ("cpu", "rejected")]
    return TargetReport(
        target, findings, len(places), len(npu), *counts, _partitions(view, npu), places
    )


@gc_paused()
def check_model(
    view: GraphView, path: Path, targets: list[Target], rules: RuleRegistry, config: Config
) -> ModelReport:
    chosen = selected_rules(rules, config)
    tracker = _IgnoreTracker(config, rules)
    reports = [check_target(view, t, chosen, config, tracker) for t in targets]
    return ModelReport(
        path,
        view.ir_version,
        dict(view.opsets),
        len(view.nodes),
        sum(1 for _ in view.live_nodes()),
        reports,
        view.inference_error,
        sum(1 for n in view.nodes if n.folded and n.op_type != "Constant"),
        tracker.unmatched(),
    )

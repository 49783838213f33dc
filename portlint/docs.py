"""Docs generated from the rule and target declarations, so they cannot drift from the code."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from portlint.checks.catalog import APPLIES
from portlint.checks.constraint import describe
from portlint.facts import EVIDENCE_KINDS
from portlint.findings import GRAPH_INPUT, NODE, TENSOR, Finding
from portlint.pass_catalog import CATALOG, PassInfo
from portlint.pattern_catalog import DEFECT_PATTERNS
from portlint.probe.judge import LABELS
from portlint.probe.plan import fact_for
from portlint.rule import Rule, load_rules
from portlint.rule_cases import RuleCase, cases_for
from portlint.target import EFFECT_WORDS, Constraint, Fact, Target


def _enforced_by(rule: Rule, targets: list[Target]) -> list[str]:
    if rule.check in ("constraint", "dynamic_shape"):
        return [t.name for t in targets if t.constraints_for(rule.code)]
    if rule.check == "partition_tail":
        return [t.name for t in targets if t.partitioning == "single"]
    if rule.check == "opset_range":
        return [t.name for t in targets if t.opset_fact is not None]
    if rule.check in APPLIES:
        return [t.name for t in targets if APPLIES[rule.check](t)]
    return [t.name for t in targets]


def _indented(text: str) -> list[str]:
    """A Markdown code block (indented, as the ``## Example`` line is)."""
    return [f"    {line}".rstrip() for line in text.strip().splitlines()]


def _finding_line(finding: Finding) -> str:
    """A finding as the rules' ``example:`` lines show one: where, then the message."""
    where = {
        NODE: f'{finding.op_type} "{finding.location}"',
        GRAPH_INPUT: f'input "{finding.location}"',
        TENSOR: f'tensor "{finding.location}"',
    }.get(finding.kind, finding.location)
    return f"{where}: {finding.message}"


def _case_lines(case: RuleCase) -> list[str]:
    """One case: its model, and what ``check`` (and ``fix``, if the case names it) makes of
    it. The check runs here, so the page shows the finding as it is, not as remembered."""
    from portlint.in_memory import check_in_memory  # the engine only for pages with cases
    from portlint.target import load_target

    verdict = "Flagged" if case.fails else "Not flagged"
    lines = [f"{verdict} on {case.target} (`{case.name}`):", "", *_indented(case.model), ""]
    if not case.fails:
        return lines
    report = check_in_memory(case.parse(), load_target(case.target))
    found = [_finding_line(f) for f in report.findings if f.rule == case.rule]
    lines += ["gives", "", *_indented("\n".join(found)), ""]
    if case.fix is not None:
        command = f"portlint fix MODEL --target {case.target}{case.fix.arguments}"
        lines += [f"`{command}` runs {', '.join(case.fix.runs)}, and the rule no longer fires.", ""]
    return lines


def _cases_section(rule: Rule) -> list[str]:
    """The rule's first failing and first passing case (``rules/cases/``; the test suite
    runs every one of them)."""
    cases = cases_for(rule)
    shown = [
        next((c for c in cases if c.fails), None),
        next((c for c in cases if not c.fails), None),
    ]
    if not any(shown):
        return []
    lines = ["## Cases", "", f"From `rules/cases/{rule.code}.yaml`, checked by the test suite.", ""]
    for case in filter(None, shown):
        lines += _case_lines(case)
    return lines


def render_rule_markdown(rule: Rule, targets: list[Target] | None = None) -> str:
    """The page `portlint rule CODE` prints, with ruff's headings."""
    lines = [
        f"# {rule.code} {rule.name}",
        "",
        f"{rule.summary}",
        "",
        f"Default severity: **{rule.severity.value}** · category: {rule.category} · "
        f"status: {rule.status}",
        "",
        "## Why it matters",
        "",
        rule.why,
        "",
    ]
    if rule.example:
        lines += ["## Example", "", f"    {rule.example}", ""]
    lines += _cases_section(rule)
    if rule.help:
        lines += ["## How to fix", "", rule.help, ""]
    fixes = ", ".join(f"[{name}](../passes/{name}.md)" for name in rule.fixes)
    lines += [
        "## Fixed by `portlint fix`",
        "",
        fixes or "No rewrite pass resolves it yet.",
        "",
    ]
    if targets is not None:
        enforced = _enforced_by(rule, targets)
        lines += ["## Targets that check it", "", ", ".join(enforced) or "none yet", ""]
    return "\n".join(lines)


class _Facts:
    """How a target page cites a fact: its source and kind, and what recorded probes of it
    showed with the compiler version the profile describes."""

    def __init__(self, target: Target):
        from portlint.probe.evidence import recorded_for

        self.target = target
        self.tool = ""
        self.probed: dict[str, list[str]] = {}
        for evidence in recorded_for(target.name, target.toolchain_version):
            for r in evidence.records:
                side = r.id.rsplit(":", 1)[1] if r.id.startswith("limit:") else ""
                said = f"{side} {LABELS[r.compiler]}".strip()
                self.probed.setdefault(fact_for(r.id, r.fact, target), []).append(said)
            self.tool = f"{evidence.toolchain} {evidence.version}"

    def unlisted(self) -> str:
        """What the probes of ops the profile does not list showed, one op each."""
        found = sorted(
            f"{fact.removeprefix('unlisted.')} {said[0]}"
            for fact, said in self.probed.items()
            if fact.startswith("unlisted.")
        )
        return f" Probed with {self.tool}: {', '.join(found)}." if found else ""

    def blocks(self) -> list[str]:
        """What the compiler did with each block probe (SiLU as Sigmoid and Mul, attention,
        a DFL head...), as a section of its own: these test the profile as a whole."""
        from portlint.probe.blocks import BLOCKS, describe

        found = {
            fact.removeprefix("blocks."): said[0]
            for fact, said in self.probed.items()
            if fact.startswith("blocks.")
        }
        if not found:
            return []
        lines = ["", f"## Exported blocks, probed with {self.tool}", ""]
        return lines + [
            f"- `{name}` ({describe(name)}): {found[name]}" for name in BLOCKS if name in found
        ]

    def suffix(self, fact: Fact, key: str | None = None) -> str:
        kind = self.target.evidence_kind(fact)
        cited = fact.source if kind == "document" else f"{fact.source} · {kind}"
        flag = " **(unverified)**" if not fact.verified else ""
        found = self.probed.get(key or "")
        probed = f" · probed with {self.tool}: {', '.join(found)}" if found else ""
        note = f" — {fact.note}" if fact.note else ""
        return f" [{cited}]{flag}{probed}{note}"


def _constraint_line(c: Constraint, default_effect: str, facts: _Facts) -> str:
    effect = EFFECT_WORDS[c.effect or default_effect]
    if c.enforced_by == "runtime":  # the converter builds it: the device refuses or miscomputes
        effect = "error: the converter builds it, the device's runtime refuses or miscomputes it"
    suffix = facts.suffix(c, f"constraints.{c.id}")
    return f"- {c.rule} `{c.id}`: {describe(c)} ({effect}){suffix}"


def render_target_markdown(target: Target) -> str:
    """The whole profile for a person: ops, limits, sources, unverified facts flagged."""
    from portlint.target import SEVERITY_EFFECT

    rules = load_rules()
    facts = _Facts(target)
    lines = [
        f"# {target.name}: {target.display_name}",
        "",
        f"Toolchain: {target.toolchain} {target.toolchain_version} · vendor: {target.vendor} "
        f"· status: {target.status}",
        "",
        target.summary,
        "",
        "## Sources",
        "",
    ]
    lines += [
        f"- [{s.key}]{'' if s.kind == 'document' else f' ({s.kind})'} {s.cite()}"
        + (f" — {s.note}" if s.note else "")
        for s in target.sources.values()
    ]
    if target.opset_fact is not None:
        lines += [
            "",
            "## Opset",
            "",
            f"- ONNX opset {target.opset_min or '?'}..{target.opset_max or '?'}"
            f"{facts.suffix(target.opset_fact)}",
        ]
    unsupported = EFFECT_WORDS[target.unsupported_effect]
    lines += [
        "",
        f"## Supported ops ({len(target.ops)})",
        "",
        f"Ops not listed here: {unsupported}{facts.suffix(target.unsupported_ops)}."
        + facts.unlisted(),
        "",
    ]
    for name, support in sorted(target.ops.items()):
        where = PLACEMENT_WORDS.get(support.placement, "")
        kept = "" if support.folds else " (not folded, even on constant inputs)"
        lines.append(f"- {name}{where}{kept}{facts.suffix(support, f'ops.{name}')}")
    if target.patterns:
        lines += ["", "## Fused patterns", ""]
        lines += [f"- {n}{facts.suffix(p)}" for n, p in sorted(target.patterns.items())]
    if target.constraints:
        lines += ["", "## Constraints", ""]
        lines += [
            _constraint_line(c, SEVERITY_EFFECT[rules.get(c.rule).severity], facts)
            for c in target.constraints
        ]
    if target.defects:
        lines += ["", "## Known toolchain defects", ""]
        for d in target.defects:
            active = (
                "" if d.applies_to(target.toolchain_version, target.chip) else " (not this one)"
            )
            chips = f" on {', '.join(d.chips)} only" if d.chips else ""
            pattern = DEFECT_PATTERNS[d.pattern]
            lines.append(
                f"- **{d.id}**, {target.toolchain} {', '.join(d.versions)}{chips}{active}: on "
                f"{pattern}, "
                f"{d.what} ({EFFECT_WORDS[d.effect]}). Workaround: {d.workaround}."
                f"{facts.suffix(d)}"
            )
    lines += facts.blocks()
    for key, value in target.info.items():
        lines += ["", f"## {key.capitalize()}", "", "```yaml", _yaml(value).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _yaml(value: object) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=100)


PLACEMENT_WORDS = {
    "cpu": " (runs on the CPU)",
    "slow": " (slow path)",
    "reject": " (refused by the toolchain)",
}
GENERATED = "<!-- generated by `portlint docs` from rules/ and targets/; do not edit -->\n\n"


def evidence_summary(target: Target) -> str:
    """The profile's facts counted by the kind of evidence behind them, strongest first, and
    how many a recorded compiler run of this toolchain version confirms."""
    from portlint.probe.evidence import recorded_for

    facts = target.facts()
    kinds = Counter(target.evidence_kind(f) for f in facts)
    counted = ", ".join(f"{kinds[k]} {k}" for k in EVIDENCE_KINDS if kinds[k])
    unverified = sum(1 for f in facts if not f.verified)
    keys = {f"ops.{op}" for op in target.ops} | {
        f"constraints.{c.id}" for c in target.constraints if c.enforced_by != "runtime"
    }
    probed = {
        fact_for(r.id, r.fact, target)
        for e in recorded_for(target.name, target.toolchain_version)
        for r in e.judged
    }
    confirmed = f"; {len(keys & probed)} confirmed by recorded probes" if keys & probed else ""
    return (
        f"{len(facts)} facts: {counted}"
        + (f" ({unverified} unverified)" if unverified else "")
        + confirmed
    )


def _targets_index(targets: list[Target]) -> str:
    lines = [
        "# Targets",
        "",
        "| target | chip | toolchain | status | ops | constraints | facts by evidence |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        lines.append(
            f"| [{t.name}]({t.name}.md) | {t.display_name} | {t.toolchain} "
            f"{t.toolchain_version} | {t.status} | {len(t.ops)} | "
            f"{len(t.constraints)} | {evidence_summary(t)} |"
        )
    return GENERATED + "\n".join(lines) + "\n"


def _rules_index(rules: list[Rule]) -> str:
    lines = ["# Rules", "", "| code | name | default severity | summary |", "|---|---|---|---|"]
    lines += [
        f"| [{r.code}]({r.code}-{r.name}.md) | {r.name} | {r.severity.value} | {r.summary} |"
        for r in rules
    ]
    return GENERATED + "\n".join(lines) + "\n"


SEMANTICS_WORDS = {
    "exact": "outputs identical up to float rounding; applied by default when it resolves a "
    "finding; proven with onnxruntime before anything is written",
    "interface-changing": "the model's outputs change (the graph is cut); runs with "
    "--unsafe-fixes or when named; the kept part and tail(head(x)) are proven equal",
    "approximate": "the numbers change and the model must be fine-tuned or retrained; runs "
    "only when named; the deviation is measured and reported",
}


def render_pass_markdown(item: PassInfo) -> str:
    options = [f"- `{o.name}`: {o.help}" for o in item.options]
    registry = load_rules()
    rules = ", ".join(
        f"[{code}](../rules/{code}-{registry.get(code).name}.md)"
        for code in item.resolves
        if code in registry
    )
    return "\n".join(
        [
            f"# {item.name}",
            "",
            item.summary,
            "",
            f"Semantics: **{item.semantics.value}** — {SEMANTICS_WORDS[item.semantics.value]}.",
            "",
            "## Why",
            "",
            item.why,
            "",
            "## Resolves",
            "",
            rules or "—",
            "",
            *(["## Options (`--option KEY=VALUE`)", "", *options, ""] if options else []),
            "## Run it",
            "",
            f"    portlint fix MODEL.onnx --target TARGET --pass {item.name}",
            "",
        ]
    )


def _passes_index(passes: list[PassInfo]) -> str:
    lines = ["# Rewrite passes", "", "| pass | semantics | summary |", "|---|---|---|"]
    lines += [f"| [{p.name}]({p.name}.md) | {p.semantics.value} | {p.summary} |" for p in passes]
    return GENERATED + "\n".join(lines) + "\n"


def render_docs() -> dict[str, str]:
    """Every generated doc page, keyed by its path under docs/."""
    from portlint.profile_reference import render_profile_reference
    from portlint.target import load_target, shipped_target_names
    from portlint.validation_doc import render_validation

    rules = list(load_rules())
    targets = [load_target(name) for name in shipped_target_names()]
    pages = {"rules/README.md": _rules_index(rules), "targets/README.md": _targets_index(targets)}
    for rule in rules:
        pages[f"rules/{rule.code}-{rule.name}.md"] = GENERATED + render_rule_markdown(rule, targets)
    for target in targets:
        pages[f"targets/{target.name}.md"] = GENERATED + render_target_markdown(target)
    passes = list(CATALOG.values())
    pages["passes/README.md"] = _passes_index(passes)
    for item in passes:
        pages[f"passes/{item.name}.md"] = GENERATED + render_pass_markdown(item)
    pages["profiles.md"] = GENERATED + render_profile_reference(targets)
    pages["targets/validation.md"] = GENERATED + render_validation()
    return pages


def write_docs(out: Path) -> list[Path]:
    """Write the generated pages and delete generated pages that no longer have a source."""
    pages = render_docs()
    for stale in out.glob("*/*.md"):
        relative = stale.relative_to(out).as_posix()
        if relative not in pages and stale.read_text().startswith(GENERATED):
            stale.unlink()
    written = []
    for relative, text in pages.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written

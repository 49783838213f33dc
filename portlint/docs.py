"""Docs generated from the rule and target declarations, so they cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

from portlint.checks import APPLIES
from portlint.checks.constraint import describe
from portlint.passes import PASSES, Pass
from portlint.rule import Rule, load_rules
from portlint.target import Constraint, Fact, Target

EFFECT_WORDS = {
    "reject": "error: compile fails",
    "cpu": "warning: runs on CPU",
    "slow": "info: slower or less precise",
    "accuracy": "info: changes the answers",
}


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


def _fact_suffix(fact: Fact) -> str:
    flag = " **(unverified)**" if not fact.verified else ""
    note = f" — {fact.note}" if fact.note else ""
    return f" [{fact.source}]{flag}{note}"


def _constraint_line(c: Constraint, default_effect: str) -> str:
    effect = EFFECT_WORDS[c.effect or default_effect]
    return f"- {c.rule}: {describe(c)} ({effect}){_fact_suffix(c)}"


def render_target_markdown(target: Target) -> str:
    """The whole profile for a person: ops, limits, sources, unverified facts flagged."""
    from portlint.target import SEVERITY_EFFECT

    rules = load_rules()
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
        f"- [{s.key}] {s.cite()}" + (f" — {s.note}" if s.note else "")
        for s in target.sources.values()
    ]
    if target.opset_fact is not None:
        lines += [
            "",
            "## Opset",
            "",
            f"- ONNX opset {target.opset_min or '?'}..{target.opset_max or '?'}"
            f"{_fact_suffix(target.opset_fact)}",
        ]
    unsupported = EFFECT_WORDS[target.unsupported_effect]
    lines += [
        "",
        f"## Supported ops ({len(target.ops)})",
        "",
        f"Ops not listed here: {unsupported}{_fact_suffix(target.unsupported_ops)}",
        "",
    ]
    for name, support in sorted(target.ops.items()):
        where = PLACEMENT_WORDS.get(support.placement, "")
        lines.append(f"- {name}{where}{_fact_suffix(support)}")
    if target.patterns:
        lines += ["", "## Fused patterns", ""]
        lines += [f"- {n}{_fact_suffix(p)}" for n, p in sorted(target.patterns.items())]
    if target.constraints:
        lines += ["", "## Constraints", ""]
        lines += [
            _constraint_line(c, SEVERITY_EFFECT[rules.get(c.rule).severity])
            for c in target.constraints
        ]
    if target.defects:
        from portlint.defect_patterns import DEFECT_PATTERNS

        lines += ["", "## Known toolchain defects", ""]
        for d in target.defects:
            active = (
                "" if d.applies_to(target.toolchain_version, target.chip) else " (not this one)"
            )
            chips = f" on {', '.join(d.chips)} only" if d.chips else ""
            pattern = DEFECT_PATTERNS[d.pattern].description
            lines.append(
                f"- **{d.id}**, {target.toolchain} {', '.join(d.versions)}{chips}{active}: on "
                f"{pattern}, "
                f"{d.what} ({EFFECT_WORDS[d.effect]}). Workaround: {d.workaround}."
                f"{_fact_suffix(d)}"
            )
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


def verified_share(target: Target) -> tuple[int, int]:
    """How many of a profile's facts (ops, constraints, opset, fallback) a vendor document backs."""
    facts = [
        *target.ops.values(),
        *target.patterns.values(),
        *target.constraints,
        *target.defects,
        target.unsupported_ops,
    ]
    facts += [f for f in (target.opset_fact, target.partitioning_fact) if f is not None]
    return sum(1 for f in facts if f.verified), len(facts)


def _targets_index(targets: list[Target]) -> str:
    lines = [
        "# Targets",
        "",
        "| target | chip | toolchain | status | ops | constraints | "
        "facts backed by a vendor document |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        good, total = verified_share(t)
        lines.append(
            f"| [{t.name}]({t.name}.md) | {t.display_name} | {t.toolchain} "
            f"{t.toolchain_version} | {t.status} | {len(t.ops)} | "
            f"{len(t.constraints)} | {good}/{total} |"
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


def render_pass_markdown(item: Pass) -> str:
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


def _passes_index(passes: list[Pass]) -> str:
    lines = ["# Rewrite passes", "", "| pass | semantics | summary |", "|---|---|---|"]
    lines += [f"| [{p.name}]({p.name}.md) | {p.semantics.value} | {p.summary} |" for p in passes]
    return GENERATED + "\n".join(lines) + "\n"


def render_docs() -> dict[str, str]:
    """Every generated doc page, keyed by its path under docs/."""
    from portlint.target import load_target, shipped_target_names

    rules = list(load_rules())
    targets = [load_target(name) for name in shipped_target_names()]
    pages = {"rules/README.md": _rules_index(rules), "targets/README.md": _targets_index(targets)}
    for rule in rules:
        pages[f"rules/{rule.code}-{rule.name}.md"] = GENERATED + render_rule_markdown(rule, targets)
    for target in targets:
        pages[f"targets/{target.name}.md"] = GENERATED + render_target_markdown(target)
    passes = list(PASSES.values())
    pages["passes/README.md"] = _passes_index(passes)
    for item in passes:
        pages[f"passes/{item.name}.md"] = GENERATED + render_pass_markdown(item)
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

"""Docs generated from the rule and target declarations, so they cannot drift from the code."""

from __future__ import annotations

from portlint.checks.constraint import describe
from portlint.rule import Rule, load_rules
from portlint.target import Constraint, Fact, Target

EFFECT_WORDS = {
    "reject": "error: compile fails",
    "cpu": "warning: runs on CPU",
    "slow": "info: slower or less precise",
}


def render_rule_markdown(rule: Rule) -> str:
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
    lines += [
        "## Fixed by `portlint fix`",
        "",
        ", ".join(rule.fixes) if rule.fixes else "No rewrite pass resolves it yet.",
        "",
    ]
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
        where = " (runs on CPU)" if support.placement == "cpu" else ""
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
    for key, value in target.info.items():
        lines += ["", f"## {key.capitalize()}", "", "```yaml", _yaml(value).rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _yaml(value: object) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=100)

"""SARIF 2.1.0 report: one run, every model and target, for code scanning (GitHub and others).

A model is a binary file, so a result names the model as its artifact (no region) and the node
as a logical location ``target/node``. Rules carry their summary, why, how to fix and the
``portlint fix`` passes that resolve them. portlint has no published URL yet, so there is no
``informationUri`` or ``helpUri``: each rule names its page under ``docs/rules/`` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from portlint import __version__
from portlint.engine import ModelReport
from portlint.findings import GRAPH, GRAPH_INPUT, NODE, TENSOR, Finding
from portlint.report.json_report import _finding
from portlint.rule import Rule, Severity, load_rules

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SRCROOT = "%SRCROOT%"
"""uriBaseId of model paths relative to the folder portlint ran in (the checkout, in CI)."""

LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
LOGICAL_KIND = {NODE: "member", TENSOR: "variable", GRAPH_INPUT: "parameter", GRAPH: "module"}
"""SARIF logical-location kinds: a node is a member of the graph, a graph input its parameter."""


def rule_doc(rule: Rule) -> str:
    """The rule's generated page, relative to the root of portlint's source tree."""
    return f"docs/rules/{rule.code}-{rule.name}.md"


def where(f: Finding) -> str:
    """The node (or tensor, input, graph) a finding is about, as reports name it."""
    if f.kind == NODE and f.op_type:
        return f"{f.location} ({f.op_type})"
    if f.kind in (TENSOR, GRAPH_INPUT):
        return f"{'input' if f.kind == GRAPH_INPUT else 'tensor'} {f.location}"
    return f.location


def detail(f: Finding) -> str:
    """The message with the actual value, the limit and an unverified flag."""
    facts = [f"actual: {f.actual}" if f.actual else "", f"limit: {f.limit}" if f.limit else ""]
    facts = [fact for fact in facts if fact]
    text = f.message + (f" ({'; '.join(facts)})" if facts else "")
    return text + ("" if f.verified else " [unverified]")


def artifact_uri(path: Path) -> dict[str, str]:
    """Relative to the current folder when the model is under it, else an absolute file URI."""
    absolute = path.resolve()
    try:
        relative = absolute.relative_to(Path.cwd().resolve())
    except ValueError:
        return {"uri": absolute.as_uri()}
    return {"uri": quote(relative.as_posix()), "uriBaseId": SRCROOT}


def _descriptor(rule: Rule) -> dict[str, Any]:
    fixes = ", ".join(rule.fixes)
    text = [rule.why]
    markdown = [rule.why]
    if rule.help:
        text.append(f"How to fix: {rule.help}")
        markdown.append(f"**How to fix:** {rule.help}")
    if fixes:
        text.append(f"Fixed by `portlint fix` passes: {fixes}.")
        passes = ", ".join(f"`{name}`" for name in rule.fixes)
        markdown.append(f"**Fixed by `portlint fix`:** {passes}")
    if rule.references:
        text.append("References: " + " ".join(rule.references))
        markdown.append("**References:** " + " · ".join(f"<{r}>" for r in rule.references))
    text.append(f"Docs: {rule_doc(rule)} in portlint's source tree.")
    markdown.append(f"Docs: `{rule_doc(rule)}` in portlint's source tree.")
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.why},
        "help": {"text": "\n\n".join(text), "markdown": "\n\n".join(markdown)},
        "defaultConfiguration": {"level": LEVEL[rule.severity]},
        "properties": {
            "category": rule.category,
            "status": rule.status,
            "docs": rule_doc(rule),
            "fixes": list(rule.fixes),
            "tags": [rule.category],
        },
    }


def _result(f: Finding, rule_index: int, artifact: int, uri: dict, occurrence: int) -> dict:
    data = _finding(f)
    return {
        "ruleId": f.rule,
        "ruleIndex": rule_index,
        "level": LEVEL[f.severity],
        "message": {"text": f"[{f.target}] {where(f)}: {detail(f)}"},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {**uri, "index": artifact}},
                "logicalLocations": [
                    {
                        "name": f.location,
                        "fullyQualifiedName": f"{f.target}/{f.location}",
                        "kind": LOGICAL_KIND.get(f.kind, "object"),
                    }
                ],
            }
        ],
        # Several limits of one rule on one node share a fingerprint; the occurrence keeps each
        # result its own identity, as GitHub's own "hash:occurrence" line hashes do.
        "partialFingerprints": {"portlintFingerprint/v1": f"{f.fingerprint}:{occurrence}"},
        "properties": {
            "target": f.target,
            "kind": f.kind,
            "op_type": f.op_type,
            "effect": f.effect,
            "verified": f.verified,
            "source": data["source"],
            "note": data["note"],
            "fingerprint": f.fingerprint,
        },
    }


def sarif_dict(reports: Iterable[ModelReport]) -> dict[str, Any]:
    reports = list(reports)
    descriptors = [_descriptor(rule) for rule in load_rules()]
    known = {d["id"] for d in descriptors}
    for f in (f for r in reports for f in r.findings):
        if f.rule not in known:  # a rule from outside the shipped registry: id and name only
            descriptors.append({"id": f.rule, "name": f.rule_name})
            known.add(f.rule)
    index = {d["id"]: i for i, d in enumerate(descriptors)}
    artifacts: dict[str, tuple[int, dict[str, str]]] = {}
    results: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for report in reports:
        uri = artifact_uri(report.path)
        artifact, _ = artifacts.setdefault(uri["uri"], (len(artifacts), uri))
        for f in report.findings:
            seen[f.fingerprint] = seen.get(f.fingerprint, 0) + 1
            results.append(_result(f, index[f.rule], artifact, uri, seen[f.fingerprint]))
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "portlint",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": descriptors,
                    }
                },
                "artifacts": [
                    {"location": uri, "roles": ["analysisTarget"]} for _, uri in artifacts.values()
                ],
                "results": results,
            }
        ],
    }


def render_sarif(reports: Iterable[ModelReport]) -> str:
    return json.dumps(sarif_dict(reports), indent=2) + "\n"

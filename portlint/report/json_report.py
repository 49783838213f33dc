"""JSON report, versioned; the schema lives in portlint/schema/report-v1.schema.json."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from portlint import __version__
from portlint.engine import ModelReport, TargetReport
from portlint.findings import Finding
from portlint.rule import Severity

SCHEMA_VERSION = 1


def _finding(f: Finding) -> dict[str, Any]:
    source = None
    if f.source is not None:
        source = {
            "key": f.source.key,
            "title": f.source.title,
            "url": f.source.url,
            "version": f.source.version,
        }
    return {
        "rule": f.rule,
        "name": f.rule_name,
        "severity": f.severity.value,
        "effect": f.effect,
        "enforced_by": f.enforced_by,
        "target": f.target,
        "location": {"kind": f.kind, "name": f.location, "op_type": f.op_type},
        "message": f.message,
        "actual": f.actual,
        "limit": f.limit,
        "verified": f.verified,
        "source": source,
        "note": f.note or None,
        "help": f.help or None,
        "fingerprint": f.fingerprint,
    }


def _target(t: TargetReport) -> dict[str, Any]:
    return {
        "target": t.target.name,
        "display_name": t.target.display_name,
        "toolchain": {"name": t.target.toolchain, "version": t.target.toolchain_version},
        "profile_status": t.target.status,
        "verdict": t.verdict,
        "counts": {s.value: t.count(s) for s in Severity},
        "nodes": {
            "total": t.nodes,
            "npu": t.npu_nodes,
            "cpu": t.cpu_nodes,
            "rejected": t.rejected_nodes,
            "partitions": t.partitions,
        },
        "findings": [_finding(f) for f in t.findings],
    }


def report_dict(reports: Iterable[ModelReport]) -> dict[str, Any]:
    models = [
        {
            "path": str(r.path),
            "ir_version": r.ir_version,
            "opsets": {d or "ai.onnx": v for d, v in sorted(r.opsets.items())},
            "nodes": r.node_count,
            "folded_nodes": r.node_count - r.live_nodes,
            "foldable_nodes": r.foldable_nodes,
            "shape_inference_error": r.inference_error,
            "unmatched_ignores": r.unmatched_ignores,
            "targets": [_target(t) for t in r.targets],
        }
        for r in reports
    ]
    findings = [f for m in models for t in m["targets"] for f in t["findings"]]
    counts = {s.value: sum(1 for f in findings if f["severity"] == s.value) for s in Severity}
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "portlint", "version": __version__},
        "models": models,
        "summary": counts,
    }


def render_json(reports: Iterable[ModelReport]) -> str:
    return json.dumps(report_dict(reports), indent=2, sort_keys=False) + "\n"

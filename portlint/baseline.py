"""Baselines: accept the violations a model has today, fail only on new ones.

A team adopting portlint on an existing model cannot fix everything at once. The baseline
file records each finding by a stable key (the model path, then rule, target, node name
and op type through ``Finding.fingerprint``), so an unrelated edit does not invalidate it;
entries that no longer match anything are reported, so the file shrinks as models improve.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from portlint.errors import ConfigError
from portlint.findings import Finding
from portlint.results import Report

BASELINE_VERSION = 1


def _model_key(path: Path) -> str:
    """The model path as the baseline stores it: relative to the working folder if inside."""
    try:
        return Path(os.path.relpath(path.resolve(), Path.cwd())).as_posix()
    except ValueError:  # another drive on Windows
        return path.resolve().as_posix()


def _entry(model: Path, finding: Finding) -> dict[str, Any]:
    return {
        "model": _model_key(model),
        "fingerprint": finding.fingerprint,
        "rule": finding.rule,
        "target": finding.target,
        "location": finding.location,
        "op_type": finding.op_type,
    }


def write_baseline(report: Report, path: Path) -> int:
    """Record every finding of ``report``; return how many entries were written."""
    unique = {
        (e["model"], e["fingerprint"]): e
        for e in (_entry(m.path, f) for m in report.models for f in m.findings)
    }  # several findings of one rule on one node share a key: one entry accepts them all
    entries = sorted(
        unique.values(), key=lambda e: (e["model"], e["target"], e["rule"], e["location"])
    )
    text = json.dumps({"portlint_baseline": BASELINE_VERSION, "entries": entries}, indent=1)
    path.write_text(text + "\n", encoding="utf-8")
    return len(entries)


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such baseline file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a portlint baseline (invalid JSON: {exc})") from None
    entries = data.get("entries") if isinstance(data, dict) else None
    if data.get("portlint_baseline") != BASELINE_VERSION or not isinstance(entries, list):
        raise ConfigError(f"{path}: not a portlint baseline (version {BASELINE_VERSION})")
    if not all(isinstance(e, dict) and {"model", "fingerprint"} <= set(e) for e in entries):
        raise ConfigError(f"{path}: baseline entries need 'model' and 'fingerprint'")
    return entries


def apply_baseline(report: Report, path: Path) -> Report:
    """Move findings the baseline accepts out of the reports; note entries that matched none."""
    entries = _read(path)
    accepted = {(e["model"], e["fingerprint"]) for e in entries}
    matched: set[tuple[str, str]] = set()
    checked = {_model_key(m.path) for m in report.models}
    for model in report.models:
        key = _model_key(model.path)
        for target in model.targets:
            keep = []
            for finding in target.findings:
                if (key, finding.fingerprint) in accepted:
                    matched.add((key, finding.fingerprint))
                    target.accepted.append(finding)
                else:
                    keep.append(finding)
            target.findings = keep
    report.baselined = sum(len(t.accepted) for m in report.models for t in m.targets)
    report.stale_baseline = [
        f"{e['model']}: {e.get('rule', '?')} on {e.get('location', '?')} ({e.get('target', '?')})"
        for e in entries
        if (e["model"], e["fingerprint"]) not in matched
        and (e["model"] in checked or not Path(e["model"]).exists())  # fixed, or model gone
    ]
    return report

"""What a user sees, end to end, for the shipped detector on three targets.

The golden files are the reviewed output; regenerate with ``pytest --update-golden`` and
review the diff like code.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT, run_cli

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = ROOT / "portlint" / "schema" / "report-v1.schema.json"
MODEL = "fixtures/yolov8n.onnx"
TARGETS = ["--target", "rk3588", "--target", "hailo8", "--target", "intel-gna"]


def _compare(name: str, actual: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.write_text(actual)
    assert path.exists(), f"missing golden file {path}; run pytest --update-golden"
    assert actual == path.read_text(), f"{name} changed; review and run pytest --update-golden"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_yolov8n_three_targets(fmt: str, update_golden: bool) -> None:
    result = run_cli("check", MODEL, *TARGETS, "--format", fmt)
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    _compare(f"yolov8n.3targets.{'txt' if fmt == 'text' else 'json'}", result.stdout, update_golden)


def test_json_report_validates_against_documented_schema() -> None:
    result = run_cli("check", MODEL, "fixtures/dynamic_batch.onnx", *TARGETS, "--format", "json")
    report = json.loads(result.stdout)
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    assert report["schema_version"] == 1
    verdicts = {t["target"]: t["verdict"] for t in report["models"][0]["targets"]}
    assert verdicts == {
        "rk3588": "does not compile",  # rknn-toolkit2 2.5.0 crashes on the DFL head (PL109)
        "hailo8": "does not compile",
        "intel-gna": "does not compile",
    }


def test_matrix_lists_every_target_with_its_verdict() -> None:
    result = run_cli("check", MODEL, *TARGETS)
    lines = [line.split() for line in result.stdout.splitlines()]
    rows = {
        cells[0]: " ".join(cells[6:])
        for cells in lines
        if cells and cells[0] in ("rk3588", "hailo8", "intel-gna") and len(cells) > 6
    }
    assert rows == {
        "rk3588": "does not compile",  # rknn-toolkit2 2.5.0 crashes on the DFL head (PL109)
        "hailo8": "does not compile",
        "intel-gna": "does not compile",
    }

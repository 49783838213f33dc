"""Folders, several models in parallel, bad files among good ones, baselines, the Python API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURES, run_cli

import portlint
from portlint.errors import PortlintError
from portlint.results import Report

LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Every fixture, one of them twice in a subfolder, one in a hidden folder (skipped)."""
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    (models / ".cache").mkdir()
    for fixture in sorted(FIXTURES.glob("*.onnx")):
        shutil.copy(fixture, models / fixture.name)
    shutil.copy(FIXTURES / "odd_channels.onnx", models / "sub" / "odd_copy.onnx")
    shutil.copy(FIXTURES / "odd_channels.onnx", models / ".cache" / "ignored.onnx")
    return models


def _json(result) -> dict:
    return json.loads(result.stdout)


def test_a_folder_is_checked_in_one_command_in_a_stable_order(folder: Path):
    serial = run_cli(
        "check", str(folder), "-t", "rk3588", "-t", "intel-gna", "-f", "json", "-j", "1"
    )
    parallel = run_cli(
        "check", str(folder), "-t", "rk3588", "-t", "intel-gna", "-f", "json", "-j", "2"
    )
    assert serial.returncode == parallel.returncode == 1
    assert serial.stdout == parallel.stdout
    paths = [Path(m["path"]).relative_to(folder).as_posix() for m in _json(serial)["models"]]
    fixtures = [p.name for p in FIXTURES.glob("*.onnx")]
    assert paths == sorted([*fixtures, "sub/odd_copy.onnx"])  # path order, whoever finishes first


def test_the_text_summary_has_a_row_per_model(folder: Path):
    result = run_cli("check", ".", "-t", "rk3588", "-t", "hailo8", cwd=folder)
    lines = result.stdout.splitlines()
    header = next(
        i for i, line in enumerate(lines) if line.split()[:3] == ["model", "rk3588", "hailo8"]
    )
    rows = lines[header + 1 : header + 6]
    assert [row.split()[0] for row in rows] == [
        "dynamic_batch.onnx",
        "mobilenetv3_small.onnx",
        "odd_channels.onnx",
        "sub/odd_copy.onnx",
        "yolov8n.onnx",
    ]
    assert len(rows) == 5
    yolo = next(r for r in rows if "yolov8n" in r)
    # rk3588: rknn-toolkit2 2.5.0's DFL crash (PL109); hailo8: its three errors
    assert "does not compile (1 error)" in yolo and "does not compile (3 errors)" in yolo
    assert "in 5 models." in result.stdout


def test_bad_files_are_reported_per_file_and_the_run_goes_on(folder: Path):
    (folder / "sub" / "pointer.onnx").write_bytes(LFS)
    (folder / "sub" / "cut.onnx").write_bytes((FIXTURES / "yolov8n.onnx").read_bytes()[:9000])
    result = run_cli("check", str(folder), "-t", "rk3588", "-f", "json")
    assert result.returncode == 2
    assert len(_json(result)["models"]) == 5
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2
    assert "pointer.onnx: is a Git LFS pointer" in errors[1]
    assert "cut.onnx: not a readable ONNX model" in errors[0]


def test_a_baseline_accepts_todays_findings_and_fails_on_new_ones(folder: Path, tmp_path: Path):
    baseline = tmp_path / "baseline.json"
    wrote = run_cli("check", str(folder), "-t", "intel-gna", "--write-baseline", str(baseline))
    assert wrote.returncode == 0
    entries = json.loads(baseline.read_text())["entries"]
    assert entries and {"model", "fingerprint", "rule", "target", "location"} <= set(entries[0])
    clean = run_cli("check", str(folder), "-t", "intel-gna", "--baseline", str(baseline))
    assert clean.returncode == 0, clean.stdout[-500:]
    assert "Found 0 errors, 0 warnings, 0 info in 5 models." in clean.stdout
    shutil.copy(FIXTURES / "odd_channels.onnx", folder / "sub" / "new.onnx")
    new = run_cli(
        "check", str(folder), "-t", "intel-gna", "--baseline", str(baseline), "-f", "json"
    )
    assert new.returncode == 1
    flagged = {Path(m["path"]).name for m in _json(new)["models"] if m["targets"][0]["findings"]}
    assert flagged == {"new.onnx"}


def test_stale_baseline_entries_are_reported(folder: Path, tmp_path: Path):
    baseline = tmp_path / "baseline.json"
    run_cli("check", str(folder), "-t", "intel-gna", "--write-baseline", str(baseline))
    (folder / "sub" / "odd_copy.onnx").unlink()
    result = run_cli("check", str(folder), "-t", "intel-gna", "--baseline", str(baseline))
    assert result.returncode == 0
    assert "stale baseline entry (fixed? remove it): " in result.stderr
    assert "odd_copy.onnx" in result.stderr


def test_a_broken_baseline_is_a_one_line_error(folder: Path, tmp_path: Path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text("{not json")
    result = run_cli("check", str(folder), "-t", "rk3588", "--baseline", str(baseline))
    assert result.returncode == 2
    assert result.stderr.startswith(f"portlint: error: {baseline}: not a portlint baseline")


def test_python_api_check_and_fix(tmp_path: Path):
    report = portlint.check(FIXTURES / "yolov8n.onnx", targets=["rk3588", "hailo8"])
    assert isinstance(report, Report)
    assert [t.target.name for t in report.models[0].targets] == ["rk3588", "hailo8"]
    assert {f.rule for f in report.findings} >= {"PL101", "PL108"}
    with pytest.raises(PortlintError, match="unknown target 'hailo9'; did you mean 'hailo8'"):
        portlint.check(FIXTURES / "yolov8n.onnx", targets=["hailo9"])
    source = tmp_path / "y.onnx"
    shutil.copy(FIXTURES / "yolov8n.onnx", source)
    run = portlint.fix(source, target="hailo8", unsafe=True)
    assert run.outcome.after.verdict == "runs"
    assert [p.name for p in run.written] == ["y.portlint.onnx", "y.portlint.post.onnx"]
    assert run.recheck.targets[0].verdict == "runs"

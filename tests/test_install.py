"""The real proof that a plain `pip install .` ships rules/, targets/ and the HTML report's
assets inside the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

pytestmark = pytest.mark.slow
SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "*.onnx",
    "bench",
)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=600)


def test_wheel_installs_and_runs_from_another_folder(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=SKIP)
    built = _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(source),
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-w",
        str(tmp_path / "dist"),
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("portlint-*.whl")
    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path).returncode == 0
    python = venv / "bin" / "python"
    # The test environment lends its dependencies (tests use no network); a path in a .pth
    # file is appended after the venv's own site-packages, so portlint comes from the wheel.
    site = _run(
        str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    ).stdout.strip()
    Path(site, "lent_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run(
        str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel), cwd=tmp_path
    )
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    model = shutil.copy(FIXTURES / "odd_channels.onnx", elsewhere / "model.onnx")
    where = _run(
        str(python), "-c", "import portlint.targets as t; print(t.__path__[0])", cwd=elsewhere
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    targets = _run(str(venv / "bin" / "portlint"), "targets", cwd=elsewhere)
    assert targets.returncode == 0 and "hailo8" in targets.stdout, targets.stderr
    check = _run(
        str(venv / "bin" / "portlint"), "check", str(model), "--target", "intel-gna", cwd=elsewhere
    )
    assert check.returncode == 1, check.stderr
    assert "PL220 channel-multiple" in check.stdout
    page = elsewhere / "report.html"  # the page inlines assets/report.css and report.js
    html = _run(
        str(venv / "bin" / "portlint"),
        "check",
        str(model),
        "-t",
        "intel-gna",
        "-f",
        "html",
        "-o",
        str(page),
        cwd=elsewhere,
    )
    assert html.returncode == 1, html.stderr
    text = page.read_text(encoding="utf-8")
    assert "box-sizing: border-box" in text and 'getElementById("pl-target")' in text
    rule = _run(str(venv / "bin" / "portlint"), "rule", "PL101", cwd=elsewhere)
    assert rule.returncode == 0 and "unsupported-op" in rule.stdout

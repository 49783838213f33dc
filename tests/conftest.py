"""Shared helpers: build tiny models in ONNX text format and run portlint on them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import onnx
import onnx.parser
import pytest

from portlint.config import Config
from portlint.engine import ModelReport, check_model
from portlint.graph_view import build_view
from portlint.model_io.load import load_for_check
from portlint.rule import load_rules
from portlint.target import load_target

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
IR_VERSION = 8
MINI_PROFILE = {
    "portlint_profile": 1,
    "name": "mini",
    "display_name": "Mini",
    "toolchain": {"name": "minic", "version": "1.0"},
    "sources": {"manual": {"title": "Manual", "url": "https://example.invalid", "version": "1"}},
    "unsupported_ops": {"effect": "reject", "source": "manual"},
    "ops": [{"source": "manual", "names": ["Conv", "Relu"]}],
    "constraints": [
        {
            "id": "conv-out-channels",
            "rule": "PL220",
            "ops": ["Conv"],
            "field": "out_channels",
            "multiple_of": 4,
            "source": "manual",
        }
    ],
}
"""A tiny valid profile: Conv and Relu, Conv output channels a multiple of 4."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/* from the current output",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def parse(text: str) -> onnx.ModelProto:
    """A model from ONNX text format, with the IR version onnxruntime 1.31 loads."""
    model = onnx.parser.parse_model(text)
    model.ir_version = IR_VERSION
    return model


def save(model: onnx.ModelProto, folder: Path, name: str = "model.onnx") -> Path:
    path = folder / name
    onnx.save(model, str(path))
    return path


def run_check(
    model: onnx.ModelProto,
    tmp_path: Path,
    targets: list[str] | str,
    config: Config | None = None,
    name: str = "model.onnx",
) -> ModelReport:
    """Save ``model`` and check it in-process, as the CLI would."""
    path = save(model, tmp_path, name)
    config = config or Config()
    names = [targets] if isinstance(targets, str) else targets
    loaded = load_for_check(path, dict(config.input_shapes))
    return check_model(
        build_view(loaded), path, [load_target(t) for t in names], load_rules(), config
    )


def findings_of(report: ModelReport, rule: str | None = None, location: str | None = None):
    return [
        f
        for f in report.findings
        if (rule is None or f.rule == rule) and (location is None or f.location == location)
    ]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m portlint`` as a user would, capturing both streams.

    Every ``fix`` run in the tests also proves that the input model's bytes did not change
    (unless the test asked for ``--in-place``).
    """
    guarded = _fix_input(args, cwd or ROOT)
    before = guarded.read_bytes() if guarded else None
    result = subprocess.run(
        [sys.executable, "-m", "portlint", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=_clean_env(),
        timeout=120,
    )
    if guarded is not None:
        assert guarded.read_bytes() == before, f"fix changed its input {guarded}"
    return result


def _fix_input(args: tuple[str, ...], cwd: Path) -> Path | None:
    """The model file a ``fix`` invocation reads, when it must stay untouched."""
    if "fix" not in args or "--in-place" in args:
        return None
    after = args[args.index("fix") + 1 :]
    model = next((a for a in after if a.endswith(".onnx")), None)
    path = cwd / model if model else None
    return path if path is not None and path.is_file() else None


def _clean_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTLINT")}
    env.update({"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"})
    return env


def assert_one_line_error(result, *fragments: str) -> None:
    """Exit 2 and one ``portlint: error:`` line holding every fragment, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("portlint: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


FAKE_RKNN = ROOT / "tests" / "data" / "toolchains" / "fake_rknn"


@pytest.fixture(scope="session")
def fake_rknn_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A venv whose `rknn` is the stand-in, with portlint's onnx/numpy visible through a
    .pth file (as the real toolkit brings its own)."""
    venv = tmp_path_factory.mktemp("fake-rknn-venv")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "portlint-test.pth").write_text("\n".join([str(FAKE_RKNN), *paths]) + "\n")
    shutil.copytree(
        FAKE_RKNN / "rknn_toolkit2-2.5.0.dist-info", Path(site) / "rknn_toolkit2-2.5.0.dist-info"
    )
    return str(python)

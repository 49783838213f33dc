"""The shipped pre-commit hook, run by the real `pre-commit` on real commits, offline.

`language: python` makes pre-commit create a virtualenv and `pip install .` the hook repo, which
would download portlint's dependencies. Tests use no network, so the test environment lends its
already installed dependencies to the hook env, as `test_install.py` does: a `sitecustomize` on
PYTHONPATH appends this interpreter's site-packages to `sys.path`, after the hook env's own
site-packages. pip then finds every dependency already satisfied and installs only portlint
itself from the hook repo's source into the hook env; `PIP_NO_INDEX` makes any attempt to
download fail loudly. (A virtualenv with system site-packages would not do: its "system" is the
base interpreter, not this venv.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

pytestmark = pytest.mark.slow

BAD = FIXTURES / "dynamic_batch.onnx"  # PL201 dynamic-shape, an error on rk3588
CLEAN = FIXTURES / "odd_channels.onnx"  # no findings on rk3588
LS_FILES = ("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
ISOLATED_PREFIXES = ("PIP_", "VIRTUALENV_", "PRE_COMMIT", "GIT_", "PYTHON", "XDG_")


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _offline_env(tmp: Path) -> dict[str, str]:
    """No user or system config for git and pip, no index, dependencies lent from this venv."""
    lend = tmp / "lend"
    lend.mkdir()
    paths = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (lend / "sitecustomize.py").write_text(
        "import sys\n\n"
        f"for path in {list(paths)!r}:\n"
        "    if path not in sys.path:\n"
        "        sys.path.append(path)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED_PREFIXES)}
    env.update(
        HOME=str(tmp / "home"),
        PRE_COMMIT_HOME=str(tmp / "pre-commit-home"),
        PYTHONPATH=str(lend),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="portlint test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="portlint test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
        VIRTUALENV_OVERRIDE_APP_DATA=str(tmp / "virtualenv-app-data"),
        VIRTUALENV_NO_PERIODIC_UPDATE="1",
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        # pip's inverted "no-" options: =0 means --no-build-isolation (pypa/pip#5735). The
        # isolated build env would have to download setuptools; this way the build uses the
        # setuptools of the hook env or the lent one (the `test` extra requires it).
        PIP_NO_BUILD_ISOLATION="0",
    )
    (tmp / "home").mkdir()
    return env


def _hook_source(dest: Path, env: dict[str, str]) -> str:
    """A git repo holding this checkout as it is (committed or not); returns its commit."""
    # The caller's git config here (safe.directory for a checkout owned by another user).
    listed = _run(*LS_FILES, cwd=ROOT, env=dict(os.environ))
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():  # tracked files deleted in the working tree are listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    assert (dest / ".pre-commit-hooks.yaml").is_file()
    for args in (("init", "-q"), ("add", "--all", "--force"), ("commit", "-q", "-m", "snapshot")):
        done = _run("git", *args, cwd=dest, env=env)
        assert done.returncode == 0, done.stderr
    return _run("git", "rev-parse", "HEAD", cwd=dest, env=env).stdout.strip()


def _hook_config(source: Path, rev: str, args: str = "") -> str:
    return f"repos:\n  - repo: {source}\n    rev: {rev}\n    hooks:\n      - id: portlint\n{args}"


def _commit(repo: Path, env: dict[str, str], *files: str) -> subprocess.CompletedProcess[str]:
    added = _run("git", "add", "--", *files, cwd=repo, env=env)
    assert added.returncode == 0, added.stderr
    done = _run("git", "commit", "-m", "models", cwd=repo, env=env)
    done.stdout += done.stderr
    return done


def _commits(repo: Path, env: dict[str, str]) -> int:
    count = _run("git", "rev-list", "--count", "--all", cwd=repo, env=env)
    return int(count.stdout.strip() or 0)


def test_hook_refuses_a_model_with_errors_and_lets_a_clean_one_through(tmp_path: Path) -> None:
    env = _offline_env(tmp_path)
    source = tmp_path / "portlint-src"
    rev = _hook_source(source, env)
    repo = tmp_path / "project"
    (repo / "models").mkdir(parents=True)
    assert _run("git", "init", "-q", cwd=repo, env=env).returncode == 0
    config = repo / ".pre-commit-config.yaml"
    config.write_text(_hook_config(source, rev, "        args: [--target, rk3588]\n"))
    installed = _run(sys.executable, "-m", "pre_commit", "install", cwd=repo, env=env)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    shutil.copy(BAD, repo / "models" / "bad.onnx")
    refused = _commit(repo, env, ".pre-commit-config.yaml", "models/bad.onnx")
    assert refused.returncode == 1, refused.stdout
    assert "Failed" in refused.stdout and "- exit code: 1" in refused.stdout
    assert "models/bad.onnx" in refused.stdout
    assert "PL201 dynamic-shape" in refused.stdout and "verdict: does not compile" in refused.stdout
    assert _commits(repo, env) == 0

    unstaged = _run("git", "rm", "-q", "--cached", "models/bad.onnx", cwd=repo, env=env)
    assert unstaged.returncode == 0, unstaged.stderr
    (repo / "models" / "bad.onnx").unlink()
    shutil.copy(CLEAN, repo / "models" / "clean.onnx")
    (repo / "notes.txt").write_text("not a model\n")
    passed = _commit(repo, env, ".pre-commit-config.yaml", "models/clean.onnx", "notes.txt")
    assert passed.returncode == 0, passed.stdout
    [status] = [line for line in passed.stdout.splitlines() if line.startswith("portlint (")]
    assert status.endswith("Passed"), passed.stdout
    assert _commits(repo, env) == 1

    # Honest install: portlint runs from the hook env (built from the hook repo at `rev`), and
    # only the dependencies come from this test environment.
    [env_python] = Path(env["PRE_COMMIT_HOME"]).glob("repo*/py_env-*/bin/python")
    where = _run(env_python, "-c", "import portlint; print(portlint.__file__)", cwd=repo, env=env)
    assert where.stdout.startswith(str(env_python.parent.parent)), where.stdout + where.stderr

    # Targets from the project's config instead of the hook's args.
    config.write_text(_hook_config(source, rev))
    (repo / "pyproject.toml").write_text('[tool.portlint]\ntargets = ["rk3588"]\n')
    shutil.copy(BAD, repo / "models" / "bad.onnx")
    from_config = _commit(repo, env, ".pre-commit-config.yaml", "pyproject.toml", "models/bad.onnx")
    assert from_config.returncode == 1, from_config.stdout
    assert "rk3588" in from_config.stdout and "PL201 dynamic-shape" in from_config.stdout
    assert _commits(repo, env) == 1

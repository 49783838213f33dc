"""Run a vendor compiler where it cannot hurt anything.

Compilers segfault, hang, eat memory and leave files in the current folder, and they pin
their own numpy and protobuf. So each run is a separate process of the toolchain's own
interpreter, in a fresh temporary folder (its working directory, ``TMPDIR`` and ``HOME``),
in its own process group so a timeout kills it and every child it started, with its output
going to files rather than pipes (a chatty compiler cannot block on a full pipe). The folder
is removed afterwards whatever happened; nothing is written next to the user's model.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
LOG_LIMIT = 4_000_000
"""Characters of compiler log kept (the start and the end); rknn's verbose log of a large
model runs to megabytes, and the verdict is in its last part."""
LOG_FILE_LIMIT = 256 << 20
"""A compiler whose log passes this many bytes is stopped: rknn-toolkit2 2.5.0 once looped in
a fuse rule on a probe, writing ever longer node names, and filled 48 GB of disk before its
timeout came."""
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Isolated:
    """What came back from one isolated run."""

    returncode: int | None  # None when it was killed for the timeout
    log: str
    result: dict[str, Any]  # the worker's result file; empty when it died before writing it
    seconds: float
    timed_out: bool
    runaway: bool = False  # stopped because its log passed LOG_FILE_LIMIT (a loop)

    @property
    def signal_name(self) -> str | None:
        if self.returncode is None or self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"


@contextmanager
def run_folder() -> Iterator[Path]:
    """A private temporary folder for one compiler run, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="portlint-toolchain-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read_log(path: Path) -> str:
    """The log's start and end, ``LOG_LIMIT`` characters in all, read without loading the
    middle of a huge file."""
    size = path.stat().st_size
    half = LOG_LIMIT // 2
    with open(path, "rb") as log:
        if size <= LOG_LIMIT:
            return log.read().decode("utf-8", errors="replace")
        head = log.read(half).decode("utf-8", errors="replace")
        log.seek(size - half)
        tail = log.read().decode("utf-8", errors="replace")
    return f"{head}\n[… {size - LOG_LIMIT} bytes of log left out …]\n{tail}"


def _wait(proc: subprocess.Popen, log_path: Path, timeout: float) -> tuple[bool, bool]:
    """Wait for the compiler: (timed out, stopped for a runaway log)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True, False
        try:
            proc.wait(timeout=min(POLL_SECONDS, remaining))
            return False, False
        except subprocess.TimeoutExpired:
            if log_path.stat().st_size > LOG_FILE_LIMIT:
                return False, True


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the compiler and every child it started (its own process group)."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_isolated(
    python: str, script: Path, args: Sequence[str], folder: Path, timeout: float
) -> Isolated:
    """Run ``python script args`` in ``folder`` with a timeout; never raises for the child's
    failures (only for a python that cannot be started at all)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "CONDA"))
    }
    env.update({"HOME": str(folder), "TMPDIR": str(folder), "PYTHONUNBUFFERED": "1"})
    env.setdefault("MPLBACKEND", "Agg")
    log_path = folder / "toolchain.log"
    started = time.monotonic()
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [python, "-I", str(script), *args],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            timed_out, runaway = _wait(proc, log_path, timeout)
        finally:
            # a timeout, a runaway, or children the compiler left behind when it exited
            _kill_group(proc)
    seconds = time.monotonic() - started
    log = _read_log(log_path)
    result: dict[str, Any] = {}
    result_path = folder / RESULT_FILE
    if result_path.is_file():
        try:
            result = json.loads(result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            result = {}
    stopped = timed_out or runaway
    return Isolated(None if stopped else proc.returncode, log, result, seconds, timed_out, runaway)


def query_python(python: str, code: str, timeout: float = 120.0) -> str | None:
    """Run a short snippet in another interpreter; its stdout, or None if it fails."""
    try:
        proc = subprocess.run(
            [python, "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def current_python() -> str:
    return sys.executable

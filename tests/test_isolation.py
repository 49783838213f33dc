"""The compiler sandbox: a compiler that loops writing its log is stopped, not left to fill
the disk (rknn-toolkit2 2.5.0 once wrote 48 GB in a fuse-rule loop before its timeout)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from portlint.toolchains import isolation
from portlint.toolchains.isolation import run_folder, run_isolated


def test_a_compiler_looping_on_its_log_is_stopped_and_its_folder_removed(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(isolation, "LOG_FILE_LIMIT", 1 << 20)
    monkeypatch.setattr(isolation, "LOG_LIMIT", 4096)
    script = tmp_path / "loop.py"
    script.write_text(
        "import sys\nprint('start of the log')\nname = 'rs'\n"
        "while True:\n    name += '-rs'\n    print(name[-200:], flush=True)\n"
    )
    started = time.monotonic()
    with run_folder() as folder:
        run = run_isolated(sys.executable, script, [], folder, timeout=120)
    assert run.runaway and not run.timed_out and run.returncode is None
    assert time.monotonic() - started < 60  # stopped for its log, long before the timeout
    assert not folder.exists()
    # the start and the end of the log are kept, the middle is left out
    assert run.log.startswith("start of the log") and "bytes of log left out" in run.log
    assert len(run.log) < 4096 + 200


def test_a_quiet_compiler_keeps_its_whole_log(tmp_path: Path):
    script = tmp_path / "ok.py"
    script.write_text("print('converted')\n")
    with run_folder() as folder:
        run = run_isolated(sys.executable, script, [], folder, timeout=60)
    assert (run.returncode, run.runaway, run.timed_out) == (0, False, False)
    assert run.log.strip() == "converted"

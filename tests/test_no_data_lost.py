"""No data lost: ``fix`` killed mid-write, interrupted, or crashing between the renames of a
model and its external data leaves the previous output and the input as they were.

``fix`` refusing to write over its own input without ``--in-place`` is tested in
``test_fix.py::test_fix_refuses_to_overwrite_its_input_unless_in_place``.

    PORTLINT_BIG_TESTS=1 pytest tests/test_no_data_lost.py   # also fix a 2.4 GB model
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import ROOT, _clean_env
from onnx import TensorProto, numpy_helper

from portlint.api import fix
from portlint.model_io.write import OutputError, write_model
from portlint.probe.factory import conv_stack

NAME = "out.onnx"
_OUT = {"check": True, "capture_output": True, "text": True}
linux_only = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="steps the process through /proc (Linux)"
)


def _save_external(model: onnx.ModelProto, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    onnx.save(model, str(path), save_as_external_data=True, location=f"{name}.data")
    return path


def _digests(folder: Path) -> dict[str, str]:
    """Every file in ``folder`` (hidden ones too) by name, with the hash of its bytes."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def _weights(path: Path) -> dict[str, bytes]:
    """The model's initializers, loaded with their external data."""
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t).tobytes() for t in model.graph.initializer}


def _staging(folder: Path, name: str = NAME) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.is_dir()]


def _state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


def _stop(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while _state(process.pid) not in "Tt":
        assert time.monotonic() < deadline, "the process did not stop"
        time.sleep(0.0005)


def _pause_mid_write(process: subprocess.Popen, folder: Path, total: int) -> Path:
    """Let ``process`` run until its staging folder holds part of the output, and stop it.

    It is stepped in slices of about a millisecond once the staging folder exists, so it is
    caught with some bytes written and not all (each weight is 4 MB; there are 64 MB).
    """
    deadline = time.monotonic() + 90
    while not _staging(folder):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "fix never started writing"
        time.sleep(0.001)
    _stop(process)
    staging = _staging(folder)[0]
    while not sum(p.stat().st_size for p in staging.iterdir()):
        os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.001)
        _stop(process)
        assert time.monotonic() < deadline, "fix never wrote a byte"
    staged = sum(p.stat().st_size for p in staging.iterdir())
    assert 0 < staged < total, f"caught {staged} of {total} bytes: not mid-write"
    return staging


@pytest.fixture
def scene(tmp_path: Path):
    """A big input (64 MB of weights in external data) and an earlier output of a small model,
    itself a model with its data file, in another folder."""
    big = _save_external(conv_stack(1024, 16), tmp_path / "in", "big.onnx")
    small = _save_external(conv_stack(16, 2, seed=1), tmp_path / "small", "small.onnx")
    out = tmp_path / "out" / NAME
    out.parent.mkdir()
    fix(small, "nnom", out)
    assert sorted(_digests(out.parent)) == [NAME, f"{NAME}.data"]
    return big, small, out


def _start_fix(big: Path, out: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "portlint", "fix", str(big), "-t", "nnom", "-o", str(out)]
    return subprocess.Popen(
        command, cwd=ROOT, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


@linux_only
def test_fix_killed_mid_write_loses_nothing(scene):
    big, small, out = scene
    inputs, previous = _digests(big.parent), _digests(out.parent)
    previous_weights = _weights(out)
    total = (big.parent / "big.onnx.data").stat().st_size
    process = _start_fix(big, out)
    try:
        staging = _pause_mid_write(process, out.parent, total)
        assert _digests(out.parent) == previous  # the output is untouched while writing
    finally:
        process.kill()  # SIGKILL: no cleanup can run
        process.wait()
    assert process.returncode == -signal.SIGKILL
    # the same files with the same bytes: the previous pair intact, no partial file beside it
    assert _digests(out.parent) == previous
    assert _weights(out) == previous_weights  # and it still loads with its own data
    assert _digests(big.parent) == inputs, "fix changed its input"
    assert _staging(out.parent) == [staging]  # SIGKILL leaves the staging folder ...

    fix(small, "nnom", out)  # ... and the next write to that output removes it
    assert not _staging(out.parent)
    assert sorted(p.name for p in out.parent.iterdir()) == [NAME, f"{NAME}.1.data"]
    assert _weights(out) == previous_weights


@linux_only
def test_fix_terminated_mid_write_cleans_up_and_ends_by_the_signal(scene):
    big, _, out = scene
    inputs, previous = _digests(big.parent), _digests(out.parent)
    total = (big.parent / "big.onnx.data").stat().st_size
    process = _start_fix(big, out)
    try:
        _pause_mid_write(process, out.parent, total)
        os.kill(process.pid, signal.SIGTERM)
        os.kill(process.pid, signal.SIGCONT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGTERM, stderr
    assert "Traceback" not in stderr.decode()
    assert not _staging(out.parent), "the staging folder was left behind"
    assert _digests(out.parent) == previous
    assert _digests(big.parent) == inputs


def test_stale_staging_of_dead_processes_is_removed(tmp_path: Path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_OUT)
    dead_pid, alive_pid = int(dead.stdout), os.getppid()
    for name in (
        f".{NAME}.{dead_pid}.abcd_123",
        f".{NAME}.{alive_pid}.abcd_123",
        f".other.onnx.{dead_pid}.abcd_123",
        f".{NAME}.x.{dead_pid}.abcd_123",
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / NAME).write_bytes(b"partial")
    (tmp_path / f".{NAME}.{dead_pid}.notadir0").write_bytes(b"a file, not ours")
    write_model(conv_stack(4, 1), tmp_path / NAME)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            NAME,
            f".{NAME}.{alive_pid}.abcd_123",  # its process still runs
            f".other.onnx.{dead_pid}.abcd_123",  # another output's
            f".{NAME}.x.{dead_pid}.abcd_123",  # not a staging name
            f".{NAME}.{dead_pid}.notadir0",  # not a folder
        ]
    )


def _folder_image(folder: Path, images: Path) -> Path:
    """A copy of the visible files of ``folder``: what a crash at this moment leaves."""
    image = images / str(len(list(images.iterdir())))
    image.mkdir()
    for path in folder.iterdir():
        if path.is_file() and not path.name.startswith("."):
            shutil.copy(path, image / path.name)
    return image


@pytest.mark.parametrize("external", [True, False], ids=["with-data", "new-without-data"])
def test_a_crash_between_any_two_steps_leaves_a_model_that_loads_with_its_own_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, external: bool
):
    old, new = conv_stack(32, 2, seed=1), conv_stack(32, 2, seed=2)
    out, images = tmp_path / "out" / NAME, tmp_path / "images"
    out.parent.mkdir()
    images.mkdir()
    write_model(old, out, external_data=True)
    old_weights = _weights(out)
    replace = os.replace

    def crash_points(source, destination):
        _folder_image(out.parent, images)  # the crash comes before this rename ...
        replace(source, destination)
        _folder_image(out.parent, images)  # ... or after it

    monkeypatch.setattr(os, "replace", crash_points)
    written = write_model(new, out, external_data=external)
    final = _folder_image(out.parent, images)
    new_weights = _weights(out)
    assert new_weights != old_weights
    for image in sorted(images.iterdir(), key=lambda p: int(p.name)):
        assert _weights(image / NAME) in (old_weights, new_weights), f"crash image {image.name}"
    # the new data under a name the old model did not use; the old data gone once unused
    expected = [NAME, f"{NAME}.1.data"] if external else [NAME]
    assert sorted(p.name for p in final.iterdir()) == expected
    assert [p.name for p in written] == expected


def test_a_failed_rename_of_the_model_keeps_the_old_pair(tmp_path, monkeypatch):
    """os.replace fails after the first call (the data file): the old model loads as before."""
    out = tmp_path / NAME
    write_model(conv_stack(32, 2, seed=1), out, external_data=True)
    before, old_weights = _digests(tmp_path), _weights(out)
    calls, replace = [], os.replace

    def fail_after_the_first(source, destination):
        calls.append(destination)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        replace(source, destination)

    monkeypatch.setattr(os, "replace", fail_after_the_first)
    with pytest.raises(OutputError, match=f"{NAME}: cannot write: No space left on device"):
        write_model(conv_stack(32, 2, seed=2), out, external_data=True)
    assert [Path(p).name for p in calls] == [f"{NAME}.1.data", NAME]
    assert _weights(out) == old_weights
    assert _digests(tmp_path) == before  # the new data file that never got its model is gone
    assert not _staging(tmp_path)


def test_interrupted_or_refused_writes_leave_nothing(tmp_path, monkeypatch):
    out = tmp_path / NAME
    write_model(conv_stack(32, 2, seed=1), out, external_data=True)
    before = _digests(tmp_path)
    save = onnx.save_model

    def interrupted(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt

    def refuse(staged: Path) -> None:
        assert staged.is_file() and staged.parent.name.startswith(f".{NAME}.")
        raise ValueError("not valid")

    with pytest.raises(ValueError, match="not valid"):
        write_model(conv_stack(32, 2, seed=2), out, external_data=True, verify=refuse)
    assert _digests(tmp_path) == before and not _staging(tmp_path)
    monkeypatch.setattr(onnx, "save_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_model(conv_stack(32, 2, seed=2), out, external_data=True)
    assert _digests(tmp_path) == before and not _staging(tmp_path)


def test_only_our_data_files_that_no_input_needs_are_deleted(tmp_path: Path):
    """The previous output's data goes only if it carries our name and is no input of the run."""
    out = tmp_path / NAME
    shared = conv_stack(32, 1, seed=1)
    onnx.save(shared, str(out), save_as_external_data=True, location="shared.bin")
    write_model(conv_stack(32, 1, seed=2), out, external_data=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME, f"{NAME}.data", "shared.bin"]
    write_model(
        conv_stack(32, 1, seed=3), out, external_data=True, keep=[out.with_name(f"{NAME}.data")]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        NAME,
        f"{NAME}.1.data",
        f"{NAME}.data",  # kept: an input of the run
        "shared.bin",  # kept: not named as ours, another model may use it
    ]
    write_model(conv_stack(32, 1, seed=4), out)  # no external data: the old data goes
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME, f"{NAME}.data", "shared.bin"]


def test_data_files_get_the_model_files_permissions(tmp_path: Path):
    write_model(conv_stack(32, 1), tmp_path / NAME, external_data=True)
    model_mode = (tmp_path / NAME).stat().st_mode
    assert (tmp_path / f"{NAME}.data").stat().st_mode == model_mode


def test_in_place_fix_of_external_data_alternates_the_data_file(tmp_path: Path):
    model = _save_external(conv_stack(16, 2), tmp_path, "m.onnx")
    fix(model, "nnom", in_place=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.1.data"]
    assert "HardSwish" not in [n.op_type for n in onnx.load(str(model)).graph.node]
    again = fix(model, "nnom", in_place=True)  # nothing to do, written again all the same
    assert not again.outcome.changed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


big_tests = pytest.mark.skipif(
    os.environ.get("PORTLINT_BIG_TESTS") != "1",
    reason="builds a 2.4 GB model: PORTLINT_BIG_TESTS=1",
)


def _big_model(folder: Path, channels: int = 8192, convs: int = 9) -> Path:
    """``_conv_stack`` with 2.4 GB of weights, streamed to its data file (never in memory)."""
    model = conv_stack(4, convs)
    data = folder / "big.onnx.data"
    block = np.random.default_rng(0).standard_normal(channels * channels // 16, np.float32)
    block = (block / np.float32(np.sqrt(channels))).tobytes()
    with open(data, "wb") as handle:
        for index, tensor in enumerate(model.graph.initializer):
            for _ in range(16):
                handle.write(block)
            tensor.ClearField("raw_data")
            del tensor.dims[:]
            tensor.dims.extend([channels, channels, 1, 1])
            size = channels * channels * 4
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data.name), ("offset", index * size), ("length", size)):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, str(value)
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[1].dim_value = channels
    onnx.save(model, str(folder / "big.onnx"))
    return folder / "big.onnx"


@pytest.fixture
def big_folder(tmp_path: Path):
    """``tmp_path``, emptied afterwards: pytest keeps old tmp folders, and these hold 5 GB."""
    yield tmp_path
    for child in tmp_path.iterdir():
        shutil.rmtree(child, ignore_errors=True)


@big_tests
def test_fix_on_a_model_over_2_gb_writes_its_data_beside_the_output(big_folder: Path):
    """Past 2 GB onnxruntime cannot take the model from memory: each pass is proven on a
    staged file with external data, the structure is checked without the weights, the data
    goes beside the output and the written file passes the full onnx.checker.
    Measured here (2 cores, 2.4 GB of weights): ``fix`` alone 0:59 and 5.2 GB peak RSS, 2.2
    times the weights (0:27 and 5.1 GB with the PL3xx weight rules ignored); the whole test
    1:24 and 5.6 GB.
    """
    (big_folder / "in").mkdir()
    source = _big_model(big_folder / "in")
    out = big_folder / "out" / NAME
    out.parent.mkdir()
    inputs = {p.name: p.stat().st_mtime_ns for p in source.parent.iterdir()}
    command = [sys.executable, "-m", "portlint", "fix", str(source), "-t", "nnom", "-o", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=_clean_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    printed = " ".join(done.stdout.split())
    assert "outputs equal on seeded random inputs" in printed
    assert "onnxruntime ran it from a staged file with its weights as external data" in printed
    assert "past the 2 GB protobuf limit" in printed
    assert "its structure was checked without the weights" in printed
    assert "the written model passed onnx.checker" in printed
    assert sorted(p.name for p in out.parent.iterdir()) == [NAME, f"{NAME}.data"]
    assert (out.parent / f"{NAME}.data").stat().st_size == (
        source.parent / "big.onnx.data"
    ).stat().st_size
    assert {p.name: p.stat().st_mtime_ns for p in source.parent.iterdir()} == inputs
    onnx.checker.check_model(str(out), full_check=True)
    written = onnx.load(str(out), load_external_data=False)
    assert "HardSwish" not in [n.op_type for n in written.graph.node]
    assert written.ir_version == 8 and [(o.domain, o.version) for o in written.opset_import] == [
        ("", 17)
    ]
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 8192, 1, 1), np.float32)}
    fixed, original = (_run_file(path, feeds) for path in (out, source))
    np.testing.assert_allclose(fixed, original, rtol=1e-5, atol=1e-5)


def _run_file(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The model's output, onnxruntime reading it from its file (it maps external data)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]

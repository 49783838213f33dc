"""Hostile input: mutated fixtures fed to ``check`` and ``fix`` never crash or hang portlint.

Every case (see ``fuzz_cases.py``: truncation, bit flips, wrong attribute values and types,
bad windows, huge dims, cycles, dangling and duplicate names, unknown ops and domains,
NaN weights, empty graphs, bad opsets and IR versions, broken external data) must end with
exit 0, 1 or 2, never 3 and never a traceback; exit 2 comes with one ``portlint: error:``
line; ``fix`` leaves its input as it was and no partial output behind. Most cases run the
CLI's ``main()`` in-process (fast); every ``SUBPROCESS_EVERY``-th runs ``python -m portlint``.

    PORTLINT_FUZZ_CASES=1000 pytest tests/test_fuzz.py      # more cases than CI runs
    python tests/fuzz_cases.py 42 /tmp/case42.onnx          # reproduce case 42
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import ROOT, _clean_env
from fuzz_cases import Case, make_case
from onnx import TensorProto, helper, numpy_helper

from portlint.cli import main
from portlint.fields import FIELDS, Unknown
from portlint.in_memory import view_of
from portlint.numerics import deviation

CASES = int(os.environ.get("PORTLINT_FUZZ_CASES", "150"))
SUBPROCESS_EVERY = 50
CASE_SECONDS = 20
"""A case that takes longer than this counts as a hang (the budget is per command)."""
OUTPUT = "out.onnx"
OUTPUT_FILES = {OUTPUT, f"{OUTPUT}.data", "out.post.onnx", "out.post.onnx.data"}


@dataclass
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    seconds: float


def _run_in_process(args: list[str]) -> Outcome:
    """``main()`` as ``python -m portlint`` runs it, in a watchdog thread."""
    stdout, stderr = io.StringIO(), io.StringIO()
    result: dict[str, int | None] = {}

    def show(message, category, filename, lineno, file=None, line=None):
        stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    def target() -> None:
        argv = sys.argv
        sys.argv = ["portlint", *args]
        try:
            with (
                contextlib.redirect_stdout(stdout),
                contextlib.redirect_stderr(stderr),
                warnings.catch_warnings(),
            ):
                warnings.simplefilter("default")  # what a user's terminal shows
                warnings.showwarning = show
                main()
            result["code"] = None  # main() always exits
        except SystemExit as done:
            result["code"] = done.code if isinstance(done.code, int) else 1
        except BaseException:
            stderr.write(traceback.format_exc())
            result["code"] = None
        finally:
            sys.argv = argv

    started = time.perf_counter()
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(CASE_SECONDS)
    seconds = time.perf_counter() - started
    if worker.is_alive():
        pytest.fail(f"portlint {' '.join(args)} still running after {CASE_SECONDS} s (a hang?)")
    return Outcome(result.get("code"), stdout.getvalue(), stderr.getvalue(), seconds)


def _run_subprocess(args: list[str], cwd: Path) -> Outcome:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "portlint", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**_clean_env(), "PYTHONPATH": str(ROOT)},
            timeout=CASE_SECONDS + 10,  # + interpreter and import start-up
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"portlint {' '.join(args)} still running after {CASE_SECONDS + 10} s")
    return Outcome(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


def _assert_clean_exit(outcome: Outcome, what: str) -> None:
    where = f"{what}: exit {outcome.code}, stderr:\n{outcome.stderr}"
    assert outcome.code in (0, 1, 2), where
    assert "Traceback" not in outcome.stderr, where
    assert "internal error" not in outcome.stderr, where
    lines = outcome.stderr.strip().splitlines()
    if outcome.code == 2:
        assert len(lines) == 1, where
        assert lines[0].startswith("portlint: error: "), where
        assert lines[0].removeprefix("portlint: error: ").strip(), where
    else:
        assert all(line.startswith("portlint: ") for line in lines), where


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _place(case: Case, folder: Path) -> Path:
    model = folder / "model.onnx"
    model.write_bytes(case.data)
    for name, data in case.side_files:
        (folder / name).write_bytes(data)
    (folder / "portlint.toml").write_text("")  # no config from the surrounding folders
    return model


def _run_case(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = make_case(index)
    what = f"case {index} ({case.label}; target {case.target})"
    folder = tmp_path / "case"
    folder.mkdir()
    model = _place(case, folder)
    monkeypatch.chdir(folder)
    subprocess_case = index % SUBPROCESS_EVERY == 0

    def run(args: list[str]) -> Outcome:
        return _run_subprocess(args, folder) if subprocess_case else _run_in_process(args)

    check = run(["check", model.name, "-t", case.target, *case.check_args])
    _assert_clean_exit(check, f"check, {what}")
    before = _snapshot(folder)
    fixed = run(["fix", model.name, "-t", case.target, "-o", OUTPUT, *case.fix_args])
    _assert_clean_exit(fixed, f"fix, {what}")
    after = _snapshot(folder)
    for name, data in before.items():
        assert after.get(name) == data, f"fix changed or removed {name}, {what}"
    new = {p.name for p in folder.iterdir()} - set(before)  # files and (staging) folders
    assert new <= OUTPUT_FILES, f"fix left {sorted(new - OUTPUT_FILES)} behind, {what}"
    if fixed.code == 2 or fixed.stderr.startswith("portlint: error: "):
        assert not new, f"fix failed but wrote {sorted(new)}, {what}"
    else:
        assert OUTPUT in new, f"fix succeeded but wrote no {OUTPUT}, {what}"


FOUND_BEYOND_CI = (250, 385, 457)
"""Cases past CI's range that once failed (the range estimator allocating per claimed
channel: Conv group 2**40, an input of 2**40 channels): run in CI too."""


@pytest.mark.parametrize("index", sorted({*range(CASES), *FOUND_BEYOND_CI}))
def test_fuzz_case(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_case(index, tmp_path, monkeypatch)


def _conv_model() -> onnx.ModelProto:
    """x[n,3,8,8] -> Conv(1x1, 4 channels) -> y: the smallest model each bug below needs."""
    weight = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _cycle(model: onnx.ModelProto) -> None:
    model.graph.node.extend(
        [helper.make_node("Relu", ["b"], ["a"], name="ra"), helper.make_node("Relu", ["a"], ["b"])]
    )


def _tensor_kernel(model: onnx.ModelProto) -> None:
    kernel = numpy_helper.from_array(np.array([1, 1], np.int64))
    model.graph.node[0].attribute.append(helper.make_attribute("kernel_shape", kernel))


def _short_weight(model: onnx.ModelProto) -> None:
    weight = model.graph.initializer[0]
    weight.raw_data = weight.raw_data[:10]


def _bad_kernel_rank(model: onnx.ModelProto) -> None:
    model.graph.node[0].attribute.append(helper.make_attribute("kernel_shape", [1, 1, 1]))


# what broke (exit 3 with a traceback's last line, or a pass's crash) -> the one line now
REGRESSIONS = {
    "cycle": (_cycle, ["check"], 2, "malformed graph: a cycle through nodes "),
    "tensor attribute": (
        _tensor_kernel,
        ["check"],
        2,
        "malformed node 'conv' (Conv): attribute 'kernel_shape' has type TENSOR, expected INTS",
    ),
    "tensor attribute in fix": (
        _tensor_kernel,
        ["fix", "-o", OUTPUT],
        2,
        "malformed node 'conv' (Conv): attribute 'kernel_shape' has type TENSOR",
    ),
    "unknown element type": (
        lambda m: setattr(m.graph.input[0].type.tensor_type, "elem_type", 999),
        ["check"],
        2,
        "malformed graph: tensor 'x' has an unknown element type 999",
    ),
    "short initializer": (
        _short_weight,
        ["check"],
        2,
        "malformed graph: initializer 'w' does not hold the data its type and dims say",
    ),
    "pass crash": (
        _bad_kernel_rank,
        ["fix", "-o", OUTPUT],
        1,
        "pass make-static failed on this model (InferenceError: ",
    ),
    "input too large to prove": (
        lambda m: None,
        ["fix", "-o", OUTPUT, "--input-shape", f"x:{2**40},3,8,8"],
        1,
        "input 'x' of shape [1099511627776, 3, 8, 8] is too large to run",
    ),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_fuzzer_finding_ends_in_one_line(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bug the fuzzer found, on the smallest model that shows it."""
    mutate, command, code, message = REGRESSIONS[name]
    model = _conv_model()
    mutate(model)
    onnx.save(model, str(tmp_path / "m.onnx"))
    (tmp_path / "portlint.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    outcome = _run_in_process([command[0], "m.onnx", "-t", "rk3588", *command[1:]])
    assert outcome.code == code, outcome.stderr
    assert outcome.stderr.startswith("portlint: error: "), outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1, outcome.stderr
    assert message in outcome.stderr, outcome.stderr
    assert not (tmp_path / OUTPUT).exists()


def test_a_changed_infinity_or_nan_is_not_exact() -> None:
    """An output that was inf or NaN and became a number moved: an exact pass may not do it."""
    for reference in ([np.inf, 1.0], [np.nan, 1.0], [-np.inf, 1.0]):
        assert not deviation("y", np.array(reference), np.array([5.0, 1.0])).within()
    assert deviation("y", np.array([np.inf, np.nan]), np.array([np.inf, np.nan])).within()


def test_fields_on_nonpositive_group_and_stride_are_unknown() -> None:
    """group 0 and a zero stride under auto_pad leave the limit unevaluable, not a crash."""
    model = _conv_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    node = model.graph.node[0]
    node.attribute.extend(
        [
            helper.make_attribute("group", 0),
            helper.make_attribute("strides", [0, 1]),
            helper.make_attribute("auto_pad", "SAME_UPPER"),
        ]
    )
    view = view_of(model)
    conv = view.nodes[0]
    for name in ("channels_per_group", "pads"):
        with pytest.raises(Unknown):
            FIELDS[name].get(conv, view)


def test_cases_are_deterministic() -> None:
    """Case N is the same bytes every time, so a failure reproduces from its index."""
    for index in (0, 7, 13, 39):
        first, second = make_case(index), make_case(index)
        assert first == second
    assert make_case(1).data != make_case(2).data

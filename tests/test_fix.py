"""``portlint fix`` end to end: safety of the output, the plan, proofs, round trips."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import FIXTURES, run_cli
from onnx import helper
from pass_helpers import model_of, weight

from portlint import passes as registry
from portlint.api import fix_path
from portlint.config import Config
from portlint.fixer import FixError, check_in_memory
from portlint.numerics import random_inputs, run
from portlint.passes import Pass, PassResult, Semantics
from portlint.target import load_target


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mobilenet(tmp_path: Path) -> Path:
    path = tmp_path / "mobilenet.onnx"
    shutil.copy(FIXTURES / "mobilenetv3_small.onnx", path)
    return path


def test_fix_writes_beside_the_input_and_never_touches_it(mobilenet: Path):
    before = _digest(mobilenet)
    result = run_cli("fix", str(mobilenet), "--target", "nnom")
    assert result.returncode == 0, result.stderr
    out = mobilenet.with_name("mobilenet.portlint.onnx")
    assert _digest(mobilenet) == before
    assert "decompose (exact)" in result.stdout
    assert "before / after" in result.stdout and f"wrote {out}" in result.stdout
    assert "check of the output" in result.stdout and "verdict: runs" in result.stdout
    fixed = onnx.load(str(out))
    original = onnx.load(str(mobilenet))
    assert fixed.ir_version == original.ir_version == 8
    assert list(fixed.opset_import) == list(original.opset_import)
    assert not [n for n in fixed.graph.node if n.op_type == "HardSwish"]
    feeds = random_inputs(original)
    np.testing.assert_allclose(
        run(fixed, feeds)["logits"], run(original, feeds)["logits"], atol=1e-5
    )


def test_fix_refuses_to_overwrite_its_input_unless_in_place(mobilenet: Path):
    before = _digest(mobilenet)
    refused = run_cli("fix", str(mobilenet), "-t", "nnom", "-o", str(mobilenet))
    assert refused.returncode == 2
    assert "refusing to overwrite the input model; pass --in-place" in refused.stderr
    assert _digest(mobilenet) == before
    done = run_cli("fix", str(mobilenet), "-t", "nnom", "--in-place")
    assert done.returncode == 0, done.stderr
    assert _digest(mobilenet) != before
    assert not list(mobilenet.parent.glob(".mobilenet*"))  # no staging leftovers


def test_dry_run_prints_the_plan_and_writes_nothing(mobilenet: Path):
    result = run_cli("fix", str(mobilenet), "-t", "nnom", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "run  decompose (exact): 19 node(s) of HardSwish" in result.stdout
    assert "skip fold-batchnorm (exact): nothing to do" in result.stdout
    assert sorted(p.name for p in mobilenet.parent.iterdir()) == ["mobilenet.onnx"]


def test_fix_on_its_own_output_changes_nothing(mobilenet: Path, tmp_path: Path):
    first, second = tmp_path / "once.onnx", tmp_path / "twice.onnx"
    assert run_cli("fix", str(mobilenet), "-t", "nnom", "-o", str(first)).returncode == 0
    again = run_cli("fix", str(first), "-t", "nnom", "-o", str(second))
    assert again.returncode == 0, again.stderr
    assert "nothing to fix" in again.stdout
    assert first.read_bytes() == second.read_bytes()


def test_an_exact_pass_that_moves_the_numbers_is_refused(mobilenet, monkeypatch, tmp_path):
    """The framework, not the pass, enforces the declaration: nothing is written."""

    def scale_weights(ctx):
        model = ctx.model
        first = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        values = onnx.numpy_helper.to_array(first) * 1.5
        first.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), first.name))
        return PassResult(model, ["scaled one weight by 1.5"])

    liar = Pass("liar", "claims exactness", Semantics.EXACT, (), scale_weights, lambda c: "x", "")
    monkeypatch.setitem(registry.PASSES, "liar", liar)
    out = tmp_path / "out.onnx"
    config = Config(targets=("nnom",))
    with pytest.raises(FixError, match="pass liar is declared exact but changed output 'logits'"):
        fix_path(mobilenet, config, out, ["liar"])
    assert not out.exists()


def test_an_invalid_model_from_a_pass_is_refused(mobilenet, monkeypatch, tmp_path):
    def break_graph(ctx):
        ctx.model.graph.node[0].input[0] = "nowhere"
        return PassResult(ctx.model, ["dangling input"])

    broken = Pass("broken", "breaks", Semantics.EXACT, (), break_graph, lambda c: "x", "")
    monkeypatch.setitem(registry.PASSES, "broken", broken)
    out = tmp_path / "out.onnx"
    with pytest.raises(FixError, match="pass broken produced an invalid model"):
        fix_path(mobilenet, Config(targets=("nnom",)), out, ["broken"])
    assert not out.exists()


def test_external_data_is_written_beside_the_output(tmp_path: Path):
    source = tmp_path / "src"
    source.mkdir()
    model = onnx.load(str(FIXTURES / "mobilenetv3_small.onnx"))
    onnx.save(model, str(source / "m.onnx"), save_as_external_data=True, location="m.weights")
    weights = _digest(source / "m.weights")
    out = tmp_path / "out" / "fixed.onnx"
    out.parent.mkdir()
    result = run_cli("fix", str(source / "m.onnx"), "-t", "nnom", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert (out.parent / "fixed.onnx.data").is_file()
    assert _digest(source / "m.weights") == weights
    fixed = onnx.load(str(out))
    original = onnx.load(str(FIXTURES / "mobilenetv3_small.onnx"))  # save() emptied `model`
    feeds = random_inputs(original)
    np.testing.assert_allclose(
        run(fixed, feeds)["logits"], run(original, feeds)["logits"], atol=1e-5
    )


def test_passes_command_lists_every_pass_with_its_semantics():
    result = run_cli("passes")
    assert result.returncode == 0
    for item in registry.PASSES.values():
        assert item.name in result.stdout
    assert "silu-to-relu       approximate" in result.stdout
    assert "fold-batchnorm     exact" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--pass", "fold-batchnrom"],
            "unknown pass 'fold-batchnrom'; did you mean 'fold-batchnorm'?",
        ),
        (["--option", "novalue"], "bad --option 'novalue'; expected KEY=VALUE"),
    ],
)
def test_fix_usage_errors_are_one_line(mobilenet: Path, args, message):
    result = run_cli("fix", str(mobilenet), "-t", "nnom", *args)
    assert result.returncode == 2
    assert result.stderr.strip() == f"portlint: error: {message}"


def test_fix_takes_one_target(mobilenet: Path):
    result = run_cli("fix", str(mobilenet), "--config", str(_two_targets(mobilenet)))
    assert result.returncode == 2
    assert "fix works for one target at a time" in result.stderr


def _two_targets(model: Path) -> Path:
    config = model.parent / "portlint.toml"
    config.write_text('targets = ["nnom", "cmsis-nn"]\n')
    return config


ROUND_TRIPS = [
    # (model, target, rule, nodes' op the rule fires on before and not after)
    ("mobilenetv3_small.onnx", "nnom", "PL101", "HardSwish"),
    ("mobilenetv3_small.onnx", "ax620a", "PL101", "HardSwish"),  # CPU fallback there
    ("dynamic_batch.onnx", "rk3588", "PL201", None),
]


@pytest.mark.parametrize(("fixture", "target", "rule", "op"), ROUND_TRIPS)
def test_lint_fix_lint_round_trip(tmp_path: Path, fixture, target, rule, op):
    source = tmp_path / fixture
    shutil.copy(FIXTURES / fixture, source)
    before_bytes = _digest(source)
    before = run_cli("check", str(source), "-t", target, "--format", "json", "--fail-on", "info")
    assert f'"rule": "{rule}"' in before.stdout
    out = tmp_path / "fixed.onnx"
    fixed = run_cli("fix", str(source), "-t", target, "-o", str(out), "--fail-on", "info")
    assert fixed.returncode in (0, 1), fixed.stderr
    after = check_in_memory(onnx.load(str(out)), load_target(target))
    remaining = [f for f in after.findings if f.rule == rule and (op is None or f.op_type == op)]
    assert remaining == []
    assert _digest(source) == before_bytes


def test_fix_output_loads_in_onnxruntime_with_its_optimizations_on(tmp_path: Path):
    """What the user deploys is run with default settings too, not only the proof's."""
    import onnxruntime as ort

    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    model = model_of(
        [conv], [("x", ["n", 3, 8, 8])], [("y", ["n", 4, 8, 8])], [weight("w", 4, 3, 1, 1)]
    )
    source = tmp_path / "dyn.onnx"
    onnx.save(model, str(source))
    out = tmp_path / "static.onnx"
    assert run_cli("fix", str(source), "-t", "rk3588", "-o", str(out)).returncode == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 8, 8]


@pytest.mark.parametrize("target", ["rk3588", "hailo8"])
def test_yolov8n_unsafe_fix_cuts_at_the_head_and_the_tail_restores_the_outputs(tmp_path, target):
    """The issue's real-model proof, as a user runs it: two files, composed on the CPU."""
    source = tmp_path / "yolov8n.onnx"
    shutil.copy(FIXTURES / "yolov8n.onnx", source)
    before = _digest(source)
    result = run_cli("fix", str(source), "-t", target, "--unsafe-fixes")
    assert result.returncode == 0, result.stderr
    head_path = tmp_path / "yolov8n.portlint.onnx"
    tail_path = tmp_path / "yolov8n.portlint.post.onnx"
    assert f"wrote {tail_path}" in result.stdout
    assert _digest(source) == before
    head, tail, original = (onnx.load(str(p)) for p in (head_path, tail_path, source))
    assert [o.name for o in head.graph.output] == [
        f"/model.22/{branch}.{i}/{branch}.{i}.2/Conv_output_0"
        for i in range(3)
        for branch in ("cv2", "cv3")
    ]
    assert not [
        f
        for f in check_in_memory(head, load_target(target)).findings
        if f.severity.value == "error"
    ]
    feeds = random_inputs(original, seed=99)
    expected = run(original, feeds)
    composed = run(tail, run(head, feeds))
    assert max(float(np.abs(composed[k] - expected[k]).max()) for k in expected) <= 1e-4

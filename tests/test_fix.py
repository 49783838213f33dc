"""``portlint fix`` end to end: safety of the output, the plan, proofs, round trips."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import FIXTURES, run_cli
from onnx import helper
from pass_helpers import model_of, weight

from portlint.api import fix_path
from portlint.config import Config
from portlint.fixer import FixError, FixRequest, check_in_memory
from portlint.numerics import random_inputs, run
from portlint.passes import registry
from portlint.passes.base import Pass, PassResult, Semantics
from portlint.rule import load_rules
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
    assert "refusing to overwrite the input model; choose another -o" in refused.stderr
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
        fix_path(mobilenet, FixRequest(("liar",), config=config), out)
    assert not out.exists()


def test_an_invalid_model_from_a_pass_is_refused(mobilenet, monkeypatch, tmp_path):
    def break_graph(ctx):
        ctx.model.graph.node[0].input[0] = "nowhere"
        return PassResult(ctx.model, ["dangling input"])

    broken = Pass("broken", "breaks", Semantics.EXACT, (), break_graph, lambda c: "x", "")
    monkeypatch.setitem(registry.PASSES, "broken", broken)
    out = tmp_path / "out.onnx"
    with pytest.raises(FixError, match="pass broken produced an invalid model"):
        fix_path(mobilenet, FixRequest(("broken",), config=Config(targets=("nnom",))), out)
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


def _batch_two(folder: Path) -> Path:
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    model = model_of(
        [conv], [("x", [2, 3, 8, 8])], [("y", [2, 4, 8, 8])], [weight("w", 4, 3, 1, 1)]
    )
    path = folder / "batch2.onnx"
    onnx.save(model, str(path))
    return path


def _identity(folder: Path) -> Path:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Identity", ["c"], ["y"], name="noise"),
    ]
    model = model_of(nodes, [("x", [1, 3, 8, 8])], [("y", [1, 4, 8, 8])], [weight("w", 4, 3, 1, 1)])
    path = folder / "identity.onnx"
    onnx.save(model, str(path))
    return path


# rule -> (model, target, extra fix arguments): one lint -> fix -> lint case per fixable rule;
# the rule's findings must be gone except on nodes a pass names as skipped, and except on
# ops no pass touches (LEFT_ALONE: a311d's slow Resize stays slow after silu-to-relu)
ROUND_TRIPS = {
    "PL101": ("mobilenetv3_small.onnx", "nnom", []),  # decompose HardSwish
    "PL102": ("yolov8n.onnx", "rk3566", ["--unsafe-fixes"]),  # the DFL tail runs on the CPU
    "PL106": ("yolov8n.onnx", "edgetpu", ["--unsafe-fixes"]),  # single-partition tail
    "PL107": ("yolov8n.onnx", "amlogic-a311d", ["--pass", "strip-postprocess,silu-to-relu"]),
    "PL108": ("yolov8n.onnx", "hailo8", ["--unsafe-fixes"]),
    "PL109": ("yolov8n.onnx", "rk3588", ["--unsafe-fixes"]),  # rknn 2.5.0's DFL crash
    "PL200": ("dynamic_batch.onnx", "ethos-u55", []),  # limits hidden by the dynamic batch
    "PL201": ("dynamic_batch.onnx", "rk3588", []),
    "PL203": ("yolov8n.onnx", "jetson-orin-dla", ["--unsafe-fixes"]),
    "PL204": ("yolov8n.onnx", "jetson-orin-dla", ["--unsafe-fixes"]),
    "PL220": ("odd_channels.onnx", "intel-gna", []),  # pad-channels
}
LEFT_ALONE = {"PL107": {"Resize"}}


def test_every_fixable_rule_has_a_round_trip():
    fixable = {rule.code for rule in load_rules() if rule.fixes}
    assert fixable == set(ROUND_TRIPS)


@pytest.mark.parametrize("rule", sorted(ROUND_TRIPS))
def test_lint_fix_lint_round_trip(tmp_path: Path, rule: str):
    """The rule fires, fix resolves it (or says why not, node by node), the input is untouched."""
    model, target, extra = ROUND_TRIPS[rule]
    if callable(model):
        source = model(tmp_path)
    else:
        source = tmp_path / model
        shutil.copy(FIXTURES / model, source)
    before_bytes = _digest(source)
    report = run_cli("check", str(source), "-t", target, "--format", "json", "--fail-on", "info")
    before = [
        f for m in json.loads(report.stdout)["models"] for t in m["targets"] for f in t["findings"]
    ]
    assert any(f["rule"] == rule for f in before)
    out = tmp_path / "fixed.onnx"
    fixed = run_cli("fix", str(source), "-t", target, "-o", str(out), *extra)
    assert fixed.returncode in (0, 1), fixed.stderr
    assert _digest(source) == before_bytes
    after = check_in_memory(onnx.load(str(out)), load_target(target))
    skipped = fixed.stdout.split("skipped:")[1:]  # nodes a pass could not fix, with the reason
    left_alone = LEFT_ALONE.get(rule, set())
    remaining = [f for f in after.findings if f.rule == rule and f.op_type not in left_alone]
    assert all(any(f'"{f.location}"' in line for line in skipped) for f in remaining), remaining
    assert len(remaining) < sum(1 for f in before if f["rule"] == rule)


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


def test_simplify_removes_export_noise_by_default(tmp_path: Path):
    source = _identity(tmp_path)
    out = tmp_path / "clean.onnx"
    result = run_cli("fix", str(source), "-t", "hailo8", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "simplify (exact) — 1 Identity/Dropout node(s)" in result.stdout
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["Conv"]


def test_make_static_does_not_repin_a_static_batch(tmp_path: Path):
    """Batch 2 baked into an export is not a dim to pin: re-export instead (said, not done)."""
    source = _batch_two(tmp_path)
    out = tmp_path / "out.onnx"
    result = run_cli(
        "fix", str(source), "-t", "rk3588", "-o", str(out), "--input-shape", "x:1,3,8,8"
    )
    assert result.returncode == 0  # PL202 is info on rk3588 (2.5.0 converts batch 2)
    assert "make-static pins dynamic dims only; re-export the model for [1, 3, 8, 8]" in (
        " ".join(result.stdout.split())
    )
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 3, 8, 8]

"""``fix`` on models past protobuf's 2 GB: proven from a staged file, data beside the output.

CI cannot build a 2 GB model, so the limit is lowered to 1 MB (``model_io.loaded.PROTOBUF_LIMIT``
is read at each use) and a model of a few MB takes every path a real one would. The real
thing is ``PORTLINT_BIG_TESTS=1 pytest tests/test_no_data_lost.py``.
"""

from __future__ import annotations

import gc
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from portlint import fixer
from portlint.api import fix
from portlint.cli import main
from portlint.config import Config
from portlint.engine import check_target, selected_rules
from portlint.fixer import FixError, FixRequest, Owned, _tidy, fix_model
from portlint.graph_view import build_view
from portlint.in_memory import check_in_memory
from portlint.model_io import loaded, weightless
from portlint.model_io.load import view_model
from portlint.model_io.loaded import IN_MEMORY
from portlint.model_io.weightless import is_stripped, light_copy
from portlint.model_io.write import protobuf_size
from portlint.passes import decompose
from portlint.passes.base import PassContext
from portlint.probe.factory import conv_stack
from portlint.rule import load_rules
from portlint.target import load_target

LIMIT = 2**20
NAME = "out.onnx"
CHANNELS, CONVS = 256, 6  # 256 KB of weights per Conv: 1.5 MB, past the lowered limit


@pytest.fixture(autouse=True)
def lowered_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loaded, "PROTOBUF_LIMIT", LIMIT)


def _model(channels: int = CHANNELS, convs: int = CONVS) -> onnx.ModelProto:
    model = conv_stack(channels, convs, size=2)
    model.producer_name = "big-test"  # fix must keep it
    return model


def _save(model: onnx.ModelProto, folder: Path, name: str = "big.onnx") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    onnx.save(model, str(path), save_as_external_data=True, location=f"{name}.data")
    return path


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The model run by onnxruntime from its file, external data and all."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = _save(_model(), tmp_path / "in")
    assert protobuf_size(onnx.load(str(path))) > LIMIT
    return path


def test_fix_past_the_limit_proves_from_a_staged_file_and_writes_data_beside(
    big: Path, tmp_path: Path
):
    inputs = _digests(big.parent)
    out = tmp_path / "out" / NAME
    out.parent.mkdir()
    done = fix(big, "nnom", out)
    [step] = [s for s in done.outcome.steps if s.changed]
    assert step.pass_.name == "decompose"
    assert "outputs equal on seeded random inputs" in step.verification
    assert "onnxruntime ran it from a staged file with its weights as external data" in (
        step.verification
    )
    assert "(the model is 1.6 MB, past the 2 GB protobuf limit)" in step.verification
    assert "structure was checked without the weights" in step.verification
    assert "the written model passed onnx.checker" in step.verification
    # the pair is written beside the output, nothing else is left there, the input is as it was
    assert sorted(p.name for p in out.parent.iterdir()) == [NAME, f"{NAME}.data"]
    assert _digests(big.parent) == inputs
    written = onnx.load(str(out), load_external_data=False)
    locations = {
        e.value for t in written.graph.initializer for e in t.external_data if e.key == "location"
    }
    assert locations == {f"{NAME}.data"}
    original = onnx.load(str(big))
    assert written.ir_version == original.ir_version == 8
    assert list(written.opset_import) == list(original.opset_import)
    assert written.producer_name == "big-test"
    assert "HardSwish" not in [n.op_type for n in written.graph.node]
    feeds = {"x": np.random.default_rng(1).standard_normal((1, CHANNELS, 2, 2), np.float32)}
    [fixed] = _outputs(out, feeds)
    [reference] = _outputs(big, feeds)
    np.testing.assert_allclose(fixed, reference, rtol=1e-5, atol=1e-5)
    onnx.checker.check_model(str(out), full_check=True)


def test_the_report_says_how_it_was_proven_and_what_was_skipped(
    big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    out = tmp_path / NAME
    monkeypatch.setattr(sys, "argv", ["portlint", "fix", str(big), "-t", "nnom", "-o", str(out)])
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as ended:
        main()
    printed = capsys.readouterr()
    assert ended.value.code == 0, printed.err
    text = " ".join(printed.out.split())
    assert "onnxruntime ran it from a staged file with its weights as external data" in text
    assert "(the model is 1.6 MB, past the 2 GB protobuf limit)" in text
    assert "its structure was checked without the weights" in text

    named = tmp_path / "simplified.onnx"  # a pass that cannot run past the limit says so
    argv = ["portlint", "fix", str(big), "-t", "nnom", "--pass", "simplify", "-o", str(named)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as ended:
        main()
    printed = capsys.readouterr()
    assert ended.value.code in (0, 1), printed.err
    assert "skipped: model exceeds the 2 GB protobuf limit onnxsim needs" in printed.out


def test_a_big_model_that_cannot_be_staged_is_not_written_unless_allowed(
    big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("portlint.fixer.save_for_proof", no_space)
    out = tmp_path / NAME
    with pytest.raises(FixError, match="pass decompose cannot be proven: the model is") as refused:
        fix(big, "nnom", out)
    assert "above onnxruntime's 2 GB in-memory limit" in str(refused.value)
    assert "--allow-unverified" in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing written or left
    done = fix(big, "nnom", out, allow_unverified=True)
    [step] = [s for s in done.outcome.steps if s.changed]
    assert step.verification.startswith("NOT VERIFIED numerically: the model is")
    assert "structure was checked without the weights" in step.verification
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", NAME, f"{NAME}.data"]


def test_a_cut_past_the_limit_is_proven_from_staged_files(big: Path, tmp_path: Path):
    out = tmp_path / NAME
    done = fix(big, "nnom", out, passes=("strip-postprocess",), options={"cut": "c2"})
    [step] = done.outcome.steps
    assert step.changed and "kept tensors equal and tail(head(x))" in step.verification
    assert "ran it from a staged file" in step.verification
    tail = tmp_path / "out.post.onnx"
    assert done.tail_output == tail
    feeds = {"x": np.random.default_rng(2).standard_normal((1, CHANNELS, 2, 2), np.float32)}
    [head] = _outputs(out, feeds)
    [composed] = _outputs(tail, {"c2": head})
    [reference] = _outputs(big, feeds)
    np.testing.assert_allclose(composed, reference, rtol=1e-5, atol=1e-5)


def test_a_handed_over_model_is_let_go_and_not_copied_for_passes_that_build_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
):
    copies = []
    monkeypatch.setattr("portlint.fixer.copy_model", lambda m: copies.append(m) or m)
    outcome = fix_model(Owned(_model()), load_target("nnom"))
    assert outcome.changed and not copies
    assert all(is_stripped(t) for t in outcome.before_model.graph.initializer)
    assert not any(is_stripped(t) for t in outcome.model.graph.initializer)


def test_a_handed_over_model_is_let_go_before_its_replacement_is_proven(
    monkeypatch: pytest.MonkeyPatch,
):
    """Past the limit the proof maps the staged weights: the input's must be gone by then."""
    model = _model()
    counts = []
    prove = fixer._Prover.prove

    def spy(self, step, cut_from=None):
        gc.collect()
        counts.append(sys.getrefcount(model))
        return prove(self, step, cut_from)

    monkeypatch.setattr(fixer._Prover, "prove", spy)
    fix_model(Owned(model), load_target("nnom"))
    assert counts == [2]  # this test's own reference and getrefcount's argument


def test_tidy_keeps_a_tidy_model_as_it_is():
    """graphsurgeon's round trip runs on the weightless copy: a model it would not change
    comes back as the same object, its weights never copied."""
    model = _model()
    ctx = PassContext(model, load_target("nnom"))
    result = decompose.run(ctx)
    assert result.changed
    assert _tidy(result.model) is result.model
    shuffled = onnx.ModelProto()
    shuffled.CopyFrom(result.model)
    nodes = list(shuffled.graph.node)
    del shuffled.graph.node[:]
    shuffled.graph.node.extend(reversed(nodes))  # out of order: sorted, with its weights back
    tidied = _tidy(shuffled)
    assert [n.name for n in tidied.graph.node] == [n.name for n in result.model.graph.node]
    assert {t.name: t for t in tidied.graph.initializer} == {
        t.name: t for t in result.model.graph.initializer
    }


def test_the_light_copy_is_what_check_sees_and_leaves_the_model_alone():
    model = _model()
    before = model.SerializeToString()
    light = light_copy(model)
    assert model.SerializeToString() == before
    assert protobuf_size(light) < 10_000 < LIMIT < protobuf_size(model)
    assert [t.name for t in light.graph.initializer] == [t.name for t in model.graph.initializer]
    assert all(list(t.dims) == [CHANNELS, CHANNELS, 1, 1] for t in light.graph.initializer)
    target = load_target("nnom")
    full = build_view(view_model(model, IN_MEMORY))  # a full copy, then stripped
    rules = selected_rules(load_rules(), Config())
    assert check_in_memory(model, target).findings == (
        check_target(full, target, rules, Config()).findings
    )


def test_the_request_stages_beside_the_output(
    big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Staged proofs go to a hidden folder beside the output, removed when the run ends."""
    seen = []

    def spy(model, folder, outputs=()):
        seen.append(Path(folder).parent)
        return weightless.save_for_proof(model, folder, outputs)

    monkeypatch.setattr("portlint.fixer.save_for_proof", spy)
    out = tmp_path / "where" / NAME
    out.parent.mkdir()
    fix_model(onnx.load(str(big)), load_target("nnom"), FixRequest(beside=out))
    assert len(seen) == 2  # the model as given, and decompose's
    assert all(p.parent == out.parent and p.name.startswith(f".{NAME}.") for p in seen)
    assert list(out.parent.iterdir()) == []


def test_a_big_model_under_the_limit_is_staged_too_and_falls_back_to_memory(
    big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """From ``STAGE_BYTES`` on, staging is the cheaper way; if it fails, memory still works."""
    monkeypatch.setattr(loaded, "PROTOBUF_LIMIT", 2**31 - 1)
    monkeypatch.setattr(weightless, "STAGE_BYTES", LIMIT)
    done = fix(big, "nnom", tmp_path / "staged.onnx")
    [step] = [s for s in done.outcome.steps if s.changed]
    assert "ran it from a staged file with its weights as external data (the model is 1.6 MB)" in (
        step.verification
    )
    assert "structure was checked without the weights" in step.verification

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("portlint.fixer.save_for_proof", no_space)
    done = fix(big, "nnom", tmp_path / "in-memory.onnx")
    [step] = [s for s in done.outcome.steps if s.changed]
    assert step.verification.startswith("outputs equal on seeded random inputs")
    assert "staged" not in step.verification


def test_weights_a_pass_computes_are_written_and_proven_too(tmp_path: Path):
    """fold-batchnorm makes new Conv weights (arrays, not the model's tensors): they are
    exported one at a time into the new model and proven like the rest."""
    model = _model(convs=5)
    bn = [f"bn_{k}" for k in ("scale", "bias", "mean", "var")]
    rng = np.random.default_rng(3)
    stats = [rng.uniform(0.5, 2.0, CHANNELS), rng.standard_normal(CHANNELS)]
    stats += [rng.standard_normal(CHANNELS), rng.uniform(0.5, 2.0, CHANNELS)]
    for name, values in zip(bn, stats, strict=True):
        model.graph.initializer.append(numpy_helper.from_array(values.astype(np.float32), name))
    model.graph.node[1].output[0] = "pre_bn"
    node = helper.make_node("BatchNormalization", ["pre_bn", *bn], ["c1"], name="bn")
    model.graph.node.insert(2, node)
    path = _save(model, tmp_path / "in", "bn.onnx")
    out = tmp_path / NAME
    done = fix(path, "intel-gna", out, passes=("fold-batchnorm",))
    [step] = done.outcome.steps
    assert step.changed and "ran it from a staged file" in step.verification
    assert "BatchNormalization" not in [n.op_type for n in onnx.load(str(out)).graph.node]
    feeds = {"x": np.random.default_rng(4).standard_normal((1, CHANNELS, 2, 2), np.float32)}
    np.testing.assert_allclose(
        _outputs(out, feeds)[0], _outputs(path, feeds)[0], rtol=1e-4, atol=1e-4
    )

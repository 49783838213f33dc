"""``fix`` on awkward but valid models and awkward command lines: no damage, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from conftest import FIXTURES, run_cli
from onnx import TensorProto, helper
from pass_helpers import model_of, positive, weight

from portlint.numerics import random_inputs, run


def _save(model: onnx.ModelProto, folder: Path, name: str = "m.onnx") -> Path:
    path = folder / name
    onnx.save(model, str(path))
    return path


def _hardswish(name: str = "") -> onnx.ModelProto:
    node = helper.make_node("HardSwish", ["x"], ["y"], name=name)
    return model_of([node], [("x", [1, 4, 8, 8])], [("y", [1, 4, 8, 8])])


def test_unnamed_nodes_are_fixed_and_named_as_check_reports_them(tmp_path: Path):
    source = _save(_hardswish(""), tmp_path)
    out = tmp_path / "out.onnx"
    result = run_cli("fix", str(source), "-t", "nnom", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "'HardSwish_0': HardSwish -> HardSigmoid + Mul" in result.stdout
    assert "HardSwish" not in [n.op_type for n in onnx.load(str(out)).graph.node]


def test_fold_batchnorm_on_a_half_precision_model(tmp_path: Path):
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv")
    bn = helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"], name="bn")
    inits = [weight("w", 4, 3, 3, 3), positive("g", 4), weight("b", 4), weight("m", 4)]
    inits.append(positive("v", 4))
    for tensor in inits:
        tensor.CopyFrom(
            onnx.numpy_helper.from_array(
                onnx.numpy_helper.to_array(tensor).astype(np.float16), tensor.name
            )
        )
    graph = helper.make_graph(
        [conv, bn],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4, 14, 14])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    source = _save(model, tmp_path)
    result = run_cli("fix", str(source), "-t", "intel-gna", "--pass", "fold-batchnorm")
    assert result.returncode in (0, 1), result.stderr
    assert "fold-batchnorm (exact)" in result.stdout and "nothing written" not in result.stderr


def test_initializers_listed_as_inputs_stay_listed(tmp_path: Path):
    """Before IR 4 every initializer must also be a graph input; graphsurgeon drops them."""
    model = _hardswish("hs")
    model.ir_version = 3
    model.opset_import[0].version = 14
    extra = weight("unused_but_listed", 2)
    model.graph.initializer.append(extra)
    model.graph.input.append(helper.make_tensor_value_info(extra.name, TensorProto.FLOAT, [2]))
    source = _save(model, tmp_path)
    out = tmp_path / "out.onnx"
    result = run_cli("fix", str(source), "-t", "nnom", "-o", str(out))
    assert result.returncode == 0, result.stderr
    fixed = onnx.load(str(out))
    assert fixed.ir_version == 3
    assert [i.name for i in fixed.graph.input] == ["x", "unused_but_listed"]


def test_fix_twice_on_external_data_from_the_model_folder(tmp_path: Path):
    model = onnx.load(str(FIXTURES / "mobilenetv3_small.onnx"))
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.onnx.data")
    for _ in range(2):  # the second run finds its own data file in the working directory
        result = run_cli("fix", "m.onnx", "-t", "nnom", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    in_place = run_cli("fix", "m.onnx", "-t", "nnom", "--in-place", cwd=tmp_path)
    assert in_place.returncode == 0, in_place.stderr
    original = onnx.load(str(FIXTURES / "mobilenetv3_small.onnx"))
    fixed = onnx.load(str(tmp_path / "m.onnx"))
    feeds = random_inputs(original)
    np.testing.assert_allclose(
        run(fixed, feeds)["logits"], run(original, feeds)["logits"], atol=1e-5
    )


def test_the_tail_never_lands_on_the_input(tmp_path: Path):
    source = tmp_path / "x.post.onnx"
    shutil.copy(FIXTURES / "yolov8n.onnx", source)
    result = run_cli(
        "fix", str(source), "-t", "rk3588", "--unsafe-fixes", "-o", str(tmp_path / "x.onnx")
    )
    assert result.returncode == 2
    assert "x.post.onnx: refusing to overwrite the input model" in result.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_a_profile_path_target_is_checked_again_after_fix(tmp_path: Path):
    profile = tmp_path / "board.yaml"
    profile.write_text(
        "portlint_profile: 1\nextends: nnom\nname: board\ndisplay_name: Board\n"
        'toolchain: {name: NNoM, version: "0.4"}\n'
    )
    source = _save(_hardswish("hs"), tmp_path)
    result = run_cli("fix", str(source), "-t", str(profile))
    assert result.returncode == 0, result.stderr
    assert "board — Board" in result.stdout and "verdict: runs" in result.stdout


def test_config_ignores_reach_the_plan(tmp_path: Path):
    source = tmp_path / "odd.onnx"
    shutil.copy(FIXTURES / "odd_channels.onnx", source)
    (tmp_path / "portlint.toml").write_text('ignore = ["PL220"]\n')
    result = run_cli("fix", str(source), "-t", "intel-gna", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "skip pad-channels (exact): nothing to do" in result.stdout


def test_unprovable_exact_passes_are_not_written_unless_allowed(tmp_path: Path):
    """A custom-domain op onnxruntime cannot run: the decomposition next to it is unproven."""
    nodes = [
        helper.make_node("HardSwish", ["x"], ["h"], name="hs"),
        helper.make_node("Mystery", ["h"], ["y"], name="custom", domain="vendor.ops"),
    ]
    model = model_of(nodes, [("x", [1, 4, 8, 8])], [("y", [1, 4, 8, 8])])
    model.opset_import.add(domain="vendor.ops", version=1)
    source = _save(model, tmp_path)
    out = tmp_path / "out.onnx"
    refused = run_cli("fix", str(source), "-t", "nnom", "-o", str(out))
    assert refused.returncode == 1
    assert refused.stderr.startswith("portlint: error: pass decompose cannot be proven:")
    assert "--allow-unverified" in refused.stderr and not out.exists()
    allowed = run_cli("fix", str(source), "-t", "nnom", "-o", str(out), "--allow-unverified")
    assert allowed.returncode in (0, 1), allowed.stderr
    assert "NOT VERIFIED numerically" in allowed.stdout and out.exists()


def test_a_sequence_input_is_unprovable_not_a_crash(tmp_path: Path):
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [1, 4, 8, 8])
    nodes = [
        helper.make_node("SequenceAt", ["s", "i"], ["x"], name="at"),
        helper.make_node("HardSwish", ["x"], ["y"], name="hs"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [seq],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array(0, np.int64), "i")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    result = run_cli("fix", str(_save(model, tmp_path)), "-t", "nnom")
    assert result.returncode in (1, 2), result.stderr
    assert "internal error" not in result.stderr


def test_a_cut_that_removes_nothing_is_refused(tmp_path: Path):
    source = tmp_path / "y.onnx"
    shutil.copy(FIXTURES / "yolov8n.onnx", source)
    args = ("--pass", "strip-postprocess", "--option", "cut=output0")
    result = run_cli("fix", str(source), "-t", "hailo8", *args)
    assert result.returncode == 2
    assert 'the cut at "output0" removes nothing' in result.stderr


def test_command_line_mistakes_are_caught_before_any_work(tmp_path: Path):
    source = _save(_hardswish("hs"), tmp_path)
    cases = {
        ("-o", str(tmp_path)): "is a directory; give a file name with -o",
        ("--in-place", "-o", str(tmp_path / "o.onnx")): "--in-place writes over the input",
        ("--option", "cutt=x"): "unknown pass option 'cutt'; did you mean 'cut'?",
        ("--option", "cut=x"): "--option cut is for strip-postprocess, which this run does not",
    }
    for args, message in cases.items():
        result = run_cli("fix", str(source), "-t", "nnom", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert not (tmp_path / "m.portlint.onnx").exists()

"""Bad input: one line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import FIXTURES, assert_one_line_error, parse, run_cli, save
from onnx import helper, numpy_helper

YOLO = str(FIXTURES / "yolov8n.onnx")


def _external_model(folder: Path, location: str) -> Path:
    weight = numpy_helper.from_array(np.ones((8, 8, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "ext.onnx"
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.data",
        size_threshold=0,
    )
    if location != "ext.data":
        saved = onnx.load(str(path), load_external_data=False)
        for entry in saved.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        onnx.save(saved, str(path))
    return path


CASES = {
    "missing file": (lambda d: d / "nope.onnx", ["no such file"]),
    "directory": (lambda d: d, ["no .onnx files in this folder"]),
    "not onnx": (lambda d: _write(d / "notes.onnx", b"hello, this is a text file\n" * 10), ["not"]),
    "empty": (lambda d: _write(d / "empty.onnx", b""), ["empty"]),
    "truncated": (
        lambda d: _write(d / "cut.onnx", Path(YOLO).read_bytes()[:300_000]),
        ["truncated or corrupt"],
    ),
    "git lfs pointer": (
        lambda d: _write(
            d / "lfs.onnx", b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n"
        ),
        ["Git LFS pointer"],
    ),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_unreadable_model(case: str, tmp_path: Path) -> None:
    make, fragments = CASES[case]
    assert_one_line_error(run_cli("check", str(make(tmp_path)), "--target", "hailo8"), *fragments)


def test_missing_external_data(tmp_path: Path) -> None:
    path = _external_model(tmp_path, "ext.data")
    (tmp_path / "ext.data").unlink()
    assert_one_line_error(
        run_cli("check", str(path), "-t", "rk3588"), "missing external data", "ext.data"
    )


def test_external_data_outside_model_folder_is_refused(tmp_path: Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    path = _external_model(inner, "../secret.data")
    (tmp_path / "secret.data").write_bytes(b"\0" * 4096)
    assert_one_line_error(run_cli("check", str(path), "-t", "rk3588"), "outside the model's folder")


def test_external_data_present_is_checked_without_reading_it(tmp_path: Path) -> None:
    path = _external_model(tmp_path, "ext.data")
    result = run_cli("check", str(path), "-t", "rk3588")
    assert result.returncode == 0, result.stderr


def test_unknown_target_suggests_close_names() -> None:
    assert_one_line_error(
        run_cli("check", YOLO, "--target", "hailo-8"),
        "unknown target 'hailo-8'",
        "did you mean 'hailo8'",
    )


def test_no_target_lists_known_ones(tmp_path: Path) -> None:
    assert_one_line_error(run_cli("check", YOLO, cwd=tmp_path), "no target given", "rk3588")


def test_malformed_profile_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert_one_line_error(
        run_cli("check", YOLO, "--target", str(bad)), "bad.yaml", "malformed YAML"
    )


def test_unknown_rule_selector() -> None:
    assert_one_line_error(
        run_cli("check", YOLO, "-t", "rk3588", "--select", "PL9999"), "unknown rule"
    )


def test_unknown_rule_in_config(tmp_path: Path) -> None:
    (tmp_path / "portlint.toml").write_text('targets = ["rk3588"]\nignore = ["chanel-multiple"]\n')
    assert_one_line_error(
        run_cli("check", YOLO, cwd=tmp_path), "unknown rule 'chanel-multiple'", "channel-multiple"
    )


def test_bad_input_shape_syntax() -> None:
    assert_one_line_error(
        run_cli("check", YOLO, "-t", "rk3588", "--input-shape", "images=1,3"), "bad input shape"
    )


def test_input_shape_for_unknown_input() -> None:
    assert_one_line_error(
        run_cli("check", YOLO, "-t", "rk3588", "--input-shape", "image:1,3,64,64"),
        "did you mean 'images'",
    )


def test_dangling_node_input_is_a_malformed_graph(tmp_path: Path) -> None:
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8] x) => (float[1,8] y) { y = Add (x, ghost) }""")
    assert_one_line_error(
        run_cli("check", str(save(model, tmp_path)), "-t", "rk3588"), "malformed graph", "'ghost'"
    )


def test_unknown_command_option_is_one_line() -> None:
    assert_one_line_error(run_cli("check", YOLO, "--frobnicate"), "--frobnicate")


def test_findings_exit_one_and_clean_exit_zero(tmp_path: Path) -> None:
    clean = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8,4,4] x) => (float[1,8,4,4] y) { y = Relu (x) }""")
    assert run_cli("check", str(save(clean, tmp_path)), "-t", "rk3588").returncode == 0
    assert run_cli("check", YOLO, "-t", "intel-gna").returncode == 1


def test_a_tensor_produced_twice_is_refused(tmp_path: Path) -> None:
    """ONNX graphs are in SSA form: two producers of one tensor is a broken file, not a model
    whose last producer wins."""
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,4] x) => (float[1,4] y) {
            y = Relu (x)
            y = Sigmoid (x)
        }
        """
    )
    path = save(model, tmp_path)
    for command in ("check", "fix"):
        result = run_cli(command, str(path), "-t", "rk3588")
        assert_one_line_error(result, "tensor 'y' is produced twice", "Relu", "Sigmoid")

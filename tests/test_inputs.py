"""Sample inputs: .npy, .npz, images with their preprocessing, random samples, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import assert_one_line_error, run_cli
from onnx import TensorProto, helper

from portlint.errors import PortlintError
from portlint.inputs import (
    InputsError,
    Preprocess,
    from_directory,
    model_inputs,
    parse_floats,
    parse_size,
    random_samples,
)


def relu_model(*inputs: tuple[str, int, list]) -> onnx.ModelProto:
    """One Relu per input (``name_out``); inputs as (name, elem type, dims)."""
    nodes = [helper.make_node("Relu", [name], [f"{name}_out"]) for name, _, _ in inputs]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, d) for n, t, d in inputs],
        [helper.make_tensor_value_info(f"{n}_out", t, d) for n, t, d in inputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


IMAGE = relu_model(("x", TensorProto.FLOAT, [1, 3, 2, 2]))
TWO = relu_model(("a", TensorProto.FLOAT, [1, 4]), ("b", TensorProto.FLOAT, [1, 2]))


def test_model_inputs_reads_dtype_and_shape_with_open_dims():
    model = relu_model(("x", TensorProto.FLOAT16, ["n", 3, 8, 8]))
    (spec,) = model_inputs(model)
    assert spec.name == "x" and spec.dtype == np.float16 and spec.shape == (None, 3, 8, 8)
    assert model_inputs(model, {"x": [2, 3, 8, 8]})[0].shape == (2, 3, 8, 8)


def test_npy_one_sample_gets_its_batch_axis(tmp_path: Path):
    np.save(tmp_path / "a.npy", np.ones((3, 2, 2), np.float32))
    samples = from_directory(tmp_path, IMAGE)
    (feed,) = list(samples)
    assert feed["x"].shape == (1, 3, 2, 2) and feed["x"].dtype == np.float32


def test_npy_batch_is_split_for_a_static_batch_of_one(tmp_path: Path):
    data = np.arange(3 * 12, dtype=np.float32).reshape(3, 3, 2, 2)
    np.save(tmp_path / "batch.npy", data)
    samples = from_directory(tmp_path, IMAGE)
    assert len(samples) == 3
    feeds = list(samples)
    assert [f["x"].shape for f in feeds] == [(1, 3, 2, 2)] * 3
    np.testing.assert_array_equal(feeds[2]["x"][0], data[2])
    assert len(list(samples)) == 3  # iterable again (calibration, then comparison)


def test_npy_batch_stays_whole_for_an_open_batch(tmp_path: Path):
    model = relu_model(("x", TensorProto.FLOAT, ["n", 3]))
    np.save(tmp_path / "batch.npy", np.ones((5, 3), np.float64))  # float64 is cast
    (feed,) = list(from_directory(tmp_path, model))
    assert feed["x"].shape == (5, 3) and feed["x"].dtype == np.float32


def test_npz_keys_are_input_names(tmp_path: Path):
    np.savez(tmp_path / "s.npz", a=np.full((1, 4), 2.0, np.float32), b=np.zeros((2,), np.float32))
    (feed,) = list(from_directory(tmp_path, TWO))
    assert feed["a"].shape == (1, 4) and feed["b"].shape == (1, 2)
    assert float(feed["a"].sum()) == 8.0


def test_files_are_read_in_name_order_and_others_skipped(tmp_path: Path):
    for index in (2, 0, 1):
        np.save(tmp_path / f"s{index}.npy", np.full((3, 2, 2), index, np.float32))
    (tmp_path / "labels.txt").write_text("cat\n")
    (tmp_path / ".hidden.npy").write_bytes(b"junk")
    samples = from_directory(tmp_path, IMAGE)
    assert [float(f["x"][0, 0, 0, 0]) for f in samples] == [0.0, 1.0, 2.0]
    assert "3 files" in samples.description


# --- images -----------------------------------------------------------------------------

PIXELS = np.array(  # 2x2 RGB
    [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [51, 102, 153]]], np.uint8
)


def _png(folder: Path, pixels: np.ndarray = PIXELS, name: str = "img.png") -> Path:
    image = pytest.importorskip("PIL.Image")
    path = folder / name
    image.fromarray(pixels).save(path)
    return path


def test_image_preprocessing_numbers(tmp_path: Path):
    _png(tmp_path)
    preprocess = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
    (feed,) = list(from_directory(tmp_path, IMAGE, preprocess))
    x = feed["x"]
    assert x.shape == (1, 3, 2, 2) and x.dtype == np.float32  # NCHW from the model's shape
    # (pixel / 255 - mean) / std, channel by channel
    np.testing.assert_allclose(x[0, 0], [[1.0, -1.0], [-1.0, (0.2 - 0.5) / 0.5]], atol=1e-6)
    np.testing.assert_allclose(x[0, 1], [[-2.0, 2.0], [-2.0, (0.4 - 0.5) / 0.25]], atol=1e-6)
    np.testing.assert_allclose(x[0, 2], [[-1.0, -1.0], [1.0, (0.6 - 0.5) / 0.5]], atol=1e-6)


def test_image_bgr_nhwc_and_scale(tmp_path: Path):
    _png(tmp_path)
    model = relu_model(("x", TensorProto.FLOAT, [1, 2, 2, 3]))  # NHWC from the last dim
    (feed,) = list(from_directory(tmp_path, model, Preprocess(scale=1.0, channel_order="BGR")))
    x = feed["x"]
    assert x.shape == (1, 2, 2, 3)
    np.testing.assert_array_equal(x[0, 1, 1], [153.0, 102.0, 51.0])
    np.testing.assert_array_equal(x[0, 0, 0], [0.0, 0.0, 255.0])


def test_image_is_resized_to_the_input_size(tmp_path: Path):
    _png(tmp_path, np.full((5, 7, 3), 200, np.uint8))
    (feed,) = list(from_directory(tmp_path, IMAGE))
    assert feed["x"].shape == (1, 3, 2, 2)
    np.testing.assert_allclose(feed["x"], 200 / 255, atol=1e-6)


def test_image_size_option_for_an_open_size(tmp_path: Path):
    _png(tmp_path)
    model = relu_model(("x", TensorProto.FLOAT, [1, 3, "h", "w"]))
    (own,) = list(from_directory(tmp_path, model))
    assert own["x"].shape == (1, 3, 2, 2)  # the image's own size
    (sized,) = list(from_directory(tmp_path, model, Preprocess(size=(4, 6))))
    assert sized["x"].shape == (1, 3, 4, 6)


def test_grey_and_uint8_inputs(tmp_path: Path):
    _png(tmp_path)
    grey = relu_model(("x", TensorProto.FLOAT, [1, 1, 2, 2]))
    (feed,) = list(from_directory(tmp_path, grey))
    assert feed["x"].shape == (1, 1, 2, 2)
    raw = relu_model(("x", TensorProto.UINT8, [1, 3, 2, 2]))
    (feed,) = list(from_directory(tmp_path, raw))
    assert feed["x"].dtype == np.uint8
    np.testing.assert_array_equal(feed["x"][0, :, 1, 1], [51, 102, 153])  # raw pixels


def test_images_without_pillow_say_how_to_get_it(tmp_path: Path, monkeypatch):
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(InputsError, match=r"needs Pillow: pip install 'portlint\[images\]'"):
        from_directory(tmp_path, IMAGE)


# --- random -----------------------------------------------------------------------------


def test_random_samples_are_seeded_and_shaped():
    model = relu_model(("x", TensorProto.FLOAT, ["n", 3, 4]), ("k", TensorProto.INT64, [2]))
    samples = random_samples(model, 3)
    assert len(samples) == 3
    first = list(samples)
    again = list(samples)
    assert first[0]["x"].shape == (1, 3, 4) and first[0]["x"].dtype == np.float32
    assert first[0]["k"].dtype == np.int64
    np.testing.assert_array_equal(first[1]["x"], again[1]["x"])
    assert not np.array_equal(first[0]["x"], first[1]["x"])
    pinned = random_samples(model, 1, {"x": [2, 3, 4]})
    assert next(iter(pinned))["x"].shape == (2, 3, 4)


# --- parsing ----------------------------------------------------------------------------


def test_parsing_options():
    assert parse_size("480x640") == (480, 640)
    assert parse_size("224") == (224, 224)
    assert parse_floats("0.485, 0.456,0.406", "--mean") == (0.485, 0.456, 0.406)
    assert parse_floats("1/255", "--scale") == (1 / 255,)
    with pytest.raises(PortlintError):
        parse_size("0x4")
    with pytest.raises(PortlintError):
        parse_floats("a,b", "--mean")


# --- bad input --------------------------------------------------------------------------


def _error(tmp_path: Path, model: onnx.ModelProto = IMAGE, **kwargs) -> str:
    with pytest.raises(InputsError) as caught:
        from_directory(tmp_path, model, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_empty_folder(tmp_path: Path):
    assert "no sample files in this folder" in _error(tmp_path)


def test_missing_folder(tmp_path: Path):
    with pytest.raises(InputsError, match="no such folder"):
        from_directory(tmp_path / "nope", IMAGE)


def test_wrong_shape_says_expected_and_got(tmp_path: Path):
    np.save(tmp_path / "a.npy", np.ones((1, 3, 5, 5), np.float32))
    message = _error(tmp_path)
    assert "input 'x' expects float32[1,3,2,2], got float32[1,3,5,5]" in message
    assert "a.npy" in message


def test_wrong_dtype_says_expected_and_got(tmp_path: Path):
    np.save(tmp_path / "a.npy", np.ones((1, 3, 2, 2), np.int32))
    assert "expects float32[1,3,2,2], got int32[1,3,2,2]" in _error(tmp_path)


def test_unknown_npz_key_suggests_the_closest(tmp_path: Path):
    np.savez(tmp_path / "s.npz", a=np.zeros((1, 4), np.float32), bb=np.zeros((1, 2), np.float32))
    message = _error(tmp_path, TWO)
    assert "unknown input name 'bb'; did you mean 'b'?" in message


def test_missing_npz_key(tmp_path: Path):
    np.savez(tmp_path / "s.npz", a=np.zeros((1, 4), np.float32))
    assert "no array for input 'b'" in _error(tmp_path, TWO)


def test_npy_for_a_two_input_model(tmp_path: Path):
    np.save(tmp_path / "a.npy", np.zeros((1, 4), np.float32))
    assert "use .npz files keyed by input name" in _error(tmp_path, TWO)


def test_unreadable_files(tmp_path: Path):
    (tmp_path / "a.npy").write_bytes(b"not numpy at all")
    assert "cannot read as .npy" in _error(tmp_path)
    (tmp_path / "a.npy").unlink()
    (tmp_path / "b.npz").write_bytes(b"not a zip")
    assert "cannot read as .npz" in _error(tmp_path)
    (tmp_path / "b.npz").unlink()
    pytest.importorskip("PIL")
    (tmp_path / "c.png").write_bytes(b"\x89PNG broken")
    assert "cannot read as an image" in _error(tmp_path)


def test_mean_with_the_wrong_channel_count(tmp_path: Path):
    _png(tmp_path)
    assert "--mean has 2 values" in _error(tmp_path, preprocess=Preprocess(mean=(0.1, 0.2)))


def test_cli_input_errors_are_one_line(tmp_path: Path):
    model = tmp_path / "m.onnx"
    onnx.save(IMAGE, str(model))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(
        run_cli("check", str(model), "-t", "rk3588", "--inputs", str(empty)),
        "no sample files in this folder",
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    np.save(bad / "a.npy", np.ones((1, 3, 5, 5), np.float32))
    assert_one_line_error(
        run_cli("compare", str(model), str(model), "--inputs", str(bad)),
        "expects float32[1,3,2,2], got float32[1,3,5,5]",
    )
    assert_one_line_error(
        run_cli("check", str(model), "-t", "rk3588", "--random-inputs", "0"), "--random-inputs"
    )
    assert_one_line_error(
        run_cli("compare", str(model), str(model), "--inputs", str(bad), "--layout", "NCWH"),
        "unknown layout 'NCWH'",
    )

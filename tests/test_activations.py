"""Activation statistics: measured ranges over samples, and check threading them to the rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import portlint.activations as activations
from portlint.activations import StagedModel, TensorStats, measure


def scaled_relu() -> onnx.ModelProto:
    """x[1,2,3] -> Mul(x, [[2],[-1]]) -> m -> Relu -> y; also Cast(m) -> i (int64 output)."""
    scale = numpy_helper.from_array(np.array([[2.0], [-1.0]], np.float32), "scale")
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "scale"], ["m"]),
            helper.make_node("Relu", ["m"], ["y"]),
            helper.make_node("Cast", ["m"], ["i"], to=TensorProto.INT64),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3]),
            helper.make_tensor_value_info("i", TensorProto.INT64, [1, 2, 3]),
        ],
        [scale],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


SAMPLES = [
    {"x": np.array([[[1.0, -2.0, 3.0], [0.5, 0.0, -4.0]]], np.float32)},
    {"x": np.array([[[-1.0, 5.0, 0.0], [1.0, 2.0, 0.25]]], np.float32)},
]


def test_measure_gives_ranges_and_channel_maxima():
    stats = measure(scaled_relu(), iter(SAMPLES))
    assert set(stats) == {"x", "m", "y"}  # the int64 Cast output is not measured
    m = stats["m"]
    # channel 0 is x*2: values 2,-4,6,-2,10,0; channel 1 is -x: -0.5,0,4,-1,-2,-0.25
    assert (m.minimum, m.maximum) == (-4.0, 10.0)
    np.testing.assert_array_equal(m.channel_absmax, [10.0, 4.0])
    assert m.samples == 2 and m.absmax == 10.0
    y = stats["y"]
    assert (y.minimum, y.maximum) == (0.0, 10.0)
    x = stats["x"]  # graph inputs are measured too: the first layer's input range
    assert (x.minimum, x.maximum) == (-4.0, 5.0)


def test_measure_only_the_tensors_asked_for_and_reports_progress():
    seen = []
    stats = measure(scaled_relu(), SAMPLES, tensors={"y", "i"}, progress=seen.append)
    assert set(stats) == {"y"}
    assert seen == [1, 2]


def test_rank_one_tensors_have_no_channels_and_non_finite_values_are_left_out():
    graph = helper.make_graph(
        [helper.make_node("Log", ["x"], ["l"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("l", TensorProto.FLOAT, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    stats = measure(model, [{"x": np.array([0.0, 1.0, np.e], np.float32)}])
    assert stats["l"].channel_absmax is None
    assert stats["l"].minimum == 0.0 and stats["l"].maximum == pytest.approx(1.0)  # -inf left out


def test_no_samples_is_an_error():
    with pytest.raises(activations.RunError, match="no samples"):
        measure(scaled_relu(), [])


def test_a_model_over_the_protobuf_limit_runs_from_a_temporary_folder(monkeypatch):
    """Beyond 2 GB the model is staged with external data and loaded by path."""
    monkeypatch.setattr(activations, "PROTOBUF_LIMIT", 10)
    monkeypatch.setattr(activations, "EXTERNAL_BYTES", 0)
    staged = StagedModel(scaled_relu())
    folder = staged._folder
    assert folder is not None and Path(folder, activations.DATA_FILE).is_file()
    assert staged.types["m"] == TensorProto.FLOAT  # shape inference ran on the file
    stats = measure(scaled_relu(), SAMPLES)
    assert stats["m"].maximum == 10.0
    staged.close()
    assert not Path(folder).exists()


def test_check_with_random_inputs_hands_the_stats_to_the_rules(tmp_path: Path, monkeypatch):
    import portlint.api as api

    path = tmp_path / "m.onnx"
    onnx.save(scaled_relu(), str(path))
    seen = []
    original = api.check_model

    def spy(view, *args, **kwargs):
        seen.append(view.activations)
        return original(view, *args, **kwargs)

    monkeypatch.setattr(api, "check_model", spy)
    api.check(path, targets=["rk3588"], random_inputs=3)
    (stats,) = seen
    assert isinstance(stats["m"], TensorStats) and stats["m"].samples == 3
    seen.clear()
    api.check(path, targets=["rk3588"])
    assert seen == [None]


def test_check_of_several_models_measures_each(tmp_path: Path, monkeypatch):
    import portlint.api as api

    for name in ("a.onnx", "b.onnx"):
        onnx.save(scaled_relu(), str(tmp_path / name))
    seen = []
    original = api.check_model

    def spy(view, path, *args, **kwargs):
        seen.append((path.name, view.activations))
        return original(view, path, *args, **kwargs)

    monkeypatch.setattr(api, "check_model", spy)
    report = api.check(tmp_path, targets=["rk3588"], random_inputs=2, jobs=1)
    assert [m.path.name for m in report.models] == ["a.onnx", "b.onnx"]
    assert [name for name, _ in seen] == ["a.onnx", "b.onnx"]
    assert all(stats["y"].samples == 2 for _, stats in seen)


def test_check_inputs_error_per_model_in_a_folder(tmp_path: Path):
    import portlint.api as api

    models = tmp_path / "models"
    models.mkdir()
    onnx.save(scaled_relu(), str(models / "a.onnx"))
    samples = tmp_path / "samples"
    samples.mkdir()
    np.save(samples / "s.npy", np.ones((1, 2, 4), np.float32))
    report = api.check(models, targets=["rk3588"], inputs=samples, jobs=1)
    (error,) = report.errors
    assert "expects float32[1,2,3], got float32[1,2,4]" in error.message

"""portlint compare: metrics against hand-computed values, per-layer localisation, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import assert_one_line_error, run_cli
from onnx import TensorProto, helper, numpy_helper

from portlint.compare import CompareError, compare_models, metrics
from portlint.inputs import random_samples

IR_VERSION = 8


def conv_net(seed: int = 0, perturb: str | None = None, extra_output: bool = False):
    """x[1,2,6,6] -> conv1 -> relu1 -> conv2 -> relu2 -> conv3 -> y; one conv's weights
    replaced by other random weights when ``perturb`` names it."""
    rng = np.random.default_rng(seed)
    weights = {
        "conv1": rng.standard_normal((4, 2, 3, 3)).astype(np.float32),
        "conv2": rng.standard_normal((4, 4, 3, 3)).astype(np.float32),
        "conv3": rng.standard_normal((2, 4, 1, 1)).astype(np.float32),
    }
    if perturb:
        other = np.random.default_rng(seed + 99)
        weights[perturb] = other.standard_normal(weights[perturb].shape).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "conv1.w"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "conv2.w"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "conv3.w"], ["y"], name="conv3"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 6])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info("r1", TensorProto.FLOAT, [1, 4, 6, 6]))
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
        outputs,
        [numpy_helper.from_array(w, f"{n}.w") for n, w in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = IR_VERSION
    return model


# --- metrics against hand-computed values -----------------------------------------------


def test_metrics_match_hand_computed_values():
    m = metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert m.cosine == pytest.approx(17 / math.sqrt(14 * 21))  # 0.991460
    assert m.mean_abs == pytest.approx(1 / 3)
    assert m.max_abs == 1.0
    assert m.snr_db == pytest.approx(10 * math.log10(14 / 1))  # 11.46 dB
    assert m.elements == 3


def test_identical_arrays_have_cosine_one_and_infinite_snr():
    values = np.array([0.3, -1.7, 2.0], np.float32)
    m = metrics(values, values.copy())
    assert m.cosine == 1.0
    assert m.snr_db == math.inf
    assert m.mean_abs == 0.0 and m.max_abs == 0.0


def test_zero_vectors():
    zeros = np.zeros(4)
    both = metrics(zeros, zeros)
    assert both.cosine == 1.0 and both.snr_db == math.inf
    only_candidate = metrics(zeros, np.array([0.0, 1.0, 0.0, -1.0]))
    assert only_candidate.cosine == 0.0
    assert only_candidate.snr_db == -math.inf
    assert only_candidate.mean_abs == 0.5
    only_reference = metrics(np.array([3.0, 4.0, 0.0, 0.0]), zeros)
    assert only_reference.cosine == 0.0
    assert only_reference.snr_db == pytest.approx(0.0)  # Σref² / Σ(ref−0)² = 1
    assert only_reference.max_abs == 4.0


def test_opposite_vectors_have_cosine_minus_one():
    m = metrics(np.array([1.0, -2.0]), np.array([-1.0, 2.0]))
    assert m.cosine == pytest.approx(-1.0)
    assert m.snr_db == pytest.approx(10 * math.log10(5 / 20))


def test_streaming_over_samples_equals_one_long_vector():
    from portlint.compare import Accumulator

    rng = np.random.default_rng(1)
    ref = rng.standard_normal((3, 50)).astype(np.float32)
    got = ref + 0.1 * rng.standard_normal((3, 50)).astype(np.float32)
    stream = Accumulator()
    for row in range(3):
        stream.add(ref[row], got[row])
    whole = metrics(ref, got)
    streamed = stream.metrics()
    assert streamed.cosine == pytest.approx(whole.cosine, abs=1e-12)
    assert streamed.mean_abs == pytest.approx(whole.mean_abs)
    assert streamed.max_abs == whole.max_abs
    assert streamed.snr_db == pytest.approx(whole.snr_db)
    assert streamed.elements == 150


def test_nans_in_the_same_places_agree():
    ref = np.array([1.0, np.nan, 3.0, np.inf])
    m = metrics(ref, ref.copy())
    assert m.cosine == 1.0 and m.max_abs == 0.0
    moved = metrics(ref, np.array([1.0, np.nan, 3.0, 5.0]))
    assert moved.below(0.99)  # inf became finite: not a match


def test_integer_outputs_compare_as_numbers():
    m = metrics(np.array([1, 2, 3], np.int64), np.array([1, 2, 4], np.int64))
    assert m.max_abs == 1.0 and m.mean_abs == pytest.approx(1 / 3)


# --- models ---------------------------------------------------------------------------


def test_a_model_against_itself_agrees_everywhere():
    model = conv_net()
    result = compare_models(model, conv_net(), random_samples(model, 3), per_layer=True)
    assert [r.name for r in result.layers] == ["c1", "r1", "c2", "r2", "y"]  # graph order
    assert all(r.metrics.cosine == 1.0 for r in result.layers + result.outputs)
    assert all(r.metrics.snr_db == math.inf for r in result.layers)
    assert result.first_below is None and result.passed
    assert result.samples == 3
    assert result.outputs[0].output and result.outputs[0].shape == (1, 2, 6, 6)


def test_first_below_marks_the_perturbed_conv():
    model = conv_net()
    changed = conv_net(perturb="conv2")
    result = compare_models(model, changed, random_samples(model, 4), per_layer=True)
    cosines = {r.name: r.metrics.cosine for r in result.layers}
    assert cosines["c1"] == 1.0 and cosines["r1"] == 1.0
    assert result.first_below is not None
    assert result.first_below.name == "c2"
    assert result.first_below.op == "Conv" and result.first_below.node == "conv2"
    assert not result.passed


def test_without_per_layer_only_outputs_are_measured():
    model = conv_net()
    result = compare_models(model, conv_net(perturb="conv3"), random_samples(model, 2))
    assert result.layers == []
    assert result.first_below is not None and result.first_below.name == "y"


def test_b_names_map_a_tensor_to_the_one_carrying_its_value_in_b():
    """As a QDQ copy does: B computes conv1's value under another name."""
    model = conv_net()
    other = conv_net()
    for node in other.graph.node:
        node.output[:] = ["c1_dq" if o == "c1" else o for o in node.output]
        node.input[:] = ["c1_dq" if i == "c1" else i for i in node.input]
    result = compare_models(
        model, other, random_samples(model, 2), per_layer=True, b_names={"c1": "c1_dq"}
    )
    by_name = {r.name: r for r in result.layers}
    assert by_name["c1"].b_name == "c1_dq" and by_name["c1"].metrics.cosine == 1.0
    assert len(result.layers) == 5


def test_different_outputs_are_refused():
    with_extra = conv_net(extra_output=True)
    with pytest.raises(CompareError, match="only in B: r1"):
        compare_models(conv_net(), with_extra, random_samples(with_extra, 1))


def test_different_output_shapes_are_refused():
    model = conv_net()
    other = conv_net()
    other.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 3
    with pytest.raises(CompareError, match=r"output 'y' is \[1,2,6,6\] in A and \[1,3,6,6\]"):
        compare_models(model, other, random_samples(model, 1))


def test_an_input_b_needs_that_a_lacks_is_refused():
    model = conv_net()
    other = conv_net()
    other.graph.input[0].name = "image"
    other.graph.node[0].input[0] = "image"
    with pytest.raises(CompareError, match="needs input 'image'"):
        compare_models(model, other, random_samples(model, 1))


# --- command line -----------------------------------------------------------------------


def _save(model: onnx.ModelProto, path: Path) -> str:
    onnx.save(model, str(path))
    return str(path)


def test_cli_table_marks_the_first_layer_below(tmp_path: Path):
    a = _save(conv_net(), tmp_path / "a.onnx")
    b = _save(conv_net(perturb="conv2"), tmp_path / "b.onnx")
    result = run_cli("compare", a, b, "--per-layer", "--random-inputs", "2")
    assert result.returncode == 1, result.stderr
    marked = [line for line in result.stdout.splitlines() if "first below 0.99" in line]
    assert len(marked) == 1 and " c2 " in marked[0] and "Conv" in marked[0]
    assert "first below: c2 (Conv conv2)" in result.stdout
    assert "2 random samples" in result.stdout


def test_cli_same_model_exits_0_and_says_inputs_were_random(tmp_path: Path):
    a = _save(conv_net(), tmp_path / "a.onnx")
    result = run_cli("compare", a, a)
    assert result.returncode == 0, result.stderr
    assert "no --inputs given: comparing on 8 seeded random samples" in result.stdout
    assert "outputs agree" in result.stdout


def test_cli_json_shape(tmp_path: Path):
    a = _save(conv_net(), tmp_path / "a.onnx")
    b = _save(conv_net(perturb="conv2"), tmp_path / "b.onnx")
    out = tmp_path / "report.json"
    result = run_cli(
        "compare", a, b, "--per-layer", "--random-inputs", "2", "--format", "json", "-o", str(out)
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    document = json.loads(out.read_text())
    assert document["schema_version"] == 1 and document["kind"] == "portlint-compare"
    assert document["a"] == a and document["b"] == b and document["simulate"] is None
    assert document["samples"] == 2 and document["threshold"] == 0.99
    assert document["per_layer"] is True and document["passed"] is False
    assert document["first_below"] == "c2"
    assert [row["name"] for row in document["layers"]] == ["c1", "r1", "c2", "r2", "y"]
    first = document["layers"][0]
    assert set(first) == {
        "name",
        "b_name",
        "op",
        "node",
        "shape",
        "output",
        "cosine",
        "mean_abs",
        "max_abs",
        "snr_db",
        "elements",
        "below",
        "channels",
        "channels_below",
    }
    assert first["cosine"] == 1.0 and first["snr_db"] is None  # infinite SNR
    assert first["channels"] == 4 and first["channels_below"] == 0
    assert first["shape"] == [1, 4, 6, 6] and first["elements"] == 2 * 4 * 6 * 6
    assert document["layers"][2]["below"] is True
    assert document["outputs"][0]["name"] == "y" and document["outputs"][0]["output"] is True


def test_cli_different_outputs_exit_2(tmp_path: Path):
    a = _save(conv_net(), tmp_path / "a.onnx")
    b = _save(conv_net(extra_output=True), tmp_path / "b.onnx")
    assert_one_line_error(
        run_cli("compare", a, b, "--random-inputs", "1"), "different outputs", "only in B: r1"
    )


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ([], "needs a second model B, or --simulate"),
        (["B", "--simulate", "nnom"], "not both"),
        (["B", "--bits", "8"], "--bits applies to --simulate only"),
        (["B", "--format", "xml"], "unknown format 'xml'"),
        (["B", "--mean", "0.5"], "--mean preprocesses images from --inputs DIR"),
        (["B", "--random-inputs", "2", "--inputs", "."], "not both"),
    ],
)
def test_cli_usage_errors(tmp_path: Path, extra: list[str], fragment: str):
    a = _save(conv_net(), tmp_path / "a.onnx")
    args = [a if item == "B" else item for item in extra]
    assert_one_line_error(run_cli("compare", a, *args), fragment)


def test_simulate_wiring(tmp_path: Path):
    """``--simulate`` hands the model, the target and the calibration samples to
    ``portlint.simulate``; runs once that module exists."""
    pytest.importorskip("portlint.simulate")
    a = _save(conv_net(), tmp_path / "a.onnx")
    result = run_cli(
        "compare", a, "--simulate", "cmsis-nn", "--per-layer", "--random-inputs", "4",
        "--calibration-samples", "2", "--format", "json",
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    document = json.loads(result.stdout)
    assert document["simulate"]["target"] == "cmsis-nn"
    assert document["layers"] and document["outputs"][0]["name"] == "y"
    calibrated = "calibrated (minmax) on the first 2 of the 4 samples"
    assert any(calibrated in note for note in document["notes"])


def test_per_channel_cosine_by_hand() -> None:
    """Channel 1 flipped in sign: its cosine is -1 while channel 0's is 1; the tensor's is
    (Σ ch0² − Σ ch1²) / Σ all² = (1+4 − 9−16) / 30."""
    from portlint.compare import metrics

    reference = np.array([[[1.0, 2.0], [3.0, 4.0]]])  # [N=1, C=2, 2]
    candidate = reference * np.array([1.0, -1.0])[None, :, None]
    m = metrics(reference, candidate)
    assert m.channel_cosine == (1.0, -1.0)
    assert m.channels_below(0.99) == 1
    assert m.cosine == pytest.approx((5.0 - 25.0) / 30.0)
    assert metrics(np.ones(3), np.ones(3)).channel_cosine is None  # rank 1: no channels


def test_non_finite_values_in_the_same_places_agree_and_dead_channels_have_no_cosine() -> None:
    """An inf and a NaN both models share count as agreement, and only they are set aside;
    a channel that is all zero in A has no cosine of its own and is not counted as crushed."""
    from portlint.compare import metrics

    reference = np.array([[[1.0, 2.0], [np.inf, 3.0], [np.nan, 1.0], [0.0, 0.0]]])
    candidate = reference.copy()
    candidate[0, 3] = 1e-6  # noise on the dead channel
    m = metrics(reference, candidate)
    assert m.channel_cosine == (1.0, 1.0, 1.0, None)
    assert m.channels_below(0.99) == 0
    assert m.cosine == pytest.approx(1.0)
    candidate[0, 0, 0] = 1.5  # a real difference on a finite value still shows
    m = metrics(reference, candidate)
    assert m.channel_cosine[0] == pytest.approx((1.5 + 4) / (math.sqrt(5) * math.sqrt(6.25)))

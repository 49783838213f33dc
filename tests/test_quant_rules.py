"""Quantization hazards (PL301-PL306) on nets built so that the truth is known.

Each hazard net (fixtures/hazards/, built by fixtures/make_hazard_nets.py) has one hazard;
the rule must name its node on targets whose scheme has the weakness, stay quiet on targets
whose scheme does not, and stay quiet on the benign net. Each rule is also tested on both
sides of its threshold, and the arithmetic against hand-computed values.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import FIXTURES, findings_of, parse, run_check, run_cli, save

from portlint.activations import TensorStats
from portlint.config import Config
from portlint.engine import check_model
from portlint.graph_view import build_view
from portlint.model_io.load import load_for_check
from portlint.quant_math import bits_lost, fake_quantize, sqnr_db, step
from portlint.ranges import rectified, tensor_range
from portlint.rule import load_rules
from portlint.target import load_target

HAZARDS = FIXTURES / "hazards"
_spec = importlib.util.spec_from_file_location("make_hazard_nets", FIXTURES / "make_hazard_nets.py")
nets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nets)


def _check(path: Path, target: str, rule: str):
    report = check_model(
        build_view(load_for_check(path)), path, [load_target(target)], load_rules(), Config()
    )
    return findings_of(report, rule)


def _check_model(model: onnx.ModelProto, tmp_path: Path, target: str, rule: str):
    return findings_of(run_check(model, tmp_path, target), rule)


# --- the committed nets are what the script builds -------------------------------------


@pytest.mark.parametrize("name", sorted(nets.NETS))
def test_committed_hazard_nets_are_reproducible(name: str) -> None:
    built = nets.NETS[name]().SerializeToString()
    assert (HAZARDS / f"{name}.onnx").read_bytes() == built


# --- the arithmetic ----------------------------------------------------------------------


def test_steps_per_scheme_by_hand() -> None:
    assert step(-2.0, 1.0, 8, True, False) == pytest.approx(2.0 / 127)
    assert step(0.0, 6.0, 8, False, False) == pytest.approx(6.0 / 255)
    assert step(-1.0, 3.0, 8, False, False) == pytest.approx(4.0 / 255)
    assert step(0.0, 7.0, 8, True, True) == 0.0625  # NNoM: 3 integer bits, 4 fractional
    assert step(0.0, 8.0, 8, True, True) == 0.0625  # ceil(log2 8) = 3: Q3.4, 8 clips a step
    assert step(-1.0, 1.0, 8, True, True) == 2.0**-7  # Q0.7, NNoM's sigmoid output
    assert step(0.0, 7.0, 16, True, False) == pytest.approx(7.0 / 32767)


def test_sqnr_of_a_crushed_channel_by_hand() -> None:
    weights = np.array([[1.0, -1.0], [0.01, -0.01]])
    size = step(-1.0, 1.0, 8, True, False)
    shared = fake_quantize(weights, size, 8)
    # 0.01 / (1/127) = 1.27 -> 1 level -> 0.007874; error 0.002126 per element
    assert shared[1, 0] == pytest.approx(1 / 127)
    assert sqnr_db(weights[1], shared[1]) == pytest.approx(20 * math.log10(0.01 / (0.01 - 1 / 127)))
    assert sqnr_db(weights[0], shared[0]) == math.inf
    assert bits_lost(0.5, 16.0) == pytest.approx(5.0)
    assert bits_lost(16.0, 0.5) == 0.0


def test_rectified_moments_match_sampling() -> None:
    rng = np.random.default_rng(0)
    for mean, std, slope in ((-3.0, 1.0, 0.0), (0.5, 2.0, 0.0), (-1.0, 1.0, 0.1)):
        x = rng.normal(mean, std, 2_000_000)
        y = np.maximum(x, slope * x)
        got_mean, got_std = rectified(np.array([mean]), np.array([std]), slope)
        assert got_mean[0] == pytest.approx(y.mean(), rel=0.02, abs=1e-4)
        assert got_std[0] == pytest.approx(y.std(), rel=0.02)


def test_estimated_conv_ranges_match_onnxruntime_on_normal_inputs() -> None:
    """The estimate assumes normalised inputs: on such inputs it must be close to the truth."""
    path = HAZARDS / "concat_ranges.onnx"
    view = build_view(load_for_check(path))
    model = onnx.load(str(path))
    for name in ("small", "large"):
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, 1, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    runs = [
        session.run(["small", "large"], {"input": rng.standard_normal((1, 8, 16, 16), np.float32)})
        for _ in range(32)
    ]
    outputs = {
        "small": np.concatenate([r[0] for r in runs]),
        "large": np.concatenate([r[1] for r in runs]),
    }
    for name in ("small", "large"):
        estimate = tensor_range(view, name)
        measured_std = outputs[name].std(axis=(0, 2, 3))
        assert estimate.basis == "weights"
        # estimated peak = 4 std per channel
        np.testing.assert_allclose(estimate.channel_absmax / 4, measured_std, rtol=0.1)


# --- PL301 per-tensor weights -----------------------------------------------------------


def test_pl301_names_the_wide_conv_on_per_tensor_targets_only() -> None:
    path = HAZARDS / "wide_channel_conv.onnx"
    found = _check(path, "nnom", "PL301")
    assert [f.location for f in found] == ["dw"]
    message = found[0].message
    assert "per-tensor int8 weights with power-of-two scales" in message
    assert "7 of 8 channels below 20 dB" in message
    assert found[0].effect == "accuracy" and found[0].severity.value == "info"
    assert found[0].source.key == "nnom-api-docs"
    assert _check(path, "cmsis-nn", "PL301") == []  # per-channel weights
    assert _check(path, "rk3588", "PL301") == []  # per-channel (unverified) weights
    assert _check(path, "intel-gna", "PL301") == []  # per-tensor, but int16 by default


@pytest.mark.parametrize(("factor", "fires"), [(100.0, True), (12.0, True), (3.0, False)])
def test_pl301_threshold(tmp_path: Path, factor: float, fires: bool) -> None:
    found = _check_model(nets.wide_channel_conv(factor), tmp_path, "nnom", "PL301")
    assert bool(found) is fires


def test_pl301_folds_a_following_batchnorm_first(tmp_path: Path) -> None:
    """Equal conv weights, but a BatchNorm scaling channel 0 by 100: folded, they differ."""
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,2,8,8] x) => (float[1,2,8,8] y) {
            c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
            y = BatchNormalization (c, gamma, beta, mean, var)
        }
        """
    )
    rng = np.random.default_rng(0)
    init = {
        "w": rng.normal(0, 0.3, (2, 2, 3, 3)),
        "b": np.zeros(2),
        "gamma": np.array([100.0, 1.0]),
        "beta": np.zeros(2),
        "mean": np.zeros(2),
        "var": np.ones(2),
    }
    model.graph.initializer.extend(
        onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in init.items()
    )
    found = _check_model(model, tmp_path, "nnom", "PL301")
    assert len(found) == 1 and "(BatchNorm folded in)" in found[0].message


# --- PL302 shared-scale inputs ----------------------------------------------------------


def test_pl302_names_the_concat_where_inputs_share_a_scale() -> None:
    path = HAZARDS / "concat_ranges.onnx"
    for target in ("nnom", "cmsis-nn"):
        found = _check(path, target, "PL302")
        assert [f.location for f in found] == ["merge"], target
        assert '"small" spans' in found[0].message and "loses 5.6 of its 8 bits" in found[0].message
        assert "(estimated from weights)" in found[0].message
    assert _check(path, "rk3588", "PL302") == []  # the profile states no shared Concat scale


@pytest.mark.parametrize(("ratio", "fires"), [(50.0, True), (20.0, True), (12.0, False)])
def test_pl302_threshold(tmp_path: Path, ratio: float, fires: bool) -> None:
    found = _check_model(nets.concat_ranges(ratio), tmp_path, "cmsis-nn", "PL302")
    assert bool(found) is fires, [f.message for f in found]


def test_pl302_uses_measured_ranges_when_given() -> None:
    """Sample inputs override the estimate: equal measured ranges keep the rule quiet."""
    path = HAZARDS / "concat_ranges.onnx"
    view = build_view(load_for_check(path))
    same = TensorStats(-1.0, 1.0, np.ones(8), 4)
    measured = replace(view, activations={"small": same, "large": same})
    report = check_model(measured, path, [load_target("nnom")], load_rules(), Config())
    assert findings_of(report, "PL302") == []
    wide = TensorStats(-64.0, 64.0, np.full(8, 64.0), 4)
    measured = replace(view, activations={"small": same, "large": wide})
    report = check_model(measured, path, [load_target("nnom")], load_rules(), Config())
    (finding,) = findings_of(report, "PL302")
    assert "loses 6.0 of its 8 bits" in finding.message and "(measured)" in finding.message


# --- PL303 pooled small values ----------------------------------------------------------


def test_pl303_names_the_pool_where_it_keeps_the_input_scale() -> None:
    path = HAZARDS / "avgpool_small.onnx"
    for target in ("nnom", "cmsis-nn"):
        found = _check(path, target, "PL303")
        assert [f.location for f in found] == ["pool"], target
        wiped = int(re.search(r"(\d+) of 8 channels", found[0].message).group(1))
        assert wiped >= 7 and "they read 0" in found[0].message  # the 7 sparse ones at least
    assert _check(path, "rk3588", "PL303") == []
    assert _check(path, "intel-gna", "PL303") == []


@pytest.mark.parametrize(("bias", "fires"), [(-2.5, True), (0.0, False)])
def test_pl303_threshold(tmp_path: Path, bias: float, fires: bool) -> None:
    """ReLU(N(0, 1)) averages 0.4, over 1.5 steps of the input's scale: it survives the pool."""
    found = _check_model(nets.avgpool_small(bias), tmp_path, "nnom", "PL303")
    assert bool(found) is fires


# --- the benign net ----------------------------------------------------------------------


@pytest.mark.parametrize("target", ["nnom", "cmsis-nn", "rk3588", "intel-gna", "esp32-s3"])
def test_benign_net_is_quiet(target: str) -> None:
    path = HAZARDS / "benign.onnx"
    report = check_model(
        build_view(load_for_check(path)), path, [load_target(target)], load_rules(), Config()
    )
    assert [f for f in report.findings if f.rule.startswith("PL3")] == []


# --- PL304 approximated activations -----------------------------------------------------


def _conv_then(activation: str, weight: np.ndarray) -> onnx.ModelProto:
    """A 1×1 Conv with ``weight`` [C, C, 1, 1] on normalised inputs, then ``activation``."""
    c = weight.shape[0]
    model = parse(
        f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,{c},8,8] x) => (float[1,{c},8,8] y) {{
            c = Conv (x, w)
            y = {activation} (c)
        }}
        """
    )
    model.graph.initializer.append(onnx.numpy_helper.from_array(weight.astype(np.float32), "w"))
    return model


def _conv_sigmoid(scale: float) -> onnx.ModelProto:
    """Channels with std ``scale``: estimated range ±4·scale."""
    return _conv_then("Sigmoid", np.eye(4).reshape(4, 4, 1, 1) * scale)


def test_pl304_gna_reports_its_stated_error_once_per_activation(tmp_path: Path) -> None:
    found = _check(FIXTURES / "yolov8n.onnx", "intel-gna", "PL304")
    assert len(found) == 1
    assert "up to 1 % error per value; 58 Sigmoid nodes" in found[0].message
    assert found[0].source.key == "gna-properties"


@pytest.mark.parametrize(("scale", "fires"), [(3.0, True), (1.0, False)])
def test_pl304_nnom_sigmoid_breaks_beyond_its_input_range(
    tmp_path: Path, scale: float, fires: bool
) -> None:
    """Estimated input ±4·scale: 12 is beyond NNoM's ±8, 4 is within."""
    found = _check_model(_conv_sigmoid(scale), tmp_path, "nnom", "PL304")
    assert bool(found) is fires
    if fires:
        assert "beyond the ±8" in found[0].message


# --- PL305 unfolded BatchNorm -----------------------------------------------------------


def test_pl305_batchnorm_after_concat(tmp_path: Path) -> None:
    found = _check(FIXTURES / "odd_channels.onnx", "rk3588", "PL305")
    assert len(found) == 1 and "follows Concat" in found[0].message
    # after a Conv it folds: the benign net has three and no finding (test above)
    mini = tmp_path / "mini.yaml"  # a profile without a quantization scheme stays quiet
    import yaml
    from conftest import MINI_PROFILE

    mini.write_text(
        yaml.safe_dump({**MINI_PROFILE, "ops": [{"source": "manual", "names": ["Conv"]}]})
    )
    result = run_cli(
        "check", str(FIXTURES / "odd_channels.onnx"), "-t", str(mini), "--select", "PL305"
    )
    assert "PL305" not in result.stdout


# --- PL306 unbounded activation ---------------------------------------------------------


def _relu_net(wide: float) -> onnx.ModelProto:
    weight = np.eye(8).reshape(8, 8, 1, 1) * 0.25  # channels peak at 4·0.25 = 1
    weight[0, 0] = wide / 4
    return _conv_then("Relu", weight)


@pytest.mark.parametrize(("peak", "fires"), [(40.0, True), (10.0, False)])
def test_pl306_threshold(tmp_path: Path, peak: float, fires: bool) -> None:
    """Peak 10 vs median 1 loses 3.3 bits but ReLU6 gives back < 1: not worth retraining."""
    found = _check_model(_relu_net(peak), tmp_path, "cmsis-nn", "PL306")
    assert bool(found) is fires
    if fires:
        assert "ReLU6 (Clip 0..6, native on cmsis-nn)" in found[0].message


def test_scheme_facts_follow_the_profiles() -> None:
    nnom, cmsis = load_target("nnom").scheme, load_target("cmsis-nn").scheme
    assert nnom.per_tensor_weights and nnom.pot_scales and nnom.keeps_input_scale("AveragePool")
    assert not cmsis.per_tensor_weights and not cmsis.pot_scales
    assert cmsis.shares_scale("Concat") and cmsis.keeps_input_scale("AveragePool")
    assert load_target("intel-gna").scheme.bits() == 16
    assert load_target("hailo8").scheme.bits() == 8


def test_malformed_scheme_is_a_profile_error(tmp_path: Path) -> None:
    import yaml
    from conftest import MINI_PROFILE

    bad = {**MINI_PROFILE, "quantization": {"weights": {"bits": [8], "granularity": "per-row"}}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    model = save(_relu_net(1.0), tmp_path)
    result = run_cli("check", str(model), "-t", str(path))
    assert result.returncode == 2
    assert "quantization.weights.granularity" in result.stderr
    assert "Traceback" not in result.stderr


# --- PL307 sixteen-bit layers -----------------------------------------------------------


def test_pl307_names_the_detector_heads_on_targets_whose_vendor_keeps_them_16_bit() -> None:
    for target, source in (("esp32-s3", "espdl-yolo26-tutorial"), ("hailo8", "hailo-mz-configs")):
        (finding,) = _check(FIXTURES / "yolov8n.onnx", target, "PL307")
        assert finding.location == "/model.22/cv2.0/cv2.0.2/Conv"
        assert "one of 6 detector head layers" in finding.message
        assert "/model.22/cv3.2/cv3.2.2/Conv" in finding.note
        assert finding.source.key == source
    assert _check(FIXTURES / "yolov8n.onnx", "rk3588", "PL307") == []  # no such advice
    # a classifier has no detector heads: Hailo's advice is about output layers
    (finding,) = _check(FIXTURES / "mobilenetv3_small.onnx", "hailo8", "PL307")
    assert "the model's output layer" in finding.message
    assert _check(FIXTURES / "mobilenetv3_small.onnx", "esp32-s3", "PL307") == []


@pytest.mark.parametrize(("scale", "fires"), [(100.0, True), (50.0, False)])
def test_pl307_wide_range_threshold(tmp_path: Path, scale: float, fires: bool) -> None:
    """Amlogic's rule: beyond ±256 a layer goes to int16. Estimated ±4·scale: 400 vs 200."""
    found = _check_model(_conv_sigmoid(scale), tmp_path, "amlogic-a311d", "PL307")
    assert bool(found) is fires
    if fires:
        assert found[0].location == "Conv_0"  # the Sigmoid after it is bounded
        assert "1 layer output exceeds ±256" in found[0].message and "±400" in found[0].message


def test_numerics_rules_read_no_weights_beyond_the_budget(tmp_path: Path, monkeypatch) -> None:
    """A multi-GB model must check fast: past the budget PL301 and the estimates stay out."""
    import portlint.ranges

    model = nets.wide_channel_conv()
    assert _check_model(model, tmp_path, "nnom", "PL301")
    monkeypatch.setattr(portlint.ranges, "ESTIMATE_WEIGHT_BUDGET", 100)
    assert _check_model(model, tmp_path, "nnom", "PL301") == []
    assert _check(HAZARDS / "concat_ranges.onnx", "nnom", "PL302") == []


@pytest.mark.parametrize("activation", ["Identity", "Sigmoid"])
def test_pl303_is_quiet_on_averages_that_are_not_small(tmp_path: Path, activation: str) -> None:
    """A zero-mean conv output averages to ±std/16 over 16×16, a few steps of its scale; a
    Sigmoid averages near 0.5: neither reads 0 after the pool."""
    model = parse(
        f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,4,16,16] x) => (float[1,4,1,1] y) {{
            c = Conv (x, w)
            a = {activation} (c)
            y = AveragePool <kernel_shape = [16, 16]> (a)
        }}
        """
    )
    weight = np.eye(4).reshape(4, 4, 1, 1)
    model.graph.initializer.append(onnx.numpy_helper.from_array(weight.astype(np.float32), "w"))
    for target in ("cmsis-nn", "nnom"):
        assert _check_model(model, tmp_path, target, "PL303") == [], target


def test_pl307_skips_a_conv_whose_batchnorm_folds_it_away(tmp_path: Path) -> None:
    """Conv → BN: the Conv's own output (±600 here) does not exist once BN is folded."""
    model = _conv_then("BatchNormalization", np.eye(4).reshape(4, 4, 1, 1) * 150.0)
    bn = model.graph.node[1]
    del bn.input[:]
    bn.input.extend(["c", "scale", "bias", "mean", "var"])
    stats = {
        "scale": np.ones(4),
        "bias": np.zeros(4),
        "mean": np.zeros(4),
        "var": np.full(4, 22500.0),
    }
    model.graph.initializer.extend(
        onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in stats.items()
    )
    assert _check_model(model, tmp_path, "amlogic-a311d", "PL307") == []


def test_pl307_on_hailo_is_marked_unverified(tmp_path: Path) -> None:
    (finding,) = _check(HAZARDS / "benign.onnx", "hailo8", "PL307")
    assert "often quantize at 16 bits" in finding.message and finding.verified is False

"""The simulation agrees with the static rules: on each hazard net, ``portlint compare
--simulate`` shows the drop at the node the rule names, on the targets whose scheme has the
weakness, and not on a target whose scheme does not; the benign net stays close everywhere.

The static side is tests/test_quant_rules.py; the nets are fixtures/hazards/.
"""

from __future__ import annotations

import pytest
from conftest import FIXTURES, run_cli

from portlint.api import compare

HAZARDS = FIXTURES / "hazards"
GOOD = 0.99


def _layers(net: str, target: str) -> dict[str, object]:
    comparison = compare(HAZARDS / f"{net}.onnx", simulate=target, per_layer=True)
    return {row.name: row.metrics for row in comparison.layers}


def test_per_tensor_weights_drop_at_the_wide_conv_on_nnom_only() -> None:
    nnom, cmsis = _layers("wide_channel_conv", "nnom"), _layers("wide_channel_conv", "cmsis-nn")
    assert nnom["pre_act"].cosine >= GOOD  # before the hazard: fine
    assert nnom["dw"].cosine < 0.95 and nnom["dw"].channels_below(GOOD) == 7
    assert cmsis["dw"].cosine >= GOOD and cmsis["dw"].channels_below(GOOD) == 0
    assert cmsis["head"].cosine >= GOOD


def test_shared_concat_scale_crushes_the_small_branch_where_the_scale_is_shared() -> None:
    for target in ("nnom", "cmsis-nn"):
        layers = _layers("concat_ranges", target)
        assert layers["large"].cosine >= GOOD, target
        assert layers["small"].cosine < 0.95, target  # the Concat's narrow input
        assert layers["fuse"].cosine < 0.95, target
    rk3588 = _layers("concat_ranges", "rk3588")
    assert rk3588["small"].cosine >= GOOD  # its own scale: the branch itself is fine


def test_average_pool_wipes_small_averages_where_it_keeps_the_input_scale() -> None:
    for target in ("nnom", "cmsis-nn"):
        layers = _layers("avgpool_small", target)
        assert layers["pool"].cosine < 0.9 and layers["pool"].channels_below(GOOD) == 8, target
        assert layers["fc"].cosine < 0.9, target
    rk3588 = _layers("avgpool_small", "rk3588")
    assert rk3588["pool"].cosine >= GOOD and rk3588["pool"].channels_below(GOOD) == 0
    assert rk3588["fc"].cosine >= GOOD


@pytest.mark.parametrize("target", ["nnom", "cmsis-nn"])
def test_benign_net_stays_close_at_every_layer(target: str) -> None:
    layers = _layers("benign", target)
    assert len(layers) >= 10
    assert {name for name, m in layers.items() if m.cosine < GOOD} == set()


def test_cli_marks_the_first_layer_below_threshold_in_json() -> None:
    import json

    result = run_cli(
        "compare",
        str(HAZARDS / "wide_channel_conv.onnx"),
        "--simulate",
        "nnom",
        "--per-layer",
        "--format",
        "json",
    )
    assert result.returncode == 1, result.stderr  # an output is below the threshold
    report = json.loads(result.stdout)
    assert report["first_below"] == "dw"
    assert report["simulate"]["target"] == "nnom"
    (dw,) = [row for row in report["layers"] if row["name"] == "dw"]
    assert dw["channels"] == 8 and dw["channels_below"] == 7

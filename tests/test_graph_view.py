"""The read-only view: resolved attributes, folding, patterns, weights never read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from conftest import FIXTURES, parse, save
from onnx import helper, numpy_helper

from portlint.graph_view import build_view
from portlint.model_io.load import load_for_check


def _view(model: onnx.ModelProto, tmp_path: Path):
    return build_view(load_for_check(save(model, tmp_path)))


def test_conv_defaults_resolved_and_kernel_taken_from_weight(tmp_path: Path) -> None:
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,3,8,8] x, float[4,3,5,5] w) => (float[1,4,4,4] y) { y = Conv (x, w) }""")
    [conv] = _view(model, tmp_path).nodes
    assert conv.attributes["kernel_shape"] == [5, 5]
    assert conv.attributes["strides"] == [1, 1]
    assert conv.attributes["dilations"] == [1, 1]
    assert conv.attributes["pads"] == [0, 0, 0, 0]
    assert conv.attributes["group"] == 1
    assert conv.attributes["auto_pad"] == "NOTSET"


def test_shapes_inferred_and_producers_consumers_known(tmp_path: Path) -> None:
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,3,8,8] x, float[4,3,3,3] w) => (float[1,4,6,6] y) {
        c = Conv (x, w)
        y = Relu (c)
    }""")
    view = _view(model, tmp_path)
    assert view.tensor("c").shape == (1, 4, 6, 6)
    assert view.producer("c").op_type == "Conv"
    assert [n.op_type for n in view.consumers("c")] == ["Relu"]
    assert list(view.digraph.edges) == [("Conv_0", "Relu_1")]


def test_shape_arithmetic_on_static_shapes_is_folded(tmp_path: Path) -> None:
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8,4,4] x) => (float[1,128] y) {
        s = Shape (x)
        i = Constant <value = int64[1] {0}> ()
        b = Gather (s, i)
        m = Constant <value = int64[1] {-1}> ()
        shape = Concat <axis = 0> (b, m)
        y = Reshape (x, shape)
    }""")
    view = _view(model, tmp_path)
    live = [n.op_type for n in view.live_nodes()]
    assert live == ["Reshape"]


def test_silu_and_hardswish_patterns_found_only_when_gate_is_private(tmp_path: Path) -> None:
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8] x) => (float[1,8] y, float[1,8] z) {
        s = Sigmoid (x)
        y = Mul (x, s)
        h = HardSigmoid <alpha = 0.16666667, beta = 0.5> (x)
        hs = Mul (h, x)
        t = Sigmoid (hs)
        u = Mul (hs, t)
        z = Add (u, t)
    }""")
    view = _view(model, tmp_path)
    patterns = {n.name: n.pattern for n in view.nodes}
    assert patterns["Sigmoid_0"] == patterns["Mul_1"] == "SiLU"
    assert patterns["HardSigmoid_2"] == patterns["Mul_3"] == "HardSwish"
    assert patterns["Sigmoid_4"] is None and patterns["Mul_5"] is None  # gate used twice


def test_gelu_erf_pattern(tmp_path: Path) -> None:
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8] x) => (float[1,8] y) {
        r = Constant <value = float {1.4142135}> ()
        one = Constant <value = float {1.0}> ()
        half = Constant <value = float {0.5}> ()
        d = Div (x, r)
        e = Erf (d)
        a = Add (e, one)
        m = Mul (x, a)
        y = Mul (m, half)
    }""")
    view = _view(model, tmp_path)
    assert {n.op_type for n in view.nodes if n.pattern == "GeluErf"} == {"Div", "Erf", "Add", "Mul"}
    assert sum(n.pattern == "GeluErf" for n in view.nodes) == 5


def test_large_weights_are_not_kept_but_small_constants_are(tmp_path: Path) -> None:
    big = numpy_helper.from_array(np.ones((64, 64, 3, 3), np.float32), "w")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Resize", ["c", "", "scales"], ["y"], mode="nearest"),
        ],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [big, scales],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    view = _view(model, tmp_path)
    assert view.constant_value("w") is None
    assert view.tensor("w").shape == (64, 64, 3, 3)
    assert view.constant_value("scales").tolist() == [1, 1, 2, 2]
    assert view.tensor("y").shape == (1, 64, 16, 16)


def test_fixture_keeps_ir_version_and_opset() -> None:
    view = build_view(load_for_check(FIXTURES / "yolov8n.onnx"))
    assert view.ir_version == 8 and view.opsets[""] == 17
    assert len(view.nodes) == 233
    assert view.tensor("output0").shape == (1, 84, 8400)

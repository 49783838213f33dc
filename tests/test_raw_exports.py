"""Raw ``torch.onnx.export`` output is judged as the graph the compiler sees.

Compilers simplify before they look, so a value that follows from the static input shape is
no blocker for them; ``check`` folds the same values first (``portlint.model_io.fold``) and
says of a raw export what it says of the export after ``onnxsim.simplify``, for every target.
The recipes are in ``raw_exports.py``; the measured table on real exports is in the closing
note of issue 18 and reproduced by ``bench/raw_exports.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxsim
import pytest
from conftest import parse, run_cli, save
from onnx import numpy_helper
from pass_helpers import max_error, ops
from raw_exports import RECIPES

from portlint import api
from portlint.graph_view import build_view
from portlint.model_io.load import load_for_check
from portlint.target import shipped_target_names

TARGETS = tuple(shipped_target_names())


def build(name: str) -> onnx.ModelProto:
    """The recipe as a model, its nodes named as torch names them (onnxsim keeps the names
    of the nodes it leaves, so findings on the two models can be compared by node)."""
    model = parse(RECIPES[name])
    for node in model.graph.node:
        node.name = node.output[0]
    if name == "relative-position-bias":  # a weight: 124 floats, left out when checking
        table = np.random.default_rng(0).normal(size=(31, 4)).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(table, "table"))
    onnx.checker.check_model(model, full_check=True)
    return model


def findings(path: Path) -> tuple[Counter, int]:
    report = api.check(path, TARGETS).models[0]
    found = Counter(
        (f.target, f.rule, f.severity.value, f.location, f.message) for f in report.findings
    )
    return found, report.foldable_nodes


@pytest.mark.parametrize("name", RECIPES)
def test_a_raw_export_gets_the_findings_of_its_simplified_copy(name: str, tmp_path: Path):
    raw = build(name)
    simplified, ok = onnxsim.simplify(raw)
    assert ok and len(simplified.graph.node) < len(raw.graph.node)
    raw_found, foldable = findings(save(raw, tmp_path, "raw.onnx"))
    simplified_found, left = findings(save(simplified, tmp_path, "simplified.onnx"))
    assert raw_found == simplified_found, (
        sorted(raw_found - simplified_found)[:5],
        sorted(simplified_found - raw_found)[:5],
    )
    assert not [f for f in raw_found if f[1] == "PL201"]
    assert foldable > 0 and left == 0


def test_folding_computes_the_window_shapes(tmp_path: Path):
    loaded = load_for_check(save(build("window-partition"), tmp_path))
    assert loaded.computed["shape"].tolist() == [1, 2, 4, 2, 4, 16]
    assert loaded.computed["shape3"].tolist() == [4, 16, 16]  # read back from a folded shape
    view = build_view(loaded)
    assert view.tensors["flat"].shape == (4, 16, 16)
    assert view.constant_value("shape2").tolist() == [-1, 4, 4, 16]
    live = [n.name for n in view.live_nodes()]
    assert live == ["r", "t", "windows", "act", "flat", "y"]


def test_folding_never_computes_from_a_weight(tmp_path: Path):
    """The bias gathered from a weight table keeps its shape but gets no value: checking
    never reads a weight's bytes."""
    loaded = load_for_check(save(build("relative-position-bias"), tmp_path))
    assert "table" in loaded.stripped
    assert loaded.computed["index"].shape == (16, 16)  # arange arithmetic: computed
    assert not {"bias", "heads", "first"} & set(loaded.computed)
    view = build_view(loaded)
    assert view.tensors["first"].shape == (16, 16) and view.producer("first").folded


def test_resize_sizes_computed_at_run_time_are_read_by_the_scale_rules(tmp_path: Path):
    """``floor(h * 2.0)`` folds to the sizes the Resize rules judge (a 2x nearest upsample
    on k210 is judged by its scale, not reported as unevaluable)."""
    view = build_view(load_for_check(save(build("upsample-sizes"), tmp_path)))
    assert view.constant_value("sizes").tolist() == [1, 8, 16, 16]
    assert view.tensors["up"].shape == (1, 8, 16, 16)


def test_shapes_that_depend_on_data_are_still_dynamic(tmp_path: Path):
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,16] x) => (float[2,K] y) {
          [nz] picked = NonZero(x)
          [y] y = Identity(picked)
        }
        """
    )
    result = run_cli("check", str(save(model, tmp_path)), "-t", "rk3588", "-f", "json")
    report = json.loads(result.stdout)["models"][0]
    found = [
        (f["rule"], f["location"]["name"], f["message"])
        for t in report["targets"]
        for f in t["findings"]
        if f["rule"] == "PL201"
    ]
    assert found == [
        ("PL201", "nz", "NonZero output shape depends on the data, not on the input shapes")
    ]


def test_shape_arithmetic_on_a_dynamic_dim_is_not_folded(tmp_path: Path):
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N,3,8,8] x) => (float[N,192] y) {
          s = Shape(x)
          i0 = Constant<value = int64 {0}>()
          b = Gather<axis = 0>(s, i0)
          ax = Constant<value = int64[1] {0}>()
          ub = Unsqueeze(b, ax)
          m1 = Constant<value = int64[1] {-1}>()
          shape = Concat<axis = 0>(ub, m1)
          y = Reshape(x, shape)
        }
        """
    )
    loaded = load_for_check(save(model, tmp_path))
    assert not {"s", "b", "shape"} & set(loaded.computed)
    result = run_cli("check", str(save(model, tmp_path)), "-t", "rk3588")
    assert result.returncode == 1
    assert "input 'x' has dynamic dims: axis 0 ('N')" in result.stdout
    assert "--input-shape x:1,3,8,8" in result.stdout


def test_check_says_when_a_model_looks_unsimplified(tmp_path: Path):
    raw = save(build("pad-to-window"), tmp_path, "raw.onnx")
    simplified = save(onnxsim.simplify(build("pad-to-window"))[0], tmp_path, "simple.onnx")
    result = run_cli("check", str(raw), "-t", "rk3588")
    assert "unsimplified: 12 nodes compute constants from constants and static shapes" in (
        result.stdout
    )
    assert "unsimplified" not in run_cli("check", str(simplified), "-t", "rk3588").stdout
    report = json.loads(run_cli("check", str(raw), "-t", "rk3588", "-f", "json").stdout)
    assert report["models"][0]["foldable_nodes"] == 12


def test_fix_simplifies_a_raw_export_and_keeps_its_outputs(tmp_path: Path):
    source = save(build("window-partition"), tmp_path, "raw.onnx")
    out = tmp_path / "fixed.onnx"
    result = run_cli("fix", str(source), "-t", "rk3588", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "simplify (exact) — 17 node(s) fold to constants" in result.stdout
    fixed = onnx.load(str(out))
    assert ops(fixed) == ["Reshape", "Transpose", "Reshape", "Relu", "Reshape", "Relu"]
    assert max_error(onnx.load(str(source)), fixed) == 0.0


@pytest.mark.parametrize(
    ("axes", "steps", "expected"),
    [
        ("1, 2", "2, 2", []),  # Swin's patch merging, x[:, 0::2, 0::2] on NHWC: on the NPU
        ("3", "2", ["Slice step along the last axis 2 is not 1"]),  # probed: on the CPU
    ],
)
def test_rockchip_slice_steps_are_judged_on_the_last_axis(
    axes: str, steps: str, expected: list[str], tmp_path: Path
):
    count = len(axes.split(","))
    model = parse(
        f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,8,8,8] x) => (float[1,4,4,8] y) {{
          starts = Constant<value = int64[{count}] {{{", ".join(["0"] * count)}}}>()
          ends = Constant<value = int64[{count}] {{{", ".join(["8"] * count)}}}>()
          axes = Constant<value = int64[{count}] {{{axes}}}>()
          steps = Constant<value = int64[{count}] {{{steps}}}>()
          [slice] s = Slice(x, starts, ends, axes, steps)
          [relu] y = Relu(s)
        }}
        """
    )
    if count == 1:  # the last axis only: another output shape
        model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 8
        model.graph.output[0].type.tensor_type.shape.dim[2].dim_value = 8
        model.graph.output[0].type.tensor_type.shape.dim[3].dim_value = 4
    report = api.check(save(model, tmp_path), ["rk3588"]).models[0]
    assert [f.message for f in report.findings if f.rule == "PL260"] == expected


def test_a_long_chain_of_shape_arithmetic_folds(tmp_path: Path):
    """600 Divs between the Shape and the Reshape: values are computed with an explicit
    stack, not by recursion that would give up half way."""
    divs = "\n".join(f"s{i + 1} = Div(s{i}, one)" for i in range(600))
    model = parse(
        f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,3,8,6] x) => (float[1,3,8,6] y) {{
          s0 = Shape(x)
          one = Constant<value = int64[1] {{1}}>()
          {divs}
          r = Reshape(x, s600)
          y = Relu(r)
        }}
        """
    )
    loaded = load_for_check(save(model, tmp_path))
    assert loaded.computed["s600"].tolist() == [1, 3, 8, 6]
    assert build_view(loaded).tensors["r"].shape == (1, 3, 8, 6)


def test_a_wrongly_declared_shape_does_not_make_folding_allocate(tmp_path: Path):
    """A Range the model declares as 4 long, whose inputs say 20 million: not computed."""
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (int64[4] z) => (int64[4] y) <int64[4] r> {
          a = Constant<value = int64 {0}>()
          b = Constant<value = int64 {20000000}>()
          c = Constant<value = int64 {1}>()
          r = Range(a, b, c)
          y = Add(z, r)
        }
        """
    )
    assert "r" not in load_for_check(save(model, tmp_path)).computed


def test_a_weight_held_in_a_constant_node_is_never_read(tmp_path: Path):
    table = numpy_helper.from_array(np.ones((512, 64), np.float32), "table")
    index = numpy_helper.from_array(np.array([0], np.int64), "index")
    nodes = [
        onnx.helper.make_node("Constant", [], ["t"], value=table),
        onnx.helper.make_node("Constant", [], ["i"], value=index),
        onnx.helper.make_node("Gather", ["t", "i"], ["row"]),
        onnx.helper.make_node("Add", ["x", "row"], ["y"]),
    ]
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 64])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    loaded = load_for_check(save(model, tmp_path))
    assert not {"t", "row"} & set(loaded.computed)
    assert build_view(loaded).producer("row").folded  # still a constant, just not computed


def test_an_opset_9_slice_has_no_steps_to_judge(tmp_path: Path):
    node = onnx.helper.make_node("Slice", ["x"], ["y"], starts=[0], ends=[2], axes=[1])
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 6])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 8, 6])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 9)])
    model.ir_version = 8
    report = api.check(save(model, tmp_path), ["rk3588"]).models[0]
    assert not report.findings


def test_an_empty_tensor_in_shape_arithmetic_folds(tmp_path: Path):
    """A zero-size slice of a shape (Swin's exports have them) is a value like any other."""
    model = parse(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,8,4,4] x) => (float[1,8,16] y) {
          s = Shape(x)
          five = Constant<value = int64[1] {5}>()
          none = Slice(s, five, five)
          zero = Constant<value = int64[1] {0}>()
          two = Constant<value = int64[1] {2}>()
          lead = Slice(s, zero, two)
          one = Constant<value = int64[1] {1}>()
          kept = Div(lead, one)
          m1 = Constant<value = int64[1] {-1}>()
          shape = Concat<axis = 0>(kept, none, m1)
          r = Reshape(x, shape)
          y = Relu(r)
        }
        """
    )
    loaded = load_for_check(save(model, tmp_path))
    assert loaded.computed["none"].shape == (0,)
    assert loaded.computed["shape"].tolist() == [1, 8, -1]
    report = api.check(save(model, tmp_path), ["rk3588"]).models[0]
    assert not [f for f in report.findings if f.rule == "PL201"]

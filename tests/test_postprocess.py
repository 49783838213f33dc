"""strip-postprocess and PL108: find a detector's decode/NMS tail, report it, cut it off."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import FIXTURES
from onnx import TensorProto, helper, numpy_helper

from portlint.config import Config
from portlint.engine import check_model
from portlint.errors import PortlintError
from portlint.fixer import check_in_memory, view_of
from portlint.graph_view import build_view
from portlint.model_io import load_for_check
from portlint.numerics import random_inputs, run
from portlint.passes import PassContext, get_pass
from portlint.postprocess import find_tail
from portlint.rule import Severity, load_rules
from portlint.target import load_target

HEAD_CONVS = [
    f"/model.22/{branch}.{i}/{branch}.{i}.2/Conv" for i in range(3) for branch in ("cv2", "cv3")
]
HEAD_SHAPES = [[1, channels, size, size] for size in (80, 40, 20) for channels in (64, 80)]
MAX_ERROR = 1e-4


@pytest.fixture(scope="module")
def yolo() -> onnx.ModelProto:
    return onnx.load(str(FIXTURES / "yolov8n.onnx"))


@pytest.fixture(scope="module")
def yolo_cut(yolo: onnx.ModelProto):
    return _strip(yolo)


def _strip(model: onnx.ModelProto, **options: str):
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return get_pass("strip-postprocess").run(PassContext(copy, load_target("rk3588"), options))


def _check(name: str, targets: list[str]):
    path = FIXTURES / name
    view = build_view(load_for_check(path))
    return check_model(view, path, [load_target(t) for t in targets], load_rules(), Config())


def _shape(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value for d in value.type.tensor_type.shape.dim]


def tiny_detector(dfl: bool = True) -> onnx.ModelProto:
    """Two 1x1 head convs; box: Reshape -> Transpose -> Softmax -> DFL conv -> Reshape;
    class: Reshape -> Sigmoid; Concat of both, like a 4x4-pixel YOLOv8 with 4 DFL bins."""
    rng = np.random.default_rng(3)
    bins = np.arange(4, dtype=np.float32) if dfl else rng.standard_normal(4).astype(np.float32)

    def const(name: str, value) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value), name)

    initializers = [
        const("box_w", rng.standard_normal((16, 3, 1, 1)).astype(np.float32)),
        const("cls_w", rng.standard_normal((2, 3, 1, 1)).astype(np.float32)),
        const("dfl_w", bins.reshape(1, 4, 1, 1)),
        const("bins_shape", np.array([1, 4, 4, 16], dtype=np.int64)),
        const("box_shape", np.array([1, 4, 16], dtype=np.int64)),
        const("cls_shape", np.array([1, 2, 16], dtype=np.int64)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "box_w"], ["box"], "head/box"),
        helper.make_node("Conv", ["x", "cls_w"], ["cls"], "head/cls"),
        helper.make_node("Reshape", ["box", "bins_shape"], ["r1"], "dfl/reshape"),
        helper.make_node("Transpose", ["r1"], ["t1"], "dfl/transpose", perm=[0, 2, 1, 3]),
        helper.make_node("Softmax", ["t1"], ["s1"], "dfl/softmax", axis=1),
        helper.make_node("Conv", ["s1", "dfl_w"], ["d1"], "dfl/conv"),
        helper.make_node("Reshape", ["d1", "box_shape"], ["boxes"], "dfl/reshape_1"),
        helper.make_node("Reshape", ["cls", "cls_shape"], ["r2"], "cls/reshape"),
        helper.make_node("Sigmoid", ["r2"], ["scores"], "cls/sigmoid"),
        helper.make_node("Concat", ["boxes", "scores"], ["y"], "concat", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 16])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def yolov5_like() -> onnx.ModelProto:
    """One YOLOv5 scale: Conv -> Reshape -> Transpose -> Sigmoid -> Split -> xy*2+grid,
    (wh*2)**2*anchors -> Concat -> Reshape; plus a network output that does not go through
    the tail (a SiLU, which is a layer, not a decode)."""
    rng = np.random.default_rng(5)

    def const(name: str, value) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value), name)

    grid = rng.standard_normal((1, 3, 8, 8, 2)).astype(np.float32)
    initializers = [
        const("w", rng.standard_normal((21, 3, 1, 1)).astype(np.float32)),
        const("per_anchor", np.array([1, 3, 7, 8, 8], dtype=np.int64)),
        const("two", np.array(2.0, dtype=np.float32)),
        const("grid", grid),
        const("anchors", np.abs(grid)),
        const("parts", np.array([2, 2, 3], dtype=np.int64)),
        const("flat", np.array([1, 192, 7], dtype=np.int64)),
    ]
    node = helper.make_node
    nodes = [
        node("Conv", ["x", "w"], ["h"], "head"),
        node("Sigmoid", ["x"], ["gate"], "stem/Sigmoid"),
        node("Mul", ["x", "gate"], ["features"], "stem/Mul"),
        node("Reshape", ["h", "per_anchor"], ["r"], "Reshape"),
        node("Transpose", ["r"], ["t"], "Transpose", perm=[0, 1, 3, 4, 2]),
        node("Sigmoid", ["t"], ["sg"], "Sigmoid"),
        node("Split", ["sg", "parts"], ["xy", "wh", "conf"], "Split", axis=-1),
        node("Mul", ["xy", "two"], ["xy2"], "Mul"),
        node("Add", ["xy2", "grid"], ["xy3"], "Add"),
        node("Mul", ["wh", "two"], ["wh2"], "Mul_1"),
        node("Pow", ["wh2", "two"], ["wh3"], "Pow"),
        node("Mul", ["wh3", "anchors"], ["wh4"], "Mul_2"),
        node("Concat", ["xy3", "wh4", "conf"], ["cat"], "Concat", axis=-1),
        node("Reshape", ["cat", "flat"], ["y"], "Reshape_1"),
    ]
    graph = helper.make_graph(
        nodes,
        "v5",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 192, 7]),
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 3, 8, 8]),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _roundtrip_error(model: onnx.ModelProto, head: onnx.ModelProto, tail: onnx.ModelProto):
    feeds = random_inputs(model)
    expected = run(model, feeds)
    composed = run(tail, {**feeds, **run(head, feeds)})  # a tail may read graph inputs too
    return max(float(np.abs(expected[k] - composed[k]).max()) for k in expected)


def test_yolov8n_tail_is_cut_at_the_six_head_convs(yolo: onnx.ModelProto) -> None:
    tail = find_tail(view_of(yolo))
    assert tail is not None
    assert list(tail.head_ends) == HEAD_CONVS
    assert list(tail.cuts) == [f"{name}_output_0" for name in HEAD_CONVS]
    assert {"DFL", "anchor grid", "Sigmoid decode"} <= set(tail.signals)
    assert "/model.22/dfl/Softmax" in tail.nodes and "/model.22/Concat_3" in tail.nodes
    assert not any(name.startswith("/model.22/cv") for name in tail.nodes)


def test_pl108_fires_on_yolov8n_for_rk3588_and_hailo8() -> None:
    report = _check("yolov8n.onnx", ["rk3588", "hailo8"])
    found = {f.target: f for f in report.findings if f.rule == "PL108"}
    assert set(found) == {"rk3588", "hailo8"}
    for finding in found.values():
        assert finding.severity is Severity.INFO
        assert finding.location == "/model.22/Reshape"
        assert "strip-postprocess" in finding.message and HEAD_CONVS[0] in finding.message
        assert all(name in finding.note for name in HEAD_CONVS)
    assert "3 not on the NPU: Softmax, Slice\N{MULTIPLICATION SIGN}2" in found["hailo8"].message
    assert "not on the NPU: Transpose, Reshape" in found["rk3588"].message


@pytest.mark.parametrize("name", ["mobilenetv3_small.onnx", "odd_channels.onnx"])
def test_pl108_is_silent_on_classifiers(name: str) -> None:
    report = _check(name, ["rk3588", "hailo8"])
    assert not [f for f in report.findings if f.rule == "PL108"]
    assert find_tail(view_of(onnx.load(str(FIXTURES / name)))) is None


def test_strip_yolov8n_head_is_valid_and_keeps_the_interface_fields(
    yolo: onnx.ModelProto, yolo_cut
) -> None:
    head = yolo_cut.model
    onnx.checker.check_model(head, full_check=True)
    onnx.checker.check_model(yolo_cut.tail, full_check=True)
    assert head.ir_version == 8 and yolo_cut.tail.ir_version == 8
    assert [(o.domain, o.version) for o in head.opset_import] == [("", 17)]
    assert [o.name for o in head.graph.output] == [f"{n}_output_0" for n in HEAD_CONVS]
    assert [_shape(o) for o in head.graph.output] == HEAD_SHAPES
    assert [i.name for i in yolo_cut.tail.graph.input] == [o.name for o in head.graph.output]
    assert len(yolo_cut.changes) == 1 and "24-node" in yolo_cut.changes[0]
    assert len(head.graph.node) + len(yolo_cut.tail.graph.node) == len(yolo.graph.node)


@pytest.mark.parametrize("target", ["hailo8", "rk3588"])
def test_strip_yolov8n_head_has_no_errors(yolo_cut, target: str) -> None:
    report = check_in_memory(yolo_cut.model, load_target(target))
    assert not [f for f in report.findings if f.severity is Severity.ERROR]
    assert not [f for f in report.findings if f.rule == "PL108"]


def test_strip_yolov8n_is_exact(yolo: onnx.ModelProto, yolo_cut) -> None:
    feeds = random_inputs(yolo)
    cuts = [o.name for o in yolo_cut.model.graph.output]
    original = run(yolo, feeds, ["output0", *cuts])
    head = run(yolo_cut.model, feeds)
    for name in cuts:
        np.testing.assert_array_equal(head[name], original[name])
    composed = run(yolo_cut.tail, head)
    assert float(np.abs(composed["output0"] - original["output0"]).max()) <= MAX_ERROR


def test_strip_is_idempotent_on_its_own_head(yolo_cut) -> None:
    again = _strip(yolo_cut.model)
    assert again.changes == [] and again.tail is None
    assert again.model == yolo_cut.model


def test_tiny_detector_is_cut_at_its_head_convs() -> None:
    model = tiny_detector()
    tail = find_tail(view_of(model))
    assert tail is not None
    assert tail.cuts == ("box", "cls") and tail.head_ends == ("head/box", "head/cls")
    assert tail.signals == ("DFL", "Sigmoid decode")
    assert len(tail.nodes) == 8
    result = _strip(model)
    assert [o.name for o in result.model.graph.output] == ["box", "cls"]
    assert _roundtrip_error(model, result.model, result.tail) <= MAX_ERROR


def test_yolov5_like_tail_keeps_outputs_that_do_not_go_through_it() -> None:
    model = yolov5_like()
    tail = find_tail(view_of(model))
    assert tail is not None and tail.cuts == ("h",) and len(tail.nodes) == 11
    assert tail.signals == ("anchor grid", "Pow decode", "Sigmoid decode")
    result = _strip(model)
    assert [o.name for o in result.model.graph.output] == ["h", "features"]
    assert [o.name for o in result.tail.graph.output] == ["y", "features"]
    assert 'keeps its outputs "features"' in result.changes[0]
    assert _roundtrip_error(model, result.model, result.tail) <= MAX_ERROR


def test_a_tail_may_read_a_graph_input() -> None:
    model = tiny_detector()
    graph = model.graph
    graph.node[-1].output[0] = "unscaled"
    graph.node.append(helper.make_node("Mul", ["unscaled", "scale"], ["y"], "rescale"))
    graph.input.append(helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1, 1, 1]))
    tail = find_tail(view_of(model))
    assert tail is not None and tail.cuts == ("box", "cls") and tail.graph_inputs == ("scale",)
    result = _strip(model)
    assert [i.name for i in result.model.graph.input] == ["x"]
    assert [i.name for i in result.tail.graph.input] == ["box", "cls", "scale"]
    assert _roundtrip_error(model, result.model, result.tail) <= MAX_ERROR


def test_without_a_detector_signal_nothing_is_cut() -> None:
    model = tiny_detector(dfl=False)  # the conv is not arange(C): a layer, not DFL
    assert find_tail(view_of(model)) is None
    result = _strip(model)
    assert result.changes == [] and result.model == model


def test_explicit_cut_takes_node_and_tensor_names() -> None:
    model = tiny_detector()
    result = _strip(model, cut="dfl/softmax, r2")
    assert [o.name for o in result.model.graph.output] == ["s1", "r2"]
    assert [_shape(o) for o in result.model.graph.output] == [[1, 4, 4, 16], [1, 2, 16]]
    assert [n.op_type for n in result.tail.graph.node] == ["Conv", "Reshape", "Sigmoid", "Concat"]
    assert "where requested" in result.changes[0]
    assert _roundtrip_error(model, result.model, result.tail) <= MAX_ERROR


def test_explicit_cut_names_an_unknown_name() -> None:
    with pytest.raises(PortlintError, match=r"'dfl/sofmax'.*did you mean 'dfl/softmax'"):
        _strip(tiny_detector(), cut="dfl/sofmax")


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        ("x", "graph input"),
        ("dfl_w", "constant"),
        ("r1", "misses a path: the tail also needs 'scores'"),  # class branch on the side
    ],
)
def test_explicit_cut_refuses_what_cannot_be_a_cut(cut: str, message: str) -> None:
    with pytest.raises(PortlintError, match=message):
        _strip(tiny_detector(), cut=cut)


def test_wanted_names_the_tail(yolo: onnx.ModelProto) -> None:
    strip = get_pass("strip-postprocess")
    reason = strip.wanted(PassContext(yolo, load_target("hailo8")))
    assert reason is not None and "DFL" in reason and "6 head Convs" in reason
    assert strip.wanted(PassContext(tiny_detector(dfl=False), load_target("hailo8"))) is None

"""strip-postprocess and PL108: find a detector's decode/NMS tail, report it, cut it off."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import FIXTURES, run_cli
from onnx import TensorProto, helper, numpy_helper

from portlint.config import Config
from portlint.engine import check_model
from portlint.errors import PortlintError
from portlint.fixer import FixRequest, check_in_memory, fix_model, plan, view_of
from portlint.graph_view import build_view
from portlint.model_io.load import load_for_check
from portlint.numerics import deviation, random_inputs, run
from portlint.passes.base import PassContext
from portlint.passes.registry import get_pass
from portlint.postprocess import TIMES, find_tail
from portlint.rule import Severity, load_rules
from portlint.target import Target, load_target

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
    assert "Sigmoid decode; all on the NPU)" in found["rk3588"].message  # probed: 2.5.0 keeps them


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


# -- YOLOv5, SSD and a top-5 classifier, built small with random weights -----------------------

STRIP = FixRequest(("strip-postprocess",))
NA, NC = 3, 2
"""YOLOv5: anchors per position and classes (85 -> 7 channels per anchor)."""
V5_SCALES = ((8, 8), (4, 16), (2, 32))
"""(grid size, stride) of P3/P4/P5 on a 64x64 image."""
V5_CONVS = [f"/model.24/m.{i}/Conv" for i in range(3)]
SSD_CONVS = [
    f"BoxPredictor_{k}/{kind}/BiasAdd"
    for k in range(2)
    for kind in ("BoxEncodingPredictor", "ClassPredictor")
]
TOPK_PROFILE = """
portlint_profile: 1
extends: rk3588
name: topk-board
display_name: RK3588 whose toolchain runs TopK on the NPU
toolchain: {name: RKNN-Toolkit2, version: "9.9"}
sources:
  lab: {title: Lab notes, url: "https://example.invalid/lab", version: "1"}
ops:
  - {names: [TopK], source: lab, verified: false}
"""


class Builder:
    """Nodes and seeded random initializers of one small float model (IR 8, opset 17)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value, dtype=np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def weight(self, name: str, *shape: int) -> str:
        return self.const(name, self.rng.standard_normal(shape) * 0.5)

    def node(self, op: str, inputs: list[str], name: str, outputs=None, **attrs):
        """The node's output name (its own name unless given), or its output list."""
        outputs = outputs or [name]
        self.nodes.append(helper.make_node(op, inputs, outputs, name, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def conv(self, x: str, name: str, cin: int, cout: int, k: int = 1, stride: int = 1) -> str:
        w, b = self.weight(f"{name}.weight", cout, cin, k, k), self.weight(f"{name}.bias", cout)
        pads = [k // 2] * 4
        return self.node(
            "Conv", [x, w, b], name, kernel_shape=[k, k], strides=[stride] * 2, pads=pads
        )

    def silu(self, x: str, name: str) -> str:
        return self.node("Mul", [x, self.node("Sigmoid", [x], f"{name}/Sigmoid")], f"{name}/Mul")

    def model(self, inputs, outputs) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "synthetic", inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return model


def yolov5_head(grid_anchors: int = NA) -> onnx.ModelProto:
    """YOLOv5 ``Detect`` in export mode on a Conv+SiLU backbone, three scales (8, 4, 2 px):
    Conv -> Reshape -> Transpose -> Sigmoid -> Split [2,2,nc+1]; xy: *2 + grid, * stride;
    wh: (*2)**2 * anchor_grid; Concat -> Reshape [1, 3*ny*nx, nc+5]; Concat over scales.
    ``grid_anchors`` is the grid constant's anchor axis: 3 ([1,3,ny,nx,2]) or 1."""
    g, no = Builder(7), NC + 5
    x, feats = "images", []
    for i in range(5):  # 64 -> 32 -> 16 -> 8 -> 4 -> 2
        x = g.conv(x, f"/model.{i}/conv/Conv", 3 if i == 0 else 8, 8, 3, 2)
        x = g.silu(x, f"/model.{i}/act")
        feats += [x] if i >= 2 else []
    two = g.const("two", 2.0)
    outs = []
    for i, ((ny, stride), feat) in enumerate(zip(V5_SCALES, feats, strict=True)):
        p = f"/model.24/m.{i}"
        h = g.conv(feat, f"{p}/Conv", 8, NA * no)
        h = g.node(
            "Reshape", [h, g.const(f"{p}/shape", [1, NA, no, ny, ny], np.int64)], f"{p}/Reshape"
        )
        h = g.node("Transpose", [h], f"{p}/Transpose", perm=[0, 1, 3, 4, 2])
        h = g.node("Sigmoid", [h], f"{p}/Sigmoid")
        parts = [g.const(f"{p}/split", [2, 2, NC + 1], np.int64)]
        xy, wh, conf = g.node(
            "Split", [h, *parts], f"{p}/Split", [f"{p}/{n}" for n in ("xy", "wh", "conf")], axis=4
        )
        yv, xv = np.meshgrid(np.arange(ny), np.arange(ny), indexing="ij")
        grid = np.broadcast_to(np.stack((xv, yv), -1) - 0.5, (1, grid_anchors, ny, ny, 2))
        anchors = np.array([[10, 13], [16, 30], [33, 23]]).reshape(1, NA, 1, 1, 2) * (i + 1)
        xy = g.node("Mul", [xy, two], f"{p}/Mul")
        xy = g.node("Add", [xy, g.const(f"{p}/grid", grid)], f"{p}/Add")
        xy = g.node("Mul", [xy, g.const(f"{p}/stride", float(stride))], f"{p}/Mul_1")
        wh = g.node("Mul", [wh, two], f"{p}/Mul_2")
        wh = g.node("Pow", [wh, two], f"{p}/Pow")
        anchor_grid = g.const(f"{p}/anchor_grid", np.broadcast_to(anchors, (1, NA, ny, ny, 2)))
        wh = g.node("Mul", [wh, anchor_grid], f"{p}/Mul_3")
        cat = g.node("Concat", [xy, wh, conf], f"{p}/Concat", axis=4)
        flat = g.const(f"{p}/flat", [1, NA * ny * ny, no], np.int64)
        outs.append(g.node("Reshape", [cat, flat], f"{p}/Reshape_1"))
    g.node("Concat", outs, "/model.24/Concat", ["output0"], axis=1)
    boxes = NA * sum(ny * ny for ny, _ in V5_SCALES)
    return g.model(
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, boxes, no])],
    )


def _ssd_anchors(size: int, per_cell: int, scale: float) -> np.ndarray:
    """[size*size*per_cell, 4] anchors (cx, cy, w, h), cells row-major like the predictors."""
    cells = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij")[::-1], -1)
    centers = np.repeat(((cells + 0.5) / size).reshape(-1, 2), per_cell, axis=0)
    shapes = np.array([[0.1, 0.1], [0.2, 0.1], [0.1, 0.2], [0.2, 0.2]])[:per_cell] * scale
    return np.concatenate([centers, np.tile(shapes, (size * size, 1))], -1)


def ssd_head(per_cell: int = 3, classes: int = 2) -> onnx.ModelProto:
    """TF-OD-API style SSD on two feature maps (8x8, 4x4): box-encoding and class-predictor
    Convs -> Transpose/Reshape/Concat to [1,N,4] and [1,N,C+1] -> anchor decode (Mul, Exp,
    Add with constant anchors) -> corners; Softmax -> Transpose [1,C+1,N] -> drop background
    -> NonMaxSuppression -> Gather of the kept boxes. Outputs: NMS indices, kept boxes, all
    decoded boxes."""
    g = Builder(11)
    x = g.node("Relu", [g.conv("image", "backbone/conv0", 3, 8, 3, 2)], "backbone/relu0")
    f1 = g.node("Relu", [g.conv(x, "backbone/conv1", 8, 8, 3, 2)], "backbone/relu1")
    f2 = g.node("Relu", [g.conv(f1, "backbone/conv2", 8, 8, 3, 2)], "backbone/relu2")
    encodings: list[str] = []
    logits: list[str] = []
    heads = (("BoxEncodingPredictor", 4, encodings), ("ClassPredictor", classes + 1, logits))
    for k, (feat, size) in enumerate(((f1, 8), (f2, 4))):
        for kind, width, out in heads:
            p = f"BoxPredictor_{k}/{kind}"
            y = g.conv(feat, f"{p}/BiasAdd", 8, width * per_cell)
            y = g.node("Transpose", [y], f"{p}/Transpose", perm=[0, 2, 3, 1])
            shape = g.const(f"{p}/shape", [1, size * size * per_cell, width], np.int64)
            out.append(g.node("Reshape", [y, shape], f"{p}/Reshape"))
    anchor = np.concatenate([_ssd_anchors(8, per_cell, 1), _ssd_anchors(4, per_cell, 2)])[None]
    count = anchor.shape[1]
    enc = g.node("Concat", encodings, "concat_boxes", axis=1)
    split = [g.const("split_xywh", [2, 2], np.int64)]
    txy, twh = g.node("Split", [enc, *split], "decode/split", ["txy", "twh"], axis=2)
    awh = g.const("anchors_wh", anchor[..., 2:])
    cxy = g.node("Mul", [txy, g.const("xy_scale", 0.1)], "decode/mul_xy")
    cxy = g.node("Mul", [cxy, awh], "decode/mul_anchor_wh")
    cxy = g.node("Add", [cxy, g.const("anchors_xy", anchor[..., :2])], "decode/add_anchor_xy")
    wh = g.node("Mul", [twh, g.const("wh_scale", 0.2)], "decode/mul_wh")
    wh = g.node("Exp", [wh], "decode/exp")
    wh = g.node("Mul", [wh, awh], "decode/mul_anchor_wh_1")
    half = g.node("Mul", [wh, g.const("half", 0.5)], "decode/half")
    lo, hi = g.node("Sub", [cxy, half], "decode/lo"), g.node("Add", [cxy, half], "decode/hi")
    boxes = g.node("Concat", [lo, hi], "decode/corners", ["boxes"], axis=2)
    scores = g.node("Concat", logits, "concat_scores", axis=1)
    scores = g.node("Softmax", [scores], "scores/softmax", axis=2)
    scores = g.node("Transpose", [scores], "scores/transpose", perm=[0, 2, 1])
    bounds = [g.const(n, [v], np.int64) for n, v in (("one", 1), ("end", classes + 1), ("ax", 1))]
    scores = g.node("Slice", [scores, *bounds], "scores/drop_background")
    limits = [g.const("max_boxes", [5], np.int64), g.const("iou", [0.5]), g.const("score", [0.3])]
    selected = g.node("NonMaxSuppression", [boxes, scores, *limits], "nms", ["selected"])
    column = g.const("box_column", 2, np.int64)
    index = g.node("Gather", [selected, column], "nms/box_index", axis=1)
    flat = g.node("Reshape", [boxes, g.const("flat_shape", [count, 4], np.int64)], "nms/flat")
    g.node("Gather", [flat, index], "nms/gather_boxes", ["detections"], axis=0)
    return g.model(
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [
            helper.make_tensor_value_info("selected", TensorProto.INT64, ["kept", 3]),
            helper.make_tensor_value_info("detections", TensorProto.FLOAT, ["kept", 4]),
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, count, 4]),
        ],
    )


def top5_classifier(classes: int = 10) -> onnx.ModelProto:
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> Softmax -> TopK k=5."""
    g = Builder(13)
    x = g.node("Relu", [g.conv("input", "features/conv", 3, 8, 3, 2)], "features/relu")
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x], "pool")], "flatten", axis=1)
    fc = [x, g.weight("fc.weight", classes, 8), g.weight("fc.bias", classes)]
    logits = g.node("Gemm", fc, "fc", ["logits"], transB=1)
    prob = g.node("Softmax", [logits], "softmax", axis=1)
    g.node("TopK", [prob, g.const("k", [5], np.int64)], "topk", ["scores", "classes"], axis=1)
    return g.model(
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 5]),
            helper.make_tensor_value_info("classes", TensorProto.INT64, [1, 5]),
        ],
    )


@pytest.fixture(scope="module")
def topk_board(tmp_path_factory: pytest.TempPathFactory) -> Target:
    path = tmp_path_factory.mktemp("profile") / "topk-board.yaml"
    path.write_text(TOPK_PROFILE)
    return load_target(str(path))


def _pl108(model: onnx.ModelProto, target: Target | str):
    target = load_target(target) if isinstance(target, str) else target
    return [f for f in check_in_memory(model, target).findings if f.rule == "PL108"]


def _assert_composes(model: onnx.ModelProto, head: onnx.ModelProto, tail: onnx.ModelProto):
    """Own check of the fixer's proof: tail(head(x)) equals the model's outputs, ints exactly."""
    feeds = random_inputs(model)
    expected = run(model, feeds)
    composed = run(tail, {**feeds, **run(head, feeds)})
    assert set(composed) == set(expected)
    for name, value in expected.items():
        assert composed[name].dtype == value.dtype and composed[name].shape == value.shape
        if np.issubdtype(value.dtype, np.integer):
            np.testing.assert_array_equal(composed[name], value)
        else:
            np.testing.assert_allclose(composed[name], value, rtol=1e-5, atol=1e-5)
    return expected


@pytest.mark.parametrize("grid_anchors", [NA, 1])
def test_yolov5_head_is_cut_at_the_detection_convs(grid_anchors: int) -> None:
    model = yolov5_head(grid_anchors)
    onnx.checker.check_model(model, full_check=True)
    tail = find_tail(view_of(model))
    assert tail is not None and tail.detector
    assert list(tail.head_ends) == V5_CONVS and list(tail.cuts) == V5_CONVS
    assert tail.head_label() == "3 head Convs"
    assert tail.signals == ("anchor grid", "Pow decode", "Sigmoid decode")
    assert len(tail.nodes) == 3 * 12 + 1  # per scale Reshape ... Reshape_1, then the Concat
    assert all(name.startswith("/model.24/") for name in tail.nodes)  # no backbone SiLU


@pytest.mark.parametrize("target", ["rk3588", "hailo8"])
def test_pl108_fires_on_yolov5(target: str) -> None:
    [finding] = _pl108(yolov5_head(), target)
    assert finding.location == "/model.24/m.0/Reshape" and finding.severity is Severity.INFO
    assert finding.message.startswith("post-processing tail of 37 nodes (anchor grid, Pow ")
    assert f'after 3 head Convs "{V5_CONVS[0]}", …: cut there with' in finding.message
    assert all(name in finding.note for name in V5_CONVS) and f"{target}: " in finding.note


def test_strip_yolov5_through_the_fixer_is_proven() -> None:
    model = yolov5_head()
    outcome = fix_model(model, load_target("hailo8"), STRIP)
    [step] = outcome.steps
    assert step.changed and "tail(head(x)) equals the original" in step.verification
    assert [d.name for d in step.head_deviations] == V5_CONVS
    assert [(d.name, d.max_abs) for d in step.deviations] == [("output0", 0.0)]
    assert [o.name for o in outcome.model.graph.output] == V5_CONVS
    assert [_shape(o) for o in outcome.model.graph.output] == [
        [1, NA * (NC + 5), ny, ny] for ny, _ in V5_SCALES
    ]
    assert not {"Split", "Pow", "Reshape"} & {n.op_type for n in outcome.model.graph.node}
    assert not [f for f in outcome.after.findings if f.rule == "PL108"]
    assert not [f for f in outcome.after.findings if f.severity is Severity.ERROR]
    _assert_composes(model, outcome.model, outcome.tail)


def test_ssd_is_cut_at_the_box_and_class_predictors() -> None:
    model = ssd_head()
    onnx.checker.check_model(model, full_check=True)
    tail = find_tail(view_of(model))
    assert tail is not None and tail.detector
    assert list(tail.head_ends) == SSD_CONVS and list(tail.cuts) == SSD_CONVS
    assert tail.signals == ("NMS", "anchor grid", "Softmax", "Exp decode")
    assert "nms" in tail.nodes and "decode/exp" in tail.nodes and len(tail.nodes) == 28


@pytest.mark.parametrize(
    ("target", "off_npu"),
    [
        ("rk3588", "2 not on the NPU: Exp, NonMaxSuppression"),
        ("hailo8", f"6 not on the NPU: Exp, Softmax, Slice, NonMaxSuppression, Gather{TIMES}2"),
    ],
)
def test_pl108_fires_on_ssd(target: str, off_npu: str) -> None:
    [finding] = _pl108(ssd_head(), target)
    assert finding.location == "BoxPredictor_0/BoxEncodingPredictor/Transpose"
    assert f"(NMS, anchor grid, Softmax, Exp decode; {off_npu})" in finding.message
    assert f'after 4 head Convs "{SSD_CONVS[0]}", …' in finding.message


def test_strip_ssd_moves_nms_to_the_host_and_is_proven() -> None:
    model = ssd_head()
    outcome = fix_model(model, load_target("hailo8"), STRIP)
    [step] = outcome.steps
    assert step.changed and [d.name for d in step.head_deviations] == SSD_CONVS
    proven = {d.name: d for d in step.deviations}
    assert set(proven) == {"selected", "detections", "boxes"}
    assert all(d.max_abs == 0.0 and d.within() for d in proven.values())
    head_ops = {n.op_type for n in outcome.model.graph.node}
    assert head_ops == {"Conv", "Relu"}  # no NMS, Gather, Softmax, Exp left on the NPU
    assert [o.name for o in outcome.model.graph.output] == SSD_CONVS
    assert "NonMaxSuppression" in {n.op_type for n in outcome.tail.graph.node}
    assert [i.name for i in outcome.tail.graph.input] == SSD_CONVS
    assert not [f for f in outcome.after.findings if f.severity is Severity.ERROR]
    expected = _assert_composes(model, outcome.model, outcome.tail)
    assert expected["selected"].dtype == np.int64 and len(expected["selected"]) > 0


def test_deviation_compares_nms_indices_as_numbers() -> None:
    """The fixer's proof converts int64 indices to float: a moved index is not 'equal'."""
    selected = run(ssd_head(), random_inputs(ssd_head()))["selected"]
    assert deviation("selected", selected, selected.copy()).within()
    moved = selected.copy()
    moved[0, 2] += 1  # another box
    assert not deviation("selected", selected, moved).within()


def test_top5_classifier_tail_is_a_top_k_not_a_detector() -> None:
    tail = find_tail(view_of(top5_classifier()))
    assert tail is not None and not tail.detector
    assert (
        tail.cuts == ("logits",)
        and tail.head_ends == ("fc",)
        and tail.head_label() == "1 head Gemm"
    )
    assert tail.nodes == ("softmax", "topk") and tail.signals == ("TopK", "Softmax")
    assert tail.describe().startswith("top-k tail of 2 nodes")


def test_pl108_is_quiet_on_a_top_k_the_target_runs_on_its_npu(topk_board: Target) -> None:
    model = top5_classifier()
    assert topk_board.ops["TopK"].placement == "npu"
    assert _pl108(model, topk_board) == []
    assert get_pass("strip-postprocess").wanted(PassContext(model, topk_board)) is None
    reasons = dict(plan(model, topk_board, FixRequest(unsafe=True)))
    assert reasons[get_pass("strip-postprocess")] is None
    [detector] = _pl108(yolov5_head(), topk_board)  # a detector is still reported there
    assert "3 head Convs" in detector.message


@pytest.mark.parametrize(
    ("target", "off_npu", "source"),
    [
        ("rk3588", "1 not on the NPU: TopK", "rknn-crosscheck-2.5"),
        ("hailo8", "2 not on the NPU: Softmax, TopK", "hailo-parser-shuffle"),
    ],
)
def test_pl108_proposes_the_cut_when_top_k_leaves_the_npu(
    target: str, off_npu: str, source: str
) -> None:
    [finding] = _pl108(top5_classifier(), target)
    assert finding.location == "softmax" and finding.severity is Severity.INFO
    assert finding.message == (
        f'top-k tail of 2 nodes (TopK, Softmax; {off_npu}) after 1 head Gemm "fc": cut there '
        f"and run the top-k on the host with portlint fix MODEL --target {target} "
        "--pass strip-postprocess"
    )
    assert finding.note == 'head ends: "fc"'  # not the target's detector convention
    assert finding.actual == "2-node top-k tail after 1 head Gemm"
    assert finding.limit == "model ends at the head outputs; top-k on the host"
    assert finding.source is not None and finding.source.key == source  # TopK's own op fact
    said = " ".join((finding.message, finding.note, finding.actual, finding.limit)).lower()
    assert not any(word in said for word in ("detector", "nms", "decode", "dfl"))
    reason = get_pass("strip-postprocess").wanted(
        PassContext(top5_classifier(), load_target(target))
    )
    assert reason is not None and reason.endswith(
        f"does not run {off_npu.split(': ')[1]} on the NPU"
    )


def test_strip_top5_classifier_cuts_at_the_logits() -> None:
    model = top5_classifier()
    outcome = fix_model(model, load_target("rk3588"), FixRequest(unsafe=True))
    [step] = [s for s in outcome.steps if s.pass_.name == "strip-postprocess"]
    assert step.reason.startswith("top-k tail of 2 nodes (TopK, Softmax) after 1 head Gemm")
    assert "the 2-node top-k tail (TopK, Softmax)" in step.result.changes[0]
    assert [o.name for o in outcome.model.graph.output] == ["logits"]
    assert [n.op_type for n in outcome.tail.graph.node] == ["Softmax", "TopK"]
    assert not [f for f in outcome.after.findings if f.rule == "PL108"]
    _assert_composes(model, outcome.model, outcome.tail)


def test_strip_leaves_a_model_without_a_tail_alone() -> None:
    model = onnx.load(str(FIXTURES / "mobilenetv3_small.onnx"))
    before = model.SerializeToString()
    outcome = fix_model(model, load_target("hailo8"), STRIP)
    [step] = outcome.steps
    assert step.reason == "named with --pass" and not step.changed and step.result.changes == []
    assert outcome.tail is None and not outcome.changed
    assert outcome.model.SerializeToString() == before == model.SerializeToString()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_explicit_cut_keeps_sigmoids_on_the_npu(tmp_path: Path) -> None:
    """Hailo's YOLOv5 recipe re-adds the sigmoid on chip: cut after it instead of the Convs."""
    model = yolov5_head()
    source, out = tmp_path / "yolov5.onnx", tmp_path / "yolov5.head.onnx"
    onnx.save(model, str(source))
    digest = _digest(source)
    sigmoids = [name.replace("Conv", "Sigmoid") for name in V5_CONVS]
    cut = f"cut={','.join(sigmoids)}"
    args = ["-t", "hailo8", "--pass", "strip-postprocess", "--option", cut, "-o", str(out)]
    result = run_cli("fix", str(source), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cut where requested" in result.stdout and "tail(head(x)) equals" in result.stdout
    assert _digest(source) == digest
    head = onnx.load(str(out))
    tail = onnx.load(str(tmp_path / "yolov5.head.post.onnx"))
    assert [o.name for o in head.graph.output] == sigmoids
    assert [_shape(o) for o in head.graph.output] == [
        [1, NA, ny, ny, NC + 5] for ny, _ in V5_SCALES
    ]
    assert {"Sigmoid", "Transpose", "Reshape"} <= {n.op_type for n in head.graph.node}
    assert "Split" not in {n.op_type for n in head.graph.node}
    _assert_composes(model, head, tail)


def test_deviation_catches_a_moved_index_among_many_boxes() -> None:
    """YOLOv5 at 640 px has 25200 boxes: 1e-4 * 25199 lets an NMS index move by 2."""
    selected = np.array([[0, 0, 25199], [0, 1, 300]], dtype=np.int64)
    moved = selected.copy()
    moved[1, 2] += 1
    assert not deviation("selected", selected, moved).within()

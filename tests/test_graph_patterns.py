"""One declaration per graph pattern: check and fix find the same matches.

``check`` tags a pattern's nodes from the node table and judges BatchNorm from the graph view;
``fix`` rewrites on graphsurgeon's graph. All three ask ``portlint.graph_patterns``, so they
must agree on every model, and what a pass writes as a pattern must be what check recognises.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import FIXTURES
from onnx import helper
from pass_helpers import apply, model_of, ops, positive, weight

from portlint.graph_patterns import (
    BATCHNORM_FOLD,
    FUSED,
    GELU_ERF,
    HARD_SWISH,
    LAYER_NORM,
    GraphPattern,
)
from portlint.graph_view import GraphView, build_view
from portlint.in_memory import check_in_memory
from portlint.model_io.weightless import light_loaded
from portlint.passes.matching import NodeBuilder, SurgeonGraph, fused_op
from portlint.passes.surgery import default_opset, to_graph, to_model
from portlint.patterns import IndexedGraph, find_patterns
from portlint.target import load_target
from portlint.view_patterns import ViewGraph, folded_batchnorm

SHAPE = [1, 4, 8, 8]


def _view(model: onnx.ModelProto) -> GraphView:
    return build_view(light_loaded(model))


def _matched(pattern: GraphPattern, model: onnx.ModelProto) -> dict[str, set[frozenset[str]]]:
    """Each adapter's matches of ``pattern``, as sets of node names."""
    indexed = IndexedGraph(model.graph)
    names = [n.name for n in model.graph.node]
    return {
        "node table (check's tags)": {
            frozenset(names[i] for i in m.nodes) for m in pattern.find(indexed)
        },
        "graph view (check's rules)": {
            frozenset(n.name for n in m.nodes) for m in pattern.find(ViewGraph(_view(model)))
        },
        "graphsurgeon (fix)": {
            frozenset(n.name for n in m.nodes) for m in pattern.find(SurgeonGraph(to_graph(model)))
        },
    }


def _silu_model(variant: str) -> onnx.ModelProto:
    """Conv -> Mul(c, Sigmoid(c)), the Sigmoid private, read by an Add too, or an output."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
        helper.make_node("Mul", ["c", "s"], ["y"], name="mul"),
    ]
    outputs = [("y", SHAPE)]
    if variant == "shared":
        nodes.append(helper.make_node("Add", ["y", "s"], ["z"], name="add"))
        outputs = [("z", SHAPE)]
    elif variant == "graph output":
        outputs.append(("s", SHAPE))
    return model_of(nodes, [("x", SHAPE)], outputs, [weight("w", 4, 4, 1, 1)])


@pytest.mark.parametrize(
    ("variant", "is_silu"), [("private", True), ("shared", False), ("graph output", False)]
)
def test_check_and_fix_agree_on_what_is_a_silu(variant: str, is_silu: bool) -> None:
    """A Sigmoid another node (or the caller) still reads is computed anyway: neither side
    treats the pair as one SiLU, so check never promises what fix would not deliver."""
    model = _silu_model(variant)
    tagged = {n.name for n in _view(model).nodes if n.pattern == "SiLU"}
    assert tagged == ({"sigmoid", "mul"} if is_silu else set())
    rewritten = apply(model, "rk3588", "silu-to-relu").model
    assert ("Relu" in ops(rewritten)) is is_silu
    assert ("Sigmoid" in ops(rewritten)) is not is_silu


def _gelu_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Div", ["x", "r"], ["d"], name="div"),
        helper.make_node("Erf", ["d"], ["e"], name="erf"),
        helper.make_node("Add", ["e", "one"], ["a"], name="add"),
        helper.make_node("Mul", ["x", "a"], ["m"], name="mul"),
        helper.make_node("Mul", ["m", "half"], ["y"], name="half"),
    ]
    constants = [
        onnx.numpy_helper.from_array(np.float32(v), n)
        for n, v in (("r", 1.4142135), ("one", 1.0), ("half", 0.5))
    ]
    return model_of(nodes, [("x", [1, 8])], [("y", [1, 8])], constants)


def _layer_norm_model(shared_centre: bool = False) -> onnx.ModelProto:
    """LayerNormalization as torch exports it before opset 17."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mu"], name="mean", axes=[-1]),
        helper.make_node("Sub", ["x", "mu"], ["c"], name="sub"),
        helper.make_node("Pow", ["c", "two"], ["sq"], name="pow"),
        helper.make_node("ReduceMean", ["sq"], ["var"], name="var", axes=[-1]),
        helper.make_node("Add", ["var", "eps"], ["ve"], name="add_eps"),
        helper.make_node("Sqrt", ["ve"], ["sd"], name="sqrt"),
        helper.make_node("Div", ["c", "sd"], ["n"], name="div"),
        helper.make_node("Mul", ["n", "s"], ["scaled"], name="scale"),
        helper.make_node("Add", ["scaled", "b"], ["y"], name="shift"),
    ]
    outputs = [("y", [1, 6, 16])]
    if shared_centre:
        nodes.append(helper.make_node("Relu", ["c"], ["r"], name="relu"))
        outputs.append(("r", [1, 6, 16]))
    constants = [
        onnx.numpy_helper.from_array(np.float32(2.0), "two"),
        onnx.numpy_helper.from_array(np.float32(1e-5), "eps"),
        positive("s", 16),
        weight("b", 16),
    ]
    return model_of(nodes, [("x", [1, 6, 16])], outputs, constants, opset=13)


MODELS = {
    "yolov8n": (lambda: onnx.load(str(FIXTURES / "yolov8n.onnx")), "SiLU"),
    "silu, shared gate": (lambda: _silu_model("shared"), None),
    "silu, gate is an output": (lambda: _silu_model("graph output"), None),
    "gelu": (_gelu_model, "GeluErf"),
    "layer norm": (_layer_norm_model, "DecomposedLayerNorm"),
    "layer norm, centre read elsewhere": (lambda: _layer_norm_model(shared_centre=True), None),
}
"""Models, and the one pattern each holds."""


@pytest.mark.parametrize("pattern", FUSED, ids=lambda p: p.name)
@pytest.mark.parametrize("name", list(MODELS))
def test_every_graph_answers_a_pattern_alike(pattern: GraphPattern, name: str) -> None:
    build, holds = MODELS[name]
    found = _matched(pattern, build())
    assert len({frozenset(m) for m in found.values()}) == 1, found
    assert bool(found["graphsurgeon (fix)"]) is (pattern.name == holds)


def test_decomposed_layer_norm_is_one_pattern_only_when_its_tensors_are_private() -> None:
    assert {n.pattern for n in _view(_layer_norm_model()).nodes} == {"DecomposedLayerNorm"}
    shared = _view(_layer_norm_model(shared_centre=True))
    assert {n.pattern for n in shared.nodes} == {None}


@pytest.mark.parametrize("pattern", [HARD_SWISH, GELU_ERF, LAYER_NORM], ids=lambda p: p.name)
@pytest.mark.parametrize("opset", [17, 20])
def test_what_a_pass_writes_as_a_pattern_is_what_check_recognises(
    pattern: GraphPattern, opset: int
) -> None:
    """decompose writes a fused op as the pattern's own form; check tags every node of it."""
    op = pattern.fused_ops[0]
    inputs = ["x", "s", "b"] if op == "LayerNormalization" else ["x"]
    model = model_of(
        [helper.make_node(op, inputs, ["y"], name="fused")],
        [("x", [1, 6, 16])],
        [("y", [1, 6, 16])],
        [positive("s", 16), weight("b", 16)] if op == "LayerNormalization" else [],
        opset=opset,
    )
    graph = to_graph(model, shapes=True)
    node = graph.nodes[0]
    builder = NodeBuilder(graph, node.name, default_opset(model))
    assert pattern.form is not None and pattern.form.build(builder, fused_op(node))
    node.outputs.clear()
    written = to_model(graph, model)
    tags = find_patterns(written.graph)
    assert len(tags) == len(written.graph.node) and set(tags.values()) == {pattern.name}
    assert {n.op_type for n in written.graph.node} == set(pattern.form.ops)


def _batchnorm_model(variant: str) -> onnx.ModelProto:
    """Conv -> BatchNorm; the Conv's output private, also an output, or read by a Relu too;
    or BatchNorm after a Concat."""
    layer = helper.make_node("Conv", ["x", "w"], ["c"], name="conv")
    if variant == "after concat":
        layer = helper.make_node("Concat", ["x", "x"], ["c"], name="concat", axis=1)
    channels = 8 if variant == "after concat" else 4
    stats = [positive("g", channels), weight("be", channels), weight("m", channels)]
    stats.append(positive("v", channels))
    bn = helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["y"], name="bn")
    nodes, outputs = [layer, bn], [("y", [1, channels, 8, 8])]
    if variant == "conv output is an output":
        outputs.append(("c", SHAPE))
    elif variant == "conv output read twice":
        nodes.append(helper.make_node("Relu", ["c"], ["r"], name="relu"))
        outputs.append(("r", SHAPE))
    return model_of(nodes, [("x", SHAPE)], outputs, [weight("w", 4, 4, 1, 1), *stats])


@pytest.mark.parametrize(
    ("variant", "folds"),
    [
        ("private", True),
        ("conv output is an output", False),
        ("conv output read twice", False),
        ("after concat", False),
    ],
)
def test_check_and_fix_agree_on_which_batchnorm_folds(variant: str, folds: bool) -> None:
    """PL305 (no fold), PL301/PL307 (the fold's effect) and fold-batchnorm ask one pattern."""
    model = _batchnorm_model(variant)
    unfolded = [
        f for f in check_in_memory(model, load_target("rk3588")).findings if f.rule == "PL305"
    ]
    assert bool(unfolded) is not folds
    view = _view(model)
    assert (folded_batchnorm(view, view.nodes[0]) is not None) is folds
    assert bool(list(BATCHNORM_FOLD.find(ViewGraph(view)))) is folds
    rewritten = apply(model, "intel-gna", "fold-batchnorm").model
    assert ("BatchNormalization" not in ops(rewritten)) is folds

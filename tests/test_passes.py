"""Each simple pass keeps its declared promise on hand-written graphs and fixtures."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import FIXTURES
from onnx import helper
from pass_helpers import apply, max_error, model_of, ops, positive, weight

from portlint.fixer import check_in_memory, fix_model
from portlint.passes.base import Semantics
from portlint.passes.registry import PASSES
from portlint.target import load_target


def _bn(name: str, source: str, out: str, channels: int):
    inits = [
        positive(f"{name}.g", channels),
        weight(f"{name}.b", channels),
        weight(f"{name}.m", channels),
        positive(f"{name}.v", channels),
    ]
    node = helper.make_node(
        "BatchNormalization", [source, *(i.name for i in inits)], [out], name=name, epsilon=1e-3
    )
    return node, inits


@pytest.mark.parametrize("group", [1, 2])
def test_fold_batchnorm_into_conv_and_conv_transpose(group):
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1])
    deconv = helper.make_node("ConvTranspose", ["r", "wt"], ["d"], name="deconv", group=group)
    bn1, inits1 = _bn("bn1", "c", "n", 8)
    bn2, inits2 = _bn("bn2", "d", "y", 6)
    relu = helper.make_node("Relu", ["n"], ["r"], name="relu")
    model = model_of(
        [conv, bn1, relu, deconv, bn2],
        [("x", [1, 4, 8, 8])],
        [("y", [1, 6, 8, 8])],
        [
            weight("w", 8, 4, 3, 3),
            weight("b", 8),
            weight("wt", 8, 6 // group, 1, 1),
            *inits1,
            *inits2,
        ],
    )
    outcome = apply(model, "cmsis-nn", "fold-batchnorm")
    assert "BatchNormalization" not in ops(outcome.model)
    assert [line.split(":")[0] for line in outcome.steps[0].result.changes] == ["'bn1'", "'bn2'"]
    assert max_error(model, outcome.model) < 1e-4


@pytest.mark.parametrize("trans_b", [0, 1])
def test_fold_batchnorm_into_gemm(trans_b):
    gemm = helper.make_node(
        "Gemm", ["x", "w", "c"], ["g"], name="fc", transB=trans_b, alpha=0.5, beta=2.0
    )
    bn, inits = _bn("bn", "g", "y", 5)
    shape = (5, 7) if trans_b else (7, 5)
    model = model_of(
        [gemm, bn], [("x", [3, 7])], [("y", [3, 5])], [weight("w", *shape), weight("c", 5), *inits]
    )
    outcome = apply(model, "cmsis-nn", "fold-batchnorm")
    assert ops(outcome.model) == ["Gemm"]
    assert max_error(model, outcome.model) < 1e-4


def test_fold_batchnorm_leaves_shared_conv_output_alone():
    """A Conv output read by BatchNorm and by something else cannot absorb the BatchNorm."""
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv")
    bn, inits = _bn("bn", "c", "n", 4)
    add = helper.make_node("Add", ["n", "c"], ["y"], name="add")
    model = model_of(
        [conv, bn, add],
        [("x", [1, 4, 4, 4])],
        [("y", [1, 4, 4, 4])],
        [weight("w", 4, 4, 1, 1), *inits],
    )
    outcome = apply(model, "cmsis-nn", "fold-batchnorm")
    assert not outcome.changed
    assert "BatchNormalization" in ops(outcome.model)


def test_fold_batchnorm_runs_by_default_only_where_the_target_flags_batchnorm():
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv")
    bn, inits = _bn("bn", "c", "y", 4)
    model = model_of(
        [conv, bn], [("x", [1, 4, 4, 4])], [("y", [1, 4, 4, 4])], [weight("w", 4, 4, 1, 1), *inits]
    )
    flagged = fix_model(model, load_target("intel-gna"))  # GNA lists no BatchNormalization
    assert "fold-batchnorm" in [s.pass_.name for s in flagged.steps]
    assert "BatchNormalization" in {f.op_type for f in flagged.before.findings}
    assert "BatchNormalization" not in {f.op_type for f in flagged.after.findings}
    native = fix_model(model, load_target("cmsis-nn"))  # has BatchNormalization: nothing to do
    assert native.steps == []


def test_make_static_pins_batch_and_resolves_the_dynamic_shape_finding():
    path = FIXTURES / "dynamic_batch.onnx"
    model = onnx.load(str(path))
    target = load_target("rk3588")
    assert any(f.rule == "PL201" for f in check_in_memory(model, target).findings)
    outcome = apply(model, "rk3588", "make-static")
    dims = outcome.model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 64, 64]
    out_dims = outcome.model.graph.output[0].type.tensor_type.shape.dim
    assert all(d.HasField("dim_value") for d in out_dims)
    assert not [f for f in outcome.after.findings if f.rule in ("PL201", "PL202")]
    assert max_error(model, outcome.model, {"input": [1, 3, 64, 64]}) == 0.0


def test_make_static_needs_input_shape_for_non_batch_dims():
    relu = helper.make_node("Relu", ["x"], ["y"], name="relu")
    model = model_of([relu], [("x", ["n", 3, "h", "w"])], [("y", ["n", 3, "h", "w"])])
    outcome = apply(model, "rk3588", "make-static")
    assert not outcome.changed
    assert "--input-shape x:" in outcome.steps[0].result.skipped[0]
    pinned = apply(model, "rk3588", "make-static", input_shapes={"x": [1, 3, 32, 48]})
    dims = pinned.model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 32, 48]


def test_simplify_folds_shape_arithmetic():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "i"], ["c"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["c", "a"], ["cu"], name="unsq"),
        helper.make_node("Concat", ["one", "cu", "minus"], ["target"], name="cat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
    ]
    inits = [
        onnx.numpy_helper.from_array(np.array(1, np.int64), "i"),
        onnx.numpy_helper.from_array(np.array([0], np.int64), "a"),
        onnx.numpy_helper.from_array(np.array([1], np.int64), "one"),
        onnx.numpy_helper.from_array(np.array([-1], np.int64), "minus"),
    ]
    model = model_of(nodes, [("x", [1, 4, 3, 3])], [("y", [1, 4, 9])], inits)
    outcome = fix_model(model, load_target("rk3588"))
    assert [s.pass_.name for s in outcome.steps] == ["simplify"]
    assert ops(outcome.model) == ["Reshape"]
    assert max_error(model, outcome.model) == 0.0


def test_decompose_hardswish_on_the_mobilenet_fixture_for_ax620a():
    model = onnx.load(str(FIXTURES / "mobilenetv3_small.onnx"))
    outcome = apply(model, "ax620a", "decompose")
    assert "HardSwish" not in ops(outcome.model)
    assert not [f for f in outcome.after.findings if f.op_type == "HardSwish"]
    assert max_error(model, outcome.model) < 1e-5


def test_decompose_layer_norm_for_an_older_toolchain():
    """RKNN-Toolkit2 1.6 lacks LayerNormalization but has ReduceMean, Sqrt, Div..."""
    ln = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], name="ln", epsilon=1e-5)
    model = model_of(
        [ln], [("x", [1, 6, 16])], [("y", [1, 6, 16])], [positive("s", 16), weight("b", 16)]
    )
    flagged = {f.op_type for f in check_in_memory(model, load_target("rk3588@1.6")).findings}
    assert "LayerNormalization" in flagged
    outcome = apply(model, "rk3588@1.6", "decompose")
    assert "LayerNormalization" not in ops(outcome.model)
    assert not outcome.after.findings
    assert max_error(model, outcome.model) < 1e-5


LACKS = """
portlint_profile: 1
extends: rk3588
name: lacks
display_name: RK3588 without Gemm, with Erf
toolchain: {name: RKNN-Toolkit2, version: "test"}
sources:
  lab: {title: Lab notes, url: "https://example.invalid/lab", version: "1"}
remove_ops: [Gemm]
ops:
  - {source: lab, names: [Erf]}
"""


def _lacks(tmp_path) -> str:
    path = tmp_path / "lacks.yaml"
    path.write_text(LACKS)
    return str(path)


def test_decompose_gelu_into_its_erf_form_where_the_target_has_erf(tmp_path):
    gelu = helper.make_node("Gelu", ["x"], ["y"], name="gelu")
    tanh = helper.make_node("Gelu", ["x"], ["z"], name="gelu_tanh", approximate="tanh")
    model = model_of(
        [gelu, tanh], [("x", [1, 8, 16])], [("y", [1, 8, 16]), ("z", [1, 8, 16])], opset=20
    )
    outcome = apply(model, _lacks(tmp_path), "decompose")
    assert ops(outcome.model).count("Erf") == 1
    assert "'gelu_tanh': Gelu with these attributes has no decomposition" in (
        outcome.steps[0].result.skipped
    )
    assert max_error(model, outcome.model) < 1e-5


@pytest.mark.parametrize(
    ("bias_shape", "converted"), [((5,), True), ((1, 5), True), ((2, 1), False), ((2, 5), False)]
)
def test_decompose_gemm_as_conv_only_with_a_per_channel_bias(tmp_path, bias_shape, converted):
    gemm = helper.make_node(
        "Gemm", ["x", "w", "c"], ["y"], name="fc", transB=1, alpha=0.7, beta=1.5
    )
    model = model_of(
        [gemm], [("x", [2, 12])], [("y", [2, 5])], [weight("w", 5, 12), weight("c", *bias_shape)]
    )
    outcome = apply(model, _lacks(tmp_path), "decompose")
    assert ops(outcome.model) == (["Reshape", "Conv", "Reshape"] if converted else ["Gemm"])
    assert max_error(model, outcome.model) < 1e-5


def test_silu_passes_are_approximate_and_report_the_deviation():
    model = onnx.load(str(FIXTURES / "yolov8n.onnx"))
    for name in ("silu-to-relu", "silu-to-hardswish"):
        assert PASSES[name].semantics is Semantics.APPROXIMATE
    relu = apply(model, "rk3588", "silu-to-relu")
    hard = apply(model, "rk3588", "silu-to-hardswish")
    assert "Sigmoid" in ops(model) and ops(relu.model).count("Relu") > 50
    assert "retrain" in relu.steps[0].result.changes[0]
    assert ops(hard.model).count("HardSwish") == ops(relu.model).count("Relu")
    cos_relu = min(d.cosine for d in relu.steps[0].deviations)
    cos_hard = min(d.cosine for d in hard.steps[0].deviations)
    assert cos_relu < 1.0 and cos_hard < 1.0
    assert cos_hard > cos_relu  # HardSwish is the closer substitute


def test_approximate_passes_never_run_unasked():
    model = onnx.load(str(FIXTURES / "yolov8n.onnx"))
    outcome = fix_model(model, load_target("hailo8"))
    assert all(s.pass_.semantics is Semantics.EXACT for s in outcome.steps)


def test_silu_as_a_local_function_op_is_recognised():
    """Exporters that keep SiLU as a function (op 'SiLU' in a custom domain) are rewritten too."""
    silu = onnx.parser.parse_function(
        """
        <domain: "custom", opset_import: ["": 17]>
        SiLU (x) => (y) {
            s = Sigmoid(x)
            y = Mul(x, s)
        }
        """
    )
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("SiLU", ["c"], ["y"], name="act", domain="custom"),
    ]
    model = model_of(nodes, [("x", [1, 3, 8, 8])], [("y", [1, 4, 8, 8])], [weight("w", 4, 3, 1, 1)])
    model.opset_import.add(domain="custom", version=1)
    model.functions.append(silu)
    outcome = apply(model, "rk3588", "silu-to-relu")
    assert ops(outcome.model) == ["Conv", "Relu"]
    assert outcome.steps[0].deviations[0].max_abs > 0  # measured, not assumed


def test_simplify_skips_models_beyond_the_protobuf_limit(monkeypatch):
    from portlint.passes import simplify

    monkeypatch.setattr(simplify, "PROTOBUF_LIMIT", 10)
    model = onnx.load(str(FIXTURES / "dynamic_batch.onnx"))
    outcome = apply(model, "rk3588", "simplify")
    assert not outcome.changed
    assert "2 GB protobuf limit" in outcome.steps[0].result.skipped[0]


def test_simplify_bypasses_identities_and_keeps_the_interface():
    """Identity and Dropout go; the node before a graph output takes the output's name; an
    Identity from a graph input to a graph output stays (nothing else can write it)."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Identity", ["c"], ["d"], name="mid"),
        helper.make_node("Relu", ["d"], ["r"], name="relu"),
        helper.make_node("Dropout", ["r"], ["y"], name="noise"),
        helper.make_node("Identity", ["x"], ["z"], name="passthrough"),
    ]
    model = model_of(
        nodes,
        [("x", [1, 3, 8, 8])],
        [("y", [1, 4, 8, 8]), ("z", [1, 3, 8, 8])],
        [weight("w", 4, 3, 1, 1)],
    )
    outcome = fix_model(model, load_target("hailo8"))
    assert [s.pass_.name for s in outcome.steps] == ["simplify"]
    assert [(n.op_type, list(n.input), list(n.output)) for n in outcome.model.graph.node] == [
        ("Conv", ["x", "w"], ["c"]),
        ("Identity", ["x"], ["z"]),
        ("Relu", ["c"], ["y"]),
    ]
    assert [o.name for o in outcome.model.graph.output] == ["y", "z"]
    assert max_error(model, outcome.model) == 0.0


def test_simplify_folds_without_rewriting_matmul_add_into_gemm():
    """onnxsim's default turns MatMul+Add on 3-D tensors into Reshape -> Gemm -> Reshape;
    rknn-toolkit2 2.5.0 ran such Reshapes on the CPU. simplify only folds."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Reshape", ["x", "s"], ["same"], name="reshape"),
        helper.make_node("MatMul", ["same", "w"], ["m"], name="matmul"),
        helper.make_node("Add", ["m", "b"], ["y"], name="add"),
    ]
    model = model_of(
        nodes, [("x", [1, 10, 8])], [("y", [1, 10, 16])], [weight("w", 8, 16), weight("b", 16)]
    )
    outcome = fix_model(model, load_target("rk3588"))
    assert ops(outcome.model) == ["Reshape", "MatMul", "Add"]
    assert max_error(model, outcome.model) == 0.0

"""Properties over random graphs: check never crashes and is deterministic, every exact pass
keeps the outputs, and fix is idempotent.

The graphs come from ``strategies.graphs``. Every test is derandomized (CI sees the same
examples on every run) and sized so that the file runs in about a minute;
``PORTLINT_PROPERTY_SCALE=10 pytest tests/test_properties.py`` runs ten times as many.
"""

from __future__ import annotations

import os
from functools import cache

import onnx
import onnx.printer
import pytest
from conftest import parse
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from strategies import graphs, ops_of

from portlint.errors import PortlintError
from portlint.fixer import FixRequest, fix_model
from portlint.in_memory import check_in_memory
from portlint.numerics import SEED, compare, random_inputs, run
from portlint.passes.base import Semantics
from portlint.passes.registry import PASSES
from portlint.target import Target, load_target, shipped_target_names

SCALE = float(os.environ.get("PORTLINT_PROPERTY_SCALE", "1"))
CHECK_TARGETS = ("rk3588", "hailo8", "intel-gna", "nnom", "edgetpu")
COVERED = """
    Conv ConvTranspose BatchNormalization Relu LeakyRelu Sigmoid HardSwish HardSigmoid Clip Tanh
    Elu PRelu Gelu Add Mul Sub Div Max Min Concat MaxPool AveragePool GlobalAveragePool
    GlobalMaxPool Resize Reshape Flatten Gemm Softmax LayerNormalization Pad Slice Split Identity
    Dropout Constant
"""
"""The ops the strategy must draw (SiLU is Sigmoid and Mul)."""
FRESH_SEED = SEED + 1  # not the inputs fix proves with: an independent second opinion


def examples(count: int) -> settings:
    return settings(
        max_examples=max(1, round(count * SCALE)),
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@cache
def target(name: str) -> Target:
    return load_target(name)


def describe(model: onnx.ModelProto) -> str:
    """The model as ONNX text, large weights left out (hypothesis prints it on failure)."""
    shown = onnx.ModelProto()
    shown.CopyFrom(model)
    tensors = list(shown.graph.initializer)
    tensors += [a.t for n in shown.graph.node for a in n.attribute if a.HasField("t")]
    for tensor in tensors:
        if onnx.numpy_helper.to_array(tensor).size > 8:
            for name in ("raw_data", "float_data", "int64_data"):
                tensor.ClearField(name)
    return onnx.printer.to_text(shown)


def outputs_equal(model: onnx.ModelProto, other: onnx.ModelProto) -> None:
    """Same outputs (names, shapes and values within the exact tolerance) on fresh inputs."""
    feeds = random_inputs(model, seed=FRESH_SEED)
    expected, got = run(model, feeds), run(other, feeds)
    assert sorted(got) == sorted(expected)
    for deviation in compare(expected, got):
        assert deviation.within(), deviation.describe()


def interface(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    return [*model.graph.input, *model.graph.output]


ANY_GRAPH = st.one_of(graphs(dynamic_batch=None), graphs(opset=20, focus=("gelu",)))


@examples(100)
@given(ANY_GRAPH)
def test_generated_models_are_valid(model):
    """The strategy's promise, which every other property relies on."""
    note(describe(model))
    onnx.checker.check_model(model, full_check=True)
    run(model, random_inputs(model))


def test_strategy_draws_the_ops_the_profiles_know():
    """Every op the properties are meant to cover shows up, and only ops some profile lists."""
    seen: set[str] = set()

    @examples(300)
    @given(ANY_GRAPH)
    def collect(model):
        seen.update(ops_of(model))

    collect()
    known = set().union(*(load_target(name).ops for name in shipped_target_names()))
    assert seen <= known
    assert seen >= set(COVERED.split()), sorted(set(COVERED.split()) - seen)


def _check(model: onnx.ModelProto, name: str) -> list[tuple] | str:
    try:
        report = check_in_memory(model, target(name))
    except PortlintError as exc:  # a clear message is allowed; anything else is a bug
        return f"error: {exc}"
    return [(f.rule, f.location, f.message) for f in report.findings]


@examples(250)
@given(ANY_GRAPH)
def test_check_never_crashes_and_is_deterministic(model):
    """The same findings twice and on a fresh copy, no error but a PortlintError, and the
    model left as it was."""
    note(describe(model))
    serialized = model.SerializeToString()
    for name in CHECK_TARGETS:
        first = _check(model, name)
        assert _check(model, name) == first, name
        assert _check(onnx.load_from_string(serialized), name) == first, name
    assert model.SerializeToString() == serialized, "check modified the model"


EXACT_CASES = [
    ("make-static", "rk3588", {"dynamic_batch": True}),
    ("simplify", "hailo8", {"focus": ("identity", "with_constant", "conv_batchnorm")}),
    ("decompose", "nnom", {"focus": ("hard_swish",)}),
    ("decompose", "ax620a", {"focus": ("hard_swish",)}),
    ("decompose", "rk3588@1.6", {"focus": ("layer_norm",)}),
    ("decompose", "rk3588@1.6", {"focus": ("layer_norm",), "opset": 20}),
    ("fold-batchnorm", "intel-gna", {"focus": ("conv_batchnorm",)}),
    ("pad-channels", "intel-gna", {"focus": ("conv",)}),
    ("pad-channels", "ax620a", {"focus": ("conv", "concat", "with_branch")}),
    ("pad-channels", "nnom", {"focus": ("conv", "pad", "slice", "split")}),
]


def test_exact_cases_cover_every_exact_pass():
    exact = {name for name, item in PASSES.items() if item.semantics is Semantics.EXACT}
    assert {name for name, _, _ in EXACT_CASES} == exact


@pytest.mark.parametrize(
    ("pass_name", "target_name", "shape"),
    EXACT_CASES,
    ids=[f"{p}-{t}-{s.get('opset', 17)}" for p, t, s in EXACT_CASES],
)
@examples(75)
@given(data=st.data())
def test_exact_pass_keeps_outputs(pass_name, target_name, shape, data):
    """Named alone, the pass raises nothing (a FixError is a broken promise) and returns a
    valid model with the same IR version, opsets, interface and outputs (on fresh inputs)."""
    model = data.draw(graphs(**shape), label="model")
    note(describe(model))
    before = model.SerializeToString()
    outcome = fix_model(model, target(target_name), FixRequest((pass_name,)))
    assert model.SerializeToString() == before, "fix modified its input model"
    (step,) = outcome.steps
    event(f"{pass_name} changed the model: {step.changed}")
    if not step.changed:
        return
    note(describe(outcome.model))
    onnx.checker.check_model(outcome.model, full_check=True)
    assert outcome.model.ir_version == model.ir_version
    assert list(outcome.model.opset_import) == list(model.opset_import)
    if pass_name != "make-static":  # the one exact pass that pins (dynamic) interface dims
        assert interface(outcome.model) == interface(model)
    outputs_equal(model, outcome.model)


IDEMPOTENT_TARGETS = ("intel-gna", "nnom", "ax620a", "rk3588@1.6", "hailo8", "edgetpu")


@examples(150)
@given(
    model=graphs(dynamic_batch=None, focus=("conv_batchnorm", "hard_swish", "layer_norm")),
    target_name=st.sampled_from(IDEMPOTENT_TARGETS),
)
def test_fix_is_idempotent(model, target_name):
    """``fix`` (default plan, and with unsafe fixes) changes nothing in its own output."""
    note(describe(model))
    for unsafe in (False, True):
        request = FixRequest(unsafe=unsafe)
        first = fix_model(model, target(target_name), request)
        event(f"unsafe={unsafe}: {sum(s.changed for s in first.steps)} pass(es) changed the model")
        again = fix_model(first.model, target(target_name), request)
        changed = [(s.pass_.name, s.result.changes) for s in again.steps if s.changed]
        assert not changed, f"unsafe={unsafe}: fix changed its own output"
        assert again.model.SerializeToString() == first.model.SerializeToString()


# Regressions the properties found, shrunk to what they are about.


KEPT_IDENTITY = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,1,2,2] x) => (float[1,1,2,2] y, float[1,1,2,2] i) {
        i = Identity(x)
        h = Sigmoid(i)
        y = Relu(h)
    }"""
KEPT_CONSTANT_NODES = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,1,1,1] x) => (float[1,1,1,1] i, float[1,1,1,1] n) {
        s = Constant<value = float[1] s {1.25}>()
        b = Constant<value = float[1] b {-0.0625}>()
        m = Constant<value = float[1] m {0.375}>()
        v = Constant<value = float[1] v {0.5}>()
        n = BatchNormalization(x, s, b, m, v)
        i = Identity(n)
    }"""


@pytest.mark.parametrize("text", [KEPT_IDENTITY, KEPT_CONSTANT_NODES])
def test_simplify_reports_no_change_when_onnxsim_only_annotates_or_reorders(text):
    """onnxsim adds value_info and may reorder nodes even when it removes nothing (here it
    keeps an Identity into a graph output); simplify called that "3 -> 3 nodes", and since
    the Identity stays, every ``fix`` of its own output changed it again."""
    model = parse(text)
    outcome = fix_model(model, target("hailo8"), FixRequest(("simplify",)))
    assert not outcome.steps[0].changed


def test_fix_leaves_no_equal_constants_for_simplify_to_merge():
    """pad-channels slices a 1-channel output back with ends [1] and axes [1]: two equal
    initializers, which simplify merged when ``fix`` ran on its own output (it runs there
    because onnxsim cannot remove the Identity from the graph input to an output)."""
    model = parse(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[1,1,2,2] x) => (float[1,1,2,2] y, float[1,1,2,2] i)
        <float[1,1,1,1] w = {0.5}> {
            i = Identity(x)
            y = Conv<kernel_shape = [1, 1]>(i, w)
        }"""
    )
    first = fix_model(model, target("intel-gna"))
    assert [s.pass_.name for s in first.steps if s.changed] == ["pad-channels"]
    values = [onnx.numpy_helper.to_array(t) for t in first.model.graph.initializer]
    keys = [(v.dtype.str, v.shape, v.tobytes()) for v in values]
    assert len(set(keys)) == len(keys)
    again = fix_model(first.model, target("intel-gna"))
    assert not any(step.changed for step in again.steps)
    assert again.model.SerializeToString() == first.model.SerializeToString()


def test_fold_batchnorm_folds_consecutive_batchnorms_in_one_run():
    """fold-batchnorm judged every BN against the graph as it was, so of Conv -> BN -> BN it
    folded the first BN only; the second folded when ``fix`` ran on its own output."""
    model = parse(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[1,2,3,3] x) => (float[1,2,3,3] y)
        <float[2,2,1,1] w = {0.5, -1.0, 0.25, 2.0}, float[2] s = {0.75, 1.5},
         float[2] b = {0.25, -0.5}, float[2] m = {0.125, 0.5}, float[2] v = {1.5, 0.5}> {
            c = Conv<kernel_shape = [1, 1]>(x, w)
            n = BatchNormalization(c, s, b, m, v)
            y = BatchNormalization(n, s, b, m, v)
        }"""
    )
    outcome = fix_model(model, target("intel-gna"), FixRequest(("fold-batchnorm",)))
    assert [node.op_type for node in outcome.model.graph.node] == ["Conv"]
    assert len(outcome.steps[0].result.changes) == 2
    outputs_equal(model, outcome.model)

"""pad-channels is exact, clears PL220 output-channel findings, and is idempotent.

Every model here is run in onnxruntime (optimizations off) before and after the pass on the
same seeded inputs; padding may only move outputs by float rounding.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import yaml
from conftest import FIXTURES, MINI_PROFILE
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from portlint import numerics
from portlint.in_memory import check_in_memory
from portlint.passes.base import PassContext, PassResult
from portlint.passes.registry import get_pass
from portlint.target import Target, load_target

IR_VERSION = 8
OPSET = 17
PROFILE = MINI_PROFILE


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Target:
    """A profile whose only limit is Conv output channels multiple of 4."""
    path = tmp_path_factory.mktemp("profile") / "mini.yaml"
    path.write_text(yaml.safe_dump(PROFILE))
    return load_target(str(path))


@pytest.fixture(scope="module")
def mini_in(tmp_path_factory: pytest.TempPathFactory) -> Target:
    """The mini profile plus Conv input channels multiple of 8."""
    data = yaml.safe_load(yaml.safe_dump(PROFILE))
    data["constraints"].append(
        {
            **data["constraints"][0],
            "id": "conv-in-channels",
            "field": "in_channels",
            "multiple_of": 8,
        }
    )
    path = tmp_path_factory.mktemp("profile") / "mini-in.yaml"
    path.write_text(yaml.safe_dump({**data, "name": "mini-in"}))
    return load_target(str(path))


@pytest.fixture(scope="module")
def gna() -> Target:
    return load_target("intel-gna")


# -- building models ---------------------------------------------------------------------------


class Builder:
    """Nodes and seeded random initializers for one small float model."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def init(self, name: str, value: np.ndarray, dtype: type = np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value).astype(dtype), name))
        return name

    def random(self, name: str, *shape: int, low: float = -0.5, high: float = 0.5) -> str:
        return self.init(name, self.rng.uniform(low, high, shape))

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [f"{name}_out"], name=name, **attrs))
        return f"{name}_out"

    def conv(
        self, x: str, c_in: int, c_out: int, name: str, k: int = 3, group: int = 1, **attrs
    ) -> str:
        w = self.random(f"{name}.w", c_out, c_in // group, k, k)
        b = self.random(f"{name}.b", c_out)
        pads = [k // 2] * 4
        return self.node("Conv", [x, w, b], name, group=group, pads=pads, **attrs)

    def model(self, inputs: dict[str, list[int]], outputs: dict[str, list[int]]):
        graph = helper.make_graph(
            self.nodes,
            "g",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        return model


def rename_output(b: Builder, last: str, name: str = "y") -> None:
    """Make ``last`` (the newest node's output) the graph output ``name``."""
    assert b.nodes[-1].output[0] == last
    b.nodes[-1].output[0] = name


# -- proving a run -----------------------------------------------------------------------------


def out_channel_findings(model: onnx.ModelProto, target: Target) -> dict[str, str]:
    return {
        f.location: f.message
        for f in check_in_memory(model, target).findings
        if f.rule == "PL220" and "output channels" in f.message
    }


def interface(model: onnx.ModelProto) -> list[tuple[str, str]]:
    return [(v.name, str(v.type)) for v in [*model.graph.input, *model.graph.output]]


def prove(model: onnx.ModelProto, target: Target) -> PassResult:
    """Run the pass and check everything it promises; return its result for more asserts."""
    before = onnx.ModelProto()
    before.CopyFrom(model)
    result = get_pass("pad-channels").run(PassContext(model, target))
    out = result.model
    assert model == before, "the pass must not modify the model it was given"
    onnx.checker.check_model(out, full_check=True)
    assert out.ir_version == model.ir_version
    assert list(out.opset_import) == list(model.opset_import)
    assert interface(out) == interface(model)
    remaining = {f.location for f in check_in_memory(out, target).findings if f.rule == "PL220"}
    explained = {line.split('"')[1] for line in result.skipped}
    assert remaining <= explained, (remaining, result.skipped)
    padded = {line.split('"')[1] for line in result.changes if "output channels" in line}
    assert not padded & set(out_channel_findings(out, target)), result.changes
    feeds = numerics.random_inputs(model)
    for deviation in numerics.compare(numerics.run(model, feeds), numerics.run(out, feeds)):
        assert deviation.within(), deviation.describe()
    again = get_pass("pad-channels").run(PassContext(out, target))
    assert again.changes == []
    assert again.model.SerializeToString() == out.SerializeToString()
    return result


def producer_op(model: onnx.ModelProto, tensor: str) -> str | None:
    return next((n.op_type for n in model.graph.node if tensor in n.output), None)


def node_named(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


# -- hand-written graphs -----------------------------------------------------------------------

X = {"x": [1, 3, 16, 16]}


def conv_relu_conv() -> onnx.ModelProto:
    b = Builder(1)
    h = b.node("Relu", [b.conv("x", 3, 30, "conv1")], "relu")
    rename_output(b, b.conv(h, 30, 16, "conv2"))
    return b.model(X, {"y": [1, 16, 16, 16]})


def conv_bn_silu_conv() -> onnx.ModelProto:
    b = Builder(2)
    c = b.conv("x", 3, 30, "conv1")
    stats = [
        b.random("bn.g", 30, low=0.5, high=1.5),
        b.random("bn.b", 30),
        b.random("bn.m", 30),
        b.random("bn.v", 30, low=0.5, high=1.5),
    ]
    n = b.node("BatchNormalization", [c, *stats], "bn", epsilon=1e-3)
    s = b.node("Mul", [n, b.node("Sigmoid", [n], "sigmoid")], "silu")
    rename_output(b, b.conv(s, 30, 8, "conv2"))
    return b.model(X, {"y": [1, 8, 16, 16]})


def concat_of_padded() -> onnx.ModelProto:
    """The Sigmoid turns the padding into 0.5s: the next Conv must read them with zeros."""
    b = Builder(3)
    left = b.node("Sigmoid", [b.conv("x", 3, 30, "left")], "sigmoid")
    right = b.conv("x", 3, 13, "right", k=1)
    cat = b.node("Concat", [left, right], "cat", axis=1)
    rename_output(b, b.conv(cat, 43, 12, "merge"))
    return b.model(X, {"y": [1, 12, 16, 16]})


def depthwise_chain() -> onnx.ModelProto:
    b = Builder(4)
    c = b.node("Relu", [b.conv("x", 3, 30, "conv1")], "relu")
    low, high = b.init("low", np.array(0.0)), b.init("high", np.array(6.0))
    d = b.node("Clip", [b.conv(c, 30, 30, "dw", group=30), low, high], "relu6")
    e = b.conv(d, 30, 60, "dw2", group=30)  # channel multiplier 2
    rename_output(b, b.conv(e, 60, 8, "project", k=1))
    return b.model(X, {"y": [1, 8, 16, 16]})


def residual_add() -> onnx.ModelProto:
    b = Builder(5)
    c1 = b.node("Relu", [b.conv("x", 3, 30, "conv1")], "relu1")
    c2 = b.conv(c1, 30, 30, "conv2")
    s = b.node("Add", [c1, c2], "add")
    rename_output(b, b.conv(s, 30, 8, "conv3"))
    return b.model(X, {"y": [1, 8, 16, 16]})


def conv_to_output() -> onnx.ModelProto:
    """conv1 is a graph output and feeds conv2: conv2 still gets the padded tensor."""
    b = Builder(6)
    b.nodes.append(
        helper.make_node("Conv", ["x", b.random("w1", 30, 3, 1, 1)], ["y"], name="conv1")
    )
    rename_output(b, b.conv("y", 30, 8, "conv2"), "z")
    return b.model(X, {"y": [1, 30, 16, 16], "z": [1, 8, 16, 16]})


def flatten_gemm() -> onnx.ModelProto:
    b = Builder(7)
    p = b.node("GlobalAveragePool", [b.conv("x", 3, 30, "conv1")], "gap")
    f = b.node("Flatten", [p], "flatten", axis=1)
    rename_output(b, b.node("Gemm", [f, b.random("fc.w", 30, 5), b.random("fc.b", 5)], "fc"))
    return b.model(X, {"y": [1, 5]})


def grouped_to_flatten() -> onnx.ModelProto:
    """A grouped Conv grows each group, so its real channels are not a prefix: Gather."""
    b = Builder(8)
    c = b.conv("x", 3, 12, "conv1")
    g = b.node("Relu", [b.conv(c, 12, 45, "grouped", group=3)], "relu")
    rename_output(b, b.node("Flatten", [g], "flatten", axis=1))
    return b.model(X, {"y": [1, 45 * 16 * 16]})


def layout_ops() -> onnx.ModelProto:
    """MaxPool, Resize (sizes), Pad, broadcast constants, PRelu, Split, Slice and Concat on
    the spatial axes carry the padding."""
    b = Builder(9)
    c = b.conv("x", 3, 30, "conv1")
    p = b.node("MaxPool", [c], "pool", kernel_shape=[2, 2], strides=[2, 2])
    b.init("sizes", np.array([1, 30, 16, 16]), np.int64)
    r = b.node("Resize", [p, "", "", "sizes"], "resize", mode="nearest")
    b.init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1]), np.int64)
    q = b.node("Pad", [r, "pads"], "pad")
    a = b.node("Add", [q, b.random("shift", 30, 1, 1)], "add")
    m = b.node("Mul", [b.random("scale", 1), a], "mul")
    d = b.node("Div", [m, b.random("div", 1, 30, 1, 1, low=0.5, high=2.0)], "div")
    e = b.node("PRelu", [d, b.random("slope", 30, 1, 1)], "prelu")
    b.nodes.append(helper.make_node("Split", [e], ["top", "bottom"], name="split", axis=2))
    s = b.node("Sub", ["top", "bottom"], "sub")
    for name, value in (("starts", [0]), ("ends", [4]), ("axes", [3])):
        b.init(name, np.array(value), np.int64)
    t = b.node("Slice", [s, "starts", "ends", "axes"], "slice")
    cat = b.node("Concat", [s, t], "cat", axis=3)
    rename_output(b, b.conv(cat, 30, 8, "conv2"))
    return b.model(X, {"y": [1, 8, 9, 22]})


def disagreeing_operands() -> onnx.ModelProto:
    """Ops that would read or move the padding get the real channels: a Mul of two padded
    tensors of different widths, an Add with an unpadded graph input, a Div by a padded
    tensor, a Pad and a Split of the channels, and a MaxPool whose indices are used."""
    b = Builder(10)
    c = b.conv("x", 3, 30, "conv1")
    m = b.node("Mul", [c, b.conv("x", 3, 1, "gate")], "mul")
    b.node("Add", [m, "z"], "add")
    d = b.node("Div", [c, b.conv("x", 3, 30, "conv2")], "div")
    b.init("pads", np.array([0, 1, 0, 0, 0, 1, 0, 0]), np.int64)
    p = b.node("Pad", [b.conv(d, 30, 30, "conv3"), "pads"], "pad")
    pool = helper.make_node("MaxPool", [c], ["pooled", "i"], name="pool", kernel_shape=[1, 1])
    split = helper.make_node("Split", [c], ["s1", "s2"], name="split", axis=1, num_outputs=2)
    b.nodes += [pool, split]
    rename_output(b, b.conv(p, 32, 8, "conv4"))
    outputs = {"y": [1, 8, 16, 16], "s1": [1, 15, 16, 16], "i": [1, 30, 16, 16]}
    outputs["add_out"] = [1, 30, 16, 16]
    model = b.model({**X, "z": [1, 30, 16, 16]}, outputs)
    model.graph.output[2].type.tensor_type.elem_type = TensorProto.INT64
    model.opset_import[0].version = 18  # Split's num_outputs
    return model


GRAPHS = {
    "conv-relu-conv": conv_relu_conv,
    "conv-bn-silu-conv": conv_bn_silu_conv,
    "concat": concat_of_padded,
    "depthwise": depthwise_chain,
    "residual-add": residual_add,
    "graph-output": conv_to_output,
    "flatten-gemm": flatten_gemm,
    "grouped-gather": grouped_to_flatten,
    "layout-ops": layout_ops,
    "disagreeing-operands": disagreeing_operands,
}


@pytest.mark.parametrize("name", list(GRAPHS))
@pytest.mark.parametrize("profile", ["mini", "gna"])
def test_hand_written_graphs(name: str, profile: str, request: pytest.FixtureRequest) -> None:
    target = request.getfixturevalue(profile)
    model = GRAPHS[name]()
    assert out_channel_findings(model, target), "the graph must start off the multiple"
    result = prove(model, target)
    assert result.changes
    assert out_channel_findings(result.model, target) == {}


def test_padding_flows_into_the_next_conv(mini: Target) -> None:
    result = prove(conv_relu_conv(), mini)
    assert result.changes[:2] == [
        '"conv1": output channels 30 -> 32 (2 zero filters)',
        '"conv2": input channels 30 -> 32',
    ]
    relu = node_named(result.model, "relu")
    assert producer_op(result.model, relu.input[0]) == "Conv"  # nothing sliced in between


def test_concat_masks_and_residual_share_width(mini: Target) -> None:
    result = prove(concat_of_padded(), mini)
    assert '"merge": input channels 43 -> 48' in result.changes
    result = prove(residual_add(), mini)
    add = node_named(result.model, "add")
    assert [producer_op(result.model, t) for t in add.input] == ["Relu", "Conv"]
    assert '"conv3": input channels 30 -> 32' in result.changes


def test_operands_of_an_add_pad_alike(mini_in: Target) -> None:
    """conv1 must reach 32 for conv3's input; conv2 alone would stop at 28, and the Add
    between them needs both at the same width."""
    b = Builder(13)
    c1 = b.conv("x", 3, 26, "conv1")
    b.nodes.append(helper.make_node("Add", [c1, b.conv("x", 3, 26, "conv2")], ["y"], name="add"))
    rename_output(b, b.conv(c1, 26, 8, "conv3"), "z")
    result = prove(b.model(X, {"y": [1, 26, 16, 16], "z": [1, 8, 16, 16]}), mini_in)
    assert result.changes[:2] == [
        '"conv1": output channels 26 -> 32 (6 zero filters)',
        '"conv2": output channels 26 -> 32 (6 zero filters)',
    ]
    assert [producer_op(result.model, t) for t in node_named(result.model, "add").input] == [
        "Conv",
        "Conv",
    ]


def test_depthwise_grows_its_groups(mini: Target) -> None:
    result = prove(depthwise_chain(), mini)
    assert {a.name: a.i for a in node_named(result.model, "dw").attribute}["group"] == 32
    assert {a.name: a.i for a in node_named(result.model, "dw2").attribute}["group"] == 32
    assert '"project": input channels 60 -> 64' in result.changes
    assert not [n for n in result.model.graph.node if n.op_type in ("Slice", "Gather")]


def test_graph_output_is_sliced_back_under_its_own_name(mini: Target) -> None:
    result = prove(conv_to_output(), mini)
    assert producer_op(result.model, "y") == "Slice"
    assert '"conv2": input channels 30 -> 32' in result.changes
    assert producer_op(result.model, node_named(result.model, "conv2").input[0]) == "Conv"


def test_slice_before_flatten_and_gather_for_grouped(mini: Target) -> None:
    result = prove(flatten_gemm(), mini)
    flatten = node_named(result.model, "flatten")
    assert producer_op(result.model, flatten.input[0]) == "Slice"
    result = prove(grouped_to_flatten(), mini)
    assert '"grouped": output channels 45 -> 48 (3 zero filters)' in result.changes
    flatten = node_named(result.model, "flatten")
    assert producer_op(result.model, flatten.input[0]) == "Gather"


def test_layout_ops_carry_the_padding(mini: Target) -> None:
    result = prove(layout_ops(), mini)
    assert '"conv2": input channels 30 -> 32' in result.changes
    cuts = [n.name for n in result.model.graph.node if n.op_type in ("Slice", "Gather")]
    assert cuts == ["slice"]  # the model's own Slice, on the width


def test_operands_that_disagree_are_sliced(mini: Target) -> None:
    result = prove(disagreeing_operands(), mini)
    readers = {name: node_named(result.model, name).input for name in ("mul", "add", "div")}
    readers |= {name: node_named(result.model, name).input[:1] for name in ("pad", "pool", "split")}
    producers = {k: [producer_op(result.model, t) for t in v] for k, v in readers.items()}
    assert producers == {
        "mul": ["Slice", "Slice"],  # 30 of 32 channels times 1 of 4
        "add": ["Mul", None],  # already real, and the graph input z
        "div": ["Slice", "Slice"],  # a padded divisor would divide by zero in the padding
        "pad": ["Slice"],  # Pad on the channel axis would put its zeros among the padding
        "pool": ["Slice"],  # the indices count channels
        "split": ["Slice"],
    }


def test_one_slice_shared_by_all_readers(mini: Target) -> None:
    b = Builder(10)
    c = b.conv("x", 3, 30, "conv1")
    b.nodes.append(helper.make_node("Softmax", [c], ["s"], name="softmax", axis=1))
    b.nodes.append(helper.make_node("ReduceMean", [c], ["m"], name="mean", keepdims=1))
    model = b.model(X, {"s": [1, 30, 16, 16], "m": [1, 1, 1, 1]})
    result = prove(model, mini)
    assert sum(n.op_type == "Slice" for n in result.model.graph.node) == 1


def test_conv_on_graph_input_and_opaque_weights_are_skipped(gna: Target) -> None:
    b = Builder(11)
    c = b.conv("x", 3, 30, "conv1")
    rename_output(b, b.node("Conv", [c, "w"], "dynamic", pads=[1, 1, 1, 1]))
    model = b.model({"x": [1, 3, 16, 16], "w": [13, 30, 3, 3]}, {"y": [1, 13, 16, 16]})
    result = prove(model, gna)
    assert any(line.startswith('"conv1": input channels 3') for line in result.skipped)
    assert any(
        line.startswith('"dynamic": its weights are not constants') for line in result.skipped
    )


def test_constant_node_weights(mini: Target) -> None:
    b = Builder(12)
    w = numpy_helper.from_array(b.rng.uniform(-1, 1, (30, 3, 1, 1)).astype(np.float32))
    b.nodes.append(helper.make_node("Constant", [], ["w"], value=w))
    c = b.node("Conv", ["x", "w"], "conv1")
    rename_output(b, b.node("Relu", [c], "relu"))
    result = prove(b.model(X, {"y": [1, 30, 16, 16]}), mini)
    assert result.changes[0] == '"conv1": output channels 30 -> 32 (2 zero filters)'


def test_wanted_counts_fixable_convs(mini: Target) -> None:
    pad = get_pass("pad-channels")
    assert pad.wanted(PassContext(concat_of_padded(), mini)) == (
        "2 Conv layers violate PL220 channel multiples"
    )
    fixed = pad.run(PassContext(concat_of_padded(), mini)).model
    assert pad.wanted(PassContext(fixed, mini)) is None


# -- the fixture -------------------------------------------------------------------------------


def test_odd_channels_fixture(gna: Target) -> None:
    model = onnx.load(str(FIXTURES / "odd_channels.onnx"))
    assert len(out_channel_findings(model, gna)) == 5
    result = prove(model, gna)
    assert out_channel_findings(result.model, gna) == {}
    left = [
        f.location
        for f in check_in_memory(result.model, gna).findings
        if f.rule == "PL220" and "input channels" in f.message
    ]
    assert "/stem/stem.0/Conv" in left
    assert all(any(line.startswith(f'"{name}"') for line in result.skipped) for name in left)


# -- random conv stacks ------------------------------------------------------------------------

SIZE = 16


@st.composite
def conv_stacks(draw: st.DrawFn) -> onnx.ModelProto:
    """1-4 Convs (regular, depthwise or grouped, with or without bias) with optional Relus."""
    b = Builder(draw(st.integers(0, 2**16)))
    first = channels = draw(st.integers(1, 64))
    x, size = "x", SIZE
    for layer in range(draw(st.integers(1, 4))):
        k = draw(st.sampled_from([1, 3, 5, 7]))
        stride = draw(st.integers(1, 3))
        same = draw(st.booleans()) or k > size
        kind = draw(st.sampled_from(["regular", "depthwise", "grouped"]))
        divisors = [g for g in range(2, channels) if channels % g == 0]
        if kind == "depthwise" and channels > 1:
            group, out = channels, channels * draw(st.integers(1, 2))
        elif kind == "grouped" and divisors:
            group = draw(st.sampled_from(divisors))
            out = group * draw(st.integers(1, max(1, 64 // group)))
        else:
            group, out = 1, draw(st.integers(1, 64))
        name = f"conv{layer}"
        inputs = [x, b.random(f"{name}.w", out, channels // group, k, k)]
        if draw(st.booleans()):
            inputs.append(b.random(f"{name}.b", out))
        pads = [k // 2] * 4 if same else [0] * 4
        x = b.node("Conv", inputs, name, group=group, pads=pads, strides=[stride, stride])
        size = (size + 2 * pads[0] - k) // stride + 1
        if draw(st.booleans()):
            x = b.node("Relu", [x], f"relu{layer}")
        channels = out
    rename_output(b, x)
    return b.model({"x": [1, first, SIZE, SIZE]}, {"y": [1, channels, size, size]})


PROPERTY = settings(max_examples=40, deadline=None, derandomize=True)


@PROPERTY
@given(model=conv_stacks())
def test_random_conv_stacks(mini: Target, model: onnx.ModelProto) -> None:
    prove(model, mini)


@PROPERTY
@given(model=conv_stacks())
def test_random_conv_stacks_on_intel_gna(gna: Target, model: onnx.ModelProto) -> None:
    """In- and out-channel multiples of 8 under conditions, plus out-channel multiples of 4."""
    prove(model, gna)


@st.composite
def conv_graphs(draw: st.DrawFn) -> onnx.ModelProto:
    """Small DAGs: Convs, activations, BatchNorm, residual ops, Concat, pooling, Resize."""
    b = Builder(draw(st.integers(0, 2**16)))
    first = draw(st.integers(1, 20))
    tensors = [("x", first, 8)]  # (name, channels, spatial size)
    ops = ["conv", "dw", "grouped", "act", "bn", "pair", "const", "concat", "pool", "resize"]
    for i in range(draw(st.integers(1, 8))):
        op, name = draw(st.sampled_from(ops)), f"n{i}"
        x, c, size = draw(st.sampled_from(tensors))
        divisors = [g for g in range(2, c) if c % g == 0]
        if op == "conv":
            out = draw(st.integers(1, 40))
            tensors.append((b.conv(x, c, out, name, k=draw(st.sampled_from([1, 3]))), out, size))
        elif op == "dw" and c > 1:
            out = c * draw(st.integers(1, 2))
            tensors.append((b.conv(x, c, out, name, group=c), out, size))
        elif op == "grouped" and divisors:
            group = draw(st.sampled_from(divisors))
            out = group * draw(st.integers(1, 5))
            tensors.append((b.conv(x, c, out, name, group=group), out, size))
        elif op == "act":
            act = draw(st.sampled_from(["Relu", "Sigmoid", "silu"]))
            y = b.node("Sigmoid" if act == "silu" else act, [x], name)
            tensors.append((b.node("Mul", [x, y], f"{name}m") if act == "silu" else y, c, size))
        elif op == "bn":
            stats = [b.random(f"{name}.{k}", c, low=0.5, high=1.5) for k in "gbmv"]
            tensors.append((b.node("BatchNormalization", [x, *stats], name), c, size))
        elif op == "pair":
            y = draw(st.sampled_from([t for t in tensors if t[1:] == (c, size)]))[0]
            binary = draw(st.sampled_from(["Add", "Sub", "Mul", "Max"]))
            tensors.append((b.node(binary, [x, y], name), c, size))
        elif op == "const":
            shape = draw(st.sampled_from([(c, 1, 1), (1, c, 1, 1), (1,), (size,)]))
            binary = draw(st.sampled_from(["Add", "Mul", "Div", "PRelu"]))
            y = b.random(f"{name}.c", *shape, low=0.5, high=1.5)
            tensors.append((b.node(binary, [x, y], name), c, size))
        elif op == "concat":
            y, c2, _ = draw(st.sampled_from([t for t in tensors if t[2] == size]))
            tensors.append((b.node("Concat", [x, y], name, axis=1), c + c2, size))
        elif op == "pool" and size >= 2:
            pool = b.node("MaxPool", [x], name, kernel_shape=[2, 2], strides=[2, 2])
            tensors.append((pool, c, size // 2))
        elif op == "resize":
            b.init(f"{name}.scales", np.array([1, 1, 2, 2]))
            resize = b.node("Resize", [x, "", f"{name}.scales"], name, mode="nearest")
            tensors.append((resize, c, size * 2))
    outputs = draw(st.lists(st.sampled_from(tensors[1:] or tensors), min_size=1, max_size=3))
    names = list(dict.fromkeys(name for name, _, _ in outputs if name != "x")) or [
        b.node("Relu", ["x"], "relu")
    ]
    graph = helper.make_graph(
        b.nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, first, 8, 8])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    del model.graph.value_info[:]
    return model


@PROPERTY
@given(model=conv_graphs())
def test_random_conv_graphs(gna: Target, model: onnx.ModelProto) -> None:
    """Padding flows through the ops around Convs and is sliced back where it must be."""
    prove(model, gna)

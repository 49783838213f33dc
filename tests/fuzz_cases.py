"""Deterministic hostile ONNX inputs for ``tests/test_fuzz.py``: case N is always the same bytes.

Each case starts from a small fixture (yolov8n now and then) and applies mutations drawn
from ``random.Random(N)``: one kind per case, round-robin over ``KINDS`` so that every kind
shows up in the first few dozen cases, the details (which node, which value) drawn at
random. ``combo`` cases stack several model mutations and sometimes a byte-level one.

    python tests/fuzz_cases.py 42            # print case 42's label
    python tests/fuzz_cases.py 42 out.onnx   # and write its bytes (and side files) to reproduce
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SMALL = ("odd_channels.onnx", "dynamic_batch.onnx", "mobilenetv3_small.onnx")
LARGE = "yolov8n.onnx"
LARGE_EVERY = 40
"""One case in this many starts from yolov8n (about 1 s of check and fix each)."""
TARGETS = (
    "rk3588",
    "rk3588@1.6",
    "hailo8",
    "intel-gna",
    "nnom",
    "edgetpu",
    "ethos-u55",
    "ax620a",
    "jetson-orin-dla",
    "amlogic-a311d",
    "k210",
    "esp32-s3",
    "cmsis-nn",
    "imx8mp",
)
FORMATS = ("text", "json", "sarif", "github", "html")
HUGE = 2**40
INTS = (0, -1, -7, 1, 2, 3, 5, 64, 2**31, 2**40, -(2**40), 2**63 - 1)
FLOATS = (math.nan, math.inf, -math.inf, 0.0, -1.0, 1e30, -1e-30, 3.5)
STRINGS = ("", "SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET", "garbage", "\n\x00\xff", "é" * 40)
WINDOW_ATTRS = ("strides", "kernel_shape", "dilations", "pads", "group")
WINDOWED = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool")
REAL_OPS = (
    "Conv",
    "ConvTranspose",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Resize",
    "Upsample",
    "Reshape",
    "Slice",
    "Transpose",
    "Softmax",
    "Gemm",
    "MatMul",
    "Concat",
    "Split",
    "Pad",
    "TopK",
    "NonMaxSuppression",
    "Loop",
    "If",
    "LayerNormalization",
    "HardSwish",
    "Gelu",
    "BatchNormalization",
    "Flatten",
    "DepthToSpace",
    "Constant",
    "Shape",
    "Gather",
    "Sigmoid",
    "Mul",
)
BAD_ELEM_TYPES = (0, 8, 9, 16, 13, 24, 999, -3)
SIDE_FILE = "weights.bin"


@dataclass(frozen=True)
class Case:
    """One hostile model: its bytes, files to put beside it, and how to run portlint on it."""

    index: int
    label: str
    data: bytes
    target: str
    check_args: tuple[str, ...]
    fix_args: tuple[str, ...]
    side_files: tuple[tuple[str, bytes], ...] = ()


@cache
def _fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _fixture(name: str) -> onnx.ModelProto:
    return onnx.load_from_string(_fixture_bytes(name))


# -- model mutations: each edits ``model`` in place and returns a short label, or None when
#    it does not apply to this model (the caller then draws another) ---------------------


def _node(rng: random.Random, model: onnx.ModelProto, ops: tuple[str, ...] = ()):
    nodes = [n for n in model.graph.node if not ops or n.op_type in ops]
    return rng.choice(nodes) if nodes else None


def _float_initializers(model: onnx.ModelProto) -> list[TensorProto]:
    return [t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT and t.dims]


def _array(tensor: TensorProto) -> np.ndarray | None:
    """A writable copy of the tensor's values; None when an earlier mutation broke it."""
    try:
        return numpy_helper.to_array(tensor).copy()
    except Exception:
        return None


def _random_value(rng: random.Random, kind: int):
    if kind == AttributeProto.INT:
        return rng.choice(INTS)
    if kind == AttributeProto.FLOAT:
        return rng.choice(FLOATS)
    if kind == AttributeProto.STRING:
        return rng.choice(STRINGS)
    if kind == AttributeProto.INTS:
        return [rng.choice(INTS) for _ in range(rng.choice((0, 1, 2, 3, 4, 7)))]
    if kind == AttributeProto.FLOATS:
        return [rng.choice(FLOATS) for _ in range(rng.choice((0, 1, 2, 4)))]
    if kind == AttributeProto.STRINGS:
        return [rng.choice(STRINGS) for _ in range(rng.choice((0, 1, 3)))]
    return None


def _set_attribute(node: onnx.NodeProto, attr: AttributeProto) -> None:
    kept = [a for a in node.attribute if a.name != attr.name]
    del node.attribute[:]
    node.attribute.extend([*kept, attr])


def attr_value(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """An existing attribute gets a random value of its own type."""
    node = _node(rng, model)
    if node is None:
        return None
    attrs = [a for a in node.attribute if _random_value(rng, a.type) is not None]
    if not attrs:
        return None
    attr = rng.choice(attrs)
    value = _random_value(rng, attr.type)
    _set_attribute(node, helper.make_attribute(attr.name, value, attr_type=attr.type))
    return f"attr-value({node.op_type}.{attr.name}={value!r:.30})"


def attr_type(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """An attribute (existing or a well-known one) with the wrong type, or no value at all."""
    node = _node(rng, model)
    if node is None:
        return None
    names = [a.name for a in node.attribute] + list(WINDOW_ATTRS) + ["axis", "mode", "perm"]
    name = rng.choice(names)
    choice = rng.randrange(7)
    if choice == 0:
        attr = helper.make_attribute(name, rng.choice(FLOATS))
    elif choice == 1:
        attr = helper.make_attribute(name, rng.choice(STRINGS))
    elif choice == 2:
        attr = helper.make_attribute(name, numpy_helper.from_array(np.array([1.5, -2.0])))
    elif choice == 3:
        attr = helper.make_attribute(name, helper.make_graph([], "empty", [], []))
    elif choice == 4:
        attr = AttributeProto(name=name, type=AttributeProto.UNDEFINED)
    elif choice == 5:  # declared INTS, carrying a float: what a buggy exporter writes
        attr = AttributeProto(name=name, type=AttributeProto.INTS, f=2.5)
    else:  # one INT where the schema wants INTS (read as a one-element list)
        attr = helper.make_attribute(name, rng.choice(INTS))
    _set_attribute(node, attr)
    return f"attr-type({node.op_type}.{name}:{AttributeProto.AttributeType.Name(attr.type)})"


def window(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """Negative or zero strides, kernels, dilations, pads or group; wrong lengths."""
    node = _node(rng, model, WINDOWED)
    if node is None:
        return None
    name = rng.choice(WINDOW_ATTRS)
    if name == "group":
        value = rng.choice((0, -1, -4, 3, 7, 2**40))
        attr = helper.make_attribute(name, value)
    else:
        length = rng.choice((2, 2, 2, 1, 3, 0)) * (2 if name == "pads" else 1)
        value = [rng.choice((0, -1, -3, 1, 2, 2**31, 2**40)) for _ in range(length)]
        attr = helper.make_attribute(name, value, attr_type=AttributeProto.INTS)
    _set_attribute(node, attr)
    label = f"window({node.op_type}.{name}={value}"
    if rng.random() < 0.3:
        mode = rng.choice(STRINGS[1:4])
        _set_attribute(node, helper.make_attribute("auto_pad", mode))
        _set_attribute(node, helper.make_attribute("pads", [], attr_type=AttributeProto.INTS))
        label += f", auto_pad={mode}"
    return label + ")"


def op_swap(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """A node becomes another real op, keeping its inputs and attributes (wrong arity)."""
    node = _node(rng, model)
    if node is None:
        return None
    old, node.op_type = node.op_type, rng.choice(REAL_OPS)
    return f"op-swap({old}->{node.op_type})"


def _value_infos(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    graph = model.graph
    return [*graph.input, *graph.output, *graph.value_info]


def elem_type(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """A tensor's element type changed: graph input/output, value_info or an initializer."""
    bad = rng.choice(BAD_ELEM_TYPES)
    if rng.random() < 0.5 and model.graph.initializer:
        tensor = rng.choice(model.graph.initializer)
        tensor.data_type = bad
        return f"elem-type(initializer {tensor.name[:20]}={bad})"
    values = _value_infos(model)
    if not values:
        return None
    value = rng.choice(values)
    if rng.random() < 0.2:
        value.type.Clear()
        value.type.sequence_type.elem_type.tensor_type.elem_type = TensorProto.FLOAT
        return f"elem-type({value.name[:20]}=sequence)"
    value.type.tensor_type.elem_type = bad
    return f"elem-type({value.name[:20]}={bad})"


def huge_dim(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """2**40 (or 0 or negative) in an input shape, an initializer or a Reshape target."""
    size = rng.choice((HUGE, HUGE, 2**31, 0, -5, 2**62))
    choice = rng.randrange(3)
    if choice == 0:
        values = _value_infos(model)
        if not values:
            return None
        value = rng.choice(values)
        dims = value.type.tensor_type.shape.dim
        if not dims:
            return None
        rng.choice(dims).dim_value = size
        return f"huge-dim({value.name[:20]}={size})"
    if choice == 1 and model.graph.initializer:
        tensor = rng.choice(model.graph.initializer)
        if not tensor.dims:
            return None
        tensor.dims[rng.randrange(len(tensor.dims))] = size
        return f"huge-dim(initializer {tensor.name[:20]}={size})"
    # a tiny Resize/Reshape-style constant: the values themselves become huge
    smalls = [t for t in model.graph.initializer if 0 < math.prod(t.dims) <= 8]
    if not smalls:
        return None
    tensor = rng.choice(smalls)
    array = _array(tensor)
    if array is None:
        return None
    array.reshape(-1)[rng.randrange(array.size)] = (
        size if np.issubdtype(array.dtype, np.integer) else float(size)
    )
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    return f"huge-dim(value of {tensor.name[:20]}={size})"


def cycle(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """A node consuming its own output, or a two-node loop."""
    nodes = [n for n in model.graph.node if n.input and n.output]
    if not nodes:
        return None
    node = rng.choice(nodes)
    if rng.random() < 0.5:
        node.input[0] = node.output[0]
        return f"cycle(self {node.op_type})"
    consumers = [n for n in model.graph.node if node.output[0] in n.input and n.output]
    if not consumers:
        return None
    other = rng.choice(consumers)
    node.input[0] = other.output[0]
    return f"cycle({node.op_type}<->{other.op_type})"


def dangling(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """An input produced by nothing, an output never produced, or an input removed."""
    choice = rng.randrange(3)
    if choice == 0:
        node = _node(rng, model)
        if node is None or not node.input:
            return None
        node.input[rng.randrange(len(node.input))] = rng.choice(("nowhere", "x\ny", " "))
        return f"dangling(input of {node.op_type})"
    if choice == 1:
        model.graph.output.add().name = "never_produced"
        return "dangling(graph output)"
    if not model.graph.input:
        return None
    del model.graph.input[0]
    return "dangling(graph input removed)"


def duplicate(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """Duplicate node names, duplicate tensor names (two producers), duplicate initializers."""
    nodes = list(model.graph.node)
    if len(nodes) < 2:
        return None
    a, b = rng.sample(nodes, 2)
    choice = rng.randrange(4)
    if choice == 0:
        b.name = a.name
        return "duplicate(node name)"
    if choice == 1 and a.output and b.output:
        b.output[0] = a.output[0]
        return f"duplicate(tensor produced by {a.op_type} and {b.op_type})"
    if choice == 2 and model.graph.initializer:
        copy = model.graph.initializer.add()
        copy.CopyFrom(rng.choice(model.graph.initializer[:-1]))
        if rng.random() < 0.5 and copy.dims:
            copy.dims[0] += 1
        return "duplicate(initializer)"
    if model.graph.initializer and model.graph.input:
        model.graph.input[0].name = rng.choice(model.graph.initializer).name
        return "duplicate(graph input named like an initializer)"
    return None


def unknown_op(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """An op nobody knows, an unknown domain (with or without an opset import)."""
    node = _node(rng, model)
    if node is None:
        return None
    choice = rng.randrange(4)
    if choice == 0:
        node.op_type = rng.choice(("FuzzOp", "", "Conv2D", "конв", "A" * 300))
        return f"unknown-op({node.op_type[:12]!r})"
    domain = rng.choice(("com.example.fuzz", "com.microsoft", "ai.onnx.ml", "ai.onnx", " "))
    node.domain = domain
    if choice >= 2:
        model.opset_import.add(domain=domain, version=rng.choice((1, 0, -1, 99)))
    return f"unknown-domain({domain!r} on {node.op_type})"


def nan_weights(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """NaN, Inf or huge values in float initializers (weights, scales, constants)."""
    tensors = _float_initializers(model)
    if not tensors:
        return None
    tensor = rng.choice(tensors)
    array = _array(tensor)
    if array is None:
        return None
    array = array.astype(np.float32)
    if not array.size:
        return None
    bad = rng.choice((np.nan, np.inf, -np.inf, 3e38))
    if rng.random() < 0.5:
        array[...] = bad
    else:
        flat = array.reshape(-1)
        flat[rng.randrange(flat.size)] = bad
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    return f"nan-weights({tensor.name[:20]}={bad})"


def empty_graph(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """No nodes; no nodes, inputs or outputs; or no graph at all."""
    choice = rng.randrange(3)
    graph = model.graph
    if choice == 0:
        del graph.node[:]
        return "empty-graph(no nodes)"
    if choice == 1:
        for items in (graph.node, graph.input, graph.output, graph.value_info, graph.initializer):
            del items[:]
        return "empty-graph(nothing)"
    model.ClearField("graph")
    return "empty-graph(no graph)"


def opset(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """Missing, duplicated or absurd opset imports."""
    choice = rng.randrange(4)
    if choice == 0:
        del model.opset_import[:]
        return "opset(none)"
    if choice == 1:
        model.opset_import.add(domain="", version=rng.choice((1, 11, 99)))
        return "opset(duplicate default domain)"
    version = rng.choice((0, -1, 1, 5, 10000, 2**40))
    for entry in model.opset_import:
        entry.version = version
    if choice == 3 and model.opset_import:
        model.opset_import[0].domain = "ai.onnx"
    return f"opset(version {version})"


def ir_version(rng: random.Random, model: onnx.ModelProto) -> str | None:
    version = rng.choice((0, -1, 1, 2, 3, 4, 13, 100, 2**40))
    model.ir_version = version
    return f"ir-version({version})"


def external_data(rng: random.Random, model: onnx.ModelProto) -> str | None:
    """Initializers moved to external data that is missing, outside, short or malformed."""
    tensors = list(model.graph.initializer)
    if not tensors:
        return None
    tensor = rng.choice(tensors)
    size = max(1, len(tensor.raw_data))
    for payload in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
        tensor.ClearField(payload)
    tensor.data_location = TensorProto.EXTERNAL
    location = rng.choice(
        (
            "missing.bin",
            "../outside.bin",
            "/etc/hostname",
            "",
            SIDE_FILE,
            SIDE_FILE,
            "sub/dir/x.bin",
            ".",
        )
    )
    entries = {"location": location}
    if rng.random() < 0.5:
        entries["offset"] = rng.choice(("0", "-8", "abc", str(2**62), "1.5", ""))
    if rng.random() < 0.5:
        entries["length"] = rng.choice((str(size), "-1", "xyz", str(2**70), "0"))
    if rng.random() < 0.2:
        entries["checksum"] = "deadbeef"
    for key, value in entries.items():
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return f"external-data({tensor.name[:16]} -> {location!r}, {len(entries)} keys)"


MUTATIONS: dict[str, Callable[[random.Random, onnx.ModelProto], str | None]] = {
    "attr-value": attr_value,
    "op-swap": op_swap,
    "attr-type": attr_type,
    "window": window,
    "elem-type": elem_type,
    "huge-dim": huge_dim,
    "cycle": cycle,
    "dangling": dangling,
    "duplicate": duplicate,
    "unknown-op": unknown_op,
    "nan-weights": nan_weights,
    "empty-graph": empty_graph,
    "opset": opset,
    "ir-version": ir_version,
    "external-data": external_data,
}


# -- byte mutations ----------------------------------------------------------------------


def truncate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    cut = rng.randrange(1, 64) if rng.random() < 0.2 else rng.randrange(1, len(data))
    return data[:cut], f"truncate({cut}/{len(data)})"


def bitflip(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Flip bits where the structure is (nodes first, inputs/outputs/opsets last) or anywhere."""
    buffer = bytearray(data)
    region = rng.choice(("head", "tail", "anywhere"))
    span = {
        "head": (0, min(len(buffer), 4096)),
        "tail": (max(0, len(buffer) - 2048), len(buffer)),
        "anywhere": (0, len(buffer)),
    }[region]
    flips = rng.choice((1, 1, 2, 4, 16, 64))
    for _ in range(flips):
        position = rng.randrange(*span)
        buffer[position] ^= 1 << rng.randrange(8)
    return bytes(buffer), f"bitflip({flips} in {region})"


def garbage(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Random bytes over a region, appended, or instead of the whole file."""
    noise = rng.randbytes(rng.choice((1, 16, 300)))
    choice = rng.randrange(3)
    if choice == 0:
        at = rng.randrange(len(data))
        return data[:at] + noise + data[at + len(noise) :], f"garbage(at {at})"
    if choice == 1:
        return data + noise, "garbage(appended)"
    return noise, "garbage(whole file)"


BYTE_MUTATIONS = {"truncate": truncate, "bitflip": bitflip, "garbage": garbage}
KINDS = (*MUTATIONS, *BYTE_MUTATIONS, "combo")


def _mutate(rng: random.Random, model: onnx.ModelProto, kind: str) -> str:
    """Apply ``kind`` (or, when it does not apply to this model, another mutation)."""
    kinds = [kind, *rng.sample(list(MUTATIONS), len(MUTATIONS))]
    for name in kinds:
        label = MUTATIONS[name](rng, model)
        if label is not None:
            return label
    raise AssertionError("no mutation applies")  # ir-version always does


def make_case(index: int) -> Case:
    """Case ``index``: the same bytes, label and arguments on every run."""
    rng = random.Random(index)
    kind = KINDS[index % len(KINDS)]
    fixture = LARGE if index % LARGE_EVERY == LARGE_EVERY - 1 else rng.choice(SMALL)
    labels = [fixture.removesuffix(".onnx")]
    if kind in BYTE_MUTATIONS:
        data, label = BYTE_MUTATIONS[kind](rng, _fixture_bytes(fixture))
        labels.append(label)
    else:
        model = _fixture(fixture)
        count = rng.choice((2, 2, 3, 4)) if kind == "combo" else 1
        for _ in range(count):
            chosen = rng.choice(list(MUTATIONS)) if kind == "combo" else kind
            labels.append(_mutate(rng, model, chosen))
        data = model.SerializeToString()
        if kind == "combo" and rng.random() < 0.3:
            data, label = rng.choice(list(BYTE_MUTATIONS.values()))(rng, data)
            labels.append(label)
    side = ()
    if any(label.startswith("external-data") for label in labels) or rng.random() < 0.1:
        side = ((SIDE_FILE, rng.randbytes(rng.choice((0, 7, 4096)))),)
    fix_args: tuple[str, ...] = ("--unsafe-fixes",) if rng.random() < 0.4 else ()
    if rng.random() < 0.15:
        fix_args = ("--pass", rng.choice(("silu-to-relu", "pad-channels", "make-static")))
    check_args = ("--format", rng.choice(FORMATS))
    if rng.random() < 0.1:
        name = "images" if fixture == LARGE else "input"
        dims = ",".join(str(rng.choice((0, 1, 3, 64, 2**40))) for _ in range(rng.choice((3, 4))))
        check_args += ("--input-shape", f"{name}:{dims}")
        fix_args += ("--input-shape", f"{name}:{dims}")
    return Case(index, " + ".join(labels), data, rng.choice(TARGETS), check_args, fix_args, side)


def main(argv: list[str]) -> None:
    case = make_case(int(argv[0]))
    print(f"case {case.index}: {case.label}")
    print(f"  portlint check MODEL -t {case.target} {' '.join(case.check_args)}")
    print(f"  portlint fix MODEL -t {case.target} -o out.onnx {' '.join(case.fix_args)}")
    if len(argv) > 1:
        out = Path(argv[1])
        out.write_bytes(case.data)
        for name, data in case.side_files:
            (out.parent / name).write_bytes(data)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Reading a model for ``check`` without its weights: the wire-format reader leaves the weight
payloads in the file and must give exactly what parsing everything and stripping afterwards
gives; the weights stay readable (``view.weight``), small constants stay decoded
(``view.constant_value``), corrupt tensors are still reported, placement counts the same.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from portlint.engine import _partitions
from portlint.errors import ModelLoadError
from portlint.graph_view import build_view
from portlint.model_io.load import load_for_check, strip_large_initializers, view_model
from portlint.model_io.loaded import KEEP_CONSTANT_ELEMENTS, KEEP_SMALL_ELEMENTS, copy_model
from portlint.model_io.validate import parse
from portlint.model_io.wire import read_slim

RNG = np.random.default_rng(0)


def _tensors() -> list[TensorProto]:
    """One initializer of each kind the reader tells apart."""
    mid = RNG.standard_normal((8, 8, 3, 3)).astype(np.float32)  # a 3x3 Conv's weights
    typed = helper.make_tensor("typed_mid", TensorProto.FLOAT, [100], RNG.standard_normal(100))
    typed_big = helper.make_tensor("typed_big", TensorProto.FLOAT, [5000], np.ones(5000))
    return [
        numpy_helper.from_array(mid, "w"),
        numpy_helper.from_array(np.arange(KEEP_CONSTANT_ELEMENTS, dtype=np.int64), "ints"),
        numpy_helper.from_array(np.arange(KEEP_SMALL_ELEMENTS, dtype=np.float32), "tiny"),
        numpy_helper.from_array(np.ones(KEEP_SMALL_ELEMENTS + 1, np.float32), "just_over"),
        numpy_helper.from_array(RNG.standard_normal((64, 80)).astype(np.float32), "big"),
        numpy_helper.from_array(np.arange(600, dtype=np.int8).astype(np.int8), "int8_mid"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        numpy_helper.from_array(np.array(2.5, np.float64), "scalar"),
        typed,
        typed_big,
    ]


def _model() -> onnx.ModelProto:
    """A Conv with every kind of initializer beside it, a Constant node and an If whose
    branches hold initializers of their own."""
    branch = helper.make_graph(
        [helper.make_node("Identity", ["inner"], ["out"])],
        "branch",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [50])],
        [numpy_helper.from_array(np.ones(50, np.float32), "inner")],
    )
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Resize", ["c", "", "scales"], ["r"], name="resize", mode="nearest"),
        helper.make_node(
            "Constant",
            [],
            ["k"],
            name="const",
            value=numpy_helper.from_array(np.ones((30, 30), np.float32)),
        ),
        helper.make_node("Greater", ["scalar", "scalar"], ["cond"], name="gt"),
        helper.make_node(
            "If", ["cond"], ["branch_out"], name="if", then_branch=branch, else_branch=branch
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
        [
            helper.make_tensor_value_info("r", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("k", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, None),
        ],
        _tensors(),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _save(model: onnx.ModelProto, tmp_path: Path, name: str = "m.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_reading_without_weights_gives_what_parsing_and_stripping_gives(tmp_path: Path) -> None:
    path = _save(_model(), tmp_path)
    slim, skipped, payloads = read_slim(path)
    reference = parse(path)
    names = [t.name for t in reference.graph.initializer]
    assert {names[i] for i in skipped} == {"w", "just_over", "big", "int8_mid"} == set(payloads)
    assert strip_large_initializers(copy_model(reference)) == strip_large_initializers(slim)
    expected = copy_model(reference)
    strip_large_initializers(expected)
    assert slim == expected
    stat = path.stat()
    for name, payload in payloads.items():
        assert payload.stamp == (stat.st_size, stat.st_mtime_ns)
        tensor = reference.graph.initializer[names.index(name)]
        with open(path, "rb") as handle:
            handle.seek(payload.offset)
            assert handle.read(payload.length) == tensor.raw_data


def test_packed_dims_and_fields_in_any_order_are_read(tmp_path: Path) -> None:
    """dims written packed (as other protobuf writers do) and raw_data before the name."""
    weight = RNG.standard_normal((8, 8, 3, 3)).astype(np.float32)
    model = _model()
    del model.graph.initializer[0]  # "w", written again below by hand
    dims = b"".join(bytes([d]) for d in weight.shape)
    tensor = (
        b"\x4a" + _varint(weight.nbytes) + weight.tobytes()  # raw_data (9)
        + b"\x0a" + bytes([len(dims)]) + dims  # dims (1), packed
        + b"\x10\x01"  # data_type (2): FLOAT
        + b"\x42\x01w"  # name (8)
    )  # fmt: skip
    graph = model.graph.SerializeToString() + b"\x2a" + _varint(len(tensor)) + tensor
    model.ClearField("graph")
    path = tmp_path / "packed.onnx"
    path.write_bytes(model.SerializeToString() + b"\x3a" + _varint(len(graph)) + graph)
    slim, skipped, payloads = read_slim(path)
    last = len(slim.graph.initializer) - 1
    assert last in skipped and "w" in payloads
    assert list(slim.graph.initializer[last].dims) == [8, 8, 3, 3]
    view = build_view(load_for_check(path))
    np.testing.assert_array_equal(view.weight("w"), weight)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_weights_are_read_from_the_file_and_small_constants_kept(tmp_path: Path) -> None:
    model = _model()
    path = _save(model, tmp_path)
    view = build_view(load_for_check(path))
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for name, value in values.items():
        np.testing.assert_array_equal(view.weight(name), value)
    for name in ("ints", "tiny", "scales", "scalar"):
        np.testing.assert_array_equal(view.constant_value(name), values[name])
    for name in ("w", "just_over", "big", "int8_mid", "typed_mid", "typed_big"):
        assert view.constant_value(name) is None, name
        assert view.tensor(name).shape == values[name].shape
    np.testing.assert_array_equal(view.constant_value("k"), np.ones((30, 30), np.float32))
    assert view.tensor("k").kind == "constant" and view.tensor("k").dtype == "float32"
    assert view.tensor("r").shape == (1, 8, 32, 32)


def test_a_rewritten_file_is_read_again_not_at_old_offsets(tmp_path: Path) -> None:
    model = _model()
    path = _save(model, tmp_path)
    view = build_view(load_for_check(path))
    changed = copy_model(model)
    del changed.graph.initializer[0]
    new_weight = np.full((8, 8, 3, 3), 7, np.float32)
    changed.graph.initializer.append(numpy_helper.from_array(new_weight, "w"))
    onnx.save(changed, str(path))
    os.utime(path, ns=(1, 1))
    np.testing.assert_array_equal(view.weight("w"), new_weight)


def test_in_memory_models_are_stripped_the_same_way(tmp_path: Path) -> None:
    model = _model()
    before = copy_model(model)
    view = build_view(view_model(model, tmp_path / "in-memory"))
    assert view.constant_value("w") is None and view.constant_value("tiny") is not None
    weight = numpy_helper.to_array(model.graph.initializer[0])
    np.testing.assert_array_equal(view.weight("w"), weight)
    assert model == before  # the caller's model is untouched


@pytest.mark.parametrize("name", ["w", "ints"])
def test_a_short_tensor_is_reported_as_before(tmp_path: Path, name: str) -> None:
    model = _model()
    tensor = next(t for t in model.graph.initializer if t.name == name)
    tensor.raw_data = tensor.raw_data[:10]
    path = _save(model, tmp_path)
    with pytest.raises(ModelLoadError, match=f"initializer '{name}' does not hold the data"):
        load_for_check(path)


def test_a_short_constant_node_value_is_reported(tmp_path: Path) -> None:
    model = _model()
    model.graph.node[2].attribute[0].t.raw_data = b"\0" * 12
    with pytest.raises(ModelLoadError, match="Constant node 'const' does not hold the data"):
        load_for_check(_save(model, tmp_path))


@pytest.mark.parametrize("cut", [1, 7, 100, 2000])
def test_a_truncated_file_fails_as_protobuf_says(tmp_path: Path, cut: int) -> None:
    path = _save(_model(), tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])
    assert read_slim(path) is None
    with pytest.raises(ModelLoadError):
        load_for_check(path)


def test_partitions_count_connected_npu_groups() -> None:
    import networkx as nx

    rng = random.Random(0)
    for _ in range(50):
        names = [f"n{i}" for i in range(rng.randint(1, 40))]
        edges = [(rng.choice(names), rng.choice(names)) for _ in range(rng.randint(0, 50))]
        npu = {n for n in names if rng.random() < 0.7}
        graph = nx.Graph()
        graph.add_nodes_from(npu)
        graph.add_edges_from((a, b) for a, b in edges if a in npu and b in npu)

        class View:
            pass

        view = View()
        view.edges = edges
        assert _partitions(view, npu) == nx.number_connected_components(graph)


def test_item_sizes_are_numpys() -> None:
    """The table the reader and the validation trust instead of decoding."""
    from portlint.model_io.validate import ITEM_SIZES

    for data_type, size in ITEM_SIZES.items():
        assert helper.tensor_dtype_to_np_dtype(data_type).itemsize == size

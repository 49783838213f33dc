"""The synthetic models ``bench_check.py`` measures, built deterministically with onnx.helper.

* ``build_chain``: a chain of Conv 3x3 (8->8 channels) + Relu pairs: depth without width.
* ``build_transformer``: a BERT-base-like encoder laid out the way ``torch.onnx.export``
  writes one at opset 17 (embeddings Gather, per layer Q/K/V MatMul+Add, Reshape/Transpose
  into heads, scaled QK^T + mask, Softmax, context MatMul, output projection, residual Add,
  LayerNormalization, an Erf-based GELU feed-forward), weights embedded in the file.
* ``build_big_external``: three MatMuls whose 800 MB weights live in one external data file
  (2.4 GB), written in chunks so the weights are never held in memory.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
CHANNELS = 8
HEIGHT = WIDTH = 16
CHUNK_BYTES = 16 * 2**20
ALIGN = 4096


def _finish(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# --- conv chain -------------------------------------------------------------------------------


def build_chain(n_nodes: int, path: Path) -> Path:
    """Write a chain of ``n_nodes // 2`` (Conv 3x3 8->8, pads 1) + Relu pairs to ``path``."""
    if n_nodes <= 0 or n_nodes % 2:
        raise ValueError(f"node count must be a positive even number, got {n_nodes}")
    rng = np.random.default_rng(0)
    nodes, initializers = [], []
    current = "x"
    for i in range(n_nodes // 2):
        weight = rng.standard_normal((CHANNELS, CHANNELS, 3, 3)).astype(np.float32)
        initializers.append(numpy_helper.from_array(weight, name=f"w{i}"))
        nodes.append(
            helper.make_node(
                "Conv",
                [current, f"w{i}"],
                [f"c{i}"],
                name=f"conv{i}",
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        current = f"r{i}"
    shape = [1, CHANNELS, HEIGHT, WIDTH]
    graph = helper.make_graph(
        nodes,
        f"conv_chain_{n_nodes}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, shape)],
        initializers,
    )
    return _finish(graph, path)


# --- transformer encoder ----------------------------------------------------------------------


class _Builder:
    """Collects nodes and initializers; names nodes like torch's exporter (/scope/Op_n)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def weight(self, name: str, shape: tuple[int, ...], scale: float = 0.02) -> str:
        data = self.rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
        self.initializers.append(numpy_helper.from_array(data, name=name))
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name=name))
        return name

    def op(self, op_type: str, inputs: list[str], scope: str, **attrs: object) -> str:
        self._count += 1
        out = f"{scope}/{op_type}_{self._count}_output_0"
        self.nodes.append(
            helper.make_node(
                op_type, inputs, [out], name=f"{scope}/{op_type}_{self._count}", **attrs
            )
        )
        return out

    def linear(self, x: str, scope: str, n_in: int, n_out: int) -> str:
        w = self.weight(f"{scope}.weight", (n_in, n_out))
        b = self.weight(f"{scope}.bias", (n_out,))
        return self.op("Add", [self.op("MatMul", [x, w], scope), b], scope)

    def layer_norm(self, x: str, scope: str, hidden: int) -> str:
        scale = self.const(f"{scope}.weight", np.ones(hidden, np.float32))
        bias = self.const(f"{scope}.bias", np.zeros(hidden, np.float32))
        return self.op("LayerNormalization", [x, scale, bias], scope, axis=-1, epsilon=1e-12)


def build_transformer(
    n_layers: int,
    path: Path,
    hidden: int = 768,
    heads: int = 12,
    ffn: int = 3072,
    seq: int = 128,
    vocab: int = 30522,
) -> Path:
    """Write a BERT-like encoder with ``n_layers`` attention layers to ``path``."""
    if n_layers <= 0 or hidden % heads:
        raise ValueError("need n_layers > 0 and hidden divisible by heads")
    b = _Builder()
    head_dim = hidden // heads
    to_heads = b.const("shape_heads", np.array([0, 0, heads, head_dim], np.int64))
    to_hidden = b.const("shape_hidden", np.array([0, 0, hidden], np.int64))
    sqrt_d = b.const("sqrt_head_dim", np.array(math.sqrt(head_dim), np.float32))
    one = b.const("one", np.array(1.0, np.float32))
    half = b.const("half", np.array(0.5, np.float32))
    sqrt2 = b.const("sqrt2", np.array(math.sqrt(2.0), np.float32))
    neg = b.const("mask_value", np.array(-10000.0, np.float32))
    axes12 = b.const("axes_1_2", np.array([1, 2], np.int64))

    scope = "/embeddings"
    words = b.op("Gather", [b.weight("embeddings.word", (vocab, hidden)), "input_ids"], scope)
    positions = b.weight("embeddings.position", (1, seq, hidden))
    h = b.layer_norm(b.op("Add", [words, positions], scope), f"{scope}/LayerNorm", hidden)

    scope = "/extended_mask"
    mask = b.op("Cast", [b.op("Unsqueeze", ["attention_mask", axes12], scope)], scope, to=1)
    mask = b.op("Mul", [b.op("Sub", [one, mask], scope), neg], scope)  # [1, 1, 1, seq]

    for i in range(n_layers):
        s = f"/encoder/layer.{i}/attention/self"
        q = b.op("Reshape", [b.linear(h, f"{s}/query", hidden, hidden), to_heads], s)
        k = b.op("Reshape", [b.linear(h, f"{s}/key", hidden, hidden), to_heads], s)
        v = b.op("Reshape", [b.linear(h, f"{s}/value", hidden, hidden), to_heads], s)
        q = b.op("Transpose", [q], s, perm=[0, 2, 1, 3])  # [1, heads, seq, d]
        k = b.op("Transpose", [k], s, perm=[0, 2, 3, 1])  # [1, heads, d, seq]
        v = b.op("Transpose", [v], s, perm=[0, 2, 1, 3])
        scores = b.op("Div", [b.op("MatMul", [q, k], s), sqrt_d], s)
        probs = b.op("Softmax", [b.op("Add", [scores, mask], s)], s, axis=-1)
        ctx = b.op("Transpose", [b.op("MatMul", [probs, v], s)], s, perm=[0, 2, 1, 3])
        ctx = b.op("Reshape", [ctx, to_hidden], s)
        s = f"/encoder/layer.{i}/attention/output"
        attn = b.linear(ctx, f"{s}/dense", hidden, hidden)
        h = b.layer_norm(b.op("Add", [attn, h], s), f"{s}/LayerNorm", hidden)
        s = f"/encoder/layer.{i}/intermediate"
        up = b.linear(h, f"{s}/dense", hidden, ffn)
        erf = b.op("Erf", [b.op("Div", [up, sqrt2], s)], s)
        gelu = b.op("Mul", [b.op("Mul", [up, b.op("Add", [erf, one], s)], s), half], s)
        s = f"/encoder/layer.{i}/output"
        down = b.linear(gelu, f"{s}/dense", ffn, hidden)
        h = b.layer_norm(b.op("Add", [down, h], s), f"{s}/LayerNorm", hidden)

    b.nodes.append(helper.make_node("Identity", [h], ["last_hidden_state"], name="/output"))
    graph = helper.make_graph(
        b.nodes,
        f"bert_like_{n_layers}_layers",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, seq]),
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, seq, hidden])],
        b.initializers,
    )
    return _finish(graph, path)


# --- >2 GB external data ----------------------------------------------------------------------


def big_external_bytes(total_bytes: int, n_weights: int = 3) -> tuple[int, int]:
    """(K, bytes per weight) for ``n_weights`` float32 [K, K] weights totalling ~``total_bytes``."""
    side = int(math.sqrt(total_bytes / n_weights / 4))
    return side, side * side * 4


def big_external_complete(path: Path, total_bytes: int, n_weights: int = 3) -> bool:
    """Whether ``path`` and its data file are a finished build of this size (for reuse)."""
    data = path.with_name(path.name + ".data")
    _, per_weight = big_external_bytes(total_bytes, n_weights)
    expected = _offsets(per_weight, n_weights)[-1] + per_weight
    return path.is_file() and data.is_file() and data.stat().st_size == expected


def _offsets(per_weight: int, n_weights: int) -> list[int]:
    """Page-aligned start of each weight in the data file."""
    offsets, end = [], 0
    for _ in range(n_weights):
        offsets.append(-(-end // ALIGN) * ALIGN)
        end = offsets[-1] + per_weight
    return offsets


def build_big_external(total_bytes: int, path: Path, n_weights: int = 3) -> Path:
    """Write ``n_weights`` MatMuls (x[1,K] @ W[K,K]) with weights in ``<path>.data``.

    The weight bytes are one 16 MiB block of seeded random floats written over and over,
    so memory stays at the size of that block however big the file gets. Each tensor's
    offset is page-aligned, as ``onnx.save_model(..., save_as_external_data=True)`` does.
    """
    side, per_weight = big_external_bytes(total_bytes, n_weights)
    data_path = path.with_name(path.name + ".data")
    offsets = _offsets(per_weight, n_weights)
    needed = offsets[-1] + per_weight + 2**30
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise SystemExit(
            f"not enough free disk for the external-data model under {path.parent}: "
            f"need {needed / 1e9:.1f} GB, have {free / 1e9:.1f} GB (use --big-gb 0 to skip it)"
        )
    block = np.random.default_rng(0).standard_normal(CHUNK_BYTES // 4, dtype=np.float32)
    block_bytes = (block * np.float32(0.01)).tobytes()
    initializers, nodes, current = [], [], "x"
    tmp = data_path.with_name(data_path.name + ".partial")
    with open(tmp, "wb") as out:
        for i, offset in enumerate(offsets):
            out.write(b"\0" * (offset - out.tell()))
            remaining = per_weight
            while remaining:
                n = min(remaining, CHUNK_BYTES)
                out.write(block_bytes[:n])
                remaining -= n
            tensor = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[side, side])
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (
                ("location", data_path.name),
                ("offset", str(offset)),
                ("length", str(per_weight)),
            ):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            initializers.append(tensor)
            nodes.append(helper.make_node("MatMul", [current, f"w{i}"], [f"y{i}"], name=f"mm{i}"))
            current = f"y{i}"
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, data_path)
    graph = helper.make_graph(
        nodes,
        "big_external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, side])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, [1, side])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))  # by path: validates the external data entries
    return path


def main(argv: list[str]) -> None:
    """``bench_models.py KIND SIZE PATH``: build one model; print a JSON line describing it."""
    kind, size, path = argv[0], int(argv[1]), Path(argv[2])
    reused = False
    if kind == "chain":
        build_chain(size, path)
    elif kind == "transformer":
        build_transformer(size, path)
    elif kind == "big":
        reused = big_external_complete(path, size)
        if not reused:
            build_big_external(size, path)
    else:
        raise SystemExit(f"unknown model kind {kind!r}: chain, transformer or big")
    data = path.with_name(path.name + ".data")
    nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
    info = {
        "nodes": nodes,
        "bytes": path.stat().st_size,
        "data": data.stat().st_size if kind == "big" else 0,
        "reused": reused,
    }
    print(json.dumps(info))


if __name__ == "__main__":
    main(sys.argv[1:])

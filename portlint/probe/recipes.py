"""A probe model as a recipe: plain data that rebuilds the same model, byte for byte.

The probed node never stands alone: a Relu feeds each of its float inputs and reads each of
its float outputs, as layers do in an exported network. A model that is one node from graph
input to graph output is not what compilers are built for, and they show it: rknn-toolkit2
2.5.0 crashes on a lone Softmax or LSTM that it converts to the NPU between two layers.

Evidence files keep recipes, not models: a recorded compiler outcome stays checkable in CI
(rebuild the model, hash it, ask ``check``) without shipping ONNX files, and a change in the
factory that alters a probe model shows up as a hash mismatch instead of silently testing
something else than the compiler saw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import onnx
from onnx import TensorProto, helper

from portlint.probe.blocks import build_block
from portlint.probe.factory import apply, build, graph_input_model
from portlint.probe.parts import Spec, Unsupported

Recipe = dict[str, Any]
"""``{"op": "Conv", "set": [[field, value], ...]}`` (fields applied in order, the last one as
the probed field), ``{"input": {"dims": [...], "dtype": "float32"}}`` or ``{"block": NAME}``."""


def op_recipe(op: str, settings: Sequence[tuple[str, Any]] = ()) -> Recipe:
    recipe: Recipe = {"op": op}
    if settings:
        recipe["set"] = [[name, _plain(value)] for name, value in settings]
    return recipe


def input_recipe(dims: Sequence[int], dtype: str = "float32") -> Recipe:
    return {"input": {"dims": [int(d) for d in dims], "dtype": dtype}}


def block_recipe(name: str) -> Recipe:
    return {"block": name}


def _plain(value: Any) -> Any:
    """YAML-friendly: tuples become lists (and come back as tuples in ``_native``)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _native(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_native(v) for v in value)
    return value


CARRIED = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16})
"""Element types a Relu carrier takes on every target (not bool, not integers)."""
CARRIER_IN, CARRIER_OUT = "carrier_in", "carrier_out"


def _elem_type(value: onnx.ValueInfoProto) -> int:
    return value.type.tensor_type.elem_type


def embed(model: onnx.ModelProto, inputs: bool = True) -> onnx.ModelProto:
    """``model`` with a Relu before each float graph input's readers (unless ``inputs`` is
    False: a probe of a network's first layer) and after each float graph output's writer
    (names and types of the graph's inputs and outputs unchanged)."""
    graph = model.graph
    renames: dict[str, str] = {}
    before, after = [], []
    carried = [v for v in graph.input if inputs and _elem_type(v) in CARRIED]
    for i, value in enumerate(carried):
        inner = f"{value.name}_carried"
        renames[value.name] = inner
        before.append(
            helper.make_node("Relu", [value.name], [inner], name=f"{CARRIER_IN}{i or ''}")
        )
    outputs = {}
    for i, value in enumerate(v for v in graph.output if _elem_type(v) in CARRIED):
        inner = f"{value.name}_inner"
        outputs[value.name] = inner
        after.append(
            helper.make_node("Relu", [inner], [value.name], name=f"{CARRIER_OUT}{i or ''}")
        )
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [outputs.get(name, name) for name in node.output]
    nodes = [*before, *graph.node, *after]
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def build_recipe(recipe: Recipe) -> onnx.ModelProto:
    """The model ``recipe`` describes, embedded between carriers; ``Unsupported`` when the
    factory cannot build it."""
    first = ["is_first_layer", True] in recipe.get("set", ())
    return _typed_outputs(embed(_bare(recipe), inputs=not first))


def _typed_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give the graph outputs the shapes inference finds, so the model passes the checker
    (compilers read output shapes too)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph.output
    for output, found in zip(model.graph.output, inferred, strict=True):
        if not output.type.tensor_type.HasField("shape") and found.type.tensor_type.HasField(
            "shape"
        ):
            output.type.CopyFrom(found.type)
    return model


def _bare(recipe: Recipe) -> onnx.ModelProto:
    if "block" in recipe:
        return build_block(recipe["block"])
    if "input" in recipe:
        spec = recipe["input"]
        return graph_input_model(list(spec["dims"]), spec.get("dtype", "float32"))
    op = recipe["op"]
    settings = [(name, _native(value)) for name, value in recipe.get("set", ())]
    if not settings:
        return build(op)
    base = Spec(op)
    for name, value in settings[:-1]:
        base = apply(base, name, value)
    name, value = settings[-1]
    return build(op, name, value, base=base)


def model_hash(model: onnx.ModelProto) -> str:
    """A short, stable fingerprint of the model's bytes."""
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()[:16]


__all__ = [
    "Recipe",
    "Unsupported",
    "block_recipe",
    "build_recipe",
    "input_recipe",
    "model_hash",
    "op_recipe",
]

"""Build small models with random weights and prove passes on them, independently of fix."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from portlint.fixer import FixOutcome, FixRequest, fix_model
from portlint.numerics import compare, random_inputs, run
from portlint.target import load_target

IR_VERSION = 8
RNG = np.random.default_rng(7)


def weight(name: str, *shape: int, scale: float = 0.5) -> onnx.TensorProto:
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def positive(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.uniform(0.5, 2.0, shape).astype(np.float32), name)


def model_of(nodes, inputs, outputs, initializers=(), opset: int = 17) -> onnx.ModelProto:
    """A model with float inputs/outputs given as (name, shape) pairs."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_VERSION
    return model


def apply(model: onnx.ModelProto, target: str, pass_name: str, **kwargs) -> FixOutcome:
    """Run one named pass through ``fix`` and check its promise independently."""
    before = onnx.ModelProto()
    before.CopyFrom(model)
    outcome = fix_model(model, load_target(target), FixRequest((pass_name,), **kwargs))
    assert model == before, "fix must not modify the model it was given"
    onnx.checker.check_model(outcome.model, full_check=True)
    assert outcome.model.ir_version == model.ir_version
    assert list(outcome.model.opset_import) == list(model.opset_import)
    return outcome


def max_error(model: onnx.ModelProto, other: onnx.ModelProto, shapes=None) -> float:
    feeds = random_inputs(model, shapes, seed=1234)
    return max(d.max_abs for d in compare(run(model, feeds), run(other, feeds)))


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]

"""Every op the probe factory builds, as ``portlint probe`` sends it to a compiler: a model
the ONNX checker accepts in full, that onnxruntime runs, whose node named ``probe`` is that
op, rebuilt byte for byte (recorded evidence holds model hashes)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from portlint.probe.factory import build
from portlint.probe.fixed_models import COMMON, FIXED, LISTED
from portlint.probe.parts import NODE_NAME, Unsupported
from portlint.probe.plan import BUILDABLE_OPS, plan
from portlint.probe.recipes import CARRIER_OUT, build_recipe, model_hash, op_recipe
from portlint.target import load_target, shipped_target_names

BUILT = sorted(BUILDABLE_OPS | set(FIXED))


def _random_inputs(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for value in model.graph.input:
        tensor = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        dims = [d.dim_value for d in tensor.shape.dim]
        feeds[value.name] = rng.standard_normal(dims).astype(dtype)
    return feeds


def _run(model: onnx.ModelProto) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, _random_inputs(model))


@pytest.mark.parametrize("op", BUILT)
def test_probe_model_is_valid_runs_and_probes_its_op(op: str) -> None:
    model = build_recipe(op_recipe(op))
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node if n.name == NODE_NAME] == [op]
    assert len(_run(model)) == len(model.graph.output)
    assert model_hash(build_recipe(op_recipe(op))) == model_hash(model)


@pytest.mark.parametrize("op", sorted(FIXED))
def test_only_float_tensors_meet_the_carriers(op: str) -> None:
    """A bool or integer output cannot be followed by a Relu carrier: fixed probes turn it
    back into float inside the model, so every output is carried."""
    model = build_recipe(op_recipe(op))
    float_types = {onnx.TensorProto.FLOAT}
    assert {v.type.tensor_type.elem_type for v in model.graph.input} <= float_types
    assert {v.type.tensor_type.elem_type for v in model.graph.output} <= float_types
    carried = [n for n in model.graph.node if n.name.startswith(CARRIER_OUT)]
    assert len(carried) == len(model.graph.output)


def test_a_fixed_probe_takes_no_field_settings() -> None:
    """Limit probes fall through to a constraint's other ops, as before these probes."""
    with pytest.raises(Unsupported, match="one fixed model: no setting \\(batch\\)"):
        build("Abs", "batch", 2)
    with pytest.raises(Unsupported, match="one fixed model"):
        build_recipe(op_recipe("Gemm", [("in_channels", 16)]))


def test_ops_without_a_probe_say_why() -> None:
    with pytest.raises(Unsupported, match="a pattern of several nodes"):
        build("GeluErf")
    with pytest.raises(Unsupported, match="no probe for op NoSuchOp"):
        build("NoSuchOp")


def test_common_ops_are_probed_everywhere_listed_ones_where_a_profile_names_them() -> None:
    assert set(COMMON) <= BUILDABLE_OPS
    assert not set(LISTED) & BUILDABLE_OPS
    probed = {p.op for p in plan(load_target("rk3588"))[0] if p.id.startswith("op:")}
    assert {"MaxRoiPool", "Gemm", "Erf"} <= probed  # listed there; common; common
    assert "Xor" not in probed  # neither listed there nor common


def test_every_op_a_shipped_profile_names_has_a_probe_or_a_reason() -> None:
    reasons = {
        u.reason
        for name in shipped_target_names()
        for u in plan(load_target(name))[1]
        if not u.fact.startswith("constraints")
    }
    assert not [r for r in reasons if "no probe for op" in r]

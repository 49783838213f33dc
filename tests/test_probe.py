"""``portlint probe``: probe planning, probe models, judging, and the command end to end
against the stand-in rknn toolkit (tests/data/toolchains/fake_rknn)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from conftest import ROOT, run_cli

from portlint.probe.blocks import BLOCKS
from portlint.probe.evidence import load
from portlint.probe.judge import Probed, observed, predicted
from portlint.probe.parts import NODE_NAME
from portlint.probe.plan import plan
from portlint.probe.recipes import (
    CARRIER_IN,
    CARRIER_OUT,
    block_recipe,
    build_recipe,
    model_hash,
    op_recipe,
)
from portlint.probe.replay import replay
from portlint.target import load_target, shipped_target_names
from portlint.toolchains.base import CONVERTER_FAILED, CONVERTS, CRASHED, CompileResult, Layer


@pytest.mark.parametrize("name", shipped_target_names())
def test_every_fact_is_probed_or_says_why_not(name: str) -> None:
    target = load_target(name)
    probes, unprobed = plan(target)
    covered = {p.fact for p in probes} | {u.fact for u in unprobed}
    assert {f"constraints.{c.id}" for c in target.constraints} <= covered
    assert {f"ops.{op}" for op in target.ops} <= covered
    assert all(u.reason for u in unprobed)
    ids = [p.id for p in probes]
    assert len(ids) == len(set(ids))


def test_a_limit_is_probed_on_both_sides() -> None:
    probes, _ = plan(load_target("rk3588"))
    sides = {p.id.rsplit(":", 1)[1] for p in probes if p.id.startswith("limit:")}
    assert sides == {"inside", "outside"}


def test_probe_models_rebuild_byte_for_byte_and_sit_between_carriers() -> None:
    recipe = op_recipe("Conv", [("kernel_shape", (5, 5))])
    model = build_recipe(recipe)
    assert model_hash(model) == model_hash(build_recipe(recipe))
    names = [n.name for n in model.graph.node]
    assert names == [CARRIER_IN, NODE_NAME, CARRIER_OUT]
    onnx.checker.check_model(model)
    probe = next(n for n in model.graph.node if n.name == NODE_NAME)
    kernel = next(a for a in probe.attribute if a.name == "kernel_shape")
    assert list(kernel.ints) == [5, 5]


def test_a_first_layer_probe_reads_the_graph_input() -> None:
    model = build_recipe(op_recipe("Conv", [("is_first_layer", True), ("in_width", 64)]))
    assert model.graph.node[0].name == NODE_NAME
    assert model.graph.node[0].input[0] == model.graph.input[0].name


def _result(outcome: str, *layers: Layer) -> CompileResult:
    return CompileResult("rknn", "2.5.0", "rk3588", outcome, layers=layers)


SOFTMAX = Probed.op("Softmax")


def test_the_compilers_answer_in_the_probe_vocabulary() -> None:
    conv = Probed.op("Conv", frozenset({"x_carried"}))
    assert observed(_result(CRASHED), SOFTMAX) == "reject"
    assert observed(_result(CONVERTER_FAILED), SOFTMAX) == "untestable"
    on_cpu = Layer("Softmax:probe", "Softmax", "cpu", onnx_node=NODE_NAME)
    assert observed(_result(CONVERTS, on_cpu), SOFTMAX) == "cpu"
    by_op = Layer("SOFTMAX", "SOFTMAX", "npu", onnx_op="Softmax")
    assert observed(_result(CONVERTS, by_op), SOFTMAX) == "npu"
    folded = Layer("Relu:carrier_in", "Relu", "npu", onnx_node=CARRIER_IN)
    assert observed(_result(CONVERTS, folded), Probed.op("Identity")) == "npu"
    split = Layer("Conv:probe", "Conv", "npu", onnx_node=NODE_NAME)
    gather = Layer("Gather:x_carried_gather", "Gather", "cpu", inserted=True)
    elsewhere = Layer("Reshape:y_rs", "Reshape", "cpu", inserted=True)
    assert observed(_result(CONVERTS, split, gather), conv) == "slow"
    assert observed(_result(CONVERTS, split, elsewhere), conv) == "npu"


def test_check_predicts_in_the_same_vocabulary() -> None:
    """Each side of a limit: inside runs on the NPU, outside is what the profile says."""
    target = load_target("rk3588")
    probes, _ = plan(target)
    by_id = {p.id: p for p in probes}
    limit = "limit:resize-mode"
    assert predicted(build_recipe(by_id[f"{limit}:inside"].recipe), target) == "npu"
    assert predicted(build_recipe(by_id[f"{limit}:outside"].recipe), target) == "reject"
    assert predicted(build_recipe(op_recipe("Conv")), target) == "npu"


PROFILE = """\
name: lab-rk3588
display_name: RK3588 with our lab's claims
extends: rk3588
ops:
  - {source: lab, placement: cpu, names: [Softmax]}
sources:
  lab: {title: Lab notes, url: "https://example.invalid/lab", version: "1"}
"""


def test_probe_names_the_fact_the_compiler_contradicts_and_records_it(
    tmp_path: Path, fake_rknn_python: str
) -> None:
    profile = tmp_path / "lab-rk3588.yaml"
    profile.write_text(PROFILE)
    result = run_cli(
        "probe", "-t", str(profile), "--only", "op:Softmax,op:Relu",
        "--toolchain-python", fake_rknn_python, "--record", str(tmp_path / "evidence"), "-v",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "1 facts confirmed · 1 contradicted" in out
    assert "ops.Softmax" in out
    assert "op:Softmax: check says runs on the CPU; rknn: runs on the NPU (converts)" in out
    evidence = load(tmp_path / "evidence" / "lab-rk3588" / "rknn-toolkit2-2.5.0.yaml")
    assert {r.id: r.compiler for r in evidence.records} == {"op:Relu": "npu", "op:Softmax": "npu"}
    softmax = next(r for r in evidence.records if r.id == "op:Softmax")
    found = replay(softmax, evidence, load_target(str(profile)))
    assert (
        found.problem is not None
        and "it runs on the NPU; check predicts it runs on the CPU" in (found.problem)
    )


def test_probe_without_the_toolchain_is_one_line(tmp_path: Path) -> None:
    result = run_cli("probe", "-t", "hailo8")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no toolchain adapter" in result.stderr


def test_shipped_evidence_lives_beside_the_profiles() -> None:
    assert (ROOT / "targets" / "evidence").is_dir()


LAB_LIMIT = (
    PROFILE
    + """\
constraints:
  - {rule: PL250, id: lab-softmax-axis, ops: [Softmax], field: axis, one_of: [1], effect: cpu,
     source: lab}
"""
)


def test_write_profile_gives_a_profile_that_agrees_with_the_compiler(
    tmp_path: Path, fake_rknn_python: str
) -> None:
    profile = tmp_path / "lab-rk3588.yaml"
    profile.write_text(LAB_LIMIT)
    out = tmp_path / "my-rk3588.yaml"
    result = run_cli(
        "probe", "-t", str(profile), "--only", "op:Softmax,op:Relu,limit:lab-softmax-axis",
        "--toolchain-python", fake_rknn_python, "--write-profile", str(out),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    derived = load_target(str(out))
    assert derived.lineage[0] == "lab-rk3588"
    assert derived.ops["Softmax"].placement == "npu"
    assert not [c for c in derived.constraints if c.id == "lab-softmax-axis"]
    source = derived.sources[derived.ops["Softmax"].source]
    assert source.kind == "probe" and source.url == "my-rk3588.evidence.yaml"
    evidence = load(tmp_path / "my-rk3588.evidence.yaml")
    assert all(replay(r, evidence, derived).problem is None for r in evidence.judged)


def test_write_profile_refuses_a_bad_path_before_running_anything(tmp_path: Path) -> None:
    result = run_cli("probe", "-t", "rk3588", "--write-profile", str(tmp_path / "nope" / "x.yaml"))
    assert result.returncode == 2 and "no such folder" in result.stderr


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_block_probe_is_a_valid_model_that_runs(name: str) -> None:
    """A block probe is a model an exporter could have written: the checker and shape
    inference accept it, onnxruntime runs it, and its nodes are the ``probe.<role>`` ones."""
    import numpy as np
    import onnxruntime as ort

    model = build_recipe(block_recipe(name))
    onnx.checker.check_model(model, full_check=True)
    probed = Probed.of(model)
    assert probed.block and len(probed.nodes) == sum(
        1 for n in model.graph.node if n.name.startswith(f"{NODE_NAME}.")
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {
        i.name: rng.random([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
        for i in session.get_inputs()
    }
    outputs = session.run(None, feeds)
    assert all(np.isfinite(o).all() for o in outputs)
    assert model_hash(build_recipe(block_recipe(name))) == model_hash(model)


def test_a_block_is_on_the_cpu_when_any_of_its_nodes_is() -> None:
    silu = Probed.of(build_recipe(block_recipe("silu")))
    assert silu.nodes == {"probe.sigmoid", "probe.mul"} and silu.ops == {"Sigmoid", "Mul"}
    npu = Layer("Sigmoid:probe.sigmoid", "Sigmoid", "npu", onnx_node="probe.sigmoid")
    cpu = Layer("Mul:probe.mul", "Mul", "cpu", onnx_node="probe.mul")
    assert observed(_result(CONVERTS, npu), silu) == "npu"
    assert observed(_result(CONVERTS, npu, cpu), silu) == "cpu"
    # a converter that fuses the block into an op of another type (Vela: one SiLU layer)
    fused = Layer("SILU", "SILU", "cpu", onnx_op=None)
    assert observed(_result(CONVERTS, fused), silu) == "cpu"


def test_check_judges_a_block_by_its_worst_node() -> None:
    """ESP-DL has no Erf: the Erf form of GELU cannot build there, while every node of the
    SiLU form is an op it runs."""
    target = load_target("esp32-s3")
    assert predicted(build_recipe(block_recipe("gelu-erf")), target) == "reject"
    assert predicted(build_recipe(block_recipe("silu")), target) == "npu"
    blocks = [p for p in plan(target)[0] if p.id.startswith("block:")]
    assert {p.fact for p in blocks} == {f"blocks.{name}" for name in BLOCKS}


def test_a_runtime_limit_is_not_judged_by_a_converter_that_builds_it() -> None:
    """ESP-PPQ exports a grouped conv that the ESP-DL runtime computes as a depthwise one: the
    profile keeps the error (the board gives wrong answers) and marks the limit
    ``enforced_by: runtime``, so the export neither confirms nor contradicts it; a converter
    that does refuse it still agrees."""
    from portlint.probe.judge import agrees

    assert agrees("reject", "npu", runtime=True) is None
    assert agrees("reject", "reject", runtime=True) is True
    assert agrees("npu", "npu", runtime=True) is True
    assert agrees("reject", "npu") is False
    target = load_target("esp32-s3")
    [groups] = [c for c in target.constraints if c.id == "conv-groups"]
    assert groups.enforced_by == "runtime"
    from portlint.probe.judge import prediction

    outside = next(p for p in plan(target)[0] if p.id == "limit:conv-groups:outside")
    assert prediction(build_recipe(outside.recipe), target) == ("reject", True)
    # a block whose only rejecting finding is that runtime limit: the same
    assert prediction(build_recipe(block_recipe("grouped-conv")), target) == ("reject", True)
    # an op the converter refuses is no runtime matter
    assert prediction(build_recipe(block_recipe("gelu-erf")), target) == ("reject", False)


def test_a_converter_that_renames_ops_is_read_by_every_layer_but_its_own() -> None:
    """Vela names TFLite tensors, not ONNX nodes, and onnx2tf turns ops into others (an Erf
    into a CUSTOM op on the CPU): every layer counts but the QUANTIZE/DEQUANTIZE pair the
    converter wraps around float ops and the Relu carriers."""
    erf = Probed.op("Erf")
    custom = Layer("model/tf.math.erf/Erf", "CUSTOM", "cpu")
    wrappers = [Layer(n, n.upper(), "cpu", inserted=True) for n in ("quantize", "dequantize")]
    carrier = Layer("model/tf.nn.relu/Relu", "RELU", "npu", onnx_op="Relu")
    assert observed(_result(CONVERTS, carrier, custom, *wrappers), erf) == "cpu"
    assert observed(_result(CONVERTS, carrier, *wrappers), erf) == "npu"
    # a Div by a constant becomes MUL, on the NPU: nothing of the probe is on the CPU
    mul = Layer("model/tf.math.multiply/Mul", "MUL", "npu", onnx_op="Mul")
    assert observed(_result(CONVERTS, carrier, mul), Probed.op("Div")) == "npu"

"""Toolchain adapters, `portlint verify`, `--reduce` and known defects (PL109).

Three kinds of evidence, none of which needs a vendor compiler in CI:
- recorded runs of the real rknn-toolkit2 2.5.0 (tests/data/toolchains/rknn/, written by
  dev/record_toolchain_cases.py) parsed again by the adapter;
- a stand-in toolkit (tests/data/toolchains/fake_rknn/) with rknn's API and log format,
  installed in a throwaway venv, so the real worker, the isolation and the CLI run end to end;
- with the real toolkit installed (PORTLINT_RKNN_PYTHON), the marked tests run it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import FIXTURES, ROOT, parse, run_cli, save
from onnx import numpy_helper

from portlint.target import load_target
from portlint.toolchains import TOOLCHAINS, for_target
from portlint.toolchains.base import CompileRequest
from portlint.toolchains.run import node_names

DATA = ROOT / "tests" / "data" / "toolchains"
RECORDED = DATA / "rknn"
RKNN = TOOLCHAINS["rknn"]
VELA = TOOLCHAINS["vela"]


def replay(case: str, toolchain=RKNN):
    """Parse a recorded real compiler run again, as the adapter does live."""
    folder = DATA / toolchain.name
    record = json.loads((folder / f"{case}.json").read_text())
    model = onnx.load(str(ROOT / record["model"]), load_external_data=False)
    target = record["target"]
    request = CompileRequest(
        Path("model.onnx"), target, toolchain.platform_for(target), toolchain.quantize_for(target)
    )
    log = (folder / f"{case}.log").read_text(encoding="utf-8")
    return toolchain.parse(request, log, record["raw"], node_names(model))


# --- recorded runs of the real rknn-toolkit2 2.5.0 ---------------------------------------


def test_yolov8n_crash_names_the_fuse_rule_and_the_dfl_nodes():
    result = replay("yolov8n_rk3588")
    assert result.outcome == "crashed" and result.stage == "build"
    assert result.error_kind == "IndexError"
    assert result.details["fuse_rule"] == "seperate_conv_rs_split"
    assert "IndexError: list index out of range in fuse rule seperate_conv_rs_split" in (
        result.error or ""
    )
    assert result.suggested_options == {"disable_rules": ["seperate_conv_rs_split"]}
    # the subgraph the toolkit printed, mapped back to ONNX nodes (the Split it made of two
    # Slices is found through its output tensors)
    assert result.failing_nodes == (
        "/model.22/dfl/conv/Conv",
        "/model.22/dfl/Reshape_1",
        "/model.22/Slice",
        "/model.22/Slice_1",
    )
    assert result.version == "2.5.0"


def test_reduced_dfl_head_fails_the_same_way_as_the_whole_model():
    assert replay("dfl_head_rk3588").signature() == replay("yolov8n_rk3588").signature()


def test_layer_table_gives_placement_per_onnx_node():
    result = replay("erf_cpu_rk3566")
    assert result.converts
    assert [(x.onnx_node, x.placement) for x in result.layers] == [
        ("conv", "npu"),
        ("erf", "cpu"),
        ("relu", "npu"),
    ]


def test_int8_build_for_rv1106_is_recorded_quantized():
    record = json.loads((RECORDED / "erf_cpu_rv1106.json").read_text())
    assert RKNN.quantize_for("rv1106") and not RKNN.quantize_for("rk3588")
    assert record["recorded"]["details"]["quantized"] is True
    assert replay("erf_cpu_rv1106").converts


@pytest.mark.parametrize(
    ("case", "stage", "words", "node"),
    [
        ("nonzero_rk3588", "build", "need to be constant", "nonzero"),
        ("dynamic_input_rk3588", "load", "is not support", None),
    ],
)
def test_refusals_are_refusals_not_crashes(case, stage, words, node):
    result = replay(case)
    assert result.outcome == "refuses" and result.stage == stage
    assert words in (result.error or "") and not result.error.startswith("ValueError")
    assert result.failing_nodes == ((node,) if node else ())


# --- recorded runs of Arm Vela 5.2.0 behind onnx2tf 1.29.24 -------------------------------


def test_vela_cpu_ops_are_named_by_joining_the_warnings():
    result = replay("topk_u55", VELA)
    assert result.converts and result.version == "5.2.0"
    assert [(x.op, x.onnx_op) for x in result.cpu_layers] == [("TOPK_V2", "TopK")]
    assert result.details["accelerator"] == "ethos-u55-128"


def test_vela_marks_the_converters_quantize_wrappers_as_inserted():
    layers = replay("sin_u55", VELA).cpu_layers
    assert [(x.op, x.inserted) for x in layers] == [
        ("DEQUANTIZE", True),
        ("SIN", False),
        ("QUANTIZE", True),
    ]


def test_vela_crash_is_a_crash_with_its_message():
    result = replay("conv_stride4_u55", VELA)
    assert result.outcome == "crashed" and result.stage == "vela"
    assert result.error == "RuntimeError: Non-passthrough operation (Conv2D) could not run on NPU"


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("castlike_u55", "CastLike OP is not yet implemented"),
        ("conv_stride2_dil2_u55", "`strides > 1` not supported in conjunction with"),
    ],
)
def test_converter_failure_is_the_converters_not_velas(case: str, words: str):
    result = replay(case, VELA)
    assert result.outcome == "converter failed" and result.stage == "convert"
    assert result.error.startswith("onnx2tf 1.29.24: ") and words in result.error
    assert result.failing_nodes == ("c0",)
    assert not result.judges_profile


# --- PL109: known toolchain defects in the profiles ---------------------------------------


def _check_json(model: Path, *targets: str) -> dict:
    args = [a for t in targets for a in ("-t", t)]
    result = run_cli("check", str(model), *args, "--format", "json")
    assert result.returncode in (0, 1), result.stderr
    return {t["target"]: t for t in json.loads(result.stdout)["models"][0]["targets"]}


def test_dfl_defect_reported_for_the_toolkit_version_that_crashes():
    report = _check_json(FIXTURES / "yolov8n.onnx", "rk3588", "rk3566", "rv1106", "rk3588@1.6")
    for target in ("rk3588", "rk3566", "rv1106"):
        defects = [f for f in report[target]["findings"] if f["rule"] == "PL109"]
        assert [f["location"]["name"] for f in defects] == ["/model.22/dfl/conv/Conv"], target
        assert defects[0]["severity"] == "error"
        assert "seperate_conv_rs_split" in defects[0]["message"]
        assert "disable_rules" in defects[0]["note"]
        assert report[target]["verdict"] == "does not compile"
    # the 1.6 profile describes another toolkit version: 2.5.0's bug is not its fact
    assert not [f for f in report["rk3588@1.6"]["findings"] if f["rule"] == "PL109"]


def test_dfl_defect_not_reported_on_a_plain_classifier():
    report = _check_json(FIXTURES / "mobilenetv3_small.onnx", "rk3588")
    assert not [f for f in report["rk3588"]["findings"] if f["rule"] == "PL109"]


def test_profile_defect_with_unknown_pattern_is_a_profile_error(tmp_path: Path):
    profile = tmp_path / "mine.yaml"
    profile.write_text(
        "portlint_profile: 1\nname: mine\nextends: rk3588\ndisplay_name: Mine\n"
        "toolchain: {name: RKNN-Toolkit2, version: '2.5.0'}\n"
        "defects:\n  - {id: x, pattern: no-such-pattern, versions: ['2.5.0'], what: w,\n"
        "     workaround: w, source: rknn-ops-2.1}\n"
    )
    result = run_cli("check", str(FIXTURES / "yolov8n.onnx"), "-t", str(profile))
    assert result.returncode == 2
    assert re.search(r"defects\[\d+\]\.pattern: unknown pattern 'no-such-pattern'", result.stderr)
    assert result.stderr.count("\n") == 1


# --- a stand-in toolkit in its own venv: the worker, isolation and CLI end to end ----------


def _chain(tmp_path: Path, middle: str, name: str = "model.onnx", length: int = 12) -> Path:
    """Relu chain with a block in the middle: ``middle`` is ONNX text using x_in -> x_out."""
    relus = "\n".join(f"r{i} = Relu(r{i - 1})" for i in range(1, length))
    tail = "\n".join(f"t{i} = Relu(t{i - 1})" for i in range(1, length))
    text = f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8,16,16] x) => (float[1,8,16,16] y) {{
      r0 = Relu(x)
      {relus}
      x_in = Identity(r{length - 1})
      {middle}
      t0 = Relu(x_out)
      {tail}
      y = Identity(t{length - 1})
    }}
    """
    model = parse(text)
    weight = numpy_helper.from_array(np.full((8, 8, 1, 1), 0.01, dtype=np.float32), "w")
    model.graph.initializer.append(weight)
    return save(model, tmp_path, name)


CONV_RESHAPE_SPLIT = """
      c = Conv(x_in, w)
      shape = Constant<value = int64[3] {1, 8, 256}>()
      flat = Reshape(c, shape)
      parts = Constant<value = int64[2] {4, 4}>()
      a, b = Split<axis = 1>(flat, parts)
      j = Concat<axis = 1>(a, b)
      back = Constant<value = int64[4] {1, 8, 16, 16}>()
      x_out = Reshape(j, back)
"""


def test_verify_agrees_with_a_converting_toolkit(tmp_path: Path, fake_rknn_python: str):
    model = _chain(tmp_path, "x_out = Relu(x_in)")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli(
        "verify", str(model), "-t", "rk3588", "--toolchain-python", fake_rknn_python,
        "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["agrees"] and report["compiler"]["verdict"].startswith("converts")
    # the layer the toolkit inserted itself is on the CPU, and is said to be inserted
    assert report["compiler"]["cpu_layers"] == [
        {"name": "Reshape:inserted_by_toolkit_rs", "op": "Reshape", "onnx_node": None,
         "inserted": True}
    ]  # fmt: skip
    # the toolkit's leftovers stay in its own folder: nothing lands next to the model
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_verify_names_the_profile_fact_a_compiler_contradicts(
    tmp_path: Path, fake_rknn_python: str
):
    # the stand-in runs Erf on the CPU; a profile that says NPU is contradicted
    profile = tmp_path / "erf-npu.yaml"
    profile.write_text(
        "portlint_profile: 1\nname: erf-npu\nextends: rk3588\ndisplay_name: Erf on NPU\n"
        "remove_ops: [Erf]\nops:\n  - {source: rknn-ops-2.1, names: [Erf]}\n"
    )
    model = _chain(tmp_path, "x_out = Erf(x_in)")
    result = run_cli(  # a derived profile builds for the chip of the profile it extends
        "verify", str(model), "-t", str(profile),
        "--toolchain-python", fake_rknn_python,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "runs 'Erf_" in result.stdout and "on the CPU; portlint predicted the NPU" in (
        result.stdout
    )
    assert "look at: profile erf-npu: ops.Erf placement npu (source rknn-ops-2.1)" in result.stdout


def test_verify_reduce_finds_the_pattern_in_log_runs(tmp_path: Path, fake_rknn_python: str):
    model = _chain(tmp_path, CONV_RESHAPE_SPLIT, length=24)
    nodes = len(onnx.load(str(model)).graph.node)
    out = tmp_path / "reduced.onnx"
    result = run_cli(
        "verify", str(model), "-t", "rk3588", "--toolchain-python", fake_rknn_python,
        "--reduce", "--reduced-output", str(out), "--format", "json",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["compiler"]["outcome"] == "crashed"
    assert report["compiler"]["details"]["fuse_rule"] == "seperate_conv_rs_split"
    reduced = report["reduced"]
    ops = [op for _, op in reduced["nodes"]]
    assert {"Conv", "Reshape", "Split"} <= set(ops) and "Relu" not in ops
    assert reduced["culprit_op"] == "Split"
    # log2(54 nodes) for the prefix, a few for the outputs and the depth: not one per node
    assert reduced["runs"] <= 2 * nodes.bit_length() + 4, reduced["runs"]
    written = onnx.load(str(out))
    onnx.checker.check_model(written, full_check=True)
    assert written.ir_version == 8 and written.opset_import[0].version == 17
    assert [n.op_type for n in written.graph.node if n.op_type != "Constant"] == [
        op for op in ops if op != "Constant"
    ]


def test_a_known_defect_and_its_workaround_option(fake_rknn_python: str):
    """The recorded DFL head: predicted and confirmed to crash; with the option the profile
    names, the prediction drops the defect and the build converts."""
    head = str(RECORDED / "yolov8n_dfl_head.onnx")
    common = ["-t", "rk3588", "--toolchain-python", fake_rknn_python, "-f", "json"]
    crashed = run_cli("verify", head, *common)
    assert crashed.returncode == 1, crashed.stderr
    report = json.loads(crashed.stdout)
    assert report["prediction"]["verdict"] == "does not compile" and report["agrees"]
    avoided = run_cli("verify", head, *common, "--option", "disable_rules=seperate_conv_rs_split")
    assert avoided.returncode == 0, avoided.stderr
    report = json.loads(avoided.stdout)
    assert (
        report["prediction"]["verdict"] != "does not compile"
        and report["prediction"]["errors"] == 0
    )
    assert report["compiler"]["outcome"] == "converts"


def test_verify_timeout_is_no_verdict_and_kills_the_compiler(tmp_path: Path, fake_rknn_python: str):
    body = "x_out = Loop(trip, cond, x_in)"
    text = f"""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8,16,16] x) => (float[1,8,16,16] y) {{
      trip = Constant<value = int64 {{1}}>()
      cond = Constant<value = bool {{1}}>()
      x_in = Relu(x)
      {body}
      y = Relu(x_out)
    }}
    """
    text = text.replace(
        body,
        "x_out = Loop(trip, cond, x_in) <body = b (int64 i, bool c, float[1,8,16,16] v) => "
        "(bool co, float[1,8,16,16] vo) { co = Identity(c) vo = Relu(v) }>",
    )
    model = save(parse(text), tmp_path)
    result = run_cli(
        "verify", str(model), "-t", "rk3588", "--toolchain-python", fake_rknn_python,
        "--timeout", "4",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().startswith("portlint: error: no verdict: RKNN-Toolkit2 did not")
    assert result.stderr.count("\n") == 1
    stray = subprocess.run(["pgrep", "-f", fake_rknn_python], capture_output=True, text=True)
    assert stray.stdout.strip() == ""


def test_verify_compiler_segfault_is_a_crash_not_a_traceback(tmp_path: Path, fake_rknn_python: str):
    model = _chain(tmp_path, "x_out = Abs(x_in)")
    result = run_cli(
        "verify", str(model), "-t", "rk3588", "--toolchain-python", fake_rknn_python,
        "--format", "json",
    )  # fmt: skip
    assert result.returncode == 1
    compiler = json.loads(result.stdout)["compiler"]
    assert compiler["outcome"] == "crashed"
    assert compiler["error"] == "the RKNN-Toolkit2 process died: killed by SIGSEGV"
    assert "Traceback" not in result.stderr


def test_toolchains_lists_what_it_found_and_how_to_install(tmp_path: Path, fake_rknn_python):
    (tmp_path / "portlint.toml").write_text(f'[toolchains]\nrknn = "{fake_rknn_python}"\n')
    found = run_cli("toolchains", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert f"found rknn-toolkit2 2.5.0 in {fake_rknn_python}" in found.stdout
    missing = run_cli("toolchains")
    assert "not found" in missing.stdout and "pip install rknn-toolkit2" in missing.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-t", "hailo8"], "no toolchain adapter builds for hailo8"),
        (["-t", "rk3588"], "rknn-toolkit2 is not installed; install it in its own venv"),
        (["-t", "rk3588", "--toolchain-python", "/no/such/python"], "no such interpreter"),
        (["-t", "rk3588", "--toolchain-python", sys.executable], "cannot import rknn-toolkit2"),
    ],
)
def test_verify_input_errors_are_one_line(args: list[str], words: str):
    result = run_cli("verify", str(FIXTURES / "yolov8n.onnx"), *args)
    assert result.returncode == 2
    assert words in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_unknown_toolchain_option_is_refused(fake_rknn_python: str):
    result = run_cli(
        "verify", str(FIXTURES / "odd_channels.onnx"), "-t", "rk3588",
        "--toolchain-python", fake_rknn_python, "--option", "disable_rule=x",
    )  # fmt: skip
    assert result.returncode == 2 and "unknown rknn option 'disable_rule'" in result.stderr


def test_every_rockchip_profile_has_an_adapter():
    from portlint.target import shipped_target_names

    rockchip = [n for n in shipped_target_names() if load_target(n).vendor == "Rockchip"]
    assert rockchip and all(for_target(n) == (RKNN, n) for n in rockchip if "@" not in n)
    assert for_target("rk3588@1.6") == (RKNN, "rk3588@1.6")


def test_defect_passes_exist():
    from portlint.passes.registry import PASSES

    for name in ("rk3588", "rk3566", "rv1106"):
        for defect in load_target(name).defects:
            assert set(defect.passes) <= set(PASSES), defect.id


# --- the real toolkit, when installed ----------------------------------------------------


def _real_rknn() -> str | None:
    return os.environ.get("PORTLINT_RKNN_PYTHON")


@pytest.mark.toolchain
@pytest.mark.skipif(not _real_rknn(), reason="set PORTLINT_RKNN_PYTHON to rknn-toolkit2's venv")
def test_real_toolkit_agrees_with_the_recorded_dfl_crash(tmp_path: Path):
    from portlint.toolchains.run import compile_model

    model = RECORDED / "yolov8n_dfl_head.onnx"
    result = compile_model(RKNN, model, "rk3588", _real_rknn())
    assert result.signature() == replay("dfl_head_rk3588").signature()


def test_op_level_comparison_where_layers_cannot_be_traced_to_nodes():
    """Vela sees onnx2tf's TFLite model: its layers carry op types, not ONNX node names.
    (The Vela 3.10 profile, which has HardSigmoid on the CPU; 5.2 runs it on the NPU.)"""
    from conftest import Config

    from portlint.engine import check_model
    from portlint.graph_view import build_view, display_names
    from portlint.model_io.load import load_for_check
    from portlint.rule import load_rules
    from portlint.toolchains.base import CompileResult, Layer
    from portlint.verify import compare

    path = FIXTURES / "mobilenetv3_small.onnx"
    target = load_target("ethos-u55@3.10")
    report = check_model(
        build_view(load_for_check(path)), path, [target], load_rules(), Config()
    ).targets[0]
    assert {f.op_type for f in report.findings if f.moves_to_cpu} == {"HardSigmoid"}
    result = CompileResult(
        "vela",
        "5.2.0",
        "ethos-u55",
        "converts",
        layers=(
            Layer("conv", "CONV_2D", "npu", onnx_op="Conv"),
            Layer("q", "QUANTIZE", "cpu", inserted=True),
            Layer("top", "TOPK_V2", "cpu", onnx_op="TopK"),
        ),
    )
    model = onnx.load(str(path), load_external_data=False)
    names = display_names(list(model.graph.node))
    ops = {name: node.op_type for name, node in zip(names, model.graph.node, strict=True)}
    found = compare(target, report, result, ops)
    kinds = [(d.kind, d.op) for d in found.disagreements]
    # TopK on the CPU nobody predicted; HardSigmoid predicted on the CPU, once per op type;
    # the converter's QUANTIZE wrapper is no disagreement
    assert kinds == [("cpu-not-predicted", "TopK"), ("npu-not-predicted", "HardSigmoid")]
    assert "profile ethos-u55@3.10: TopK is not listed" in found.disagreements[0].fact
    assert "vela 5.2.0 has no HardSigmoid on the CPU" in found.disagreements[1].message


QKV = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[{b},5,8] x) => (float[1,{b},2,5,4] q, float[1,{b},2,5,4] k) {{
  w = Constant<value = float[8,24] {vals}>()
  bias = Constant<value = float[24] {bias}>()
  m = MatMul(x, w)
  a = Add(bias, m)
  shape = Constant<value = int64[5] {{{b}, 5, 3, 2, 4}}>()
  r = Reshape(a, shape)
  t = Transpose<perm = [2, 0, 3, 1, 4]>(r)
  parts = Constant<value = int64[3] {{1, 1, 1}}>()
  q, k, v = Split<axis = 0>(t, parts)
}}
"""


@pytest.mark.parametrize(
    ("batch", "bias", "expected"),
    [(1, [0.0] * 24, 1), (4, [0.0] * 24, 0), (1, [i / 100 for i in range(24)], 0)],
)
def test_qkv_split_defect_needs_a_leading_one_and_a_uniform_bias(
    tmp_path: Path, batch: int, bias: list[float], expected: int
):
    """rknn 2.5.0 crashes on DeiT's zero qkv bias and converts it with a varied one (both
    recorded), and converts MobileViT's batch of 4 patches."""
    text = QKV.format(b=batch, vals="{" + ", ".join(["0.1"] * 192) + "}",
                      bias="{" + ", ".join(map(str, bias)) + "}")  # fmt: skip
    model = save(parse(text), tmp_path)
    report = _check_json(model, "rk3588", "rv1106")
    for target in ("rk3588", "rv1106"):
        found = [f for f in report[target]["findings"] if f["rule"] == "PL109"]
        assert len(found) == expected, target
        if expected:
            assert "seperate_exmatmul_rs_split" in found[0]["message"]
            assert "MatMul → Add → Reshape → Transpose → Split" in found[0]["message"]


ATTENTION = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1,2,16,8] q, float[1,2,16,8] k, float[1,2,8,16] v) => (float[1,2,8,16] y) {
  kt = Transpose<perm = [0, 1, 3, 2]>(k)
  s = MatMul(q, kt)
  p = Softmax<axis = -1>(s)
  pt = Transpose<perm = [0, 1, 3, 2]>(p)
  y = MatMul(v, pt)
}
"""


def test_attention_defect_is_reported_only_for_the_chips_that_crash(tmp_path: Path):
    report = _check_json(save(parse(ATTENTION), tmp_path), "rk3588", "rk3566", "rv1106")
    defects = {
        t: [f["location"]["name"] for f in r["findings"] if f["rule"] == "PL109"]
        for t, r in report.items()
    }
    # rknn-toolkit2 2.5.0 converts YOLO26n for rk3566 and crashes for rk3588 and rv1106
    assert defects == {"rk3588": ["Softmax_2"], "rk3566": [], "rv1106": ["Softmax_2"]}
    assert load_target("rk3566").chip == "rk3566" and load_target("rk3588@1.6").chip == "rk3588"


def test_a_derived_profile_inherits_its_chips_defects(tmp_path: Path):
    profile = tmp_path / "my-board.yaml"
    profile.write_text(
        "portlint_profile: 1\nname: my-board\nextends: rv1106\ndisplay_name: My board\n"
    )
    assert load_target(str(profile)).chip == "rv1106"
    report = _check_json(save(parse(ATTENTION), tmp_path), str(profile))
    assert [f["rule"] for f in report["my-board"]["findings"]].count("PL109") == 1


@pytest.mark.parametrize("case", sorted(p.stem for p in RECORDED.glob("*.json")))
def test_check_predicts_what_the_recorded_compiler_did(case: str):
    """The evidence replayed: for every recorded run of the real compiler, `check` with the
    shipped profile gives the same class of outcome (fails / converts)."""
    record = json.loads((RECORDED / f"{case}.json").read_text())
    result = replay(case)
    report = _check_json(ROOT / record["model"], record["target"])[record["target"]]
    predicted_failure = report["verdict"] == "does not compile"
    assert predicted_failure == (not result.converts), (case, report["verdict"], result.error)


def test_input_shape_pins_a_dynamic_input_for_the_compiler_too(
    tmp_path: Path, fake_rknn_python: str
):
    text = """
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N,8,16,16] x) => (float[N,8,16,16] y) { y = Relu(x) }
    """
    model = save(parse(text), tmp_path)
    common = ["verify", str(model), "-t", "rk3588", "--toolchain-python", fake_rknn_python]
    refused = run_cli(*common)
    assert refused.returncode == 1 and "is not support" in refused.stdout
    pinned = run_cli(*common, "--input-shape", "x:1,8,16,16")
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert "agree" in pinned.stdout


def test_verify_an_unreadable_model_is_one_line_before_any_compiler_runs(
    tmp_path: Path, fake_rknn_python: str
):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    result = run_cli("verify", str(bad), "-t", "rk3588", "--toolchain-python", fake_rknn_python)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("portlint: error: ")


# --- recorded runs of ESP-PPQ 1.3.12 (ESP32-S3) -----------------------------------------

ESPPPQ = TOOLCHAINS["esp-ppq"]


def test_esppq_no_backend_is_a_refusal_naming_the_node():
    result = replay("if_s3", ESPPPQ)
    assert result.outcome == "refuses" and result.stage == "quantize"
    assert result.error.startswith("NotImplementedError at If 'If_3': Graph op: If_3(If) has no")
    assert result.failing_nodes == ("If_3",)  # the original node, found by its output tensor
    nms = replay("nms_s3", ESPPPQ)
    assert nms.outcome == "refuses" and "No module named 'mmcv'" in nms.error


def test_esppq_export_the_runtime_cannot_load_is_refused_at_load():
    result = replay("gelu_erf_s3", ESPPPQ)
    assert result.outcome == "refuses" and result.stage == "load on the chip"
    assert "exports Erf, which the ESP-DL runtime registers no module for" in result.error


def test_esppq_grouped_conv_converts_with_a_warning():
    result = replay("grouped_conv4_s3", ESPPPQ)
    assert result.converts and replay("conv_relu_s3", ESPPPQ).converts
    assert len(result.warnings) == 1 and "runs every group != 1 as depthwise" in result.warnings[0]

"""Bespoke checks (op support, opsets, domains, control flow, dynamic shapes, tables)."""

from __future__ import annotations

from pathlib import Path

from conftest import FIXTURES, findings_of, parse, run_check

from portlint.config import Config
from portlint.engine import DOES_NOT_COMPILE, RUNS, RUNS_WITH_FALLBACK
from portlint.probe.factory import build
from portlint.rule import Severity
from portlint.target import load_target

TOPK = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1,100] x) => (float[1,5] v, int64[1,5] i) {
    k = Constant <value = int64[1] {5}> ()
    v, i = TopK <axis = 1> (x, k)
}
"""


def test_unsupported_op_is_an_error_where_the_toolchain_refuses_it(tmp_path: Path) -> None:
    report = run_check(parse(TOPK), tmp_path, "intel-gna")
    [finding] = findings_of(report, "PL101")
    assert finding.op_type == "TopK"
    assert finding.message == "TopK is not supported by intel-gna"
    assert finding.severity is Severity.ERROR
    assert finding.source.key == load_target("intel-gna").unsupported_ops.source
    assert report.targets[0].verdict == DOES_NOT_COMPILE


def test_supported_op_passes_unsupported_op_check(tmp_path: Path) -> None:
    relu = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8,4,4] x) => (float[1,8,4,4] y) { y = Relu (x) }""")
    report = run_check(relu, tmp_path, ["rk3588", "hailo8", "intel-gna"])
    assert findings_of(report, "PL101") == []
    assert all(t.verdict == RUNS for t in report.targets)


MINI_PROFILE = """
portlint_profile: 1
name: mini-npu
display_name: Mini NPU
toolchain: {name: minic, version: "1.0"}
sources:
  manual: {title: Mini NPU manual, url: "https://example.invalid/manual", version: "1.0"}
unsupported_ops: {effect: cpu, source: manual}
ops:
  - {source: manual, names: [Relu, Conv]}
  - {source: manual, names: [Sigmoid], placement: cpu, note: host only}
  - {source: manual, names: [Tanh], placement: slow, note: on the vector unit}
  - {source: manual, names: [Erf], placement: reject, note: parser error}
"""


def test_cpu_placement_gives_a_warning_and_splits_partitions(tmp_path: Path) -> None:
    profile = tmp_path / "mini-npu.yaml"
    profile.write_text(MINI_PROFILE)
    chain = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8,4,4] x) => (float[1,8,4,4] y) { a = Relu (x) b = Sigmoid (a) y = Relu (b) }""")
    report = run_check(chain, tmp_path, str(profile))
    [finding] = findings_of(report, "PL102")
    assert finding.op_type == "Sigmoid" and finding.severity is Severity.WARNING
    assert finding.note == "host only"
    target = report.targets[0]
    assert (target.npu_nodes, target.cpu_nodes, target.partitions) == (2, 1, 2)
    assert target.verdict == RUNS_WITH_FALLBACK


def test_slow_and_refused_placements(tmp_path: Path) -> None:
    profile = tmp_path / "mini-npu.yaml"
    profile.write_text(MINI_PROFILE)
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8] x) => (float[1,8] y) { a = Tanh (x) y = Erf (a) }""")
    report = run_check(model, tmp_path, str(profile))
    [slow] = findings_of(report, "PL107")
    assert slow.op_type == "Tanh" and slow.severity is Severity.INFO
    assert slow.note == "on the vector unit"
    [refused] = findings_of(report, "PL101")
    assert refused.op_type == "Erf" and refused.severity is Severity.ERROR
    assert refused.message == "Erf is refused by mini-npu" and refused.note == "parser error"
    target = report.targets[0]
    assert (target.npu_nodes, target.rejected_nodes) == (1, 1)


def test_unsupported_op_is_a_warning_where_the_toolchain_falls_back(tmp_path: Path) -> None:
    profile = tmp_path / "mini-npu.yaml"
    profile.write_text(MINI_PROFILE)
    [finding] = findings_of(run_check(parse(TOPK), tmp_path, str(profile)), "PL101")
    assert finding.severity is Severity.WARNING and finding.effect == "cpu"


def test_opset_newer_than_documented_is_reported(tmp_path: Path) -> None:
    high = load_target("rk3588").opset_max
    for opset, expected in ((high, 0), (high + 1, 1)):
        model = parse(f"""<ir_version: 10, opset_import: ["" : {opset}]>
        g (float[1,8,4,4] x) => (float[1,8,4,4] y) {{ y = Relu (x) }}""")
        found = findings_of(run_check(model, tmp_path, "rk3588"), "PL103")
        assert len(found) == expected
    assert f"model opset {high + 1} is newer" in found[0].message


def test_custom_domain_op_is_flagged_not_reported_as_unknown_op(tmp_path: Path) -> None:
    model = parse("""<ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1]>
    g (float[1,8,4,4] x) => (float[1,8,4,4] y) { y = com.microsoft.FastGelu (x) }""")
    report = run_check(model, tmp_path, "hailo8")
    [finding] = findings_of(report, "PL104")
    assert "com.microsoft" in finding.message
    assert findings_of(report, "PL101") == []


IF_MODEL = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1] x, bool c) => (float[1] y) {
    y = If (c) <then_branch = t () => (float[1] a) { a = Identity (x) },
                else_branch = e () => (float[1] b) { b = Neg (x) }>
}"""


def test_control_flow_reported_once_under_its_own_rule(tmp_path: Path) -> None:
    report = run_check(parse(IF_MODEL), tmp_path, "intel-gna")
    [finding] = findings_of(report, "PL105")
    assert finding.op_type == "If" and finding.severity is Severity.ERROR
    assert findings_of(report, "PL101", finding.location) == []


def test_control_flow_the_target_lists_is_not_reported(tmp_path: Path) -> None:
    assert "If" in load_target("rk3588").ops
    assert findings_of(run_check(parse(IF_MODEL), tmp_path, "rk3588"), "PL105") == []


def test_dynamic_batch_names_the_input_and_first_node() -> None:
    from portlint.engine import check_model
    from portlint.graph_view import build_view
    from portlint.model_io.load import load_for_check
    from portlint.rule import load_rules

    path = FIXTURES / "dynamic_batch.onnx"
    view = build_view(load_for_check(path))
    report = check_model(view, path, [load_target("rk3588")], load_rules(), Config())
    [finding] = findings_of(report, "PL201")
    assert finding.location == "input" and finding.kind == "graph_input"
    assert "axis 0 ('batch')" in finding.message
    assert "first node affected: /stem/stem.0/Conv" in finding.message
    assert "--input-shape input:1,3,64,64" in finding.message
    pinned = check_model(
        build_view(load_for_check(path, {"input": [1, 3, 64, 64]})),
        path,
        [load_target("rk3588")],
        load_rules(),
        Config(),
    )
    assert findings_of(pinned, "PL201") == [] and findings_of(pinned, "PL200") == []


def test_data_dependent_output_shape_is_a_dynamic_shape(tmp_path: Path) -> None:
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,16] x) => (int64[2,N] y) { y = NonZero (x) }""")
    [finding] = findings_of(run_check(model, tmp_path, "hailo8"), "PL201")
    assert finding.op_type == "NonZero" and "depends on the data" in finding.message


def test_unknown_dim_gives_unevaluable_finding_not_silence(tmp_path: Path) -> None:
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,C,16,16] x, float[8,8,3,3] w) => (float[1,8,14,14] y) { y = Conv (x, w) }""")
    report = run_check(model, tmp_path, "intel-gna")
    unevaluable = findings_of(report, "PL200", "Conv_0")
    assert unevaluable, report.findings
    assert any("input channels" in f.message or "in_channels" in f.message for f in unevaluable)
    assert all(f.effect == "unknown" and f.severity is Severity.WARNING for f in unevaluable)
    assert report.targets[0].npu_nodes == 1  # an unknown does not move the node to the CPU


def test_hailo_conv_table_is_info_for_unlisted_combination(tmp_path: Path) -> None:
    listed = build("Conv", "kernel_shape", (3, 3))
    unlisted = build("Conv", "kernel_shape", (11, 11))
    assert findings_of(run_check(listed, tmp_path, "hailo8"), "PL215") == []
    [finding] = findings_of(run_check(unlisted, tmp_path, "hailo8"), "PL215")
    assert finding.severity is Severity.INFO and not finding.verified
    assert "kernel 11x11, stride 1x1, dilation 1x1 is not a listed combination" in finding.message


def test_stride_equal_to_kernel_row_matches_any_kernel(tmp_path: Path) -> None:
    patchify = build("Conv", "kernel_shape", (4, 4))
    from portlint.probe.factory import apply
    from portlint.probe.parts import Spec

    spec = apply(apply(Spec("Conv"), "kernel_shape", (4, 4)), "strides", (4, 4))
    assert findings_of(run_check(build("Conv", base=spec), tmp_path, "hailo8"), "PL215") == []
    assert findings_of(run_check(patchify, tmp_path, "hailo8"), "PL215")


def test_silu_pattern_is_judged_as_one_layer(tmp_path: Path) -> None:
    silu = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8,4,4] x) => (float[1,8,4,4] y) { s = Sigmoid (x) y = Mul (x, s) }""")
    hailo = run_check(silu, tmp_path, "hailo8")
    assert findings_of(hailo, "PL101") == []
    gna = run_check(silu, tmp_path, "intel-gna")
    assert "SiLU" not in load_target("intel-gna").patterns
    assert all("SiLU" in f.message for f in findings_of(gna, "PL101"))


def test_per_op_batch_limit_for_gna_convolution(tmp_path: Path) -> None:
    from portlint.probe.parts import Spec

    batch2 = build("Conv", base=Spec("Conv", n=2, c=8, out=8, kernel=(1, 1), pads=(0, 0, 0, 0)))
    found = [
        f
        for f in findings_of(run_check(batch2, tmp_path, "intel-gna"), "PL202")
        if f.kind == "node"
    ]
    assert len(found) == 1 and "batch 2 is not 1" in found[0].message

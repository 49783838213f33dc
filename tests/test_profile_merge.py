"""Derived profiles (extends, version variants) and single-partition placement."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import findings_of, parse, run_check

from portlint.errors import ProfileError
from portlint.target import load_target

CHILD = """
portlint_profile: 1
extends: rk3588
name: my-board
display_name: My RK3588 board
toolchain: {name: RKNN-Toolkit2, version: "2.1.0"}
sources:
  lab: {title: Lab notes, url: "https://example.invalid/lab", version: "1"}
remove_ops: [Softmax]
constraints:
  - {rule: PL220, id: lab-conv-out-channels, ops: [Conv], field: out_channels, multiple_of: 16,
     effect: slow, source: lab,
     verified: false, note: measured on our board}
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_user_profile_extends_a_shipped_one(tmp_path: Path) -> None:
    child = load_target(str(_write(tmp_path, "my-board.yaml", CHILD)))
    parent = load_target("rk3588")
    assert child.name == "my-board" and "Softmax" not in child.ops
    assert set(child.ops) == set(parent.ops) - {"Softmax"}
    assert len(child.constraints) == len(parent.constraints) + 1
    assert {"lab", *parent.sources} == set(child.sources)
    softmax = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8] x) => (float[1,8] y) { y = Softmax <axis = 1> (x) }""")
    [finding] = findings_of(run_check(softmax, tmp_path, str(tmp_path / "my-board.yaml")), "PL101")
    assert finding.op_type == "Softmax"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CHILD.replace("remove_ops: [Softmax]", "remove_ops: [Sofmax]"), "remove_ops: op 'Sofmax'"),
        (CHILD.replace("extends: rk3588", "extends: rk3589"), "did you mean 'rk3588'"),
        (
            CHILD.replace("remove_ops: [Softmax]", "remove_constraints: [nope]"),
            "no constraint with id 'nope'",
        ),
    ],
)
def test_bad_derivations_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(Exception, match=message.replace("(", r"\(")):
        load_target(str(_write(tmp_path, "child.yaml", text)))


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "portlint_profile: 1\nextends: b.yaml\nname: a\n")
    _write(tmp_path, "b.yaml", "portlint_profile: 1\nextends: a.yaml\nname: b\n")
    with pytest.raises(ProfileError, match="cycle"):
        load_target(str(tmp_path / "a.yaml"))


SINGLE = """
portlint_profile: 1
name: one-shot
display_name: One-shot NPU
toolchain: {name: oneshotc, version: "1"}
sources:
  manual: {title: Manual, url: "https://example.invalid/m", version: "1"}
unsupported_ops: {effect: cpu, source: manual}
partitioning: {model: single, source: manual}
ops:
  - {source: manual, names: [Relu, Add]}
"""


def test_single_partition_sends_the_tail_to_the_cpu(tmp_path: Path) -> None:
    chain = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8] x) => (float[1,8] y) {
        a = Relu (x)
        b = Sigmoid (a)
        c = Relu (b)
        y = Add (c, c)
    }""")
    profile = str(_write(tmp_path, "one-shot.yaml", SINGLE))
    target = run_check(chain, tmp_path, profile).targets[0]
    assert target.placement == {
        "Relu_0": "npu",
        "Sigmoid_1": "cpu",
        "Relu_2": "cpu",
        "Add_3": "cpu",
    }
    assert (target.npu_nodes, target.cpu_nodes, target.partitions) == (1, 3, 1)
    [tail] = [f for f in target.findings if f.rule == "PL106"]
    assert tail.location == "Sigmoid_1"
    assert tail.message.startswith("2 supported nodes after Sigmoid 'Sigmoid_1' run on the CPU")
    multi = _write(
        tmp_path,
        "multi.yaml",
        SINGLE.replace("model: single", "model: multi").replace("name: one-shot", "name: multi"),
    )
    multi_target = run_check(chain, tmp_path, str(multi)).targets[0]
    assert multi_target.npu_nodes == 3 and not [
        f for f in multi_target.findings if f.rule == "PL106"
    ]


def test_child_can_drop_and_restate_an_inherited_constraint(tmp_path: Path) -> None:
    parent = load_target("rk3588")
    restated = CHILD.replace("remove_ops: [Softmax]", "remove_constraints: [batch-1]").replace(
        "constraints:\n",
        "constraints:\n  - {rule: PL202, id: batch-1, scope: graph_input, field: batch, max: 4,"
        " source: lab}\n",
    )
    child = load_target(str(_write(tmp_path, "restated.yaml", restated)))
    batch = [c for c in child.constraints if c.rule == "PL202" and c.scope == "graph_input"]
    assert [(c.predicate, c.operand) for c in batch] == [("max", 4)]
    assert len(child.constraints) == len(parent.constraints) + 1

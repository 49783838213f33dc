"""Hostile files: external data that leaves the model's folder, YAML that asks to run code,
names that look like paths. Each is refused with one line (exit 2), and ``fix`` never writes
anywhere but the output's folder.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import ROOT, run_cli
from onnx import TensorProto, helper, numpy_helper

from portlint.cli import main

WEIGHT = np.arange(16 * 16, dtype=np.float32).reshape(16, 16, 1, 1) / 256
OUTSIDE = "the model's folder"


def _model(names: str = "") -> onnx.ModelProto:
    """A Conv then a HardSwish (``fix -t nnom`` decomposes it); ``names`` prefixes every name."""
    conv = helper.make_node("Conv", [f"{names}x", f"{names}w"], [f"{names}c"], name=f"{names}conv")
    hswish = helper.make_node("HardSwish", [f"{names}c"], [f"{names}y"], name=f"{names}hs")
    graph = helper.make_graph(
        [conv, hswish],
        f"{names}graph",
        [helper.make_tensor_value_info(f"{names}x", TensorProto.FLOAT, [1, 16, 4, 4])],
        [helper.make_tensor_value_info(f"{names}y", TensorProto.FLOAT, [1, 16, 4, 4])],
        [numpy_helper.from_array(WEIGHT, f"{names}w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _point_weights_at(model: onnx.ModelProto, location: str) -> onnx.ModelProto:
    """Make the weight external data at ``location`` (relative to the model's folder)."""
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(WEIGHT.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return model


def _constant_at(location: str) -> onnx.ModelProto:
    """The weight as a Constant node's value (an attribute tensor) with external data."""
    model = _model()
    value = model.graph.initializer.pop()
    holder = onnx.ModelProto()
    holder.graph.initializer.append(value)
    _point_weights_at(holder, location)
    constant = helper.make_node("Constant", [], ["w"], name="weights")
    constant.attribute.append(helper.make_attribute("value", holder.graph.initializer[0]))
    model.graph.node.insert(0, constant)
    return model


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """``root/models/m.onnx`` beside ``root/secret/w.bin``, the file hostile models reach for."""
    (tmp_path / "models").mkdir()
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "w.bin").write_bytes(WEIGHT.tobytes())
    (tmp_path / "out").mkdir()
    return tmp_path


def _tree(folder: Path) -> dict[str, int]:
    """Every file and link under ``folder``, with its size (links: -1)."""
    return {
        str(p.relative_to(folder)): -1 if p.is_symlink() else p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``portlint ARGS`` in this process, as ``python -m portlint`` runs it (fast)."""
    monkeypatch.setattr(sys, "argv", ["portlint", *args])
    with pytest.raises(SystemExit) as done:
        main()
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


def _one_line_error(code: int, stderr: str, *fragments: str) -> None:
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("portlint: error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _dot_dot(root: Path) -> onnx.ModelProto:
    return _point_weights_at(_model(), "../secret/w.bin")


def _absolute(root: Path) -> onnx.ModelProto:
    return _point_weights_at(_model(), str(root / "secret" / "w.bin"))


def _through_a_subfolder(root: Path) -> onnx.ModelProto:
    (root / "models" / "sub").mkdir()
    return _point_weights_at(_model(), "sub/../../secret/w.bin")


def _linked_file(root: Path) -> onnx.ModelProto:
    (root / "models" / "w.bin").symlink_to(root / "secret" / "w.bin")
    return _point_weights_at(_model(), "w.bin")


def _linked_folder(root: Path) -> onnx.ModelProto:
    (root / "models" / "data").symlink_to(root / "secret", target_is_directory=True)
    return _point_weights_at(_model(), "data/w.bin")


def _constant_outside(root: Path) -> onnx.ModelProto:
    return _constant_at("../secret/w.bin")


HOSTILE = {
    "dot-dot": (_dot_dot, "it points outside " + OUTSIDE),
    "absolute": (_absolute, "it points outside " + OUTSIDE),
    "dot-dot-through-a-subfolder": (_through_a_subfolder, "it points outside " + OUTSIDE),
    "symlinked-file": (_linked_file, "a symbolic link leads outside " + OUTSIDE),
    "symlinked-folder": (_linked_folder, "a symbolic link leads outside " + OUTSIDE),
    "constant-node-value": (_constant_outside, "it points outside " + OUTSIDE),
}


@pytest.mark.parametrize("command", ["check", "fix"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_external_data_outside_the_models_folder_is_refused(
    root: Path, case: str, command: str, monkeypatch, capsys
):
    build, message = HOSTILE[case]
    path = root / "models" / "m.onnx"
    onnx.save(build(root), str(path))
    before = _tree(root)
    extra = ["-o", str(root / "out" / "fixed.onnx")] if command == "fix" else []
    code, _, stderr = _run(monkeypatch, capsys, command, str(path), "-t", "nnom", *extra)
    _one_line_error(code, stderr, "refusing external data location", message)
    assert _tree(root) == before  # nothing read into an output, nothing written


def test_the_real_cli_refuses_a_symlink_out_in_one_line(root: Path):
    path = root / "models" / "m.onnx"
    onnx.save(_linked_file(root), str(path))
    for command in (("check",), ("fix", "-o", str(root / "out" / "fixed.onnx"))):
        result = run_cli(command[0], str(path), "-t", "nnom", *command[1:])
        _one_line_error(result.returncode, result.stderr, "a symbolic link leads outside")
        assert f"(to {root / 'secret' / 'w.bin'})" in result.stderr
    assert not list((root / "out").iterdir())


def test_data_inside_the_folder_is_fine_even_through_a_symlinked_folder(
    root: Path, monkeypatch, capsys
):
    """A model reached through a symlinked folder reads its data beside it, as onnx does."""
    (root / "models" / "w.bin").write_bytes(WEIGHT.tobytes())
    onnx.save(_point_weights_at(_model(), "w.bin"), str(root / "models" / "m.onnx"))
    (root / "linked").symlink_to(root / "models", target_is_directory=True)
    path = root / "linked" / "m.onnx"
    code, _, stderr = _run(monkeypatch, capsys, "check", str(path), "-t", "nnom")
    assert code == 1 and not stderr  # HardSwish: a finding, not a refusal
    out = root / "out" / "fixed.onnx"
    code, _, stderr = _run(monkeypatch, capsys, "fix", str(path), "-t", "nnom", "-o", str(out))
    assert code == 0, stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["fixed.onnx", "fixed.onnx.data"]


def test_a_data_file_linked_inside_the_folder_is_checked_but_not_loaded_by_fix(
    root: Path, monkeypatch, capsys
):
    """onnxruntime follows a link that stays inside the folder; onnx (fix) reads no link."""
    (root / "models" / "real.bin").write_bytes(WEIGHT.tobytes())
    (root / "models" / "w.bin").symlink_to("real.bin")
    path = root / "models" / "m.onnx"
    onnx.save(_point_weights_at(_model(), "w.bin"), str(path))
    code, _, stderr = _run(monkeypatch, capsys, "check", str(path), "-t", "nnom")
    assert code == 1 and not stderr
    out = root / "out" / "fixed.onnx"
    code, _, stderr = _run(monkeypatch, capsys, "fix", str(path), "-t", "nnom", "-o", str(out))
    _one_line_error(code, stderr, "cannot read external data", "symbolic link")
    assert not list(out.parent.iterdir())


@pytest.mark.parametrize("where", ["profile", "parent-profile"])
def test_yaml_that_asks_to_run_code_is_refused(tmp_path: Path, where: str, monkeypatch, capsys):
    marker = tmp_path / "pwned"
    payload = f"!!python/object/apply:os.system ['touch {marker}']"
    profile = tmp_path / "board.yaml"
    if where == "profile":
        profile.write_text(f"portlint_profile: 1\nextends: nnom\nname: {payload}\n")
    else:
        (tmp_path / "parent.yaml").write_text(f"portlint_profile: 1\nname: {payload}\n")
        profile.write_text("portlint_profile: 1\nextends: parent.yaml\nname: board\n")
    model = tmp_path / "m.onnx"
    onnx.save(_model(), str(model))
    for command in (["check"], ["fix", "-o", str(tmp_path / "fixed.onnx")]):
        code, _, stderr = _run(
            monkeypatch, capsys, command[0], str(model), "-t", str(profile), *command[1:]
        )
        _one_line_error(code, stderr, "malformed YAML", "python/object/apply:os.system")
    assert not marker.exists(), "the YAML ran a command"
    assert not (tmp_path / "fixed.onnx").exists()


UNSAFE_CALLS = re.compile(
    r"yaml\.(load|load_all|full_load|full_load_all|unsafe_load|unsafe_load_all)\(|"
    r"(Unsafe|Full)?Loader\b|\bpickle\b|\bmarshal\b|\bshelve\b|\beval\(|\bexec\(|allow_pickle\s*=\s*True"
)


def test_the_code_reads_yaml_only_with_the_safe_loader_and_never_unpickles():
    sources = sorted((ROOT / "portlint").rglob("*.py"))
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if UNSAFE_CALLS.search(line) and "RawLoader" not in line
    ]
    assert not found, "\n".join(found)
    assert any("yaml.safe_load(" in path.read_text() for path in sources)


def _profile_named(folder: Path, name: str) -> Path:
    path = folder / "board.yaml"
    path.write_text(f"portlint_profile: 1\nextends: nnom\nname: {name}\n")
    return path


@pytest.mark.parametrize("hostile", ["names", "data-names", "profile-name"])
def test_names_that_look_like_paths_never_make_fix_write_elsewhere(
    tmp_path: Path, hostile: str, monkeypatch, capsys
):
    """Graph, node, tensor and profile names with ``../`` change nothing about where fix writes:
    only the ``-o`` file (and its data) appear, wherever the names point."""
    inner = tmp_path / "a" / "b" / "in"
    inner.mkdir(parents=True)
    (tmp_path / "a" / "b" / "out").mkdir()
    escape = "../../../escaped_"
    target = "nnom"
    if hostile == "names":
        onnx.save(_model(escape), str(inner / "m.onnx"))
    elif hostile == "data-names":  # the external data too: named by tensor, not by location
        onnx.save(
            _model(escape),
            str(inner / "m.onnx"),
            save_as_external_data=True,
            location="weights.bin",
            size_threshold=0,
        )
    else:
        onnx.save(_model(), str(inner / "m.onnx"))
        target = str(_profile_named(inner, f"{escape}board"))
    before = _tree(tmp_path)
    monkeypatch.chdir(inner)
    out = tmp_path / "a" / "b" / "out" / "x.onnx"
    code, _, stderr = _run(monkeypatch, capsys, "fix", "m.onnx", "-t", target, "-o", str(out))
    new = sorted(set(_tree(tmp_path)) - set(before))
    if hostile == "profile-name":
        _one_line_error(code, stderr, "target names are kebab-case")
        assert new == []
    else:
        assert code == 0, stderr
        data = ["a/b/out/x.onnx.data"] if hostile == "data-names" else []
        assert new == ["a/b/out/x.onnx", *data]
    assert {k: v for k, v in _tree(tmp_path).items() if k in before} == before
    assert not [p for p in tmp_path.rglob("*escaped*")]
    assert os.getcwd() == str(inner)

"""The profile language has one source: the loader's declarations.

The JSON Schema and docs/profiles.md are generated from them; these tests keep the shipped
schema current, check that it and the loader agree (on every shipped profile, on every key
of every section, on what is required, on mistakes), and that every constraint has the id a
derived profile needs to remove it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import ROOT, findings_of, parse, run_check

from portlint.errors import PortlintError, ProfileError
from portlint.predicates import PREDICATES
from portlint.profile_reference import render_profile_reference
from portlint.profile_schema import SCHEMA_PATH, profile_schema, render_schema
from portlint.rule import load_rules
from portlint.target import TOP_KEYS, load_target, parse_target, shipped_target_names

VALIDATOR = jsonschema.Draft7Validator(profile_schema())
FULL = yaml.safe_load("""
portlint_profile: 1
name: full
display_name: Full NPU
vendor: Example
status: preview
toolchain: {name: fullc, version: "1.0"}
summary: Every section of the profile language, once.
sources:
  manual: {title: Manual, url: "https://example.invalid/manual", version: "1", date: "2024-01-01"}
opset: {min: 11, max: 17, source: manual}
domains: [""]
unsupported_ops: {effect: cpu, source: manual}
ops:
  - {names: [Conv, Relu], source: manual}
  - {names: [Sigmoid], source: manual, placement: slow, verified: false, note: vector unit}
patterns:
  SiLU: {source: manual}
partitioning: {model: single, source: manual}
constraints:
  - {id: conv-out-channels, rule: PL220, ops: [Conv], field: out_channels, multiple_of: 4,
     when: {field: group, equals: 1}, effect: slow, source: manual}
  - {id: conv-table, rule: PL215, ops: [Conv], table: [{kernel_shape: ["3x3"], strides: [1]}],
     source: manual}
  - {id: static-shapes, rule: PL201, scope: graph, static: true, source: manual}
defects:
  - {id: dfl, pattern: dfl-split, versions: ["1.0"], what: crashes, workaround: cut the head,
     source: manual}
quantization:
  weights: {bits: [8], granularity: per-channel, symmetric: true, source: manual}
  activations: {bits: [8, 16], symmetric: false, source: manual}
  power_of_two_scales: {value: true, source: manual}
  shared_scale_ops: [Concat]
  sixteen_bit: {layers: [outputs], source: manual}
activations:
  approximated:
    - {name: Sigmoid, how: lookup table, max_error_percent: 1.5, source: manual}
notes:
  - {text: A remark, source: manual}
""")
"""A valid profile using every section, to mutate."""
STRICT_SECTIONS = {
    (): "#",
    ("toolchain",): "#/definitions/toolchain",
    ("sources", "manual"): "#/definitions/source",
    ("opset",): "#/definitions/opset",
    ("unsupported_ops",): "#/definitions/unsupported_ops",
    ("ops", 0): "#/definitions/op_group",
    ("patterns", "SiLU"): "#/definitions/fused_pattern",
    ("partitioning",): "#/definitions/partitioning",
    ("constraints", 0): "#/definitions/constraint",
    ("constraints", 0, "when"): "#/definitions/condition",
    ("defects", 0): "#/definitions/defect",
}
"""Where FULL has a mapping the loader rejects unknown keys in, and its schema section."""
SECTIONS = [
    *STRICT_SECTIONS,
    ("quantization", "weights"),
    ("quantization", "activations"),
    ("quantization", "sixteen_bit"),
    ("activations", "approximated", 0),
]


def _load(data: Any, tmp_path: Path):
    return parse_target(data, tmp_path / "full.yaml", load_rules())


def _loads(data: Any, tmp_path: Path) -> bool:
    try:
        _load(data, tmp_path)
    except PortlintError:
        return False
    return True


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _changed(path: tuple[Any, ...], key: str, value: Any = None, delete: bool = False) -> Any:
    data = copy.deepcopy(FULL)
    section = _at(data, path)
    if delete:
        del section[key]
    else:
        section[key] = value
    return data


def _properties(pointer: str) -> dict[str, Any]:
    schema = profile_schema()
    section = schema if pointer == "#" else schema["definitions"][pointer.rsplit("/", 1)[1]]
    return section["properties"]


def test_the_shipped_schema_is_current() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "portlint/schema/profile-v1.schema.json is stale; run: python -m portlint.profile_schema"
    )
    jsonschema.Draft7Validator.check_schema(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", shipped_target_names())
def test_every_shipped_profile_validates(name: str) -> None:
    data = yaml.safe_load((ROOT / "targets" / f"{name}.yaml").read_text(encoding="utf-8"))
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data)
    ]
    assert not errors, errors


def test_the_full_profile_is_valid_for_both(tmp_path: Path) -> None:
    assert not list(VALIDATOR.iter_errors(FULL))
    assert len(_load(FULL, tmp_path).constraints) == 3


@pytest.mark.parametrize("path", list(STRICT_SECTIONS), ids=str)
def test_loader_and_schema_accept_the_same_keys(path: tuple[Any, ...], tmp_path: Path) -> None:
    merge_only = set(_properties("#")) - set(TOP_KEYS)
    for key in set(_properties(STRICT_SECTIONS[path])) - merge_only:
        data = _changed(path, key, _at(FULL, path).get(key, "placeholder"))
        try:
            _load(data, tmp_path)
        except PortlintError as error:
            assert f"unknown key {key!r}" not in str(error), (path, key)
    misspelt = _changed(path, "colour", "blue")
    assert list(VALIDATOR.iter_errors(misspelt)), path
    with pytest.raises(ProfileError, match="unknown key 'colour'"):
        _load(misspelt, tmp_path)


@pytest.mark.parametrize("path", SECTIONS, ids=str)
def test_loader_and_schema_require_the_same_keys(path: tuple[Any, ...], tmp_path: Path) -> None:
    """Dropping any key of any section: the schema accepts it exactly when the loader does."""
    for key in _at(FULL, path):
        data = _changed(path, key, delete=True)
        schema_ok = not list(VALIDATOR.iter_errors(data))
        assert schema_ok == _loads(data, tmp_path), (path, key, schema_ok)


@pytest.mark.parametrize(
    ("path", "key", "value"),
    [
        ((), "portlint_profile", 2),
        ((), "name", "My_Board"),
        ((), "status", "beta"),
        (("ops", 0), "names", "Conv"),
        (("ops", 0), "placement", "gpu"),
        (("ops", 0), "verified", "yes"),
        (("unsupported_ops",), "effect", "explode"),
        (("partitioning",), "model", "several"),
        (("patterns",), "Swish", {"source": "manual"}),
        (("constraints", 0), "id", "Conv_Out"),
        (("constraints", 0), "rule", "PL999"),
        (("constraints", 0), "scope", "everywhere"),
        (("constraints", 0), "field", "out_chanels"),
        (("constraints", 0), "multiple_of", "four"),
        (("constraints", 0), "max", 8),
        (("constraints", 0), "exclude_ops", "Relu"),
        (("constraints", 0, "when"), "equals", None),
        (("constraints", 1), "table", []),
        (("defects", 0), "pattern", "dfl-splitt"),
        (("defects", 0), "versions", "1.0"),
        (("quantization", "weights"), "granularity", "per-row"),
        (("quantization", "weights"), "bits", [64]),
        (("quantization", "sixteen_bit"), "layers", ["everything"]),
        (("activations", "approximated", 0), "max_error_percent", "small"),
    ],
)
def test_mistakes_fail_both(path: tuple[Any, ...], key: str, value: Any, tmp_path: Path) -> None:
    data = _changed(path, key, value)
    assert list(VALIDATOR.iter_errors(data)), (path, key, value)
    assert not _loads(data, tmp_path), (path, key, value)


@pytest.mark.parametrize(
    "operand", [[], [1], [1, 2], [1, 2, 3], 3, 0, -1, 2.5, "3x3", "x", True, None, {"a": 1}]
)
def test_predicate_operands_agree_with_their_schema(operand: Any) -> None:
    """A range's order ([2, 1]) is the one thing only the loader checks."""
    from portlint.predicates import parse_operand

    for predicate in PREDICATES.values():
        schema_ok = jsonschema.Draft7Validator(predicate.operand_schema).is_valid(operand)
        assert schema_ok == predicate.operand_ok(parse_operand(operand)), (predicate.name, operand)


def test_a_constraint_without_id_is_rejected_naming_file_and_path(tmp_path: Path) -> None:
    data = _changed(("constraints", 1), "id", delete=True)
    path = tmp_path / "no-id.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ProfileError) as error:
        load_target(str(path))
    assert str(error.value) == f"{path.resolve()}: constraints[1]: missing required key 'id'"
    with pytest.raises(ProfileError, match=r"constraints\[0\].id: constraint ids are kebab-case"):
        _load(_changed(("constraints", 0), "id", "Conv Out"), tmp_path)


MY_HAILO = """
portlint_profile: 1
extends: hailo8
name: my-hailo
display_name: My Hailo-8 board
remove_constraints: [conv-table]
"""


def test_a_derived_profile_removes_the_hailo8_conv_table(tmp_path: Path) -> None:
    path = tmp_path / "my-hailo.yaml"
    path.write_text(MY_HAILO, encoding="utf-8")
    parent, child = load_target("hailo8"), load_target(str(path))
    assert parent.constraints_for("PL215") and not child.constraints_for("PL215")
    assert len(child.constraints) == len(parent.constraints) - 1
    conv_4x4 = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,8,16,16] x, float[8,8,4,4] w) => (float[1,8,13,13] y) {
        y = Conv <kernel_shape = [4, 4]> (x, w)
    }""")
    assert findings_of(run_check(conv_4x4, tmp_path, "hailo8"), "PL215")
    assert not findings_of(run_check(conv_4x4, tmp_path, str(path)), "PL215")


def test_the_reference_names_every_key_field_and_predicate() -> None:
    page = render_profile_reference([load_target("hailo8")])
    schema = profile_schema()
    names = {*schema["properties"], *PREDICATES}
    for definition in schema["definitions"].values():
        names |= set(definition.get("properties", {}))
        names |= {str(o["const"]) for o in definition.get("anyOf", []) if "const" in o}
    missing = sorted(name for name in names if f"`{name}`" not in page)
    assert not missing, missing

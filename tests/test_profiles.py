"""Profiles and rules are data; the loaders reject every kind of mistake, naming the place."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import MINI_PROFILE

from portlint.errors import ProfileError, UnknownNameError
from portlint.rule import load_rules
from portlint.target import load_target, parse_target, shipped_target_names

BASE = MINI_PROFILE


def _parse(tmp_path: Path, **changes):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
    return parse_target(data, tmp_path / "mini.yaml", load_rules())


def test_minimal_profile_loads(tmp_path: Path) -> None:
    target = _parse(tmp_path)
    assert target.constraints[0].operand == 4 and target.ops["Conv"].source == "manual"


@pytest.mark.parametrize(
    ("change", "value", "message"),
    [
        ("colour", "blue", "mini.yaml: colour: unknown key 'colour'"),
        ("constraints__0__fieldd", "x", "constraints[0].fieldd: unknown key"),
        (
            "constraints__0__field",
            "out_chanels",
            "constraints[0].field: unknown field 'out_chanels'",
        ),
        (
            "constraints__0__source",
            "manuel",
            "constraints[0].source: source 'manuel' is not declared",
        ),
        (
            "constraints__0__multiple_of",
            0,
            "constraints[0].multiple_of: expected a positive integer",
        ),
        ("constraints__0__effect", "explode", "constraints[0].effect: must be one of"),
        ("ops__0__source", "nowhere", "ops[0].source: source 'nowhere' is not declared"),
        ("unsupported_ops__effect", "fast", "unsupported_ops.effect: must be one of"),
        ("portlint_profile", 2, "portlint_profile: unsupported schema version"),
    ],
)
def test_profile_mistakes_name_file_and_yaml_path(
    tmp_path: Path, change: str, value, message: str
) -> None:
    with pytest.raises(ProfileError) as error:
        _parse(tmp_path, **{change: value})
    assert message in str(error.value)


def test_unknown_rule_code_in_profile_suggests(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="PL22"):
        _parse(tmp_path, constraints__0__rule="PL229")


def test_two_predicates_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="exactly one predicate"):
        _parse(tmp_path, constraints__0__max=8)


def test_field_in_wrong_scope_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not apply to scope 'graph_input'"):
        _parse(tmp_path, constraints__0__scope="graph_input")


@pytest.mark.parametrize("name", shipped_target_names())
def test_shipped_profiles_are_sourced(name: str) -> None:
    target = load_target(name)
    assert target.name == name
    assert target.toolchain_version and target.sources
    for source in target.sources.values():
        assert source.url.startswith("https://"), source
    assert all(op.source in target.sources for op in target.ops.values())


def test_every_rule_is_declared_once_with_a_check() -> None:
    rules = load_rules()
    assert len({r.name for r in rules}) == len(rules)
    from portlint.checks.catalog import CHECKS

    assert {r.check for r in rules} <= set(CHECKS)
    for rule in rules:
        assert rule.summary and rule.why and rule.help, rule.code


def test_every_constraint_rule_is_used_by_a_shipped_profile() -> None:
    used = {c.rule for name in shipped_target_names() for c in load_target(name).constraints}
    constraint_rules = {r.code for r in load_rules() if r.check == "constraint"}
    assert constraint_rules - used == set()

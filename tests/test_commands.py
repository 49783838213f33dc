"""The informational commands: rules, rule, targets, targets show."""

from __future__ import annotations

from conftest import run_cli

from portlint.rule import load_rules
from portlint.target import shipped_target_names


def test_rules_lists_every_rule() -> None:
    result = run_cli("rules")
    assert result.returncode == 0
    codes = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert codes == [r.code for r in load_rules()]


def test_rule_by_code_and_by_name_print_the_same_page() -> None:
    by_code, by_name = run_cli("rule", "PL220"), run_cli("rule", "channel-multiple")
    assert by_code.returncode == 0 and by_code.stdout == by_name.stdout
    assert by_code.stdout.startswith("# PL220 channel-multiple")
    assert "## Why it matters" in by_code.stdout


def test_unknown_rule_suggests() -> None:
    result = run_cli("rule", "PL22")
    assert result.returncode == 2 and "did you mean" in result.stderr


def test_targets_lists_shipped_profiles() -> None:
    result = run_cli("targets")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == shipped_target_names()


def test_targets_show_markdown_has_sources_and_unverified_flags() -> None:
    result = run_cli("targets", "show", "intel-gna", "--format", "markdown")
    assert result.returncode == 0
    text = result.stdout
    assert text.startswith("# intel-gna: ")
    assert "## Sources" in text and "https://github.com/openvinotoolkit/openvino" in text
    assert "**(unverified)**" in text
    assert (
        "- PL220 `conv-out-channels-multiple`: Conv: output channels must be a multiple of 4 "
        "(error: compile fails)" in text
    )

"""Example cases for each rule: a small model, a target, and what portlint says of it.

``rules/cases/PLnnn.yaml`` holds them, shipped beside the rules (in the manner of sqlfluff's
and ruff's per-rule fixtures). The test suite runs every case (tests/test_rule_cases.py), and
``portlint rule`` and docs/rules/ show the first failing and passing one, so an example a
user reads is one that is proven to hold. A case's model is ONNX text format
(``onnx.parser``): small enough to read, and diffable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portlint.resources import data_dir
from portlint.rule import CODE_PATTERN
from portlint.yaml_io import Where, expect_mapping, expect_type, read_yaml

if TYPE_CHECKING:
    import onnx

    from portlint.rule import Rule

CASES_FOLDER = "cases"
CASE_KEYS = ("name", "target", "model", "findings", "fix")
FINDING_KEYS = ("location", "message")
FIX_KEYS = ("pass", "unsafe", "runs")
CASE_NAME = re.compile(r"^[a-z0-9]+(?:[-.@][a-z0-9]+)*$")
"""Kebab-case; dots and @ too, for targets and values (``on-rk3588@1.6``, ``by-1.5``)."""


@dataclass(frozen=True)
class ExpectedFinding:
    """A finding the case's rule must report: where, and a part of its message."""

    location: str
    message: str


@dataclass(frozen=True)
class ExpectedFix:
    """What ``portlint fix`` does to the case: the passes asked for (``--pass``, and
    ``--unsafe-fixes``), and the passes that change the model, in run order."""

    runs: tuple[str, ...]
    passes: tuple[str, ...] = ()
    unsafe: bool = False

    @property
    def arguments(self) -> str:
        """The ``fix`` options as typed on the command line."""
        named = f" --pass {','.join(self.passes)}" if self.passes else ""
        return named + (" --unsafe-fixes" if self.unsafe else "")


@dataclass(frozen=True)
class RuleCase:
    """One case: ``findings`` empty means the rule must stay quiet (a passing case)."""

    rule: str
    name: str
    target: str
    model: str
    findings: tuple[ExpectedFinding, ...]
    fix: ExpectedFix | None
    path: Path

    @property
    def id(self) -> str:
        return f"{self.rule}::{self.name}"

    @property
    def fails(self) -> bool:
        return bool(self.findings)

    def parse(self) -> onnx.ModelProto:
        import onnx.parser  # only cases need the parser; ``check`` never does

        return onnx.parser.parse_model(self.model)


def cases_folder(rules_folder: Path | None = None) -> Path:
    """``cases/`` under the rules folder (default: the shipped rules)."""
    return (rules_folder or data_dir("rules")) / CASES_FOLDER


def case_files(rules_folder: Path | None = None) -> list[Path]:
    return sorted(cases_folder(rules_folder).glob("PL*.yaml"))


def cases_for(rule: Rule) -> tuple[RuleCase, ...]:
    """The rule's cases, from ``cases/`` beside its YAML file; none when it has no file."""
    path = rule.path.parent / CASES_FOLDER / f"{rule.code}.yaml"
    return load_cases(path) if path.is_file() else ()


@lru_cache(maxsize=64)
def load_cases(path: Path) -> tuple[RuleCase, ...]:
    """Read and validate one case file; a mistake is a one-line error naming its place."""
    where = Where(path)
    code = path.stem
    if not CODE_PATTERN.match(code):
        raise where.error("a case file is named after its rule code, like PL101.yaml")
    data = expect_mapping(read_yaml(path), where, ("cases",), ("cases",))
    entries = expect_type(data["cases"], list, where / "cases", "a list of cases")
    cases = tuple(_case(code, entry, where / "cases" / i) for i, entry in enumerate(entries))
    names = [case.name for case in cases]
    if len(names) != len(set(names)):
        raise (where / "cases").error("case names must be unique")
    return cases


def _case(code: str, entry: Any, where: Where) -> RuleCase:
    data = expect_mapping(entry, where, CASE_KEYS, ("name", "target", "model", "findings"))
    name = expect_type(data["name"], str, where / "name", "a kebab-case name")
    if not CASE_NAME.match(name):
        raise (where / "name").error(f"case name {name!r} is not kebab-case")
    found = expect_type(data["findings"], list, where / "findings", "a list (empty: passes)")
    findings = tuple(_finding(item, where / "findings" / i) for i, item in enumerate(found))
    fix = _fix(data["fix"], where / "fix") if "fix" in data else None
    if fix is not None and not findings:
        raise (where / "fix").error("only a failing case has something to fix")
    return RuleCase(
        code,
        name,
        expect_type(data["target"], str, where / "target", "a target name"),
        expect_type(data["model"], str, where / "model", "a model in ONNX text format"),
        findings,
        fix,
        where.path,
    )


def _finding(item: Any, where: Where) -> ExpectedFinding:
    data = expect_mapping(item, where, FINDING_KEYS, FINDING_KEYS)
    return ExpectedFinding(
        expect_type(data["location"], str, where / "location", "a node or tensor name"),
        expect_type(data["message"], str, where / "message", "a part of the message"),
    )


def _fix(item: Any, where: Where) -> ExpectedFix:
    data = expect_mapping(item, where, FIX_KEYS, ("runs",))
    runs = expect_type(data["runs"], list, where / "runs", "the passes that change the model")
    passes = expect_type(data.get("pass", []), list, where / "pass", "a list of pass names")
    unsafe = expect_type(data.get("unsafe", False), bool, where / "unsafe", "true or false")
    return ExpectedFix(tuple(runs), tuple(passes), unsafe)

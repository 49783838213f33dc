"""Every rule's cases (rules/cases/PLnnn.yaml), as a user would see them.

Each case is a small model in ONNX text format on one target: the rule must report exactly
the findings the case lists (where, and with that message), or none on a passing case; a
case that names a fix must be resolved by those passes, and the written model must no
longer trigger the rule. The rule docs show these cases, so the docs' examples hold too.
"""

from __future__ import annotations

import re
from pathlib import Path

import onnx
import pytest
import yaml
from conftest import findings_of, run_check

from portlint.errors import ProfileError
from portlint.findings import Finding
from portlint.fixer import FixRequest, fix_model
from portlint.rule import load_rules
from portlint.rule_cases import ExpectedFinding, RuleCase, case_files, cases_for, load_cases
from portlint.target import load_target

CASES = [case for path in case_files() for case in load_cases(path)]


def _unmatched(found: list[Finding], expected: tuple[ExpectedFinding, ...]) -> list[str]:
    """What differs between the findings and the expectation, one line each (none: equal).

    Each expected finding takes one finding at its location whose message holds its text;
    findings left over are unexpected.
    """
    left = list(found)
    problems = []
    for item in expected:
        match = next(
            (f for f in left if f.location == item.location and item.message in f.message), None
        )
        if match is None:
            problems.append(f"missing at {item.location!r}: {item.message!r}")
        else:
            left.remove(match)
    problems += [f"unexpected at {f.location!r}: {f.message!r}" for f in left]
    return problems


def _assert_fix(case: RuleCase, model: onnx.ModelProto, tmp_path: Path) -> None:
    """``portlint fix`` runs the case's passes, and a check of what it writes is clean."""
    assert case.fix is not None
    request = FixRequest(passes=case.fix.passes, unsafe=case.fix.unsafe)
    outcome = fix_model(model, load_target(case.target), request)
    ran = [step.pass_.name for step in outcome.steps if step.changed]
    assert ran == list(case.fix.runs), f"fix{case.fix.arguments} ran {ran}"
    fixed = run_check(outcome.model, tmp_path, case.target, name="fixed.onnx")
    assert findings_of(fixed, case.rule) == []


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_rule_case(case: RuleCase, tmp_path: Path) -> None:
    model = case.parse()
    onnx.checker.check_model(model, full_check=True)  # a case is a model a user could have
    found = findings_of(run_check(model, tmp_path, case.target), case.rule)
    problems = _unmatched(found, case.findings)
    assert not problems, "\n".join(problems)
    if case.fix is not None:
        _assert_fix(case, model, tmp_path)


def test_every_rule_has_a_failing_and_a_passing_case() -> None:
    """A failing case alone cannot tell a precise rule from one that fires on everything."""
    lacking = {
        rule.code: sorted({"failing" if c.fails else "passing" for c in cases_for(rule)})
        for rule in load_rules()
    }
    lacking = {code: kinds for code, kinds in lacking.items() if kinds != ["failing", "passing"]}
    assert not lacking, f"rules whose cases are not both failing and passing: {lacking}"


def test_every_case_file_belongs_to_a_rule() -> None:
    """A case file named after no rule (a typo, a removed rule) would never run its rule."""
    rules = load_rules()
    assert [p.name for p in case_files() if p.stem not in rules] == []


VALID = {"name": "relu-on-nnom", "target": "nnom", "model": "<ONNX text>", "findings": []}


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"expect": []}, "cases[0].expect"),  # an unknown key, say a misspelt "findings"
        ({"fix": {"runs": ["decompose"]}}, "cases[0].fix"),  # nothing to fix on a passing case
        ({"name": "Relu on nnom"}, "cases[0].name"),
    ],
)
def test_a_malformed_case_names_its_place(tmp_path: Path, change: dict, where: str) -> None:
    """A mistake in a case file stops the run with its place; the case is not dropped."""
    path = tmp_path / "PL101.yaml"
    path.write_text(yaml.safe_dump({"cases": [{**VALID, **change}]}))
    with pytest.raises(ProfileError, match=rf"PL101.yaml: {re.escape(where)}: "):
        load_cases(path)

"""SARIF and GitHub-annotation reports: schema-valid, one entry per finding, escaped, stable.

tests/data/sarif-schema-2.1.0.json is the OASIS SARIF 2.1.0 schema, copied verbatim from
oasis-tcs/sarif-spec, path Schemata/sarif-schema-2.1.0.json, commit
85971b3e048f61a6d643b95fc6233d073302f5b8 (it declares JSON Schema draft 2020-12), so the
tests need no network.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import ROOT, run_cli

from portlint.api import check
from portlint.config import Config
from portlint.engine import ModelReport, TargetReport
from portlint.findings import NODE, Finding
from portlint.report import format_names, renderer
from portlint.report.github import escape_data, escape_property, render_github
from portlint.report.sarif import LEVEL, render_sarif, sarif_dict
from portlint.rule import Severity, load_rules
from portlint.target import load_target

SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
CASES = [
    ("fixtures/yolov8n.onnx", ("rk3588", "hailo8", "edgetpu")),
    ("fixtures/odd_channels.onnx", ("intel-gna",)),
]
COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def validate(document: dict) -> None:
    cls = jsonschema.validators.validator_for(SCHEMA)
    cls(SCHEMA, format_checker=cls.FORMAT_CHECKER).validate(document)


def reports_for(model: str, targets: tuple[str, ...]) -> list[ModelReport]:
    return check(model, targets=list(targets), config=Config()).models


@pytest.fixture(autouse=True)
def _in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # model paths in the reports are relative to the current folder


def test_schema_is_the_vendored_sarif_2_1_0() -> None:
    assert SCHEMA["properties"]["version"]["enum"] == ["2.1.0"]
    assert "result" in SCHEMA["definitions"] and "reportingDescriptor" in SCHEMA["definitions"]
    with pytest.raises(jsonschema.ValidationError):  # the schema does reject bad documents
        validate({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "bad": 1}]})


@pytest.mark.parametrize(("model", "targets"), CASES)
def test_sarif_is_valid_with_one_result_per_finding(model: str, targets: tuple[str, ...]) -> None:
    reports = reports_for(model, targets)
    findings = [f for r in reports for f in r.findings]
    document = json.loads(render_sarif(reports))
    validate(document)
    assert document["version"] == "2.1.0"
    (run,) = document["runs"]
    assert run["tool"]["driver"]["name"] == "portlint"
    assert run["artifacts"] == [
        {"location": {"uri": model, "uriBaseId": "%SRCROOT%"}, "roles": ["analysisTarget"]}
    ]
    results = run["results"]
    assert len(results) == len(findings) > 0
    assert {r["properties"]["target"] for r in results} == set(targets)
    for result, f in zip(results, findings, strict=True):
        assert result["ruleId"] == f.rule
        assert result["level"] == LEVEL[f.severity]
        (location,) = result["locations"]
        artifact = location["physicalLocation"]["artifactLocation"]
        assert artifact == {"uri": model, "uriBaseId": "%SRCROOT%", "index": 0}
        assert "region" not in location["physicalLocation"]
        (logical,) = location["logicalLocations"]
        assert logical["name"] == f.location
        assert logical["fullyQualifiedName"] == f"{f.target}/{f.location}"
        assert logical["kind"] == "member"  # every finding here is on a node
        assert result["message"]["text"].startswith(f"[{f.target}] {f.location}")
        assert f.message in result["message"]["text"]
        assert f"actual: {f.actual}" in result["message"]["text"]
        props = result["properties"]
        assert (props["target"], props["op_type"], props["effect"]) == (
            f.target,
            f.op_type,
            f.effect,
        )
        assert props["verified"] is f.verified
        if f.source is None:  # a rule-level hazard (PL305) cites the rule's references
            assert props["source"] is None
        else:
            assert props["source"]["key"] == f.source.key
            assert props["source"]["url"] == f.source.url


@pytest.mark.parametrize(("model", "targets"), CASES)
def test_sarif_rules_describe_every_result(model: str, targets: tuple[str, ...]) -> None:
    (run,) = sarif_dict(reports_for(model, targets))["runs"]
    rules = run["tool"]["driver"]["rules"]
    registry = load_rules()
    for result in run["results"]:
        descriptor = rules[result["ruleIndex"]]
        assert descriptor["id"] == result["ruleId"]
        rule = registry.get(result["ruleId"])
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"] == rule.summary
        assert descriptor["fullDescription"]["text"] == rule.why
        assert descriptor["defaultConfiguration"]["level"] == LEVEL[rule.severity]
        for form in ("text", "markdown"):
            assert rule.help in descriptor["help"][form]
            assert f"docs/rules/{rule.code}-{rule.name}.md" in descriptor["help"][form]
            assert all(name in descriptor["help"][form] for name in rule.fixes)
        assert (ROOT / descriptor["properties"]["docs"]).is_file()
    assert [r["id"] for r in rules] == sorted(r["id"] for r in rules)


def test_sarif_fingerprints_are_stable_and_unique() -> None:
    def fingerprints() -> list[str]:
        (run,) = sarif_dict(reports_for(*CASES[1]))["runs"]
        return [r["partialFingerprints"]["portlintFingerprint/v1"] for r in run["results"]]

    first, second = fingerprints(), fingerprints()
    assert first == second
    assert len(set(first)) == len(first)  # odd_channels has several PL220s on one node
    findings = reports_for(*CASES[1])[0].findings
    assert [p.split(":")[0] for p in first] == [f.fingerprint for f in findings]


def test_sarif_model_outside_the_current_folder_gets_a_file_uri(tmp_path: Path) -> None:
    model = tmp_path / "my model.onnx"
    model.write_bytes((ROOT / "fixtures" / "odd_channels.onnx").read_bytes())
    document = json.loads(render_sarif(reports_for(str(model), ("intel-gna",))))
    validate(document)
    (artifact,) = document["runs"][0]["artifacts"]
    assert artifact["location"] == {"uri": model.resolve().as_uri()}
    assert "%20" in artifact["location"]["uri"]


def test_cli_sarif_to_stdout_and_file(tmp_path: Path) -> None:
    args = ("check", "fixtures/odd_channels.onnx", "-t", "intel-gna", "-f", "sarif")
    shown = run_cli(*args)
    assert shown.returncode == 1, shown.stderr
    document = json.loads(shown.stdout)
    validate(document)
    assert len(document["runs"][0]["results"]) == len(reports_for(*CASES[1])[0].findings)
    out = tmp_path / "portlint.sarif"
    written = run_cli(*args, "-o", str(out))
    assert written.returncode == 1 and written.stdout == ""
    assert out.read_text() == shown.stdout


def test_cli_github_annotations(tmp_path: Path) -> None:
    model, targets = CASES[0]
    args = ("check", model, *(a for t in targets for a in ("-t", t)), "-f", "github")
    shown = run_cli(*args)
    assert shown.returncode == 1, shown.stderr
    findings = [f for r in reports_for(model, targets) for f in r.findings]
    *annotations, summary = shown.stdout.splitlines()
    assert len(annotations) == len(findings)
    assert {f.severity for f in findings} == set(Severity)  # error, warning and notice all occur
    for line, f in zip(annotations, findings, strict=True):
        command, rest = line[2:].split(" ", 1)
        properties, message = rest.split("::", 1)
        assert command == COMMAND[f.severity]
        fields = dict(p.split("=", 1) for p in properties.split(","))
        assert fields["file"] == model
        title = f"{f.rule} {f.rule_name} [{f.target}] {f.location}"
        assert fields["title"] == escape_property(title)
        assert message.startswith(escape_data(f.message))
    assert not summary.startswith("::")
    counts = [sum(f.severity is s for f in findings) for s in Severity]
    expected = "portlint: {} errors, {} warnings, {} info in 1 model on {} targets"
    assert summary == expected.format(*counts, len(targets))
    out = tmp_path / "annotations.txt"
    written = run_cli(*args, "-o", str(out))
    assert written.returncode == 1 and written.stdout == ""
    assert out.read_text() == shown.stdout


def _unescape(text: str) -> str:
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(code, char)
    return text


def _hostile_report() -> ModelReport:
    """A finding whose node, message and model path hold every character commands escape."""
    target = load_target("rk3588")
    finding = Finding(
        rule="PL220",
        rule_name="channel-multiple",
        severity=Severity.WARNING,
        target=target.name,
        location="/a,b::c%25/Conv",
        kind=NODE,
        op_type="Conv",
        message="100% wrong: a, b\nsecond line\r\n::error::forged",
        actual="30",
        limit="must be a multiple of 4",
        source=None,
        verified=True,
        effect="cpu",
        help="",
    )
    report = TargetReport(target, [finding], 1, 0, 1, 0, 0)
    return ModelReport(Path("models/odd, name:%.onnx"), 8, {"": 17}, 1, 1, [report])


def test_github_escapes_messages_titles_and_paths() -> None:
    report = _hostile_report()
    (f,) = report.findings
    text = render_github([report])
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("::warning file=")
    properties, message = lines[0][len("::warning ") :].split("::", 1)
    assert "\n" not in message and "\r" not in message and "::" not in properties
    fields = dict(p.split("=", 1) for p in properties.split(","))
    assert fields["file"] == "models/odd%2C name%3A%25.onnx"
    assert _unescape(fields["file"]) == "models/odd, name:%.onnx"
    assert _unescape(fields["title"]) == "PL220 channel-multiple [rk3588] /a,b::c%25/Conv"
    assert _unescape(message).startswith(f.message)
    assert message.startswith("100%25 wrong: a, b%0Asecond line%0D%0A::error::forged")


def test_sarif_keeps_hostile_text_intact() -> None:
    document = sarif_dict([_hostile_report()])
    validate(document)
    (result,) = document["runs"][0]["results"]
    assert "100% wrong: a, b\nsecond line" in result["message"]["text"]
    assert result["locations"][0]["logicalLocations"][0]["name"] == "/a,b::c%25/Conv"
    uri = document["runs"][0]["artifacts"][0]["location"]["uri"]
    assert uri == "models/odd%2C%20name%3A%25.onnx"


def test_formats_are_registered() -> None:
    assert {"sarif", "github"} <= set(format_names())
    assert renderer("sarif") is render_sarif and renderer("github") is render_github

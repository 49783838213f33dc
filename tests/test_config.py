"""Config file, CLI precedence, select/ignore, severity overrides and per-node ignores."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FIXTURES, findings_of, run_check, run_cli

from portlint.config import Config, load_config
from portlint.rule import Severity, load_rules

ODD = str(FIXTURES / "odd_channels.onnx")


def _json(result) -> dict:
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def _codes(report: dict) -> set[str]:
    return {f["rule"] for m in report["models"] for t in m["targets"] for f in t["findings"]}


def test_pyproject_config_supplies_targets_and_ignores(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.portlint]\ntargets = ["intel-gna"]\n'
        'ignore = ["PL21"]\nfail-on = "warning"\n'
    )
    report = _json(run_cli("check", ODD, "--format", "json", cwd=tmp_path))
    assert [t["target"] for t in report["models"][0]["targets"]] == ["intel-gna"]
    codes = _codes(report)
    assert "PL220" in codes and not any(c.startswith("PL21") for c in codes)


def test_cli_beats_config(tmp_path: Path) -> None:
    (tmp_path / "portlint.toml").write_text('targets = ["intel-gna"]\nselect = ["PL220"]\n')
    report = _json(
        run_cli(
            "check", ODD, "-t", "rk3588", "--select", "PL1,PL2", "--format", "json", cwd=tmp_path
        )
    )
    assert [t["target"] for t in report["models"][0]["targets"]] == ["rk3588"]


def test_select_by_name_and_prefix(tmp_path: Path) -> None:
    by_name = _json(
        run_cli(
            "check",
            ODD,
            "-t",
            "intel-gna",
            "--select",
            "channel-multiple",
            "--format",
            "json",
            cwd=tmp_path,
        )
    )
    assert _codes(by_name) == {"PL220"}
    by_prefix = _json(
        run_cli(
            "check", ODD, "-t", "intel-gna", "--select", "PL22", "--format", "json", cwd=tmp_path
        )
    )
    assert _codes(by_prefix) == {"PL220", "PL221"}


def test_severity_override_and_fail_on(tmp_path: Path) -> None:
    (tmp_path / "portlint.toml").write_text(
        'targets = ["intel-gna"]\nselect = ["PL220"]\n[severity]\nPL220 = "warning"\n'
    )
    result = run_cli("check", ODD, "--format", "json", cwd=tmp_path)
    report = _json(result)
    severities = {f["severity"] for t in report["models"][0]["targets"] for f in t["findings"]}
    assert severities == {"warning"}
    assert result.returncode == 0  # fail-on defaults to error
    assert run_cli("check", ODD, "--fail-on", "warning", cwd=tmp_path).returncode == 1


def test_per_node_ignores_and_stale_entries_reported(tmp_path: Path) -> None:
    rules = load_rules()
    config_file = tmp_path / "portlint.toml"
    config_file.write_text(
        '[per-node-ignores]\n"/stem/*" = ["PL220", "PL221"]\n"/nowhere/*" = ["PL101"]\n'
    )
    config = load_config(config_file, rules)
    import onnx

    model = onnx.load(ODD)
    plain = run_check(model, tmp_path, "intel-gna")
    ignored = run_check(model, tmp_path, "intel-gna", config=config)
    assert findings_of(plain, "PL220", "/stem/stem.0/Conv")
    assert findings_of(ignored, "PL220", "/stem/stem.0/Conv") == []
    assert findings_of(ignored, "PL220", "/depthwise/depthwise.0/Conv")
    assert ignored.unmatched_ignores == ["/nowhere/*"]


def test_unmatched_ignore_shown_in_text_output(tmp_path: Path) -> None:
    (tmp_path / "portlint.toml").write_text(
        'targets = ["rk3588"]\n[per-node-ignores]\n"/nowhere/*" = ["PL101"]\n'
    )
    result = run_cli("check", ODD, cwd=tmp_path)
    assert "per-node-ignores entry '/nowhere/*' matched no finding" in result.stdout


def test_defaults_without_config() -> None:
    config = load_config(None, load_rules())
    assert config == Config() and config.fail_on is Severity.ERROR

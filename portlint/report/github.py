"""GitHub Actions workflow commands: one annotation per finding, then a plain summary line.

Every annotation points at the model file (``file=``, no line: a model is binary); the rule,
target and node go into its title. Values are escaped as the runner expects, so a node name or
message with ``%``, ``:``, ``,`` or a newline cannot break or forge a command.
"""

from __future__ import annotations

from collections.abc import Iterable

from portlint.engine import ModelReport
from portlint.report.sarif import detail
from portlint.rule import Severity

COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    """A command's message: ``%``, CR and LF are encoded."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A command's property value (file, title): also ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def model_path(report: ModelReport) -> str:
    """The model as the report names it, with forward slashes (the runner's file= form)."""
    return report.path.as_posix()


def render_github(reports: Iterable[ModelReport]) -> str:
    lines = []
    counts = dict.fromkeys(Severity, 0)
    reports = list(reports)
    for report in reports:
        path = escape_property(model_path(report))
        for f in report.findings:
            counts[f.severity] += 1
            title = escape_property(f"{f.rule} {f.rule_name} [{f.target}] {f.location}")
            lines.append(
                f"::{COMMAND[f.severity]} file={path},title={title}::{escape_data(detail(f))}"
            )
    targets = len({t.target.name for r in reports for t in r.targets})
    summary = ", ".join(
        f"{counts[s]} {s.value}{'s' if counts[s] != 1 and s is not Severity.INFO else ''}"
        for s in Severity
    )
    models = f"{len(reports)} model{'s' if len(reports) != 1 else ''}"
    lines.append(f"portlint: {summary} in {models} on {targets} target{'s' * (targets != 1)}")
    return "\n".join(lines) + "\n"

"""Human-readable report: grouped by target, severity and node, with sources and a matrix."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from portlint.engine import ModelReport, TargetReport
from portlint.findings import NODE, Finding
from portlint.rule import Severity

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
VERDICT_STYLE = {"runs": "green", "runs with CPU fallback": "yellow", "does not compile": "red"}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 or word == 'info' else 's'}"


def _where(finding: Finding) -> str:
    if finding.kind == NODE:
        return f'"{finding.location}" ({finding.op_type})'
    if finding.kind == "graph_input":
        return f'input "{finding.location}"'
    if finding.kind == "tensor":
        return f'tensor "{finding.location}"'
    return finding.location


def _finding_lines(console: Console, findings: list[Finding], notes: dict[str, int]) -> None:
    current = None
    for finding in findings:
        where = _where(finding)
        if where != current:
            console.print(f"  {escape(where)}")
            current = where
        flag = " [magenta]\\[unverified][/]" if not finding.verified else ""
        style = STYLE[finding.severity]
        console.print(
            f"    [{style}]{finding.rule}[/] {finding.rule_name}: {escape(finding.message)}{flag}"
        )
        details = []
        if finding.limit:
            details.append(f"limit: {finding.limit}")
        if finding.source is not None:
            details.append(f"source: {finding.source.key}")
        if finding.note:
            details.append(f"note {notes[finding.note]}")
        console.print(f"      [dim]{escape(' · '.join(details))}[/]")


def _target_block(console: Console, report: TargetReport) -> None:
    target = report.target
    preview = " [magenta](preview profile)[/]" if target.status == "preview" else ""
    console.print(f"\n[bold]{escape(target.name)}[/] — {escape(target.label)}{preview}")
    ordered = [f for s in Severity for f in report.findings if f.severity is s]
    notes = {note: i for i, note in enumerate(dict.fromkeys(f.note for f in ordered if f.note), 1)}
    for severity in Severity:
        findings = [f for f in report.findings if f.severity is severity]
        if findings:
            console.print(f" [{STYLE[severity]}]{severity.value}[/] ({len(findings)})")
            _finding_lines(console, findings, notes)
    used_rules = {f.rule: f for f in report.findings if f.help}
    if used_rules:
        console.print(" how to fix:")
        for code, finding in sorted(used_rules.items()):
            console.print(f"  {code} {finding.rule_name}: {escape(finding.help)}")
    if notes:
        console.print(" notes:")
        for note, number in notes.items():
            console.print(f"  {number}. {escape(note)}")
    used_sources = {f.source.key: f.source for f in report.findings if f.source is not None}
    if used_sources:
        console.print(" sources:")
        for key, source in sorted(used_sources.items()):
            console.print(f"  \\[{escape(key)}] {escape(source.cite())}")
    console.print(f" {_summary(report)}")


def _summary(report: TargetReport) -> str:
    counts = ", ".join(_plural(report.count(s), s.value) for s in Severity)
    verdict = report.verdict
    return (
        f"{counts} · {report.npu_nodes}/{report.nodes} nodes on the NPU in "
        f"{_plural(report.partitions, 'partition')} · verdict: "
        f"[{VERDICT_STYLE[verdict]}]{verdict}[/]"
    )


def _matrix(console: Console, report: ModelReport) -> None:
    table = Table(title=None, show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in ("target", "errors", "warnings", "info", "NPU nodes", "partitions", "verdict"):
        table.add_column(column, justify="left" if column in ("target", "verdict") else "right")
    for target in report.targets:
        table.add_row(
            target.target.name,
            str(target.count(Severity.ERROR)),
            str(target.count(Severity.WARNING)),
            str(target.count(Severity.INFO)),
            f"{target.npu_nodes}/{target.nodes}",
            str(target.partitions),
            f"[{VERDICT_STYLE[target.verdict]}]{target.verdict}[/]",
        )
    console.print()
    console.print(table)


def _models_matrix(console: Console, reports: list[ModelReport]) -> None:
    """One row per model, one column per target: the verdict and the error count."""
    names = list(dict.fromkeys(t.target.name for r in reports for t in r.targets))
    table = Table(title=None, show_edge=False, pad_edge=False, box=None, header_style="bold")
    table.add_column("model")
    for name in names:
        table.add_column(name)
    for report in reports:
        cells = {}
        for target in report.targets:
            errors = target.count(Severity.ERROR)
            detail = f" ({_plural(errors, 'error')})" if errors else ""
            cells[target.target.name] = (
                f"[{VERDICT_STYLE[target.verdict]}]{target.verdict}[/]{detail}"
            )
        table.add_row(escape(str(report.path)), *(cells.get(n, "") for n in names))
    console.print()
    console.print(table)


def render_text(reports: Iterable[ModelReport], console: Console) -> None:
    """Print every model's findings, per target, then a target matrix and a summary line."""
    reports = list(reports)
    for report in reports:
        opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(report.opsets.items()))
        folded = report.node_count - report.live_nodes
        console.print(
            f"[bold]{escape(str(report.path))}[/] (IR {report.ir_version}, opset {opsets}, "
            f"{report.node_count} nodes, {folded} folded as constants)"
        )
        if report.foldable_nodes:
            console.print(
                f"[dim]unsimplified: {report.foldable_nodes} nodes compute constants from "
                "constants and static shapes; they were folded before judging, as compilers "
                "fold them (onnxsim, or the simplify pass of `portlint fix`, removes them)[/]"
            )
        if report.inference_error:
            console.print(
                f"[yellow]shape inference failed: {escape(report.inference_error)}; "
                "shape checks may report 'could not evaluate'[/]"
            )
        for target in report.targets:
            _target_block(console, target)
        if len(report.targets) > 1:
            _matrix(console, report)
        for glob in report.unmatched_ignores:
            console.print(f"[yellow]per-node-ignores entry {glob!r} matched no finding[/]")
    if len(reports) > 1:
        _models_matrix(console, reports)
    findings = [f for r in reports for f in r.findings]
    counts = ", ".join(
        _plural(sum(1 for f in findings if f.severity is s), s.value) for s in Severity
    )
    console.print(f"\nFound {counts} in {_plural(len(reports), 'model')}.")

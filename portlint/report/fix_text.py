"""What ``portlint fix`` prints: the plan, each pass with its proof, and before/after."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from portlint.api import FixRun
from portlint.engine import TargetReport
from portlint.fixer import Step, op_counts
from portlint.passes.base import Pass, Semantics
from portlint.rule import Severity

SEMANTICS_STYLE = {
    Semantics.EXACT: "green",
    Semantics.INTERFACE: "yellow",
    Semantics.APPROXIMATE: "bold red",
}


def _label(item: Pass) -> str:
    style = SEMANTICS_STYLE[item.semantics]
    return f"[bold]{item.name}[/] [{style}]({item.semantics.value})[/]"


def render_plan(planned: list[tuple[Pass, str | None]], console: Console) -> None:
    """Dry run: which passes would run and why, judged on the input model."""
    console.print("plan (dry run, judged on the input model; nothing written):")
    for item, reason in planned:
        mark = "run " if reason else "skip"
        console.print(f"  {mark} {_label(item)}: {escape(reason or 'nothing to do')}")
    if not any(reason for _, reason in planned):
        console.print("  nothing to fix for this target with these options")


def _step(step: Step, console: Console) -> None:
    result = step.result
    assert result is not None
    console.print(f"\n{_label(step.pass_)} — {escape(step.reason)} ({step.seconds:.2f} s)")
    for line in result.changes:
        console.print(f"    {escape(line)}")
    for line in result.skipped:
        console.print(f"    [yellow]skipped:[/] {escape(line)}")
    if not result.changed:
        console.print("    nothing changed")
        return
    console.print(f"    [dim]{escape(step.verification)}[/]")
    for item in step.head_deviations:
        console.print(f"    kept {escape(item.describe())}")
    for item in step.deviations:
        console.print(f"    {escape(item.describe())}")
    if step.pass_.semantics is Semantics.APPROXIMATE:
        console.print(
            "    [bold red]APPROXIMATE: this pass changed the model's numbers. Fine-tune or "
            "retrain the model before you deploy it.[/]"
        )


def _counts(report: TargetReport) -> str:
    return " / ".join(str(report.count(s)) for s in Severity)


def _before_after(run: FixRun, console: Console) -> None:
    outcome = run.outcome
    assert outcome is not None
    table = Table(title="before / after", title_justify="left", box=None, pad_edge=False)
    for column in ("", "before", "after"):
        table.add_column(column, justify="left" if not column else "right")
    before, after = op_counts(outcome.before_model), op_counts(outcome.model)
    table.add_row("nodes", str(sum(before.values())), str(sum(after.values())))
    for op in sorted(set(before) | set(after)):
        if before[op] != after[op]:
            table.add_row(f"  {op}", str(before[op]), str(after[op]))
    table.add_row("errors / warnings / info", _counts(outcome.before), _counts(outcome.after))
    table.add_row("verdict", outcome.before.verdict, outcome.after.verdict)
    console.print()
    console.print(table)


def render_fix(run: FixRun, console: Console) -> None:
    outcome = run.outcome
    assert outcome is not None
    target = outcome.before.target
    console.print(f"[bold]portlint fix[/] for {escape(target.name)} — {escape(target.label)}")
    for step in outcome.steps:
        _step(step, console)
    if not outcome.steps:
        console.print("nothing to fix for this target with these options")
    _before_after(run, console)
    console.print()
    for path in run.written:
        console.print(f"wrote {escape(str(path))}")
    if run.tail_output is not None:
        console.print(
            f"  the cut-off post-processing is in {escape(str(run.tail_output))}: run it on the "
            "CPU on the head model's outputs to get the original outputs"
        )
    if run.stale_tail is not None:
        console.print(
            f"[yellow]note:[/] {escape(str(run.stale_tail))} is from an earlier run that cut "
            "the graph; this run did not cut it, so that tail does not belong to this output"
        )

"""What ``portlint compare`` prints: a table in graph order, and the same as JSON.

JSON (``--format json``), ``"schema_version": 1``::

    {
      "schema_version": 1,
      "kind": "portlint-compare",
      "a": "A.onnx", "b": "B.onnx" | null,
      "simulate": {"target": "nnom", "bits": 8 | null, "calibration": "minmax",
                   "calibration_samples": 16} | null,
      "inputs": "8 random samples (...)", "samples": 8,
      "threshold": 0.99, "per_layer": true, "passed": true,
      "first_below": "TENSOR" | null,
      "notes": ["..."],
      "outputs": [ROW, ...],
      "layers": [ROW, ...],          # per-layer only, in A's graph order; else []
      "skipped": ["TENSOR: shape [...] in A, [...] in B", ...]
    }
    ROW = {"name": "...", "b_name": "...", "op": "Conv" | null, "node": "..." | null,
           "shape": [1, 16, 320, 320] | null, "output": false, "cosine": 0.9998,
           "mean_abs": 0.0012, "max_abs": 0.031, "snr_db": 41.2 | null, "elements": 1638400,
           "below": false, "channels": 16 | null, "channels_below": 0 | null}

``channels_below`` counts the channels (axis 1) whose own cosine is under the threshold: a
crushed channel beside wide ones hardly moves the tensor's cosine.

JSON has no infinity: ``snr_db`` is null when B equals A exactly (infinite SNR; then
``max_abs`` is 0), and any figure that is NaN (non-finite values in a model) is null too.
"""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from portlint.compare import Comparison, Metrics, TensorComparison

SCHEMA_VERSION = 1


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _row(row: TensorComparison, threshold: float) -> dict[str, Any]:
    m = row.metrics
    return {
        "name": row.name,
        "b_name": row.b_name,
        "op": row.op,
        "node": row.node,
        "shape": list(row.shape) if row.shape is not None else None,
        "output": row.output,
        "cosine": _number(m.cosine),
        "mean_abs": _number(m.mean_abs),
        "max_abs": _number(m.max_abs),
        "snr_db": _number(m.snr_db),
        "elements": m.elements,
        "below": row.below(threshold),
        "channels": len(m.channel_cosine) if m.channel_cosine is not None else None,
        "channels_below": m.channels_below(threshold),
    }


def compare_json(
    comparison: Comparison,
    a: str,
    b: str | None = None,
    simulate: dict[str, Any] | None = None,
) -> str:
    first = comparison.first_below
    document = {
        "schema_version": SCHEMA_VERSION,
        "kind": "portlint-compare",
        "a": a,
        "b": b,
        "simulate": simulate,
        "inputs": comparison.inputs,
        "samples": comparison.samples,
        "threshold": comparison.threshold,
        "per_layer": comparison.per_layer,
        "passed": comparison.passed,
        "first_below": first.name if first is not None else None,
        "notes": list(comparison.notes),
        "outputs": [_row(r, comparison.threshold) for r in comparison.outputs],
        "layers": [_row(r, comparison.threshold) for r in comparison.layers],
        "skipped": list(comparison.skipped),
    }
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def _figure(value: float, digits: str = ".3g") -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, digits)


def _cosine(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.6f}"


def _table(rows: list[TensorComparison], comparison: Comparison, mark: str | None) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("tensor", overflow="fold")
    table.add_column("op")
    table.add_column("cosine", justify="right")
    table.add_column("L1", justify="right")
    table.add_column("max abs", justify="right")
    table.add_column("SNR dB", justify="right")
    table.add_column(f"ch<{comparison.threshold:g}", justify="right")
    table.add_column("")
    for index, row in enumerate(rows, 1):
        m = row.metrics
        below = row.below(comparison.threshold)
        style = "bold red" if row.name == mark else "yellow" if below else None
        flag = (
            f"◀ first below {comparison.threshold:g}"
            if row.name == mark
            else "below"
            if below
            else ""
        )
        name = row.name if row.b_name == row.name else f"{row.name} (B: {row.b_name})"
        op = (row.op or "-") + (" (output)" if row.output else "")
        table.add_row(
            str(index),
            escape(name),
            escape(op),
            _cosine(m.cosine),
            _figure(m.mean_abs),
            _figure(m.max_abs),
            _figure(m.snr_db, ".1f"),
            _channels(m, comparison.threshold),
            flag,
            style=style,
        )
    return table


def render_compare(comparison: Comparison, console: Console, a: str, b: str) -> None:
    """Header, notes, the per-layer table (if measured), the outputs and a verdict line."""
    console.print(f"A: {escape(a)}  (reference)")
    console.print(f"B: {escape(b)}")
    console.print(f"inputs: {escape(comparison.inputs or f'{comparison.samples} samples')}")
    for note in comparison.notes:
        console.print(f"[dim]note:[/] {escape(note)}")
    first = comparison.first_below
    mark = first.name if first is not None else None
    if comparison.per_layer:
        console.print(f"\n[bold]per layer[/] ({len(comparison.layers)} tensors both models have)")
        console.print(_table(comparison.layers, comparison, mark))
        for line in comparison.skipped:
            console.print(f"[dim]skipped (shapes differ):[/] {escape(line)}")
    console.print("\n[bold]outputs[/]")
    in_layers = {row.name for row in comparison.layers}
    output_mark = mark if mark is not None and mark not in in_layers else None
    console.print(_table(comparison.outputs, comparison, output_mark))
    worst = min(comparison.outputs, key=lambda r: _sort_key(r.metrics.cosine), default=None)
    summary = (
        f"{comparison.samples} samples · threshold cosine {comparison.threshold:g} · "
        f"worst output {escape(worst.name)} cosine {_cosine(worst.metrics.cosine)}"
        if worst is not None
        else f"{comparison.samples} samples"
    )
    if first is not None:
        where = f" ({escape(first.op)} {escape(first.node)})" if first.op and first.node else ""
        summary += f" · first below: {escape(first.name)}{where}"
    verdict = (
        "[green]outputs agree[/]"
        if comparison.passed
        else "[bold red]outputs differ[/] (cosine below threshold)"
    )
    console.print(f"\n{summary} · {verdict}")


def _channels(m: Metrics, threshold: float) -> str:
    below = m.channels_below(threshold)
    return "-" if below is None else f"{below}/{len(m.channel_cosine)}" if below else "0"


def _sort_key(value: float) -> float:
    return -math.inf if math.isnan(value) else value

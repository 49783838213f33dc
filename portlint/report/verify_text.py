"""What ``portlint verify`` prints: prediction and compiler side by side, then the differences.

JSON (``--format json``), ``"schema_version": 1``::

    {
      "schema_version": 1,
      "kind": "portlint-verify",
      "model": "M.onnx", "target": "rk3588",
      "profile_toolchain": "RKNN-Toolkit2 2.5.0",
      "prediction": {"verdict": "runs with CPU fallback", "errors": 0, "warnings": 2,
                     "cpu_nodes": ["..."], "rejected_nodes": ["..."]},
      "compiler": {"toolchain": "rknn", "version": "2.5.0", "outcome": "crashed",
                   "verdict": "fails", "stage": "build", "error": "...", "error_kind": "...",
                   "failing_nodes": [...], "cpu_layers": [{"name", "op", "onnx_node",
                   "inserted"}], "npu_layers": 212, "suggested_options": {...},
                   "details": {...}, "seconds": 12.3, "log": "..."},
      "agrees": false,
      "disagreements": [{"kind", "message", "node"?, "op"?, "fact"?}],
      "reduced": {"path": "...", "culprit": "...", "culprit_op": "...", "pattern": "...",
                  "nodes": [[name, op], ...], "inputs": [...], "outputs": [...],
                  "runs": 9, "error": "..."} | null
    }
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from portlint.verify import Verification

SCHEMA_VERSION = 1


def verify_json(found: Verification, model: str, reduced_path: Path | None) -> str:
    result = found.result
    prediction = found.prediction
    places = prediction.placement
    compiler = result.to_json()
    compiler["verdict"] = found.compiler_verdict
    compiler["cpu_layers"] = [
        {"name": x.name, "op": x.op, "onnx_node": x.onnx_node, "inserted": x.inserted}
        for x in result.cpu_layers
    ]
    compiler["npu_layers"] = sum(1 for x in result.layers if x.placement == "npu")
    compiler.pop("layers")
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "portlint-verify",
        "model": model,
        "target": found.target.name,
        "profile_toolchain": f"{found.target.toolchain} {found.target.toolchain_version}",
        "prediction": {
            "verdict": prediction.verdict,
            "errors": sum(1 for f in prediction.findings if f.severity.value == "error"),
            "warnings": sum(1 for f in prediction.findings if f.severity.value == "warning"),
            "cpu_nodes": [n for n, p in places.items() if p == "cpu"],
            "rejected_nodes": [n for n, p in places.items() if p == "rejected"],
        },
        "compiler": compiler,
        "agrees": found.agrees,
        "disagreements": [d.to_json() for d in found.disagreements],
        "reduced": _reduced_json(found, reduced_path),
    }
    return json.dumps(data, indent=2) + "\n"


def _reduced_json(found: Verification, path: Path | None) -> dict[str, Any] | None:
    red = found.reduced
    if red is None:
        return None
    return {
        "path": str(path) if path else None,
        "culprit": red.culprit,
        "culprit_op": red.culprit_op,
        "pattern": red.pattern,
        "nodes": [list(n) for n in red.nodes],
        "inputs": red.inputs,
        "outputs": red.outputs,
        "runs": red.runs,
        "error": red.result.error,
    }


def render_verify(
    found: Verification, console: Console, model: str, reduced_path: Path | None
) -> None:
    result = found.result
    target = found.target
    prediction = found.prediction
    print_ = console.print
    print_(f"[bold]{escape(model)}[/] on [bold]{escape(target.name)}[/]")
    cpu_predicted = [n for n, p in prediction.placement.items() if p == "cpu"]
    errors = [f for f in prediction.findings if f.blocks_compile]
    print_(
        f"  portlint ({escape(target.toolchain)} {escape(target.toolchain_version)} profile): "
        f"[bold]{prediction.verdict}[/]"
        + (f", {len(errors)} error(s)" if errors else "")
        + (f", {len(cpu_predicted)} node(s) on the CPU" if cpu_predicted else "")
    )
    version = f" {result.version}" if result.version else ""
    line = f"  {escape(result.toolchain)}{escape(version)}: [bold]{found.compiler_verdict}[/]"
    if not result.converts:
        stage = f"{result.stage}: " if result.stage else ""
        line += f" ({escape(result.outcome)}) — {escape(stage + (result.error or ''))}"
    else:
        cpu = result.cpu_layers
        npu = sum(1 for x in result.layers if x.placement == "npu")
        line += f", {npu} NPU layer(s), {len(cpu)} CPU layer(s)"
    print_(line + f" [{result.seconds:.1f} s]")
    for layer in result.cpu_layers[:12]:
        origin = f"from {layer.onnx_node!r}" if layer.onnx_node else "inserted by the toolchain"
        print_(f"    CPU  {escape(layer.op)} {escape(layer.name)} ({escape(origin)})")
    if len(result.cpu_layers) > 12:
        print_(f"    … {len(result.cpu_layers) - 12} more CPU layers (--format json lists all)")
    for warning in result.warnings:
        print_(f"  [yellow]warning:[/] {escape(warning)}")
    if result.suggested_options:
        options = ", ".join(f"{k}={v!r}" for k, v in result.suggested_options.items())
        print_(f"  the toolchain suggests: config({escape(options)})")
    if found.agrees and not found.disagreements:
        print_("[green]  agree[/]")
    elif found.disagreements:
        print_(f"[yellow]  {len(found.disagreements)} disagreement(s):[/]")
        for d in found.disagreements:
            print_(f"  - {escape(d.message)}")
            if d.fact:
                print_(f"      look at: {escape(d.fact)}")
    elif not result.has_verdict:
        print_("  no verdict to compare with (raise --timeout)")
    red = found.reduced
    if red is not None:
        print_(
            f"  culprit: {escape(red.culprit_op)} {escape(red.culprit)!r} — the smallest "
            f"sub-model that fails the same way has {len(red.nodes)} node(s) "
            f"({red.runs} compiler runs)"
        )
        print_(f"    pattern: {escape(red.pattern)}")
        if reduced_path:
            print_(f"    written to {escape(str(reduced_path))} (file it with the vendor)")
    elif found.result.has_verdict and not found.result.converts and reduced_path is not None:
        print_("  --reduce: no smaller sub-model fails the same way")

"""Benchmark ``portlint check`` against the ONNX shape-inference floor and Polygraphy's linter.

Why this exists: portlint is meant to run as a pre-commit hook, so checking a model has to stay
under about one second of wall time, start-up included. That is a property of the whole process
on a real machine, so it is measured here, in a benchmark you run on purpose, and not asserted in
timed unit tests (which would be flaky on loaded CI runners and say nothing about start-up).

For each model size it builds a synthetic Conv3x3+Relu chain, then runs each command N times,
interleaved, as a fresh child process, and reports wall time (min, median) and the child's peak
resident set size (from ``os.wait4``). The commands are:

* ``portlint check MODEL --target hailo8`` (exit 1 means "has findings" and is fine);
* ``python -c "onnx.load + infer_shapes"``: the floor any ONNX-reading tool pays;
* ``polygraphy check lint MODEL``: the peer, from a separate environment (``--polygraphy``),
  because Polygraphy is not a portlint dependency.

Run ``python bench/bench_check.py --help`` for the options; see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
CHANNELS = 8
HEIGHT = WIDTH = 16
OPSET = 17
IR_VERSION = 8
NOT_INSTALLED = "polygraphy: not installed (see bench/README.md)"


@dataclass
class Command:
    """A command to time; exit codes above ``max_ok_exit`` count as failures."""

    label: str
    argv: list[str]
    max_ok_exit: int = 0


@dataclass
class Result:
    """Measurements of one command over all repetitions."""

    command: Command
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


# --- model ------------------------------------------------------------------------------------


def build_chain(n_nodes: int, path: Path) -> Path:
    """Write a chain of ``n_nodes // 2`` (Conv 3x3 8->8, pads 1) + Relu pairs to ``path``."""
    if n_nodes <= 0 or n_nodes % 2:
        raise ValueError(f"node count must be a positive even number, got {n_nodes}")
    rng = np.random.default_rng(0)
    nodes, initializers = [], []
    current = "x"
    for i in range(n_nodes // 2):
        weight = rng.standard_normal((CHANNELS, CHANNELS, 3, 3)).astype(np.float32)
        initializers.append(numpy_helper.from_array(weight, name=f"w{i}"))
        nodes.append(
            helper.make_node(
                "Conv",
                [current, f"w{i}"],
                [f"c{i}"],
                name=f"conv{i}",
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        current = f"r{i}"
    shape = [1, CHANNELS, HEIGHT, WIDTH]
    graph = helper.make_graph(
        nodes,
        f"conv_chain_{n_nodes}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, shape)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# --- commands ---------------------------------------------------------------------------------


def portlint_argv() -> list[str]:
    """The ``portlint`` script next to this interpreter, else ``python -m portlint``."""
    script = Path(sys.executable).parent / "portlint"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "portlint"]


def find_polygraphy(explicit: str | None) -> str | None:
    """``--polygraphy PATH`` if given (must exist), else ``polygraphy`` on PATH, else None."""
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise SystemExit(f"--polygraphy {explicit}: not an executable file")
        return explicit
    return shutil.which("polygraphy")


def commands_for(model: Path, polygraphy: str | None) -> list[Command]:
    floor = f"import onnx; m = onnx.load({str(model)!r}); onnx.shape_inference.infer_shapes(m)"
    commands = [
        Command(
            "portlint check --target hailo8",
            [*portlint_argv(), "check", str(model), "--target", "hailo8"],
            max_ok_exit=1,
        ),
        Command("onnx.load + infer_shapes", [sys.executable, "-c", floor]),
    ]
    if polygraphy:
        commands.append(Command("polygraphy check lint", [polygraphy, "check", "lint", str(model)]))
    return commands


# --- measuring --------------------------------------------------------------------------------


def run_once(command: Command) -> tuple[float, int]:
    """Run ``command`` as a child; return (wall seconds, peak RSS KiB). Exit on failure."""
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(command.argv, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if not 0 <= code <= command.max_ok_exit:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-2000:]
            raise SystemExit(
                f"{command.label} failed (exit {code}): {shlex.join(command.argv)}\n{tail}"
            )
    return elapsed, usage.ru_maxrss  # ru_maxrss is KiB on Linux


def measure(commands: list[Command], runs: int, warmup: int) -> list[Result]:
    """Run all commands round-robin so drift in machine load hits each of them alike."""
    results = [Result(c) for c in commands]
    for _ in range(warmup):
        for command in commands:
            run_once(command)
    for _ in range(runs):
        for result in results:
            seconds, rss = run_once(result.command)
            result.seconds.append(seconds)
            result.rss_kib.append(rss)
    return results


# --- reporting --------------------------------------------------------------------------------


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def polygraphy_version(polygraphy: str | None) -> str:
    if not polygraphy:
        return "not installed"
    out = subprocess.run([polygraphy, "--version"], capture_output=True, text=True).stdout
    # "Polygraphy | Version: 0.53.6 | Path: [...]"
    for part in out.split("|"):
        if part.strip().startswith("Version:"):
            return part.split(":", 1)[1].strip()
    return out.strip() or "unknown"


def print_header(polygraphy: str | None, runs: int, warmup: int) -> None:
    print(
        f"machine:  {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    print(
        f"versions: onnx {package_version('onnx')}, portlint {package_version('portlint')}, "
        f"polygraphy {polygraphy_version(polygraphy)}"
    )
    print(
        f"runs:     {runs} timed per command (+{warmup} warm-up), interleaved; "
        "wall time of the whole process, peak RSS of the child"
    )


def format_table(results: list[Result], polygraphy_missing: bool) -> str:
    headers = ["command", "min s", "median s", "peak RSS MiB", "ratio vs portlint (median)"]
    base = results[0].median
    rows = [
        [
            r.command.label,
            f"{min(r.seconds):.3f}",
            f"{r.median:.3f}",
            f"{max(r.rss_kib) / 1024:.0f}",
            f"{r.median / base:.2f}x",
        ]
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = [_format_row(headers, widths), "-+-".join("-" * w for w in widths)]
    lines += [_format_row(row, widths) for row in rows]
    if polygraphy_missing:
        lines.append(NOT_INSTALLED)
    return "\n".join(lines)


def _format_row(cells: list[str], widths: list[int]) -> str:
    """First column left-aligned, the numeric ones right-aligned."""
    first, *rest = zip(cells, widths, strict=True)
    return " | ".join([first[0].ljust(first[1]), *(c.rjust(w) for c, w in rest)])


# --- main -------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=[5000],
        help="comma-separated node counts of the conv chain (default: 5000)",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (default: 5)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed warm-up runs per command (default: 1)"
    )
    parser.add_argument(
        "--polygraphy",
        metavar="PATH",
        help="polygraphy executable (default: `polygraphy` on PATH, if any)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    polygraphy = find_polygraphy(args.polygraphy)
    print_header(polygraphy, args.runs, args.warmup)
    for n_nodes in args.sizes:
        model = build_chain(n_nodes, CACHE_DIR / f"chain_{n_nodes}.onnx")
        size_mib = model.stat().st_size / 2**20
        print(f"\nmodel: {model.name} ({n_nodes} nodes, {size_mib:.1f} MiB)")
        results = measure(commands_for(model, polygraphy), args.runs, args.warmup)
        print(format_table(results, polygraphy_missing=polygraphy is None))


if __name__ == "__main__":
    main()

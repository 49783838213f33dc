"""Benchmark ``portlint check`` against its peers: wall time and peak memory, side by side.

Why this exists: portlint is meant to run as a pre-commit hook and in CI on every kind of model,
so checking has to be fast and lean as a whole process (start-up included) on a real machine.
That is measured here, in a benchmark you run on purpose, not asserted in timed unit tests
(which would be flaky on loaded CI runners and say nothing about start-up).

One run builds the models (bench_models.py), runs every tool on each of them as a fresh child
process, ``--runs`` times after ``--warmup`` untimed runs, with the tools taking turns, and
prints Markdown tables: wall time and the child's peak RSS (``ru_maxrss`` from ``os.wait4``)
per tool and model, ratios against portlint, time per node on the chains, and the issue's
targets. The tools:

* ``portlint check MODEL --target hailo8`` (exit 1 means "has findings" and is fine);
* ``polygraphy check lint MODEL``;
* ``onnx-doctor check MODEL``;
* ``python -m onnxruntime.tools.check_onnx_model_mobile_usability MODEL``;
* a floor for reference: ``onnx.load(MODEL, load_external_data=False)`` + ``infer_shapes``.

The peers are not portlint dependencies; they live in their own venv (``--setup-peers`` makes
one). A peer that crashes, is killed or times out on a model is reported with its exit status
and error line, never skipped. Run ``python bench/bench_check.py --help``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"
BIG_MODEL = CACHE_DIR / "big" / "big.onnx"
BUILDER = BENCH_DIR / "bench_models.py"
DEFAULT_PEERS_VENV = BENCH_DIR / ".venv-peers"
PEER_PACKAGES = ["polygraphy", "onnxruntime", "onnx", "onnx-graphsurgeon", "onnx-doctor"]
ORT_CHECKER = "onnxruntime.tools.check_onnx_model_mobile_usability"
TARGET_SECONDS = 2.0
TARGET_BYTES = 300 * 10**6  # the "300 MB"
PYCACHE = CACHE_DIR / "pycache"


def child_env() -> dict[str, str]:
    """The environment every tool runs in: this one, with bytecode caching on.

    An installed tool has its ``.pyc`` files (pip writes them); with PYTHONDONTWRITEBYTECODE
    set, as on some CI machines and sandboxes, an editable portlint would recompile its own
    modules on every run while the peers' site-packages read theirs. So that variable is
    dropped, and every tool writes and reads its bytecode under bench/.cache/pycache (the
    warm-up run fills it), never beside the sources.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


# --- tools ------------------------------------------------------------------------------------


@dataclass
class Tool:
    """A command line to run on each model. ``argv`` is None when the tool is missing."""

    key: str
    label: str
    argv: Callable[[Path], list[str]] | None
    ok_exits: frozenset[int] = frozenset({0})
    peer: bool = True
    missing: str = ""


def portlint_tool(target: str) -> Tool:
    script = Path(sys.executable).parent / "portlint"
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "portlint"]
    return Tool(
        "portlint",
        f"portlint check -t {target}",
        lambda m: [*base, "check", str(m), "--target", target],
        frozenset({0, 1}),  # 1 = the model has findings
        peer=False,
    )


def floor_tool() -> Tool:
    def argv(model: Path) -> list[str]:
        code = (
            "import onnx; "
            f"m = onnx.load({str(model)!r}, load_external_data=False); "
            "onnx.shape_inference.infer_shapes(m)"
        )
        return [sys.executable, "-c", code]

    return Tool("floor", "floor: onnx.load(no weights) + infer_shapes", argv, peer=False)


def peer_tools(venv: Path) -> list[Tool]:
    """The three peers from ``venv``; a missing one gets a Tool with ``argv=None``."""
    setup = f"not installed in {venv} (run: python bench/bench_check.py --setup-peers)"
    bin_dir = venv / "bin"
    python = bin_dir / "python"
    polygraphy = bin_dir / "polygraphy"
    doctor = bin_dir / "onnx-doctor"
    has_ort = python.is_file() and _importable(python, ORT_CHECKER)
    has_gs = python.is_file() and _importable(python, "onnx_graphsurgeon")
    tools = [
        Tool(
            "polygraphy",
            "polygraphy check lint",
            (lambda m: [str(polygraphy), "check", "lint", str(m)])
            if polygraphy.is_file() and has_ort and has_gs
            else None,
            frozenset({0, 1}),  # 1 = lint errors (a traceback still counts as a crash)
            missing=setup + " (needs polygraphy, onnxruntime, onnx-graphsurgeon)",
        ),
        Tool(
            "onnx-doctor",
            "onnx-doctor check",
            (lambda m: [str(doctor), "check", str(m)]) if doctor.is_file() else None,
            frozenset({0, 1}),  # 1 = error-severity findings
            missing=setup,
        ),
        Tool(
            "ort-mobile",
            "ORT check_onnx_model_mobile_usability",
            (lambda m: [str(python), "-m", ORT_CHECKER, str(m)]) if has_ort else None,
            missing=setup,
        ),
    ]
    return tools


def _importable(python: Path, module: str) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([str(python), "-c", code], capture_output=True).returncode == 0


def setup_peers(venv: Path) -> None:
    print(f"creating {venv} with {' '.join(PEER_PACKAGES)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PEER_PACKAGES], check=True)


# --- measuring --------------------------------------------------------------------------------


@dataclass
class Run:
    """One child process: wall time, peak RSS, exit status and why it failed (if it did)."""

    seconds: float
    cpu: float  # user + system seconds of the child (and its reaped children)
    rss_kib: int
    exit: int
    failure: str | None


@dataclass
class Result:
    tool: Tool
    runs: list[Run] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return bool(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def cpu_median(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def minimum(self) -> float:
        return min(r.seconds for r in self.runs)

    @property
    def peak_mib(self) -> float:
        return max(r.rss_kib for r in self.runs) / 1024

    @property
    def failures(self) -> list[Run]:
        return [r for r in self.runs if r.failure]

    @property
    def ok(self) -> bool:
        return self.measured and not self.failures

    def status(self) -> str:
        if not self.measured:
            return "not run: " + self.tool.missing
        bad = self.failures
        if not bad:
            codes = sorted({r.exit for r in self.runs})
            return "ok" if codes == [0] else "ok, findings (exit 1)"
        where = "" if len(bad) == len(self.runs) else f" in {len(bad)}/{len(self.runs)} runs"
        return f"**FAILED**{where}: {bad[0].failure}"


def exception_line(output: str) -> str | None:
    """The exception that ended the first Python traceback in ``output``, if there is one."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            for later in lines[i + 1 :]:
                if later and not later[0].isspace():
                    return later.strip()
    return None


def run_once(tool: Tool, model: Path, timeout: float) -> Run:
    """Run ``tool`` on ``model`` as a child in its own session; kill it after ``timeout``."""
    assert tool.argv is not None
    argv = tool.argv(model)
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, env=child_env()
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):  # it may have just exited
                os.killpg(proc.pid, signal.SIGKILL)  # the group this child leads, nothing else

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        timer.cancel()
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    failure = None
    error = exception_line(text)
    if timed_out.is_set():
        failure = f"timed out after {timeout:g} s (killed)"
    elif code < 0:
        failure = f"killed by {signal.Signals(-code).name}"
    elif code not in tool.ok_exits or error:
        last = error or next((ln for ln in reversed(text.splitlines()) if ln.strip()), "")
        failure = f"exit {code}: `{last.strip()[:160]}`"
    cpu = usage.ru_utime + usage.ru_stime
    return Run(elapsed, cpu, usage.ru_maxrss, code, failure)  # ru_maxrss is KiB on Linux


def measure(tools: list[Tool], model: Path, runs: int, warmup: int, timeout: float) -> list[Result]:
    """Run the tools round-robin so drift in machine load hits each of them alike.

    A tool that failed every warm-up run is timed ``runs`` times all the same: the time and
    memory it takes to fail are findings too. A tool that timed out is not run again.
    """
    results = [Result(t) for t in tools]
    live = [r for r in results if r.tool.argv is not None]
    for _ in range(warmup):
        for result in live:
            run = run_once(result.tool, model, timeout)
            if run.failure and "timed out" in run.failure:
                result.runs.append(run)  # reported, and not run again
    for i in range(runs):
        for result in live:
            if result.runs and result.runs[-1].failure and "timed out" in result.runs[-1].failure:
                continue
            run = run_once(result.tool, model, timeout)
            result.runs.append(run)
            state = run.failure or f"exit {run.exit}"
            print(
                f"  [{i + 1}/{runs}] {result.tool.key:<11} {run.seconds:7.2f} s "
                f"(CPU {run.cpu:6.2f} s) {run.rss_kib / 1024:7.0f} MiB  {state}",
                file=sys.stderr,
                flush=True,
            )
    return results


# --- models -----------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    name: str
    kind: str  # chain | transformer | big
    size: int  # nodes for a chain, layers for the transformer, bytes for big
    path: Path
    nodes: int = 0
    file_bytes: int = 0
    data_bytes: int = 0
    results: list[Result] = field(default_factory=list)


def model_specs(args: argparse.Namespace) -> list[ModelSpec]:
    specs = [
        ModelSpec(f"chain {n:,}", "chain", n, CACHE_DIR / f"chain_{n}.onnx") for n in args.sizes
    ]
    if args.transformer_layers:
        n = args.transformer_layers
        specs.append(
            ModelSpec(
                f"transformer {n} layers", "transformer", n, CACHE_DIR / f"transformer_{n}.onnx"
            )
        )
    if args.big_gb:
        total = int(args.big_gb * 1e9)
        specs.append(ModelSpec(f"external data {args.big_gb:g} GB", "big", total, BIG_MODEL))
    return specs


def build(spec: ModelSpec) -> None:
    """Build (or reuse) the model in a child process, so this process stays small.

    That matters for the memory figures: on Linux a child's ``ru_maxrss`` starts at the peak
    RSS of the process that forked it, so a parent that had held a model would inflate them.
    """
    start = time.perf_counter()
    argv = [sys.executable, str(BUILDER), spec.kind, str(spec.size), str(spec.path)]
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True)
    info = json.loads(done.stdout.splitlines()[-1])
    spec.nodes, spec.file_bytes, spec.data_bytes = info["nodes"], info["bytes"], info["data"]
    what = "reused" if info["reused"] else "built"
    print(
        f"{what} {spec.path.relative_to(ROOT)}: {spec.nodes} nodes, "
        f"{(spec.file_bytes + spec.data_bytes) / 1e6:.1f} MB in "
        f"{time.perf_counter() - start:.1f} s",
        file=sys.stderr,
        flush=True,
    )


def describe(spec: ModelSpec) -> str:
    size = f"{spec.file_bytes / 1e6:.1f} MB"
    if spec.data_bytes:
        size = f"{spec.file_bytes} B + {spec.data_bytes / 1e9:.2f} GB external data"
    return f"{spec.nodes:,} nodes, {size}"


# --- machine ----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def peer_versions(venv: Path) -> str:
    python = venv / "bin" / "python"
    if not python.is_file():
        return f"no peers venv at {venv}"
    code = (
        "import importlib.metadata as m, json, platform\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return 'not installed'\n"
        f"names = {[*PEER_PACKAGES, 'onnx-ir', 'numpy', 'protobuf']!r}\n"
        "print(json.dumps([platform.python_version(), {n: v(n) for n in names}]))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout
    py, versions = json.loads(out)
    return f"Python {py}; " + ", ".join(f"{k} {v}" for k, v in versions.items())


def git_state() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "portlint", "rules", "targets")
    changed = len(dirty.splitlines())
    return head + (f" + {changed} uncommitted file(s) in portlint/rules/targets" if changed else "")


def header(args: argparse.Namespace, argv: list[str]) -> str:
    command = shlex.join(["python", "bench/bench_check.py", *argv])
    return "\n".join(
        [
            f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- command: `{command}`",
            f"- CPU: {cpu_model()}, {os.cpu_count()} cores; RAM {ram_gib()}; "
            f"{platform.system()} {platform.release()}",
            f"- load average at start: {load_average()}",
            f"- portlint env: Python {platform.python_version()}; portlint "
            f"{package_version('portlint')} (git {git_state()}), onnx {package_version('onnx')}, "
            f"onnxruntime {package_version('onnxruntime')}, numpy {package_version('numpy')}, "
            f"protobuf {package_version('protobuf')}",
            f"- peers env ({args.peers_venv}): {peer_versions(args.peers_venv)}",
            f"- method: each tool is a fresh child process, {args.runs} timed run(s) after "
            f"{args.warmup} warm-up, tools interleaved; wall time includes interpreter start-up; "
            "bytecode cached for every tool (PYTHONDONTWRITEBYTECODE unset, .pyc files under "
            "bench/.cache/pycache, written by the warm-up run); "
            "peak memory is the child's `ru_maxrss` from `os.wait4` (its own peak RSS, or a "
            "reaped grandchild's if larger); timeout "
            f"{args.timeout:.0f} s per run; ratios are peer / portlint (> 1: portlint is "
            "faster or smaller)",
        ]
    )


# --- reporting --------------------------------------------------------------------------------


def table(
    headers: list[str], rows: list[list[str]], right: int = 1, left_last: bool = False
) -> str:
    """A Markdown table; columns from ``right`` on are right-aligned (but the last one if
    ``left_last``)."""
    align = ["---"] * right + ["---:"] * (len(headers) - right)
    if left_last:
        align[-1] = "---"
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "n/a"


def model_table(spec: ModelSpec) -> str:
    base = spec.results[0]
    rows = []
    for r in spec.results:
        if not r.measured:
            rows.append([r.tool.label, "-", "-", "-", "-", "-", "-", "-", r.status()])
            continue
        rows.append(
            [
                r.tool.label,
                f"{r.median:.2f}",
                f"{r.minimum:.2f}",
                f"{r.cpu_median:.2f}",
                f"{r.peak_mib:,.0f}",
                "1" if r is base else ratio(r.median, base.median),
                "1" if r is base else ratio(r.cpu_median, base.cpu_median),
                "1" if r is base else ratio(r.peak_mib, base.peak_mib),
                r.status(),
            ]
        )
    headers = [
        "tool",
        "median s",
        "min s",
        "CPU s",
        "peak RSS MiB",
        "time x",
        "CPU x",
        "memory x",
        "status",
    ]
    return table(headers, rows, left_last=True)


def summary_table(specs: list[ModelSpec]) -> str:
    """Models down, tools across: median seconds / peak MiB (time ratio, memory ratio)."""
    tools = [r.tool for r in specs[0].results if r.tool.key != "floor"]
    rows = []
    for spec in specs:
        by_key = {r.tool.key: r for r in spec.results}
        base = by_key["portlint"]
        row = [spec.name]
        for tool in tools:
            r = by_key[tool.key]
            if not r.measured:
                row.append("not installed")
                continue
            cell = f"{r.median:.2f} s / {r.peak_mib:,.0f} MiB"
            if r is not base:
                cell += f" ({ratio(r.median, base.median)}, {ratio(r.peak_mib, base.peak_mib)})"
            if not r.ok:
                cell = f"**FAILED** after {cell}"
            row.append(cell)
        rows.append(row)
    return table(["model", *(t.label for t in tools)], rows, right=1)


def linearity_table(specs: list[ModelSpec]) -> str | None:
    chains = sorted((s for s in specs if s.kind == "chain"), key=lambda s: s.nodes)
    if len(chains) < 2:
        return None
    rows = []
    for key in [r.tool.key for r in chains[0].results]:
        results = [next(r for r in s.results if r.tool.key == key) for s in chains]
        if not all(r.measured for r in results):
            continue
        cells = [f"{r.median / s.nodes * 1e6:.0f}" for r, s in zip(results, chains, strict=True)]
        pairs = list(itertools.pairwise(zip(results, chains, strict=True)))
        slopes = [
            f"{(b.median - a.median) / (t.nodes - s.nodes) * 1e6:.0f}" for (a, s), (b, t) in pairs
        ]
        cpu = [
            f"{(b.cpu_median - a.cpu_median) / (t.nodes - s.nodes) * 1e6:.0f}"
            for (a, s), (b, t) in pairs
        ]
        mem = [
            f"{(b.peak_mib - a.peak_mib) * 1024 / (t.nodes - s.nodes):.1f}"
            for (a, s), (b, t) in pairs
        ]
        rows.append([results[0].tool.label, *cells, *slopes, *cpu, *mem])
    steps = [f"{a.nodes // 1000}k→{b.nodes // 1000}k" for a, b in itertools.pairwise(chains)]
    headers = [
        "tool",
        *(f"µs/node at {s.nodes // 1000}k" for s in chains),
        *(f"marginal µs/node {s}" for s in steps),
        *(f"marginal CPU µs/node {s}" for s in steps),
        *(f"marginal KiB/node {s}" for s in steps),
    ]
    return table(headers, rows)


def verdicts(specs: list[ModelSpec]) -> list[str]:
    lines = []
    for spec in specs:
        by_key = {r.tool.key: r for r in spec.results}
        base = by_key["portlint"]
        if not base.ok:
            lines.append(f"- {spec.name}: portlint itself failed: {base.status()}")
            continue
        behind = [
            f"{r.tool.key} ({r.median:.2f} s vs {base.median:.2f} s)"
            for r in spec.results
            if r.tool.peer and r.ok and r.median <= base.median
        ]
        slower_cpu = [
            f"{r.tool.key} ({r.cpu_median:.2f} s vs {base.cpu_median:.2f} s)"
            for r in spec.results
            if r.tool.peer and r.ok and r.cpu_median <= base.cpu_median
        ]
        heavier = [
            f"{r.tool.key} ({r.peak_mib:,.0f} vs {base.peak_mib:,.0f} MiB)"
            for r in spec.results
            if r.tool.peer and r.ok and r.peak_mib <= base.peak_mib
        ]
        failed = [r.tool.key for r in spec.results if r.tool.peer and r.measured and not r.ok]
        missing = [r.tool.key for r in spec.results if r.tool.peer and not r.measured]
        parts = [
            "wall time: portlint fastest"
            if not behind
            else "wall time: **behind** " + ", ".join(behind),
            "CPU time: portlint lowest"
            if not slower_cpu
            else "CPU time: **behind** " + ", ".join(slower_cpu),
            "memory: portlint smallest"
            if not heavier
            else "memory: **behind** " + ", ".join(heavier),
        ]
        if failed:
            parts.append("failed: " + ", ".join(failed))
        if missing:
            parts.append("not run: " + ", ".join(missing))
        lines.append(f"- {spec.name}: " + "; ".join(parts))
        if spec.kind == "big":
            peak = base.peak_mib * 2**20
            lines.append(
                f"- {spec.name}, issue target (≤ {TARGET_SECONDS:g} s, ≤ 300 MB): portlint "
                f"median {base.median:.2f} s "
                + ("(met)" if base.median <= TARGET_SECONDS else "(**missed**)")
                + f", peak {peak / 1e6:.0f} MB "
                + ("(met)" if peak <= TARGET_BYTES else "(**missed**)")
            )
    return lines


# --- main -------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=[5000, 20000, 100000],
        help="comma-separated node counts of the conv chains (default: 5000,20000,100000)",
    )
    parser.add_argument(
        "--transformer-layers",
        type=int,
        default=12,
        help="layers of the BERT-like encoder; 0 skips it (default: 12)",
    )
    parser.add_argument(
        "--big-gb",
        type=float,
        default=2.4,
        help="size of the external-data model in GB; 0 skips it (default: 2.4)",
    )
    parser.add_argument(
        "--keep-big",
        action="store_true",
        help="keep the external-data model in bench/.cache for the next run (default: delete)",
    )
    parser.add_argument(
        "--clean", action="store_true", help="delete the models in bench/.cache and exit"
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per tool (default: 3)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed warm-up runs per tool (default: 1)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600,
        help="seconds before a run is killed and reported as timed out (default: 600)",
    )
    parser.add_argument("--target", default="hailo8", help="portlint target (default: hailo8)")
    parser.add_argument(
        "--peers-venv",
        type=Path,
        default=DEFAULT_PEERS_VENV,
        help="venv holding polygraphy, onnxruntime, onnx-graphsurgeon and onnx-doctor "
        "(default: bench/.venv-peers)",
    )
    parser.add_argument(
        "--setup-peers",
        action="store_true",
        help="create --peers-venv and pip-install the peers into it, then exit",
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="leave out the onnx.load + infer_shapes floor"
    )
    return parser.parse_args(argv)


def remove_big() -> None:
    for suffix in ("", ".data", ".data.partial"):
        BIG_MODEL.with_name(BIG_MODEL.name + suffix).unlink(missing_ok=True)


def clean() -> None:
    remove_big()
    for path in [*CACHE_DIR.glob("chain_*.onnx"), *CACHE_DIR.glob("transformer_*.onnx")]:
        path.unlink()
    shutil.rmtree(PYCACHE, ignore_errors=True)
    print(f"removed the benchmark models from {CACHE_DIR}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.clean:
        clean()
        return
    if args.setup_peers:
        setup_peers(args.peers_venv)
        return
    tools = [portlint_tool(args.target), *peer_tools(args.peers_venv)]
    if not args.no_floor:
        tools.insert(1, floor_tool())
    specs = model_specs(args)
    print("## Machine and method\n")
    print(header(args, argv))
    try:
        for spec in specs:
            build(spec)
            spec.results = measure(tools, spec.path, args.runs, args.warmup, args.timeout)
            print(f"\n## {spec.name} ({describe(spec)})\n")
            print(f"load average after it: {load_average()}\n")
            print(model_table(spec), flush=True)
            if spec.kind == "big" and not args.keep_big:
                remove_big()
    finally:
        if not args.keep_big:
            remove_big()
    print("\n## Side by side: median wall time / peak RSS (time x, memory x vs portlint)\n")
    print(summary_table(specs))
    linear = linearity_table(specs)
    if linear:
        print("\n## Linearity on the chains: median wall time and peak RSS per node\n")
        print(linear)
    print("\n## Against the issue's targets\n")
    print("\n".join(verdicts(specs)))
    print(f"\n- load average at end: {load_average()}")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"- this script's own peak RSS: {own:.0f} MiB (a child's `ru_maxrss` cannot read lower "
        "than its parent's peak RSS at the fork, so no figure above is inflated beyond that)"
    )


if __name__ == "__main__":
    main()

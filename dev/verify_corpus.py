"""Run `portlint verify` over a folder of exported models and tabulate prediction vs compiler.

For each model and target: the compiler's verdict (through portlint's adapter), portlint's
prediction with this checkout's profiles, optionally the prediction of an older checkout
(``--before DIR``, a git worktree) and, for failures, the culprit ``--reduce`` names and how
long it took. Results go to ``OUT/results.jsonl`` (one line per model and target, appended,
so an interrupted run resumes) and a markdown table to ``OUT/table.md``::

    python dev/verify_corpus.py MODELS_DIR --target rk3588 --target rv1106 \\
        --toolchain-python ~/.venvs/rknn/bin/python --out /tmp/verify --reduce-on rk3588
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _check(model: Path, target: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "portlint", "check", str(model), "-t", target, "-f", "json"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )
    if proc.returncode not in (0, 1):
        return f"error: {proc.stderr.strip()[:120]}"
    report = json.loads(proc.stdout)["models"][0]["targets"][0]
    errors = sorted({f["rule"] for f in report["findings"] if f["severity"] == "error"})
    return report["verdict"] + (f" ({', '.join(errors)})" if errors else "")


def _verify(model: Path, target: str, args, reduce: bool, out: Path) -> dict:
    command = [
        sys.executable, "-m", "portlint", "verify", str(model), "-t", target,
        "--toolchain-python", args.toolchain_python, "-f", "json", "--timeout", "600",
    ]  # fmt: skip
    if reduce:
        reduced = out / "reduced" / f"{model.stem}.{target}.reduced.onnx"
        reduced.parent.mkdir(parents=True, exist_ok=True)
        command += ["--reduce", "--reduced-output", str(reduced)]
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=7200)
    seconds = time.monotonic() - started
    if proc.returncode not in (0, 1):
        return {"error": proc.stderr.strip()[:300], "seconds": round(seconds, 1)}
    report = json.loads(proc.stdout)
    compiler = report["compiler"]
    row = {
        "outcome": compiler["outcome"],
        "compiler": compiler["verdict"],
        "error": compiler.get("error"),
        "fuse_rule": compiler.get("details", {}).get("fuse_rule"),
        "cpu_layers": len(compiler["cpu_layers"]),
        "cpu_real_layers": sum(1 for x in compiler["cpu_layers"] if not x["inserted"]),
        "npu_layers": compiler["npu_layers"],
        "compile_seconds": round(compiler["seconds"], 1),
        "prediction": report["prediction"]["verdict"],
        "agrees": report["agrees"],
        "disagreements": [d["kind"] for d in report["disagreements"]],
        "seconds": round(seconds, 1),
    }
    if report.get("reduced"):
        red = report["reduced"]
        row["reduced"] = {k: red[k] for k in ("culprit", "culprit_op", "pattern", "runs")}
        row["reduced"]["nodes"] = len(red["nodes"])
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path)
    parser.add_argument("--target", action="append", required=True)
    parser.add_argument("--toolchain-python", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--before", type=Path, help="an older checkout, for 'before' predictions")
    parser.add_argument("--reduce-on", action="append", default=[], help="targets to --reduce")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="no compiler runs: redo portlint's prediction for the recorded rows (after a "
        "profile change) and the agreement",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    done = set()
    if results.is_file():
        for line in results.read_text().splitlines():
            row = json.loads(line)
            done.add((row["model"], row["target"]))
    todo = [
        (model, target)
        for model in sorted(args.models.glob("*.onnx"))
        for target in args.target
        if (model.stem, target) not in done
    ]

    def one(item):
        model, target = item
        row = {"model": model.stem, "target": target}
        row.update(_verify(model, target, args, target in args.reduce_on, args.out))
        if args.before:
            row["before"] = _check(model, target, args.before)
        return row

    if args.recheck:
        _recheck(results, args.models)
        todo = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for row in pool.map(one, todo):
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    (args.out / "table.md").write_text(_table(rows))
    return 0


def _agrees(predicted: str, row: dict) -> bool:
    """Whether portlint's verdict is the compiler's class of outcome."""
    predicted = predicted.split(" (")[0]
    if row["outcome"] != "converts":
        return predicted == "does not compile"
    if row["npu_layers"] == 0 and row["cpu_layers"] == 0:  # the toolchain reports no placement
        return predicted != "does not compile"
    real = row.get("cpu_real_layers", row["cpu_layers"])
    return predicted == ("runs with CPU fallback" if real else "runs")


def _recheck(results: Path, models: Path) -> None:
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    for row in rows:
        if "outcome" not in row or row["outcome"] in ("timed out", "converter failed"):
            continue
        now = _check(models / f"{row['model']}.onnx", row["target"], ROOT)
        row["prediction"] = now.split(" (")[0]
        row["agrees"] = _agrees(row["prediction"], row)
    results.write_text("".join(json.dumps(row) + "\n" for row in rows))


def _table(rows: list[dict]) -> str:
    lines = [
        "| model | target | compiler | portlint before | portlint now | agree "
        "| culprit (--reduce) |",
        "|---|---|---|---|---|---|---|",
    ]
    judged = [r for r in rows if r.get("outcome") not in (None, "timed out", "converter failed")]
    before = sum(1 for r in judged if _agrees(r.get("before", ""), r))
    now = sum(1 for r in judged if r["agrees"])
    summary = (
        f"Agreement with the compiler: before {before}/{len(judged)}, now {now}/{len(judged)}."
    )
    for row in sorted(rows, key=lambda r: (r["model"], r["target"])):
        if "error" in row and "compiler" not in row:
            lines.append(f"| {row['model']} | {row['target']} | {row['error']} | | | | |")
            continue
        compiler = row["compiler"]
        if row["outcome"] != "converts":
            compiler = f"{row['outcome']}: {row['fuse_rule'] or (row['error'] or '')[:60]}"
        else:
            compiler += f" ({row['npu_layers']} NPU / {row['cpu_layers']} CPU)"
        red = row.get("reduced")
        culprit = (
            f"{red['culprit_op']} `{red['culprit']}`: {red['nodes']} nodes, {red['runs']} runs, "
            f"{row['seconds']:.0f} s"
            if red
            else ""
        )
        lines.append(
            f"| {row['model']} | {row['target']} | {compiler} | {row.get('before', '')} | "
            f"{row['prediction']} | {'yes' if row['agrees'] else 'no'} | {culprit} |"
        )
    return summary + "\n\n" + "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

"""Raw PyTorch exports against their onnxsim-simplified copies: errors per target, and time.

Most users run ``torch.onnx.export`` and point ``check`` at the result without simplifying it.
Compilers simplify before they judge, so ``check`` must say the same of the raw export as of
the simplified one. This exports public architectures twice (raw, and through
``onnxsim.simplify``) with a Python that has torch, torchvision, timm and onnxsim (random
weights, fixed seed, no download), then, in portlint's own environment:

* the error findings ``check`` gives each model on every shipped target, raw and simplified
  (the same node, rule and message counted as one error), against two simplified copies:
  onnxsim's constant folding alone (``perform_optimization=False``: what folding is meant to
  match) and onnxsim's default, which also rewrites the graph (MatMul+Add into Gemm between
  Reshapes, merged Slices and Reshapes, no-op Casts and Pads removed, a Mul by a constant
  folded into the next Conv): where those rewrites change a verdict, the raw graph is the one
  the compiler is given;
* whole-process ``portlint check MODEL --target rk3588`` wall time, raw and simplified
  (median of ``--runs`` after a warm-up, the two taking turns).

    python bench/raw_exports.py --export-python ~/venvs/torch/bin/python [--only NAME ...]

Models go to ``bench/.cache/raw/`` (kept: the export takes minutes); ``--reexport`` redoes it.
The table is printed as markdown; the last one is in ``RAW_EXPORTS.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "raw"

EXPORT = r"""
import sys, pathlib, torch, torchvision, timm, onnx, onnxsim
out, names = pathlib.Path(sys.argv[1]), set(sys.argv[2:])
MODELS = {
    "tv_swin_t": (lambda: torchvision.models.swin_t(), 224, 17),
    "tv_maxvit_t": (lambda: torchvision.models.maxvit_t(), 224, 17),
    "timm_levit_128s": (lambda: timm.create_model("levit_128s"), 224, 17),
    "timm_efficientvit_b0": (lambda: timm.create_model("efficientvit_b0"), 224, 17),
    "timm_mixer_s16_224": (lambda: timm.create_model("mixer_s16_224"), 224, 17),
    "tv_vit_b_16": (lambda: torchvision.models.vit_b_16(), 224, 17),
    "timm_deit_tiny": (lambda: timm.create_model("deit_tiny_patch16_224"), 224, 14),
    "tv_convnext_tiny": (lambda: torchvision.models.convnext_tiny(), 224, 17),
    "timm_mobilevit_xxs": (lambda: timm.create_model("mobilevit_xxs"), 256, 17),
    "tv_shufflenet_v2": (lambda: torchvision.models.shufflenet_v2_x1_0(), 224, 13),
    "timm_swin_tiny": (lambda: timm.create_model("swin_tiny_patch4_window7_224"), 224, 17),
    "timm_poolformer_s12": (lambda: timm.create_model("poolformer_s12"), 224, 17),
    "timm_efficientformer_l1": (lambda: timm.create_model("efficientformer_l1"), 224, 17),
    "tv_mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(), 224, 13),
    "timm_coatnet_0": (lambda: timm.create_model("coatnet_0_rw_224"), 224, 17),
    "timm_fastvit_t8": (lambda: timm.create_model("fastvit_t8"), 256, 17),
}
out.mkdir(parents=True, exist_ok=True)
for name, (make, size, opset) in MODELS.items():
    if names and name not in names:
        continue
    torch.manual_seed(0)
    model = make().eval()
    with torch.no_grad():  # constant tensors (zero heads, identical BatchNorms) are init
        for key, tensor in [*model.named_parameters(), *model.named_buffers()]:  # artifacts
            if tensor.is_floating_point() and tensor.numel() > 1 and bool(
                (tensor == tensor.flatten()[0]).all()
            ):
                positive = "var" in key or float(tensor.min()) > 0
                tensor.copy_(torch.rand_like(tensor) * 0.5 + 0.75 if positive
                             else torch.randn_like(tensor) * 0.05)
    raw = out / f"{name}.raw.onnx"
    torch.onnx.export(model, torch.randn(1, 3, size, size), str(raw), opset_version=opset,
                      dynamo=False, input_names=["input"], output_names=["output"])
    simplified, ok = onnxsim.simplify(onnx.load(str(raw)))
    onnx.save(simplified, str(out / f"{name}.sim.onnx"))
    folded, ok = onnxsim.simplify(onnx.load(str(raw)), perform_optimization=False)
    onnx.save(folded, str(out / f"{name}.fold.onnx"))
    print(name, torch.__version__, torchvision.__version__, timm.__version__,
          onnxsim.__version__, flush=True)
"""


def _export(python: str, names: list[str]) -> None:
    subprocess.run([python, "-c", EXPORT, str(CACHE), *names], check=True)


def _errors(path: Path, targets: list[str]) -> dict[str, Counter]:
    from portlint import api

    report = api.check(path, targets).models[0]
    found: dict[str, Counter] = {t: Counter() for t in targets}
    for f in report.findings:
        if f.severity.value == "error":
            found[f.target][(f.rule, f.location, f.message)] += 1
    return found


def _nodes(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def _wall(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "portlint", "check", str(path), "--target", "rk3588"],
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export-python", help="a Python with torch, torchvision, timm, onnxsim")
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reexport", action="store_true")
    args = parser.parse_args()
    if args.reexport or not any(CACHE.glob("*.raw.onnx")):
        if not args.export_python:
            parser.error("no exports in bench/.cache/raw: give --export-python")
        _export(args.export_python, args.only)
    from portlint.target import shipped_target_names

    targets = list(shipped_target_names())
    names = sorted(p.name.split(".")[0] for p in CACHE.glob("*.raw.onnx"))
    names = [n for n in names if not args.only or n in args.only]
    print(
        "| model | nodes raw → folded → simplified | targets with the errors of the folded "
        "copy | of the simplified copy | errors raw → simplified where they differ "
        "| `check -t rk3588` s, raw / simplified |"
    )
    print("|---|---|---|---|---|---|")
    summary = []
    for name in names:
        raw, folded, simple = (CACHE / f"{name}.{kind}.onnx" for kind in ("raw", "fold", "sim"))
        a, f, b = (_errors(p, targets) for p in (raw, folded, simple))
        same_folded = sum(a[t] == f[t] for t in targets)
        differ = {t: (sum(a[t].values()), sum(b[t].values())) for t in targets if a[t] != b[t]}
        walls: dict[Path, list[float]] = {raw: [], simple: []}
        _wall(raw), _wall(simple)  # warm-up
        for _ in range(args.runs):
            for path in (raw, simple):
                walls[path].append(_wall(path))
        t_raw, t_simple = statistics.median(walls[raw]), statistics.median(walls[simple])
        counts = " → ".join(str(_nodes(p)) for p in (raw, folded, simple))
        cells = ", ".join(f"{t} {r}→{s}" for t, (r, s) in differ.items()) or "—"
        print(
            f"| {name} | {counts} | {same_folded}/{len(targets)} "
            f"| {len(targets) - len(differ)}/{len(targets)} | {cells} "
            f"| {t_raw:.2f} / {t_simple:.2f} ({t_raw / t_simple:.2f}×) |",
            flush=True,
        )
        summary.append(
            {
                "model": name,
                "same_as_folded": same_folded,
                "differ_from_simplified": differ,
                "raw_s": t_raw,
                "simple_s": t_simple,
            }
        )
    (CACHE / "results.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

"""Run a profile's probes through its compiler and set each outcome beside the prediction.

Each probe model is written to its own temporary folder and compiled in the toolchain's own
interpreter (``toolchains.run.compile_model``: a subprocess with a timeout, never this one);
``jobs`` compilers run at once.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import onnx

from portlint.probe.judge import Probed, agrees, cpu_layers, observed, prediction
from portlint.probe.plan import Probe
from portlint.probe.recipes import build_recipe, model_hash
from portlint.target import Target
from portlint.toolchains.base import CompileResult, Toolchain
from portlint.toolchains.run import compile_model


@dataclass(frozen=True)
class ProbeOutcome:
    """One probe: what ``check`` predicted, what the compiler did, and its own words."""

    probe: Probe
    sha256: str
    predicted: str
    observed: str
    result: CompileResult
    cpu_layers: tuple[str, ...] = ()  # the CPU layers the probed node accounts for
    runtime: bool = False  # check rejects it for limits only the device's runtime enforces

    @property
    def agrees(self) -> bool | None:
        """None when the compiler gave no verdict."""
        return agrees(self.predicted, self.observed, self.runtime)

    @property
    def message(self) -> str:
        return self.result.error or ""


def run_probe(
    probe: Probe, target: Target, toolchain: Toolchain, chip: str, python: str, timeout: float
) -> ProbeOutcome:
    model = build_recipe(probe.recipe)
    with tempfile.TemporaryDirectory(prefix="portlint-probe-") as folder:
        path = Path(folder) / "probe.onnx"
        onnx.save(model, path)
        result = compile_model(toolchain, path, target.name, python, timeout=timeout, chip=chip)
    probed = Probed.of(model)
    said, runtime = prediction(model, target)
    return ProbeOutcome(
        probe,
        model_hash(model),
        said,
        observed(result, probed),
        result,
        tuple(cpu_layers(result, probed)) if result.converts else (),
        runtime,
    )


def run_probes(
    probes: Iterable[Probe],
    target: Target,
    toolchain: Toolchain,
    chip: str,
    python: str,
    *,
    jobs: int = 2,
    timeout: float = 300.0,
    done: Callable[[ProbeOutcome], None] | None = None,
) -> list[ProbeOutcome]:
    """Every probe's outcome, in the order given; ``done`` is called as each one finishes."""

    def one(probe: Probe) -> ProbeOutcome:
        outcome = run_probe(probe, target, toolchain, chip, python, timeout)
        if done is not None:
            done(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, probes))

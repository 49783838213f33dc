"""Find a toolchain's interpreter and run its compiler on a model, isolated.

The interpreter is looked up in this order: ``--toolchain-python``, the config's
``[tool.portlint.toolchains]`` table, the environment (``PORTLINT_<NAME>_PYTHON``), then
portlint's own interpreter if the vendor package happens to import there.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from portlint.errors import PortlintError
from portlint.graph_view import display_names
from portlint.model_io.load import external_data_files
from portlint.toolchains.base import CRASHED, TIMED_OUT, CompileRequest, CompileResult, Toolchain
from portlint.toolchains.isolation import (
    LOG_FILE_LIMIT,
    current_python,
    query_python,
    run_folder,
    run_isolated,
)

DEFAULT_TIMEOUT = 600.0
CALIBRATION_SAMPLES = 2


class ToolchainError(PortlintError):
    """A toolchain that is missing, cannot be started, or cannot build for the target."""


@dataclass(frozen=True)
class Interpreter:
    python: str
    origin: str  # where it was found, for `portlint toolchains`
    version: str | None  # the vendor package's version; None = not importable there


def env_key(toolchain: Toolchain) -> str:
    return f"PORTLINT_{toolchain.name.upper().replace('-', '_')}_PYTHON"


def package_version(toolchain: Toolchain, python: str) -> str | None:
    code = (
        "import importlib.metadata as m, importlib.util as u\n"
        f"print(m.version({toolchain.package!r}))"
    )
    return query_python(python, code)


def find_interpreter(
    toolchain: Toolchain, flag: str | None = None, configured: Mapping[str, str] | None = None
) -> Interpreter | None:
    """The first interpreter, in lookup order, that runs the vendor package; None if none."""
    candidates: list[tuple[str, str]] = []
    if flag:
        candidates.append((flag, "--toolchain-python"))
    if configured and configured.get(toolchain.name):
        candidates.append((configured[toolchain.name], "config [tool.portlint.toolchains]"))
    if os.environ.get(env_key(toolchain)):
        candidates.append((os.environ[env_key(toolchain)], env_key(toolchain)))
    candidates.append((current_python(), "portlint's interpreter"))
    for python, origin in candidates:
        python = os.path.expanduser(python)
        if not (Path(python).is_file() or shutil.which(python)):
            if origin != "portlint's interpreter":
                raise ToolchainError(f"{origin}: no such interpreter {python}")
            continue
        version = package_version(toolchain, python)
        if version:
            return Interpreter(python, origin, version)
        if origin == "--toolchain-python":
            raise ToolchainError(
                f"{python} cannot import {toolchain.package}; install it with: "
                f"{toolchain.install_hint}"
            )
    return None


def require_interpreter(
    toolchain: Toolchain, flag: str | None = None, configured: Mapping[str, str] | None = None
) -> Interpreter:
    found = find_interpreter(toolchain, flag, configured)
    if found is None:
        raise ToolchainError(
            f"{toolchain.package} is not installed; install it in its own venv: "
            f"{toolchain.install_hint}"
        )
    return found


def node_names(model: onnx.ModelProto) -> dict[str, str]:
    """Every node name and output tensor name -> the node's name as ``check`` shows it."""
    shown = display_names(list(model.graph.node))
    names: dict[str, str] = {}
    for node, name in zip(model.graph.node, shown, strict=True):
        for output in node.output:
            if output:
                names.setdefault(output, name)
        names[name] = name
        if node.name:
            names[node.name] = name
    return names


def _input_shapes(model: onnx.ModelProto, pins: Mapping[str, list[int]]) -> dict[str, list[int]]:
    """Each graph input's dims (pinned ones first, unknown dims as 1)."""
    initializers = {t.name for t in model.graph.initializer}
    shapes = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in value.type.tensor_type.shape.dim]
        shapes[value.name] = list(pins.get(value.name, dims))
    return shapes


def _write_calibration(model: onnx.ModelProto, shapes: Mapping[str, list[int]], folder: Path):
    """Random uniform samples, one ``.npy`` per input and sample, listed as rknn and the other
    toolchains read them: one line per sample, the inputs' files separated by spaces."""
    rng = np.random.default_rng(0)
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.input}
    lines = []
    for sample in range(CALIBRATION_SAMPLES):
        files = []
        for k, (name, dims) in enumerate(shapes.items()):
            dtype = onnx.helper.tensor_dtype_to_np_dtype(types.get(name) or 1)
            path = folder / f"calib_{sample}_{k}.npy"
            np.save(path, rng.random(dims).astype(dtype))
            files.append(str(path))
        lines.append(" ".join(files))
    (folder / "dataset.txt").write_text("\n".join(lines) + "\n")


def normalise_options(toolchain: Toolchain, options: Mapping[str, Any]) -> dict[str, Any]:
    """The toolchain's list options given as one comma-separated string become lists."""
    return {
        key: [v for v in value.split(",") if v]
        if key in toolchain.list_options and isinstance(value, str)
        else value
        for key, value in options.items()
    }


def compile_model(
    toolchain: Toolchain,
    model_path: Path,
    target: str,
    python: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    input_shapes: Mapping[str, list[int]] | None = None,
    options: Mapping[str, Any] | None = None,
    chip: str | None = None,
) -> CompileResult:
    """Run the compiler on a copy of ``model_path`` in a private folder; never raises for
    what the compiler does (crash, hang, refusal), only for portlint's own input errors.

    ``chip``: the shipped target whose chip to build for, when ``target`` is a profile
    derived from it (default: ``target`` itself)."""
    chip = chip or target
    platform = toolchain.platform_for(chip)
    if platform is None:
        raise ToolchainError(f"{toolchain.display_name} does not build for target {target!r}")
    options = normalise_options(toolchain, options or {})
    unknown = sorted(set(options) - set(toolchain.option_names))
    if unknown:
        raise ToolchainError(
            f"unknown {toolchain.name} option {unknown[0]!r} "
            f"(known: {', '.join(toolchain.option_names)})"
        )
    model = onnx.load(str(model_path), load_external_data=False)
    names = node_names(model)
    shapes = _input_shapes(model, input_shapes or {})
    quantize = toolchain.quantize_for(chip, frozenset(n.op_type for n in model.graph.node))
    with run_folder() as folder:
        copy = folder / "model" / model_path.name
        copy.parent.mkdir()
        shutil.copy2(model_path, copy)
        for data in external_data_files(model, model_path):
            destination = copy.parent / data.relative_to(model_path.parent)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(data, destination)
        if quantize:
            _write_calibration(model, shapes, folder)
        request = CompileRequest(
            copy,
            target,
            platform,
            quantize,
            {k: v for k, v in shapes.items() if input_shapes and k in input_shapes},
            dict(options or {}),
        )
        run = run_isolated(
            python, toolchain.worker, toolchain.worker_args(request, folder), folder, timeout
        )
    if run.timed_out or run.runaway:
        why = (
            f"was stopped after {LOG_FILE_LIMIT >> 20} MB of log (looping?)"
            if run.runaway
            else f"did not finish within {timeout:.0f} s"
        )
        return CompileResult(
            toolchain.name,
            "",
            target,
            TIMED_OUT,
            stage=run.result.get("stage"),
            error=f"no verdict: {toolchain.display_name} {why}",
            seconds=run.seconds,
            log=run.log,
        )
    result = toolchain.parse(request, run.log, run.result, names)
    result.seconds = run.seconds
    result.raw = run.result
    if run.signal_name or (not run.result and run.returncode):
        why = f"killed by {run.signal_name}" if run.signal_name else f"exit {run.returncode}"
        hint = " (out of memory?)" if run.signal_name == "SIGKILL" else ""
        result.outcome = CRASHED
        result.stage = run.result.get("stage") or result.stage
        result.error = f"the {toolchain.display_name} process died: {why}{hint}"
        result.error_kind = run.signal_name or "exit"
    return result


def save_result(result: CompileResult, path: Path) -> None:
    """Keep a compiler run (log included) as JSON: the record tests replay."""
    path.write_text(json.dumps(result.to_json(), indent=1) + "\n", encoding="utf-8")

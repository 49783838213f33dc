"""Check many models: expand folders, run workers in parallel, keep going past bad files.

A CI job or a pre-commit hook hands portlint a folder or a list of files; one truncated
model or Git-LFS pointer must be reported for that file, not end the run. Workers are
processes (checking is CPU-bound Python); results come back in the order the files were
given, so reports are deterministic whatever finishes first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from portlint.config import Config
from portlint.engine import ModelReport
from portlint.errors import PortlintError
from portlint.rule import Severity

MODEL_SUFFIX = ".onnx"


@dataclass(frozen=True)
class FileError:
    """A model that could not be checked, with the one-line reason."""

    path: Path
    message: str


@dataclass
class Report:
    """Everything one ``check`` run found, over every model it was given."""

    models: list[ModelReport]
    errors: list[FileError] = field(default_factory=list)
    baselined: int = 0
    stale_baseline: list[str] = field(default_factory=list)

    @property
    def findings(self):
        return [f for m in self.models for f in m.findings]

    def failing(self, fail_on: Severity) -> bool:
        return any(f.severity.rank >= fail_on.rank for f in self.findings)


def expand(paths: Iterable[Path]) -> tuple[list[Path], list[FileError]]:
    """Files as given; folders walked for ``*.onnx`` (hidden folders skipped), sorted.

    A folder without models is an error of its own: a typo'd path must not pass silently.
    """
    files: list[Path] = []
    errors: list[FileError] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(
            p
            for p in path.rglob(f"*{MODEL_SUFFIX}")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not found:
            errors.append(FileError(path, f"{path}: no {MODEL_SUFFIX} files in this folder"))
        files.extend(found)
    return list(dict.fromkeys(files)), errors


def _check_one(path: Path, config: Config, inputs=None) -> ModelReport | FileError:
    from portlint.api import check_paths

    try:
        return check_paths([path], config, inputs)[0]
    except PortlintError as exc:
        return FileError(path, str(exc))


def check_many(
    paths: Sequence[Path],
    config: Config,
    jobs: int | None = None,
    progress: Callable[[Path], None] | None = None,
    inputs=None,
) -> Report:
    """Check every model in ``paths`` (files or folders) with ``jobs`` worker processes.

    Problems with the whole run (unknown target, bad config) still raise; problems with one
    file become a ``FileError`` in the report. ``inputs`` (a ``portlint.inputs.InputsSpec``)
    has each model's activations measured in its worker.
    """
    from portlint.api import resolve_targets

    resolve_targets(config)  # a bad target name fails once, before any worker starts
    files, errors = expand(paths)
    workers = min(jobs or os.cpu_count() or 1, len(files))  # 0 files: no pool at all
    results: list[ModelReport | FileError]
    if workers <= 1:
        results = []
        for path in files:
            results.append(_check_one(path, config, inputs))
            if progress:
                progress(path)
    else:
        from concurrent.futures import ProcessPoolExecutor  # (and logging): only with workers

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_check_one, path, config, inputs) for path in files]
            results = []
            for path, future in zip(files, futures, strict=True):
                results.append(future.result())
                if progress:
                    progress(path)
    models = [r for r in results if isinstance(r, ModelReport)]
    errors += [r for r in results if isinstance(r, FileError)]
    return Report(models, errors)

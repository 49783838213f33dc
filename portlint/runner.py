"""Check many models: expand folders, run workers in parallel, keep going past bad files.

A CI job or a pre-commit hook hands portlint a folder or a list of files; one truncated
model or Git-LFS pointer must be reported for that file, not end the run. Workers are
processes (checking is CPU-bound Python); results come back in the order the files were
given, so reports are deterministic whatever finishes first.

This module only fans a check out over files: the check of one model is handed in by the
API (``portlint.api.check``), so nothing here depends on the layer above it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from portlint.errors import PortlintError
from portlint.results import FileError, Report

if TYPE_CHECKING:
    from portlint.engine import ModelReport

MODEL_SUFFIX = ".onnx"

CheckOne = Callable[[Path], "ModelReport"]
"""The check of one model file; raises PortlintError when that file cannot be checked."""


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


def _check_one(check: CheckOne, path: Path) -> ModelReport | FileError:
    try:
        return check(path)
    except PortlintError as exc:
        return FileError(path, str(exc))


def check_many(
    paths: Sequence[Path],
    check: CheckOne,
    jobs: int | None = None,
    progress: Callable[[Path], None] | None = None,
) -> Report:
    """Run ``check`` on every model in ``paths`` (files or folders) with ``jobs`` workers.

    A file ``check`` rejects with a ``PortlintError`` becomes a ``FileError`` in the report;
    problems with the whole run (unknown target, bad config) are the caller's to raise before
    calling. With more than one worker ``check`` runs in other processes, so it must be
    something they can import: a module-level function, or a ``functools.partial`` of one.
    """
    files, errors = expand(paths)
    workers = min(jobs or os.cpu_count() or 1, len(files))  # 0 files: no pool at all
    results: list[ModelReport | FileError]
    if workers <= 1:
        results = []
        for path in files:
            results.append(_check_one(check, path))
            if progress:
                progress(path)
    else:
        from concurrent.futures import ProcessPoolExecutor  # (and logging): only with workers

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_check_one, check, path) for path in files]
            results = []
            for path, future in zip(files, futures, strict=True):
                results.append(future.result())
                if progress:
                    progress(path)
    models = [r for r in results if not isinstance(r, FileError)]
    errors += [r for r in results if isinstance(r, FileError)]
    return Report(models, errors)

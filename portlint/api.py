"""The library entry points the CLI uses: load config, targets and models, run the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portlint.config import Config, find_config, load_config
from portlint.engine import ModelReport, check_model
from portlint.errors import ConfigError
from portlint.graph_view import build_view
from portlint.model_io import load_for_check
from portlint.rule import load_rules
from portlint.target import Target, load_target, shipped_target_names

if TYPE_CHECKING:
    from portlint.fixer import FixOutcome, FixRequest
    from portlint.passes import Pass
    from portlint.runner import Report


def resolve_config(path: Path | None) -> Config:
    """The config named on the command line, else the nearest one, else defaults."""
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    return load_config(path or find_config(Path.cwd()), load_rules())


def resolve_targets(config: Config) -> list[Target]:
    if not config.targets:
        raise ConfigError(
            "no target given: use --target NAME (known: "
            f"{', '.join(shipped_target_names())}) or set targets in the config"
        )
    seen: dict[str, Target] = {}
    for name in config.targets:
        target = load_target(name, config.profile_dirs)
        seen.setdefault(target.name, target)
    return list(seen.values())


def check_paths(paths: Iterable[Path], config: Config) -> list[ModelReport]:
    """Check each model against each configured target; raises PortlintError on bad input."""
    rules = load_rules()
    for selector in (*config.select, *config.ignore):
        if not rules.matching(selector):
            rules.get(selector)
    targets = resolve_targets(config)
    reports = []
    for path in paths:
        loaded = load_for_check(path, dict(config.input_shapes))
        reports.append(check_model(build_view(loaded), path, targets, rules, config))
    return reports


def check(
    paths: str | Path | Sequence[str | Path],
    targets: Sequence[str] | None = None,
    config: Config | str | Path | None = None,
    *,
    jobs: int | None = None,
    baseline: str | Path | None = None,
    progress: Callable[[Path], None] | None = None,
) -> Report:
    """Check models (files or folders of ``*.onnx``) against targets; the CLI's ``check``.

    ``config`` is a ``Config`` or the path of a pyproject.toml/portlint.toml (default: the
    nearest one); ``targets`` overrides its targets. One file that cannot be read raises a
    ``PortlintError``; among several, each bad file becomes a ``FileError`` in the report.
    """
    from portlint.runner import Report, check_many

    if not isinstance(config, Config):
        config = resolve_config(Path(config) if config is not None else None)
    if targets:
        config = replace(config, targets=tuple(targets))
    items = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if len(items) == 1 and not items[0].is_dir():
        report = Report(check_paths(items, config))
    else:
        report = check_many(items, config, jobs, progress)
    if baseline is not None:
        from portlint.baseline import apply_baseline

        apply_baseline(report, Path(baseline))
    return report


@dataclass
class FixRun:
    """What ``fix_path`` did: the plan (dry run) or the outcome, the files, the new check."""

    planned: list[tuple[Pass, str | None]]
    outcome: FixOutcome | None = None
    written: list[Path] = field(default_factory=list)
    tail_output: Path | None = None
    stale_tail: Path | None = None
    recheck: ModelReport | None = None


def fix_path(
    path: Path,
    request: FixRequest,
    output: Path | None = None,
    in_place: bool = False,
    dry_run: bool = False,
) -> FixRun:
    """Plan and run the passes on ``path`` for the one configured target; write atomically."""
    import onnx

    from portlint.errors import ModelLoadError, first_line
    from portlint.fixer import FixError, fix_model, plan
    from portlint.model_io import PROTOBUF_LIMIT, load_for_fix
    from portlint.model_write import (
        check_destinations,
        check_file,
        default_output,
        protobuf_size,
        tail_output,
        write_model,
    )

    def verifier(written: onnx.ModelProto):
        """Over the protobuf limit the fixer could not run onnx.checker in memory: run it on
        the staged file, before anything is renamed into place."""
        if protobuf_size(written) < PROTOBUF_LIMIT:
            return None

        def verify(staged: Path) -> None:
            try:
                check_file(staged)
            except Exception as exc:
                raise FixError(
                    f"the fixed model fails onnx.checker: {first_line(exc)}; nothing written"
                ) from exc

        return verify

    target = _single_target(request.config)
    if in_place and output is not None and output.resolve() != path.resolve():
        raise ConfigError("--in-place writes over the input model; drop -o, or drop --in-place")
    output = path if in_place else (output or default_output(path))
    try:
        model, data_files = load_for_fix(path)
    except onnx.checker.ValidationError as exc:  # onnx's own checks, e.g. a symlinked data file
        raise ModelLoadError(f"{path}: cannot read external data: {first_line(exc)}") from exc
    check_destinations(output, [path, *data_files], in_place)
    if dry_run:
        return FixRun(plan(model, target, request))
    outcome = fix_model(model, target, request)
    keep = [] if in_place else [path, *data_files]  # in place, the input's data may go
    verify = verifier(outcome.model)
    written = write_model(outcome.model, output, bool(data_files), keep, verify)
    if verify is not None:
        for step in outcome.steps:
            if step.changed:
                step.verification += (
                    "; the written model passed onnx.checker (full, with strict shape inference)"
                )
    tail_path = tail_output(output)
    if outcome.tail is not None:
        tail_verify = verifier(outcome.tail)
        written += write_model(outcome.tail, tail_path, bool(data_files), keep, tail_verify)
    stale = tail_path if outcome.tail is None and tail_path.exists() else None
    # the output is checked as written: --input-shape pins were fix's to apply, not check's
    recheck = check_paths([output], replace(request.config, input_shapes={}))[0]
    tail = tail_path if outcome.tail is not None else None
    return FixRun([], outcome, written, tail, stale, recheck)


def fix(
    path: str | Path,
    target: str | None = None,
    output: str | Path | None = None,
    *,
    passes: Sequence[str] = (),
    unsafe: bool = False,
    options: Mapping[str, Any] | None = None,
    input_shapes: Mapping[str, list[int]] | None = None,
    allow_unverified: bool = False,
    in_place: bool = False,
    dry_run: bool = False,
    config: Config | str | Path | None = None,
) -> FixRun:
    """Rewrite the model at ``path`` for ``target`` and prove each pass; the CLI's ``fix``.

    Writes ``output`` (default ``NAME.portlint.onnx``) atomically and never the input unless
    ``in_place``; raises ``FixError`` (nothing written) when a pass breaks its promise.
    """
    from portlint.fixer import FixRequest

    if not isinstance(config, Config):
        config = resolve_config(Path(config) if config is not None else None)
    config = config.merged(
        targets=(target,) if target else None,
        input_shapes=dict(input_shapes) if input_shapes else None,
    )
    request = FixRequest(
        tuple(passes),
        unsafe,
        dict(options or {}),
        dict(config.input_shapes),
        allow_unverified,
        config,
    )
    destination = Path(output) if output is not None else None
    return fix_path(Path(path), request, destination, in_place=in_place, dry_run=dry_run)


def _single_target(config: Config) -> Target:
    targets = resolve_targets(config)
    if len(targets) != 1:
        names = ", ".join(t.name for t in targets)
        raise ConfigError(f"fix works for one target at a time; got {names}")
    return targets[0]

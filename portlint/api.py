"""The library entry points the CLI uses: load config, targets and models, run the engine."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from portlint.config import Config, find_config, load_config
from portlint.engine import ModelReport, check_model
from portlint.errors import ConfigError
from portlint.graph_view import build_view
from portlint.model_io import load_for_check
from portlint.rule import load_rules
from portlint.target import Target, load_target, shipped_target_names

if TYPE_CHECKING:
    from portlint.fixer import FixOutcome
    from portlint.passes import Pass


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


@dataclass
class FixRun:
    """What ``fix_path`` did: the outcome, the files written, and the check of the output."""

    outcome: FixOutcome | None
    planned: list[tuple[Pass, str | None]]
    written: list[Path]
    output: Path | None
    tail_output: Path | None
    recheck: ModelReport | None


def fix_path(
    path: Path,
    config: Config,
    output: Path | None = None,
    passes: Iterable[str] = (),
    unsafe: bool = False,
    dry_run: bool = False,
    in_place: bool = False,
    options: dict | None = None,
) -> FixRun:
    """Plan and run the passes on ``path`` for the one configured target; write atomically."""
    from portlint.fixer import FixRequest, fix_model, plan
    from portlint.model_io import load_for_fix
    from portlint.model_write import check_destination, default_output, tail_output, write_model

    targets = resolve_targets(config)
    if len(targets) != 1:
        names = ", ".join(t.name for t in targets)
        raise ConfigError(f"fix works for one target at a time; got {names}")
    target = targets[0]
    output = path if in_place else (output or default_output(path))
    check_destination(path, output, in_place)
    model, external = load_for_fix(path)
    request = FixRequest(tuple(passes), unsafe, dict(options or {}), dict(config.input_shapes))
    if dry_run:
        return FixRun(None, plan(model, target, request), [], None, None, None)
    outcome = fix_model(model, target, request, config)
    written = write_model(outcome.model, output, external)
    tail_path = None
    if outcome.tail is not None:
        tail_path = tail_output(output)
        written += write_model(outcome.tail, tail_path, external)
    recheck = check_paths([output], replace(config, targets=(target.name,)))[0]
    return FixRun(outcome, [], written, output, tail_path, recheck)

"""The library entry points the CLI uses: load config, targets and models, run the engine."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from portlint.config import Config, find_config, load_config
from portlint.engine import ModelReport, check_model
from portlint.errors import ConfigError
from portlint.graph_view import build_view
from portlint.model_io import load_for_check
from portlint.rule import load_rules
from portlint.target import Target, load_target, shipped_target_names


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

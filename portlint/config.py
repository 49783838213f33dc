"""Configuration: ``[tool.portlint]`` in pyproject.toml, or a portlint.toml.

Precedence, settled once: command-line options beat the config file, which beats the
rules' defaults. The nearest config file is found from the current directory upwards,
as ruff does, unless ``--config`` names one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from portlint.errors import ConfigError
from portlint.rule import RuleRegistry, Severity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

KEYS = (
    "targets",
    "target",
    "select",
    "ignore",
    "severity",
    "per-node-ignores",
    "fail-on",
    "input-shape",
    "profile-dirs",
    "toolchains",
)
_SHAPE = re.compile(r"^(?P<name>[^:]+):(?P<dims>\d+(?:,\d+)*)$")


@dataclass(frozen=True)
class Config:
    targets: tuple[str, ...] = ()
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    severity: Mapping[str, Severity] = field(default_factory=dict)
    per_node_ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fail_on: Severity = Severity.ERROR
    input_shapes: Mapping[str, list[int]] = field(default_factory=dict)
    profile_dirs: tuple[Path, ...] = ()
    path: Path | None = None
    toolchains: Mapping[str, str] = field(default_factory=dict)
    """Toolchain name -> the Python interpreter of its own venv (``portlint verify``)."""

    def merged(self, **cli: Any) -> Config:
        """Apply command-line values (None/empty means 'not given')."""
        given = {k: v for k, v in cli.items() if v not in (None, (), [], {})}
        return replace(self, **given)


def parse_input_shape(text: str) -> tuple[str, list[int]]:
    """``images:1,3,640,640`` -> ("images", [1, 3, 640, 640])."""
    match = _SHAPE.match(text.strip())
    if not match:
        raise ConfigError(
            f"bad input shape {text!r}; expected NAME:D1,D2,... e.g. images:1,3,640,640"
        )
    return match["name"], [int(d) for d in match["dims"].split(",")]


def find_config(start: Path) -> Path | None:
    """The nearest portlint.toml, or pyproject.toml with a [tool.portlint] table."""
    for folder in (start, *start.parents):
        candidate = folder / "portlint.toml"
        if candidate.is_file():
            return candidate
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.portlint" in pyproject.read_text(errors="replace"):
            return pyproject
    return None


def _table(path: Path) -> Mapping[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    if path.name == "pyproject.toml":
        return data.get("tool", {}).get("portlint", {})
    return data.get("tool", {}).get("portlint", data)


def _strings(value: Any, path: Path, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {key} must be a string or a list of strings")
    return tuple(value)


def _check_selectors(selectors: tuple[str, ...], rules: RuleRegistry, where: str) -> None:
    for selector in selectors:
        if not rules.matching(selector):
            rules.get(selector)  # raises 'unknown rule ...; did you mean ...'
            raise ConfigError(f"{where}: {selector!r} matches no rule")


def _severity(value: Any, where: str) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        raise ConfigError(
            f"{where}: severity must be error, warning or info, got {value!r}"
        ) from None


def load_config(path: Path | None, rules: RuleRegistry) -> Config:
    """Read and validate a config file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    table = _table(path)
    for key in table:
        if key not in KEYS:
            raise ConfigError(f"{path}: unknown key {key!r} in [tool.portlint]")
    targets = _strings(table.get("targets", table.get("target", [])), path, "targets")
    select = _strings(table.get("select", []), path, "select")
    ignore = _strings(table.get("ignore", []), path, "ignore")
    for key, values in (("select", select), ("ignore", ignore)):
        _check_selectors(values, rules, f"{path}: {key}")
    severity = {
        rules.get(code).code: _severity(level, f"{path}: severity.{code}")
        for code, level in table.get("severity", {}).items()
    }
    per_node = {
        glob: _strings(codes, path, f"per-node-ignores.{glob}")
        for glob, codes in table.get("per-node-ignores", {}).items()
    }
    for glob, codes in per_node.items():
        _check_selectors(codes, rules, f"{path}: per-node-ignores.{glob}")
    shapes = dict(
        parse_input_shape(s) for s in _strings(table.get("input-shape", []), path, "input-shape")
    )
    dirs = tuple(
        (path.parent / d).resolve()
        for d in _strings(table.get("profile-dirs", []), path, "profile-dirs")
    )
    fail_on = _severity(table.get("fail-on", "error"), f"{path}: fail-on")
    toolchains = _toolchains(table.get("toolchains", {}), path)
    return Config(
        targets, select, ignore, severity, per_node, fail_on, shapes, dirs, path, toolchains
    )


def _toolchains(value: Any, path: Path) -> dict[str, str]:
    """``rknn = "~/.venvs/rknn/bin/python"``; relative paths are relative to the config file."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{path}: toolchains must map toolchain names to interpreter paths")
    resolved = {}
    for name, python in value.items():
        expanded = Path(python).expanduser()
        if not expanded.is_absolute() and ("/" in python or "\\" in python):
            expanded = (path.parent / expanded).resolve()
        resolved[name] = str(expanded)
    return resolved

"""Safe YAML reading with errors that name the file and the YAML path.

Profiles and rules are hand-written data; a typo must fail loudly with the exact place,
not be ignored (a misspelt limit that silently never applies is worse than no profile).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from portlint.errors import ProfileError


def read_yaml(path: Path) -> Any:
    """Parse ``path`` with the safe loader; malformed YAML is a one-line ``ProfileError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProfileError(f"{path}:{where}: malformed YAML: {problem}") from exc


class Where:
    """A file plus a YAML path, for messages like ``hailo8.yaml: constraints[3].range``."""

    def __init__(self, path: Path, parts: tuple[str, ...] = ()):
        self.path = path
        self.parts = parts

    def __truediv__(self, part: str | int) -> Where:
        text = f"[{part}]" if isinstance(part, int) else str(part)
        return Where(self.path, (*self.parts, text))

    def __str__(self) -> str:
        yaml_path = "".join(p if p.startswith("[") else f".{p}" for p in self.parts).lstrip(".")
        return f"{self.path}: {yaml_path}" if yaml_path else str(self.path)

    def error(self, message: str) -> ProfileError:
        return ProfileError(f"{self}: {message}")


def expect_mapping(
    value: Any, where: Where, allowed: Iterable[str], required: Iterable[str] = ()
) -> Mapping[str, Any]:
    """Check ``value`` is a mapping with only ``allowed`` keys and every ``required`` key."""
    if not isinstance(value, Mapping):
        raise where.error(f"expected a mapping, got {type(value).__name__}")
    allowed = set(allowed)
    for key in value:
        if key not in allowed:
            raise (where / str(key)).error(
                f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})"
            )
    for key in required:
        if key not in value:
            raise where.error(f"missing required key {key!r}")
    return value


def expect_type(value: Any, types: type | tuple[type, ...], where: Where, what: str) -> Any:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise where.error(f"expected {what}, got {value!r}")
    if not isinstance(value, types):
        raise where.error(f"expected {what}, got {value!r}")
    return value

"""What one ``check`` run found, as plain data: the API makes it, baselines and reports read it.

It lives apart from the code that runs checks (``portlint.runner``, ``portlint.api``) so that
a baseline, a reporter or the CLI can take a ``Report`` without importing the machinery that
made it: the dependencies point from the API down to here, never back up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from portlint.engine import ModelReport
    from portlint.findings import Finding
    from portlint.rule import Severity


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
    def findings(self) -> list[Finding]:
        return [f for m in self.models for f in m.findings]

    def failing(self, fail_on: Severity) -> bool:
        return any(f.severity.rank >= fail_on.rank for f in self.findings)

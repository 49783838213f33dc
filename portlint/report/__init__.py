"""Reporters render model reports; they hold no logic about what is wrong.

Machine formats are plain functions ``list[ModelReport] -> str`` named here and imported on
use, so ``check`` pays only for the format it writes. ``text`` (rich, for terminals) is the
CLI's own and not listed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from portlint.engine import ModelReport
from portlint.errors import suggest

Renderer = Callable[[Sequence[ModelReport]], str]

FORMATS: dict[str, tuple[str, str]] = {
    "json": ("portlint.report.json_report", "render_json"),
    "sarif": ("portlint.report.sarif", "render_sarif"),
    "github": ("portlint.report.github", "render_github"),
    "html": ("portlint.report.html", "render_html"),
    "model-explorer": ("portlint.report.model_explorer", "render_model_explorer"),
}
"""Format name -> (module, function) of its renderer."""


def format_names() -> list[str]:
    return ["text", *FORMATS]


def renderer(name: str) -> Renderer:
    if name not in FORMATS:
        raise suggest(name, format_names(), "format")
    module, function = FORMATS[name]
    return getattr(importlib.import_module(module), function)

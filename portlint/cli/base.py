"""What every command shares: the typer app, the console, report files, progress rules.

Command modules import from here and the package imports them, so the import graph points
one way: ``portlint.cli`` -> command modules -> ``portlint.cli.base``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from portlint.errors import ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Will this ONNX model run on that NPU? Checks models against target profiles.",
)
targets_app = typer.Typer(
    add_completion=False, help="List target profiles, or show one.", invoke_without_command=True
)
app.add_typer(targets_app, name="targets")
_state = {"debug": False}

InputShapeOption = Annotated[
    list[str] | None,
    typer.Option("--input-shape", help="Pin an input's dims: NAME:1,3,640,640; repeatable."),
]
ReportFileOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write the report to this file instead of stdout."),
]
TextOrJsonOption = Annotated[
    str, typer.Option("--format", "-f", help="Report format: text or json.")
]
ConfigFileOption = Annotated[
    Path | None, typer.Option(help="Config file (pyproject.toml or portlint.toml).")
]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)


def _interactive() -> bool:
    """Progress output only for a person at a terminal, never in CI logs or pipes."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    with _report_file(output) as handle:
        handle.write(text)


@contextlib.contextmanager
def _report_file(output: Path):
    """The report file, written whole or not at all."""
    import tempfile

    folder = output.resolve().parent
    if not folder.is_dir():
        raise ConfigError(f"{output}: folder {folder} does not exist")
    descriptor, name = tempfile.mkstemp(dir=folder, prefix=f".{output.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yield handle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)  # mkstemp makes it private; a report is for sharing
        os.replace(name, output)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def _parse_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"bad --option {text!r}; expected KEY=VALUE")
    return key.strip(), value.strip()

"""Errors that end a run with a one-line message and a distinct exit code.

Anything a user can cause (a bad file, a bad profile, a typo in a target name) is a
``PortlintError``: the CLI prints ``portlint: error: <message>`` and exits 2. Everything
else is a bug in portlint and exits 3.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INPUT_ERROR = 2
EXIT_INTERNAL_ERROR = 3


class PortlintError(Exception):
    """A problem with the user's input; the message is shown as is, on one line."""

    exit_code = EXIT_INPUT_ERROR


class ModelLoadError(PortlintError):
    """The model file cannot be read as an ONNX model."""


class ProfileError(PortlintError):
    """A target profile or rule file is malformed; the message names the file and YAML path."""


class UnknownNameError(PortlintError):
    """A target, rule or option name that does not exist; the message suggests close names."""


class ConfigError(PortlintError):
    """The portlint configuration (pyproject.toml / portlint.toml / CLI options) is invalid."""


def first_line(exc: BaseException) -> str:
    """An exception's first line (C++ libraries raise multi-line messages), or its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def suggest(name: str, known: list[str] | tuple[str, ...], what: str) -> UnknownNameError:
    """Build an 'unknown X' error that proposes the closest known names, as git and ruff do."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = "" if close else f" (known: {', '.join(sorted(known))})" if len(known) <= 30 else ""
    return UnknownNameError(f"unknown {what} {name!r}{hint}{listing}")

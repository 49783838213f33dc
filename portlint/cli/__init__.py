"""Command line: parse options, call the library, print, and map outcomes to exit codes.

Exit codes: 0 nothing at or above --fail-on; 1 findings; 2 usage or input error (one line on
stderr); 3 internal error (a bug: rerun with --debug for the traceback).

This package only assembles the app. Each command lives in its own module and registers
itself on the shared app (``base.app``) when imported, and typer lists commands in the order
they were registered, so the order of the imports below is the order of ``portlint --help``
(hence isort is kept off them). ``main`` is the console-script entry point.
"""

from __future__ import annotations

# isort: off
from portlint.cli import check_command  # noqa: F401
from portlint.cli import fix_command  # noqa: F401
from portlint.cli import compare_command  # noqa: F401
from portlint.cli import passes_command  # noqa: F401
from portlint.cli import reference_commands  # noqa: F401
from portlint.cli import toolchain_commands  # noqa: F401
from portlint.cli import probe_command  # noqa: F401
from portlint.cli import targets_commands  # noqa: F401

# isort: on
from portlint.cli.base import app
from portlint.cli.entry import main

__all__ = ["app", "main"]

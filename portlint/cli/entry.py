"""How a process enters the CLI: the global options and ``main()``, which holds portlint to
its exit-code contract whatever a command raises.

Exit codes: 0 nothing at or above --fail-on; 1 findings; 2 usage or input error (one line on
stderr); 3 internal error (a bug: rerun with --debug for the traceback).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from portlint import __version__
from portlint.cli.base import app
from portlint.errors import EXIT_INTERNAL_ERROR, EXIT_OK, PortlintError

# --debug is parsed by the app callback but acted on in main(), around the whole run
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        print(f"portlint {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    _state["debug"] = debug


def main() -> None:
    """Run the CLI with portlint's exit-code contract."""
    try:
        result = app(standalone_mode=False)
        sys.exit(result if isinstance(result, int) else EXIT_OK)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except PortlintError as exc:
        if _state["debug"]:
            raise
        print(f"portlint: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if isinstance(exc, typer.Abort):
            sys.exit(130)
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            # a command-line usage error (typer's click: unknown option, missing argument)
            if type(exc).__name__ == "NoArgsIsHelpError":
                print(exc.format_message(), file=sys.stderr)
                sys.exit(2)
            message = " ".join(exc.format_message().split())
            print(f"portlint: error: {message} (see --help)", file=sys.stderr)
            sys.exit(2)
        if _state["debug"]:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"portlint: internal error: {type(exc).__name__}: {first} (rerun with --debug "
            "and report it)",
            file=sys.stderr,
        )
        sys.exit(EXIT_INTERNAL_ERROR)

"""``portlint targets`` and ``portlint targets show``: the shipped target profiles, listed or
shown whole with their sources.

A sub-app, so ``targets`` alone lists and ``targets show NAME`` shows; typer lists sub-apps
after the plain commands in ``portlint --help`` whenever they are registered.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from portlint.cli.base import _console, app
from portlint.errors import ConfigError

targets_app = typer.Typer(
    add_completion=False, help="List target profiles, or show one.", invoke_without_command=True
)
app.add_typer(targets_app, name="targets")


@targets_app.callback()
def targets_list(ctx: typer.Context) -> None:
    """List the shipped target profiles."""
    if ctx.invoked_subcommand is not None:
        return
    from portlint.docs import evidence_summary
    from portlint.target import load_target, shipped_target_names

    console = _console()
    for name in shipped_target_names():
        target = load_target(name)
        status = " (preview)" if target.status == "preview" else ""
        console.print(f"{name:<18} {target.label}{status} · {evidence_summary(target)}")


@targets_app.command("show")
def targets_show(
    name: Annotated[str, typer.Argument(help="Target name or profile path.")],
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="text or markdown.")
    ] = "text",
) -> None:
    """Show everything a target profile says, with sources."""
    from portlint.docs import render_target_markdown
    from portlint.target import load_target

    if output_format not in ("text", "markdown"):
        raise ConfigError(f"unknown format {output_format!r} (text or markdown)")
    text = render_target_markdown(load_target(name))
    if output_format == "markdown":
        sys.stdout.write(text)
    else:
        from rich.markdown import Markdown

        _console().print(Markdown(text))

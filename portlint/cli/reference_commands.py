"""``portlint rule``, ``docs`` and ``rules``: portlint's reference on its own rules, one rule
explained, every page written out, or the list.

One module for the three because they render the same sources (rules/ and targets/), and
because typer lists commands in the order they are registered: ``docs`` sits between
``rule`` and ``rules`` in ``portlint --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from portlint.cli.base import _console, app


@app.command()
def rule(
    code: Annotated[str, typer.Argument(help="Rule code (PL101) or name (unsupported-op).")],
) -> None:
    """Explain one rule: what it checks, why it matters, how to fix it."""
    from portlint.docs import render_rule_markdown
    from portlint.rule import load_rules
    from portlint.target import load_target, shipped_target_names

    targets = [load_target(name) for name in shipped_target_names()]
    sys.stdout.write(render_rule_markdown(load_rules().get(code), targets))


@app.command()
def docs(
    out: Annotated[Path, typer.Option(help="Folder to write the docs into.")] = Path("docs"),
) -> None:
    """Regenerate docs/ from the code: rules, targets, passes, the profile language."""
    from portlint.docs import write_docs

    written = write_docs(out)
    print(f"wrote {len(written)} pages under {out}")


@app.command()
def rules() -> None:
    """List every rule with its default severity."""
    from portlint.rule import load_rules

    console = _console()
    for item in load_rules():
        console.print(f"{item.code}  {item.name:<24} {item.severity.value:<8} {item.summary}")

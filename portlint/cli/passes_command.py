"""``portlint passes``: the rewrite passes ``portlint fix`` can run, and what each promises."""

from __future__ import annotations

from portlint.cli.base import _console, app


@app.command()
def passes() -> None:
    """List the rewrite passes with what they promise about the model's outputs."""
    from portlint.pass_catalog import CATALOG

    console = _console()
    for item in CATALOG.values():
        console.print(
            f"{item.name:<18} {item.semantics.value:<19} {item.summary} "
            f"[dim](resolves {', '.join(item.resolves)})[/]"
        )

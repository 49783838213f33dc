"""``portlint fix``: rewrite a model so it runs on the target, each pass proven numerically.

Exit 0 when the check of the rewritten model finds nothing at or above --fail-on (and always
after --dry-run, which writes nothing), 1 when such findings remain or when a pass breaks its
promise (then nothing is written), 2 on bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from portlint.cli.base import (
    ConfigFileOption,
    FailOn,
    InputShapeOption,
    _console,
    _input_shapes,
    _parse_option,
    _spinner,
    _split,
    app,
)
from portlint.errors import EXIT_FINDINGS, EXIT_OK


@app.command()
def fix(
    model: Annotated[Path, typer.Argument(help="ONNX model file.", show_default=False)],
    target: Annotated[
        str | None,
        typer.Option("--target", "-t", help="Target name or profile YAML path."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output path [default: NAME.portlint.onnx]."),
    ] = None,
    pass_names: Annotated[
        list[str] | None,
        typer.Option(
            "--pass",
            "-p",
            help="Run only these passes (see `portlint passes`); repeatable or comma-separated.",
        ),
    ] = None,
    unsafe_fixes: Annotated[
        bool,
        typer.Option(
            "--unsafe-fixes", help="Also run interface-changing passes (strip-postprocess)."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; write nothing.")
    ] = False,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="Overwrite the input model (after verification).")
    ] = False,
    allow_unverified: Annotated[
        bool,
        typer.Option(
            "--allow-unverified",
            help="Write passes onnxruntime cannot prove (custom ops, >2 GB), marked unverified.",
        ),
    ] = False,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", help="Pass option KEY=VALUE (e.g. cut=/model.22/Concat); repeatable."
        ),
    ] = None,
    input_shape: InputShapeOption = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(help="Lowest remaining severity that makes the exit code 1 [default: error]."),
    ] = None,
    config: ConfigFileOption = None,
) -> None:
    """Rewrite MODEL so it runs on the target, proving each pass numerically."""
    from portlint.api import fix as run_fix
    from portlint.api import resolve_config
    from portlint.rule import Severity

    cfg = resolve_config(config).merged(fail_on=Severity(fail_on.value) if fail_on else None)
    with _spinner(f"fixing {model.name} (each pass is proven in onnxruntime)"):
        run = run_fix(
            model,
            target,
            output,
            passes=_split(pass_names),
            unsafe=unsafe_fixes,
            options=dict(_parse_option(o) for o in option or ()),
            input_shapes=_input_shapes(input_shape),
            allow_unverified=allow_unverified,
            in_place=in_place,
            dry_run=dry_run,
            config=cfg,
        )
    from portlint.report.fix_text import render_fix, render_plan

    console = _console()
    if dry_run:
        render_plan(run.planned, console)
        raise typer.Exit(EXIT_OK)
    render_fix(run, console)
    from portlint.report.text import render_text

    console.print("\n[bold]check of the output[/]")
    render_text([run.recheck], console)
    failing = any(f.severity.rank >= cfg.fail_on.rank for f in run.recheck.findings)
    raise typer.Exit(EXIT_FINDINGS if failing else EXIT_OK)

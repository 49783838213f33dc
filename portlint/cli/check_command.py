"""``portlint check``: lint models against targets, with baselines for adopting it gradually.

Exit 0 when nothing is at or above --fail-on, 1 when something is, 2 on bad input or a model
that could not be checked; after --write-baseline 0, unless a model could not be checked.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from portlint.cli.base import (
    ChannelOrderOption,
    FailOn,
    ImageSizeOption,
    InputsOption,
    LayoutOption,
    MeanOption,
    RandomInputsOption,
    ReportFileOption,
    ScaleOption,
    StdOption,
    _emit,
    _input_shapes,
    _preprocess,
    _print_report,
    _progress_bar,
    _split,
    app,
)
from portlint.errors import EXIT_FINDINGS, EXIT_INPUT_ERROR, EXIT_OK

# stale baseline entries named one by one; past this, only how many more
STALE_SHOWN = 10


@app.command()
def check(
    models: Annotated[
        list[Path], typer.Argument(help="ONNX model files or folders.", show_default=False)
    ],
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            help="Target name (see `portlint targets`) or profile YAML path; repeatable.",
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="Report format: text, json (all: docs/output-formats.md)."
        ),
    ] = "text",
    output: ReportFileOption = None,
    baseline: Annotated[
        Path | None,
        typer.Option(help="Accept the findings recorded in this baseline file; report the rest."),
    ] = None,
    write_baseline: Annotated[
        Path | None,
        typer.Option(help="Record every finding in this baseline file (and exit 0)."),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Worker processes for several models."),
    ] = None,
    select: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these rules: codes, code prefixes (PL2) or names; comma-separated."
        ),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(help="Skip these rules: codes, code prefixes or names; comma-separated."),
    ] = None,
    input_shape: Annotated[
        list[str] | None,
        typer.Option(
            "--input-shape",
            help="Pin an input's dims before shape inference: NAME:1,3,640,640; repeatable.",
        ),
    ] = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(help="Lowest severity that makes the exit code 1 [default: error]."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Config file (pyproject.toml or portlint.toml); default: the nearest one."
        ),
    ] = None,
    inputs: InputsOption = None,
    random_inputs: RandomInputsOption = None,
    image_size: ImageSizeOption = None,
    layout: LayoutOption = None,
    mean: MeanOption = None,
    std: StdOption = None,
    scale: ScaleOption = None,
    channel_order: ChannelOrderOption = None,
) -> None:
    """Check MODELS (files or folders) against one or more targets and report every violation.

    With --inputs or --random-inputs, activation ranges are measured on the samples and the
    quantization rules use them instead of estimates.
    """
    from portlint.api import check as run_check
    from portlint.api import resolve_config
    from portlint.report import renderer
    from portlint.rule import Severity

    preprocess = _preprocess(inputs, image_size, layout, mean, std, scale, channel_order)
    cfg = resolve_config(config)
    shapes = _input_shapes(input_shape)
    cfg = cfg.merged(
        targets=tuple(target or ()),
        select=_split(select),
        ignore=_split(ignore),
        input_shapes=shapes or None,
        fail_on=Severity(fail_on.value) if fail_on else None,
    )
    render = renderer(output_format) if output_format != "text" else None
    with _progress() as advance:
        report = run_check(
            models,
            config=cfg,
            jobs=jobs,
            baseline=baseline,
            progress=advance,
            inputs=inputs,
            random_inputs=random_inputs,
            preprocess=preprocess,
        )
    if render is not None:
        _emit(render(report.models), output)
    else:
        from portlint.report.text import render_text

        _print_report(lambda console: render_text(report.models, console), output)
    for problem in report.errors:
        print(f"portlint: error: {problem.message}", file=sys.stderr)
    if baseline is not None:
        print(f"portlint: {report.baselined} findings accepted by {baseline}", file=sys.stderr)
        stale = report.stale_baseline
        for entry in stale[:STALE_SHOWN]:
            print(f"portlint: stale baseline entry (fixed? remove it): {entry}", file=sys.stderr)
        if len(stale) > STALE_SHOWN:
            more = len(stale) - STALE_SHOWN
            print(
                f"portlint: ... and {more} more stale entries; rewrite it with --write-baseline",
                file=sys.stderr,
            )
    if write_baseline is not None:
        from portlint.baseline import write_baseline as write

        count = write(report, write_baseline)
        print(f"portlint: wrote {count} baseline entries to {write_baseline}", file=sys.stderr)
        raise typer.Exit(EXIT_INPUT_ERROR if report.errors else EXIT_OK)
    if report.errors:
        raise typer.Exit(EXIT_INPUT_ERROR)
    raise typer.Exit(EXIT_FINDINGS if report.failing(cfg.fail_on) else EXIT_OK)


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[Path], None] | None]:
    """Models checked so far, for runs over several models (None off a terminal)."""
    with _progress_bar("checking") as update:
        if update is None:
            yield None
            return

        def advance(path: Path) -> None:
            update(advance=1, description=f"checked {path.name}")

        yield advance

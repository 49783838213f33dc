"""Command line: parse options, call the library, print, and map outcomes to exit codes.

Exit codes: 0 nothing at or above --fail-on; 1 findings; 2 usage or input error (one line on
stderr); 3 internal error (a bug: rerun with --debug for the traceback).
"""

from __future__ import annotations

import contextlib
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from portlint import __version__
from portlint.cli.base import (
    InputShapeOption,
    ReportFileOption,
    TextOrJsonOption,
    _console,
    _emit,
    _interactive,
    _parse_option,
    _report_file,
    _state,
    app,
    targets_app,
)
from portlint.errors import (
    EXIT_FINDINGS,
    EXIT_INPUT_ERROR,
    EXIT_INTERNAL_ERROR,
    EXIT_OK,
    ConfigError,
    PortlintError,
)

STALE_SHOWN = 10


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"


InputsOption = Annotated[
    Path | None,
    typer.Option(
        "--inputs",
        help="Folder of sample inputs: .npy, .npz (keys = input names) or images "
        "(.jpg/.png/.bmp, needs portlint[images]).",
    ),
]
RandomInputsOption = Annotated[
    int | None,
    typer.Option("--random-inputs", min=1, help="Use N seeded random samples instead."),
]
ImageSizeOption = Annotated[
    str | None,
    typer.Option(
        "--image-size", help="Resize images to HxW, e.g. 480x640 [default: the input's H,W]."
    ),
]
LayoutOption = Annotated[
    str | None,
    typer.Option("--layout", help="Image input layout NCHW or NHWC [default: from its shape]."),
]
MeanOption = Annotated[
    str | None,
    typer.Option("--mean", help="Per-channel mean, after scaling: 0.485,0.456,0.406 [default: 0]."),
]
StdOption = Annotated[
    str | None,
    typer.Option("--std", help="Per-channel std, after scaling: 0.229,0.224,0.225 [default: 1]."),
]
ScaleOption = Annotated[
    str | None,
    typer.Option("--scale", help="Pixel scale applied first, e.g. 1/255 [default: 1/255]."),
]
ChannelOrderOption = Annotated[
    str | None,
    typer.Option("--channel-order", help="Image channel order RGB or BGR [default: RGB]."),
]


def _preprocess(
    inputs: Path | None,
    image_size: str | None,
    layout: str | None,
    mean: str | None,
    std: str | None,
    scale: str | None,
    channel_order: str | None,
):
    """The image preprocessing options, refused when there is no --inputs to apply them to."""
    from portlint.inputs import Preprocess, parse_floats, parse_number, parse_size

    given = {
        "--image-size": image_size,
        "--layout": layout,
        "--mean": mean,
        "--std": std,
        "--scale": scale,
        "--channel-order": channel_order,
    }
    named = [name for name, value in given.items() if value is not None]
    if named and inputs is None:
        raise ConfigError(f"{named[0]} preprocesses images from --inputs DIR; give --inputs")
    try:
        factor = parse_number(scale) if scale is not None else 1 / 255
    except ValueError:
        raise ConfigError(f"bad --scale {scale!r}; expected a number such as 1/255") from None
    return Preprocess(
        size=parse_size(image_size) if image_size is not None else None,
        layout=layout.upper() if layout is not None else None,
        mean=parse_floats(mean, "--mean") if mean is not None else (0.0,),
        std=parse_floats(std, "--std") if std is not None else (1.0,),
        scale=factor,
        channel_order=channel_order.upper() if channel_order is not None else "RGB",
    )


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(v.strip() for value in values or () for v in value.split(",") if v.strip())


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
        typer.Option("--format", "-f", help="Report format: text, json (see the README for all)."),
    ] = "text",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file instead of stdout."),
    ] = None,
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
    from portlint.config import parse_input_shape
    from portlint.report import renderer
    from portlint.rule import Severity

    preprocess = _preprocess(inputs, image_size, layout, mean, std, scale, channel_order)
    cfg = resolve_config(config)
    shapes = dict(parse_input_shape(s) for s in input_shape or ())
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

        if output is None:
            render_text(report.models, _console())
        else:
            with _report_file(output) as handle:
                console = Console(file=handle, highlight=False, width=120, no_color=True)
                render_text(report.models, console)
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
def _spinner(message: str):
    """A spinner on stderr while one long step runs, on a terminal only."""
    if not _interactive():
        yield
        return
    with Console(stderr=True).status(message):
        yield


@contextlib.contextmanager
def _progress():
    """A progress bar for runs over several models, on a terminal only (quiet in CI logs)."""
    if not _interactive():
        yield None
        return
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("checking", total=None)

        def advance(path: Path) -> None:
            bar.update(task, advance=1, description=f"checked {path.name}")

        yield advance


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
    config: Annotated[
        Path | None,
        typer.Option(help="Config file (pyproject.toml or portlint.toml)."),
    ] = None,
) -> None:
    """Rewrite MODEL so it runs on the target, proving each pass numerically."""
    from portlint.api import fix as run_fix
    from portlint.api import resolve_config
    from portlint.config import parse_input_shape
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
            input_shapes=dict(parse_input_shape(s) for s in input_shape or ()),
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


class CalibrationMethod(str, Enum):
    minmax = "minmax"
    percentile = "percentile"
    entropy = "entropy"


@app.command()
def compare(
    model_a: Annotated[Path, typer.Argument(help="Reference ONNX model.", show_default=False)],
    model_b: Annotated[
        Path | None,
        typer.Argument(help="Model to compare with A (or use --simulate).", show_default=False),
    ] = None,
    simulate: Annotated[
        str | None,
        typer.Option(
            "--simulate",
            help="Compare A with a fake-quantized copy built per this target's scheme.",
        ),
    ] = None,
    bits: Annotated[
        int | None,
        typer.Option("--bits", help="Simulated bit width, 8 or 16 [default: the target's]."),
    ] = None,
    calibration: Annotated[
        CalibrationMethod,
        typer.Option("--calibration", help="Calibration method for --simulate."),
    ] = CalibrationMethod.minmax,
    calibration_samples: Annotated[
        int,
        typer.Option(
            "--calibration-samples", min=1, help="Samples used to calibrate (the first N)."
        ),
    ] = 16,
    per_layer: Annotated[
        bool,
        typer.Option("--per-layer", help="Compare every tensor the two models share."),
    ] = False,
    threshold: Annotated[
        float,
        typer.Option("--threshold", min=-1.0, max=1.0, help="Cosine similarity below this fails."),
    ] = 0.99,
    output_format: TextOrJsonOption = "text",
    output: ReportFileOption = None,
    input_shape: InputShapeOption = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Config file (pyproject.toml or portlint.toml), for profile dirs."),
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
    """Run the same inputs through A and B (or A's simulated quantization) and show where
    their answers part: cosine, L1, max abs error and SNR per output, or per layer.

    Exit 0 when every output's cosine similarity is at or above --threshold, 1 when one is
    below, 2 on bad input.
    """
    from portlint.api import compare as run_compare
    from portlint.config import parse_input_shape

    if output_format not in ("text", "json"):
        from portlint.errors import suggest

        raise suggest(output_format, ["text", "json"], "format")
    if bits is not None and bits not in (8, 16):
        raise ConfigError(f"--bits must be 8 or 16, got {bits}")
    preprocess = _preprocess(inputs, image_size, layout, mean, std, scale, channel_order)
    with _sample_progress("comparing") as advance:
        comparison = run_compare(
            model_a,
            model_b,
            simulate=simulate,
            bits=bits,
            calibration=calibration.value,
            calibration_samples=calibration_samples,
            inputs=inputs,
            random_inputs=random_inputs,
            preprocess=preprocess,
            input_shapes=dict(parse_input_shape(s) for s in input_shape or ()),
            per_layer=per_layer,
            threshold=threshold,
            config=config,
            progress=advance,
        )
    label_b = str(model_b) if model_b is not None else f"{model_a} simulated on {simulate}"
    if output_format == "json":
        from portlint.report.compare_text import compare_json

        settings = None
        if simulate is not None:
            settings = {
                "target": simulate,
                "bits": bits,
                "calibration": calibration.value,
                "calibration_samples": calibration_samples,
            }
        b_name = str(model_b) if model_b is not None else None
        _emit(compare_json(comparison, str(model_a), b_name, settings), output)
    else:
        from portlint.report.compare_text import render_compare

        if output is None:
            render_compare(comparison, _console(), str(model_a), label_b)
        else:
            with _report_file(output) as handle:
                console = Console(file=handle, highlight=False, width=120, no_color=True)
                render_compare(comparison, console, str(model_a), label_b)
    raise typer.Exit(EXIT_OK if comparison.passed else EXIT_FINDINGS)


@contextlib.contextmanager
def _sample_progress(what: str):
    """A progress bar over samples, on a terminal only; yields ``advance(done, total)``."""
    if not _interactive():
        yield None
        return
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"{what} {done}/{total}")

        yield advance


@app.command()
def passes() -> None:
    """List the rewrite passes with what they promise about the model's outputs."""
    from portlint.passes import PASSES

    console = _console()
    for item in PASSES.values():
        console.print(
            f"{item.name:<18} {item.semantics.value:<19} {item.summary} "
            f"[dim](resolves {', '.join(item.resolves)})[/]"
        )


@targets_app.callback()
def targets_list(ctx: typer.Context) -> None:
    """List the shipped target profiles."""
    if ctx.invoked_subcommand is not None:
        return
    from portlint.docs import verified_share
    from portlint.target import load_target, shipped_target_names

    console = _console()
    for name in shipped_target_names():
        target = load_target(name)
        status = " (preview)" if target.status == "preview" else ""
        good, total = verified_share(target)
        console.print(f"{name:<18} {target.label}{status} · {good}/{total} facts vendor-backed")


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
    """Regenerate the rule and target docs from rules/ and targets/."""
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


from portlint.cli import toolchain_commands  # noqa: E402,F401  (registers its commands)


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

"""``portlint compare``: where two models' answers part, or a model and its simulated
quantization on a target.

Exit 0 when every output's cosine similarity is at or above --threshold, 1 when one is
below, 2 on bad input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from portlint.cli.base import (
    ChannelOrderOption,
    ImageSizeOption,
    InputShapeOption,
    InputsOption,
    LayoutOption,
    MeanOption,
    RandomInputsOption,
    ReportFileOption,
    ScaleOption,
    StdOption,
    TextOrJsonOption,
    _check_text_or_json,
    _emit,
    _input_shapes,
    _preprocess,
    _print_report,
    _progress_bar,
    app,
)
from portlint.errors import EXIT_FINDINGS, EXIT_OK, ConfigError


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

    _check_text_or_json(output_format)
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
            input_shapes=_input_shapes(input_shape),
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

        _print_report(
            lambda console: render_compare(comparison, console, str(model_a), label_b), output
        )
    raise typer.Exit(EXIT_OK if comparison.passed else EXIT_FINDINGS)


@contextlib.contextmanager
def _sample_progress(what: str) -> Iterator[Callable[[int, int], None] | None]:
    """Samples run so far; yields ``advance(done, total)`` (None off a terminal)."""
    with _progress_bar(what) as update:
        if update is None:
            yield None
            return

        def advance(done: int, total: int) -> None:
            update(completed=done, total=total, description=f"{what} {done}/{total}")

        yield advance

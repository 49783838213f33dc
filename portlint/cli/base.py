"""What several commands share: the typer app, option types, the console, report files,
progress on terminals.

Command modules import from here and the package imports them, so the import graph points
one way: ``portlint.cli`` -> command modules -> ``portlint.cli.base``. Everything heavy
(the library, onnx, rich's progress widgets) is imported inside the helpers, so that
``portlint --help`` stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from portlint.errors import ConfigError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Will this ONNX model run on that NPU? Checks models against target profiles.",
)


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"


InputShapeOption = Annotated[
    list[str] | None,
    typer.Option("--input-shape", help="Pin an input's dims: NAME:1,3,640,640; repeatable."),
]
ReportFileOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write the report to this file instead of stdout."),
]
TextOrJsonOption = Annotated[
    str, typer.Option("--format", "-f", help="Report format: text or json.")
]
ConfigFileOption = Annotated[
    Path | None, typer.Option(help="Config file (pyproject.toml or portlint.toml).")
]

# Sample inputs, for the commands that run the model (check measures activation ranges on
# them, compare feeds them to both models).
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
    """Repeatable options that also take comma-separated lists, flattened."""
    return tuple(v.strip() for value in values or () for v in value.split(",") if v.strip())


def _parse_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"bad --option {text!r}; expected KEY=VALUE")
    return key.strip(), value.strip()


def _input_shapes(values: list[str] | None) -> dict[str, list[int]]:
    """The ``--input-shape`` values by input name (the parser is imported only when used)."""
    from portlint.config import parse_input_shape

    return dict(parse_input_shape(s) for s in values or ())


def _check_text_or_json(output_format: str) -> None:
    """Refuse a ``--format`` other than text or json, suggesting the nearest."""
    if output_format not in ("text", "json"):
        from portlint.errors import suggest

        raise suggest(output_format, ["text", "json"], "format")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 120)


def _interactive() -> bool:
    """Progress output only for a person at a terminal, never in CI logs or pipes."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    with _report_file(output) as handle:
        handle.write(text)


def _print_report(draw: Callable[[Console], None], output: Path | None) -> None:
    """A rich report on the terminal, or plain (no colour, 120 columns) in the --output file."""
    if output is None:
        draw(_console())
        return
    with _report_file(output) as handle:
        draw(Console(file=handle, highlight=False, width=120, no_color=True))


@contextlib.contextmanager
def _report_file(output: Path):
    """The report file, written whole or not at all."""
    import tempfile

    folder = output.resolve().parent
    if not folder.is_dir():
        raise ConfigError(f"{output}: folder {folder} does not exist")
    descriptor, name = tempfile.mkstemp(dir=folder, prefix=f".{output.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yield handle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)  # mkstemp makes it private; a report is for sharing
        os.replace(name, output)
    finally:
        if os.path.exists(name):
            os.unlink(name)


@contextlib.contextmanager
def _spinner(message: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner on stderr while a long step runs, on a terminal only; yields a function
    that replaces its message with the current step (None when nobody watches)."""
    if not _interactive():
        yield None
        return
    with Console(stderr=True).status(message) as status:
        yield status.update


@contextlib.contextmanager
def _progress_bar(what: str) -> Iterator[Callable[..., None] | None]:
    """A transient progress bar on stderr, on a terminal only (quiet in CI logs); yields
    ``update(**fields)`` for its one task (rich's ``Progress.update``), or None."""
    if not _interactive():
        yield None
        return
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        yield functools.partial(bar.update, bar.add_task(what, total=None))

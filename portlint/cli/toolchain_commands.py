"""``portlint toolchains`` and ``portlint verify``: the real compilers, run in their own venvs.

Exit codes of ``verify``: 0 the compiler converts the model, 1 it refuses or crashes, 2 bad
input, a missing toolchain, or no verdict (the compiler ran past --timeout).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from portlint.cli.base import (
    ConfigFileOption,
    InputShapeOption,
    ReportFileOption,
    TextOrJsonOption,
    _check_text_or_json,
    _console,
    _emit,
    _input_shapes,
    _parse_option,
    _print_report,
    _spinner,
    app,
)
from portlint.errors import EXIT_FINDINGS, EXIT_INPUT_ERROR, EXIT_OK, ConfigError


@app.command()
def toolchains(
    toolchain_python: Annotated[
        str | None,
        typer.Option("--toolchain-python", help="Interpreter of a toolchain's own venv to try."),
    ] = None,
    config: ConfigFileOption = None,
) -> None:
    """List the vendor compilers portlint can run, where they were found, and how to install
    the missing ones (each in its own venv: they pin their own onnx, numpy and torch)."""
    from portlint.api import resolve_config
    from portlint.toolchains import TOOLCHAINS
    from portlint.toolchains.run import ToolchainError, find_interpreter
    from portlint.verify import check_configured

    configured = dict(resolve_config(config).toolchains)
    check_configured(configured)
    console = _console()
    for toolchain in TOOLCHAINS.values():
        targets = ", ".join(sorted(toolchain.platforms))
        try:
            found = find_interpreter(toolchain, toolchain_python, configured)
        except ToolchainError as exc:
            found, problem = None, str(exc)
        else:
            problem = None
        console.print(f"[bold]{toolchain.name}[/] ({toolchain.package}) · targets: {targets}")
        if found is not None:
            console.print(f"  found {toolchain.package} {found.version} in {escape(found.python)}")
            console.print(f"  [dim](from {escape(found.origin)})[/]")
        else:
            if problem:
                console.print(f"  not found: {escape(problem)}", soft_wrap=True)
            else:
                console.print("  not found", soft_wrap=True)
                console.print(f"  install: {escape(toolchain.install_hint)}", soft_wrap=True)


def _options(values: list[str] | None) -> dict:
    """``KEY=VALUE`` options in the toolchain's own terms; JSON values are parsed (the
    adapter turns ``disable_rules=a,b`` into a list)."""
    options: dict = {}
    for text in values or ():
        key, value = _parse_option(text)
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


@app.command()
def verify(
    model: Annotated[Path, typer.Argument(help="ONNX model.", show_default=False)],
    target: Annotated[
        str, typer.Option("--target", "-t", help="Target name or profile YAML path.")
    ],
    reduce: Annotated[
        bool,
        typer.Option(
            "--reduce",
            help="When the compiler fails, cut the model down to the smallest sub-model "
            "that fails the same way and name the node.",
        ),
    ] = False,
    reduced_output: Annotated[
        Path | None,
        typer.Option(
            "--reduced-output",
            help="Where --reduce writes the sub-model [default: ./NAME.TARGET.reduced.onnx].",
        ),
    ] = None,
    toolchain_python: Annotated[
        str | None,
        typer.Option("--toolchain-python", help="Python of the toolchain's own venv."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds one compiler run may take.")
    ] = 600.0,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            help="A toolchain option, KEY=VALUE (rknn: disable_rules=seperate_conv_rs_split).",
        ),
    ] = None,
    input_shape: InputShapeOption = None,
    output_format: TextOrJsonOption = "text",
    output: ReportFileOption = None,
    config: ConfigFileOption = None,
) -> None:
    """Run the target's real compiler on the model and show it beside portlint's prediction:
    converts or not, which layers went to the CPU, and every disagreement with the profile
    fact behind it.

    Exit 0 when the compiler converts the model, 1 when it refuses or crashes, 2 on bad
    input, a missing toolchain, or no verdict within --timeout.
    """
    from portlint.api import verify as run_verify
    from portlint.model_io.write import check_destinations, write_model

    _check_text_or_json(output_format)
    if reduced_output is not None and not reduce:
        raise ConfigError("--reduced-output needs --reduce")
    options = _options(option)
    destination = None
    if reduce:
        base = target.split("/")[-1].removesuffix(".yaml")
        destination = reduced_output or Path(f"{model.stem}.{base}.reduced.onnx")
        if not destination.parent.is_dir():
            raise ConfigError(f"{destination.parent}: no such folder for --reduced-output")
        check_destinations(destination, [model], in_place=False)
    with _spinner("starting") as say:
        found = run_verify(
            model,
            target,
            config=config,
            toolchain_python=toolchain_python,
            timeout=timeout,
            options=options,
            input_shapes=_input_shapes(input_shape),
            reduce=reduce,
            progress=say,
        )
    written = None
    if found.reduced is not None and destination is not None:
        write_model(found.reduced.model, destination, keep=[model])
        written = destination
    if output_format == "json":
        from portlint.report.verify_text import verify_json

        _emit(verify_json(found, str(model), written), output)
    else:
        from portlint.report.verify_text import render_verify

        _print_report(lambda console: render_verify(found, console, str(model), written), output)
    if not found.result.has_verdict:
        import sys

        print(f"portlint: error: {found.result.error}", file=sys.stderr)
        raise typer.Exit(EXIT_INPUT_ERROR)
    raise typer.Exit(EXIT_OK if found.result.converts else EXIT_FINDINGS)

"""``portlint probe``: test every fact of a profile against the real compiler.

Exit codes: 0 no fact contradicted, 1 some fact contradicted, 2 bad input or a missing
toolchain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from portlint.cli.base import ConfigFileOption, ReportFileOption, _print_report, _progress_bar, app
from portlint.errors import EXIT_FINDINGS, EXIT_OK


@app.command()
def probe(
    target: Annotated[
        str, typer.Option("--target", "-t", help="Target name or profile YAML path.")
    ],
    only: Annotated[
        str | None,
        typer.Option("--only", help="Run only probes whose id contains one of these (a,b,c)."),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Compilers at once.")] = 2,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds one compiler run may take.")
    ] = 300.0,
    toolchain_python: Annotated[
        str | None,
        typer.Option("--toolchain-python", help="Python of the toolchain's own venv."),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="Write the outcomes as an evidence file under this folder "
            "(TARGET/TOOLCHAIN-VERSION.yaml; the shipped ones are in targets/evidence); "
            "with --only, they replace those probes' records in the file already there.",
        ),
    ] = None,
    write_profile: Annotated[
        Path | None,
        typer.Option(
            "--write-profile",
            help="Write a profile that extends the target with what this compiler did "
            "(and its evidence file beside it, NAME.evidence.yaml).",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List confirmed facts too.")
    ] = False,
    output: ReportFileOption = None,
    config: ConfigFileOption = None,
) -> None:
    """Build a probe model for every fact of the target's profile (each op it names or
    commonly meets, each limit from both sides), run them through the real compiler, and
    show which facts it confirms, which it contradicts, and what it did instead."""
    from portlint.api import probe as run_probe
    from portlint.probe.evidence import from_outcomes, write

    if write_profile is not None:
        from portlint.probe.derive import check_destination

        check_destination(write_profile)
    with _progress_bar("probing") as update:

        def done(_outcome, total: int) -> None:
            if update is not None:
                update(total=total, advance=1)

        run = run_probe(
            target,
            config=config,
            toolchain_python=toolchain_python,
            only=only,
            jobs=jobs,
            timeout=timeout,
            done=done,
        )
    _print_report(lambda console: render(run, console, verbose), output)
    evidence = from_outcomes(run.outcomes, run.target.name, run.toolchain, run.version)
    if record is not None:
        typer.echo(f"wrote {write(evidence, record, merge=only is not None)}", err=True)
    if write_profile is not None:
        from portlint.probe.derive import write_derived

        for path in write_derived(run, evidence, write_profile):
            typer.echo(f"wrote {path}", err=True)
    raise typer.Exit(
        EXIT_FINDINGS if any(f.verdict == "contradicted" for f in run.facts) else EXIT_OK
    )


def render(run, console, verbose: bool) -> None:
    from portlint.report.probe_text import render_probe

    render_probe(run, console, verbose)

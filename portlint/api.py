"""The library entry points the CLI uses: load config, targets and models, run the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portlint.config import Config, find_config, load_config
from portlint.engine import ModelReport, check_model
from portlint.errors import ConfigError, first_line
from portlint.graph_outline import outline
from portlint.graph_view import build_view
from portlint.model_io.load import load_for_check
from portlint.results import Report
from portlint.rule import load_rules
from portlint.runner import check_many
from portlint.target import Target, load_target, shipped_target_names

if TYPE_CHECKING:
    from portlint.activations import TensorStats
    from portlint.compare import Comparison
    from portlint.fixer import FixOutcome, FixRequest
    from portlint.inputs import InputsSpec, Preprocess
    from portlint.passes.base import Pass
    from portlint.probe.run import ProbeOutcome
    from portlint.probe.session import ProbeRun
    from portlint.verify import Verification


def resolve_config(path: Path | None) -> Config:
    """The config named on the command line, else the nearest one, else defaults."""
    if path is not None and not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    return load_config(path or find_config(Path.cwd()), load_rules())


def resolve_targets(config: Config) -> list[Target]:
    if not config.targets:
        raise ConfigError(
            "no target given: use --target NAME (known: "
            f"{', '.join(shipped_target_names())}) or set targets in the config"
        )
    seen: dict[str, Target] = {}
    for name in config.targets:
        target = load_target(name, config.profile_dirs)
        seen.setdefault(target.name, target)
    return list(seen.values())


def check_paths(
    paths: Iterable[Path], config: Config, inputs: InputsSpec | None = None
) -> list[ModelReport]:
    """Check each model against each configured target; raises PortlintError on bad input.

    With ``inputs``, each model's activation ranges are measured on those samples first and
    handed to the rules on the view (``GraphView.activations``).
    """
    rules = load_rules()
    for selector in (*config.select, *config.ignore):
        if not rules.matching(selector):
            rules.get(selector)
    targets = resolve_targets(config)
    reports = []
    for path in paths:
        loaded = load_for_check(path, dict(config.input_shapes))
        view = build_view(loaded)
        if inputs is not None:
            view = replace(view, activations=measure_path(path, inputs, config.input_shapes))
        report = check_model(view, path, targets, rules, config)
        reports.append(replace(report, graph=outline(view, loaded.model.graph.name)))
    return reports


def _check_file(path: Path, config: Config, inputs: InputsSpec | None) -> ModelReport:
    """One model of a many-file ``check``: module-level, so worker processes can take it."""
    return check_paths([path], config, inputs)[0]


def measure_path(
    path: Path, inputs: InputsSpec, input_shapes: Mapping[str, list[int]] | None = None
) -> dict[str, TensorStats]:
    """Activation statistics of the model at ``path`` (loaded with its weights) on ``inputs``."""
    from portlint.activations import measure
    from portlint.model_io.load import load_for_fix

    model = load_for_fix(path)[0]
    return measure(model, inputs.samples_for(model, input_shapes))


def inputs_spec(
    inputs: str | Path | None = None,
    random_inputs: int | None = None,
    preprocess: Preprocess | None = None,
) -> InputsSpec | None:
    """Where samples come from: a folder, N random samples, or None when neither is given."""
    from portlint.inputs import InputsSpec, Preprocess

    if inputs is not None and random_inputs is not None:
        raise ConfigError("give --inputs or --random-inputs, not both")
    if inputs is None and random_inputs is None:
        return None
    return InputsSpec(
        Path(inputs) if inputs is not None else None, random_inputs, preprocess or Preprocess()
    )


def check(
    paths: str | Path | Sequence[str | Path],
    targets: Sequence[str] | None = None,
    config: Config | str | Path | None = None,
    *,
    jobs: int | None = None,
    baseline: str | Path | None = None,
    progress: Callable[[Path], None] | None = None,
    inputs: str | Path | None = None,
    random_inputs: int | None = None,
    preprocess: Preprocess | None = None,
) -> Report:
    """Check models (files or folders of ``*.onnx``) against targets; the CLI's ``check``.

    ``config`` is a ``Config`` or the path of a pyproject.toml/portlint.toml (default: the
    nearest one); ``targets`` overrides its targets. One file that cannot be read raises a
    ``PortlintError``; among several, each bad file becomes a ``FileError`` in the report.
    ``inputs`` (a folder of samples, see ``portlint.inputs``) or ``random_inputs`` (N seeded
    samples) has each model's activations measured for the rules that use them.
    """
    if not isinstance(config, Config):
        config = resolve_config(Path(config) if config is not None else None)
    if targets:
        config = replace(config, targets=tuple(targets))
    spec = inputs_spec(inputs, random_inputs, preprocess)
    items = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if len(items) == 1 and not items[0].is_dir():
        report = Report(check_paths(items, config, spec))
    else:
        resolve_targets(config)  # a bad target name fails once, before any worker starts
        one = partial(_check_file, config=config, inputs=spec)
        report = check_many(items, one, jobs, progress)
    if baseline is not None:
        from portlint.baseline import apply_baseline

        apply_baseline(report, Path(baseline))
    return report


@dataclass
class FixRun:
    """What ``fix_path`` did: the plan (dry run) or the outcome, the files, the new check."""

    planned: list[tuple[Pass, str | None]]
    outcome: FixOutcome | None = None
    written: list[Path] = field(default_factory=list)
    tail_output: Path | None = None
    stale_tail: Path | None = None
    recheck: ModelReport | None = None


def fix_path(
    path: Path,
    request: FixRequest,
    output: Path | None = None,
    in_place: bool = False,
    dry_run: bool = False,
) -> FixRun:
    """Plan and run the passes on ``path`` for the one configured target; write atomically."""
    import onnx

    from portlint.errors import ModelLoadError, first_line
    from portlint.fixer import FixError, Owned, fix_model, plan
    from portlint.model_io.load import load_for_fix
    from portlint.model_io.weightless import staged
    from portlint.model_io.write import (
        check_destinations,
        check_file,
        default_output,
        tail_output,
        write_model,
    )

    def verifier(written: onnx.ModelProto):
        """A big model was checked without its weights (past the protobuf limit, onnx.checker
        cannot take it from memory): run the checker on the staged file, before anything is
        renamed into place."""
        if not staged(written):
            return None

        def verify(staged: Path) -> None:
            try:
                check_file(staged)
            except Exception as exc:
                raise FixError(
                    f"the fixed model fails onnx.checker: {first_line(exc)}; nothing written"
                ) from exc

        return verify

    target = _single_target(request.config)
    if in_place and output is not None and output.resolve() != path.resolve():
        raise ConfigError("--in-place writes over the input model; drop -o, or drop --in-place")
    output = path if in_place else (output or default_output(path))
    check_destinations(output, [path], in_place)  # before reading GBs of weights; again below
    try:
        model, data_files = load_for_fix(path)
    except onnx.checker.ValidationError as exc:  # onnx's own checks, e.g. a symlinked data file
        raise ModelLoadError(f"{path}: cannot read external data: {first_line(exc)}") from exc
    check_destinations(output, [path, *data_files], in_place)
    if dry_run:
        return FixRun(plan(model, target, request))
    handed = Owned(model)  # no reference left here: fix lets the input go once it is replaced
    del model
    outcome = fix_model(handed, target, replace(request, beside=output))
    keep = [] if in_place else [path, *data_files]  # in place, the input's data may go
    verify = verifier(outcome.model)
    written = write_model(outcome.model, output, bool(data_files), keep, verify)
    if verify is not None:
        for step in outcome.steps:
            if step.changed:
                step.verification += (
                    "; the written model passed onnx.checker (full, with strict shape inference)"
                )
    tail_path = tail_output(output)
    if outcome.tail is not None:
        tail_verify = verifier(outcome.tail)
        written += write_model(outcome.tail, tail_path, bool(data_files), keep, tail_verify)
    stale = tail_path if outcome.tail is None and tail_path.exists() else None
    # the output is checked as written: --input-shape pins were fix's to apply, not check's
    recheck = check_paths([output], replace(request.config, input_shapes={}))[0]
    tail = tail_path if outcome.tail is not None else None
    return FixRun([], outcome, written, tail, stale, recheck)


def fix(
    path: str | Path,
    target: str | None = None,
    output: str | Path | None = None,
    *,
    passes: Sequence[str] = (),
    unsafe: bool = False,
    options: Mapping[str, Any] | None = None,
    input_shapes: Mapping[str, list[int]] | None = None,
    allow_unverified: bool = False,
    in_place: bool = False,
    dry_run: bool = False,
    config: Config | str | Path | None = None,
) -> FixRun:
    """Rewrite the model at ``path`` for ``target`` and prove each pass; the CLI's ``fix``.

    Writes ``output`` (default ``NAME.portlint.onnx``) atomically and never the input unless
    ``in_place``; raises ``FixError`` (nothing written) when a pass breaks its promise.
    """
    from portlint.fixer import FixRequest

    if not isinstance(config, Config):
        config = resolve_config(Path(config) if config is not None else None)
    config = config.merged(
        targets=(target,) if target else None,
        input_shapes=dict(input_shapes) if input_shapes else None,
    )
    request = FixRequest(
        tuple(passes),
        unsafe,
        dict(options or {}),
        dict(config.input_shapes),
        allow_unverified,
        config,
    )
    destination = Path(output) if output is not None else None
    return fix_path(Path(path), request, destination, in_place=in_place, dry_run=dry_run)


def verify(
    path: str | Path,
    target: str,
    *,
    config: Config | str | Path | None = None,
    toolchain_python: str | None = None,
    timeout: float = 600.0,
    options: Mapping[str, Any] | None = None,
    input_shapes: Mapping[str, list[int]] | None = None,
    reduce: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Verification:
    """Run ``target``'s real compiler on the model and set it beside ``check``'s prediction;
    the CLI's ``verify``. With ``reduce``, a failing model is cut down to the smallest
    sub-model that fails the same way (``Verification.reduced``)."""
    from portlint.verify import VerifyRequest, verify_model

    if not isinstance(config, Config):
        config = resolve_config(Path(config) if config is not None else None)
    config = config.merged(
        targets=(target,), input_shapes=dict(input_shapes) if input_shapes else None
    )
    report = check_paths([Path(path)], config)[0].targets[0]
    request = VerifyRequest(
        toolchain_python,
        dict(config.toolchains),
        timeout,
        dict(options or {}),
        dict(config.input_shapes),
        reduce,
    )
    return verify_model(Path(path), report.target, report, request, progress)


def probe(
    target: str,
    *,
    config: Config | str | Path | None = None,
    toolchain_python: str | None = None,
    only: str | None = None,
    jobs: int = 2,
    timeout: float = 300.0,
    done: Callable[[ProbeOutcome, int], None] | None = None,
) -> ProbeRun:
    """Run a probe for each fact of ``target``'s profile through its real compiler and judge
    each fact; the CLI's ``probe``."""
    from portlint.probe.session import probe_target

    if not isinstance(config, Config):
        config = resolve_config(Path(config) if config is not None else None)
    found = resolve_targets(config.merged(targets=(target,)))[0]
    return probe_target(
        found,
        toolchain_python=toolchain_python,
        configured=dict(config.toolchains),
        only=only,
        jobs=jobs,
        timeout=timeout,
        done=done,
    )


def _single_target(config: Config) -> Target:
    targets = resolve_targets(config)
    if len(targets) != 1:
        names = ", ".join(t.name for t in targets)
        raise ConfigError(f"fix works for one target at a time; got {names}")
    return targets[0]


def compare(
    a: str | Path,
    b: str | Path | None = None,
    *,
    simulate: str | None = None,
    bits: int | None = None,
    calibration: str = "minmax",
    calibration_samples: int = 16,
    inputs: str | Path | None = None,
    random_inputs: int | None = None,
    preprocess: Preprocess | None = None,
    input_shapes: Mapping[str, list[int]] | None = None,
    per_layer: bool = False,
    threshold: float | None = None,
    config: Config | str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Comparison:
    """Run the same samples through model ``a`` (the reference) and ``b``; the CLI's ``compare``.

    Instead of ``b``, ``simulate=TARGET`` compares ``a`` with a fake-quantized copy built per
    that target's quantization scheme (``portlint.simulate``), calibrated on the first
    ``calibration_samples`` samples. Samples come from ``inputs`` (a folder, see
    ``portlint.inputs``) or ``random_inputs``; without either, 8 seeded random samples (the
    comparison's notes say so). ``progress(done, total)`` is called after each sample.
    """
    from itertools import islice

    from portlint.compare import DEFAULT_THRESHOLD, compare_models
    from portlint.inputs import DEFAULT_RANDOM_SAMPLES
    from portlint.model_io.load import load_for_fix

    if (b is None) == (simulate is None):
        raise ConfigError("compare needs a second model B, or --simulate TARGET (not both)")
    if bits is not None and simulate is None:
        raise ConfigError("--bits applies to --simulate only")
    if calibration_samples < 1:
        raise ConfigError("--calibration-samples must be at least 1")
    notes = []
    spec = inputs_spec(inputs, random_inputs, preprocess)
    if spec is None:
        spec = inputs_spec(random_inputs=DEFAULT_RANDOM_SAMPLES)
        notes.append(
            f"no --inputs given: comparing on {DEFAULT_RANDOM_SAMPLES} seeded random samples "
            "(give --inputs DIR for real data, or --random-inputs N)"
        )
    assert spec is not None
    model_a = load_for_fix(Path(a))[0]
    samples = spec.samples_for(model_a, input_shapes)
    total = len(samples)

    def advance(done: int) -> None:
        if progress is not None:
            progress(done, total)

    advance(0)
    if simulate is not None:
        try:
            from portlint.simulate import simulate as run_simulation
        except ImportError as exc:  # the module ships with issue 5's quantization simulation
            raise ConfigError(f"--simulate is not available: {first_line(exc)}") from exc

        if not isinstance(config, Config):
            config = resolve_config(Path(config) if config is not None else None)
        target = load_target(simulate, config.profile_dirs)
        calibration_set = list(islice(iter(samples), calibration_samples))
        simulation = run_simulation(
            model_a, target, calibration_set, bits=bits, calibration=calibration
        )
        del calibration_set
        notes.append(
            f"calibrated ({calibration}) on the first {min(calibration_samples, total)} of the "
            f"{total} samples; compared on all {total}"
        )
        notes += list(simulation.notes)
        model_b, b_names = simulation.model, dict(simulation.seen_as)
    else:
        model_b, b_names = load_for_fix(Path(b))[0], None  # type: ignore[arg-type]
    comparison = compare_models(
        model_a,
        model_b,
        samples,
        per_layer,
        b_names=b_names,
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        progress=advance,
    )
    comparison.inputs = samples.description
    comparison.notes = notes + comparison.notes
    return comparison

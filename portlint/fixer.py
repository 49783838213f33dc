"""``portlint fix``: plan the passes, run each one, and prove it kept its promise."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from portlint.config import Config
from portlint.engine import TargetReport
from portlint.errors import EXIT_FINDINGS, ConfigError, PortlintError, first_line, suggest
from portlint.graph_view import display_names
from portlint.in_memory import check_in_memory, view_of
from portlint.model_io import PROTOBUF_LIMIT, copy_model
from portlint.numerics import Deviation, NumericsError, compare, random_inputs, run
from portlint.passes import PASSES, Pass, PassContext, PassResult, Semantics, get_pass
from portlint.passes.surgery import to_graph, to_model
from portlint.target import Target

__all__ = [
    "FixError",
    "FixOutcome",
    "FixRequest",
    "Step",
    "check_in_memory",
    "fix_model",
    "plan",
    "view_of",
]


class FixError(PortlintError):
    """A pass broke its promise (or produced an invalid model): nothing is written."""

    exit_code = EXIT_FINDINGS


@dataclass
class Step:
    """One pass as run: why, what it changed, and how it was proven."""

    pass_: Pass
    reason: str
    result: PassResult | None = None
    deviations: list[Deviation] = field(default_factory=list)
    head_deviations: list[Deviation] = field(default_factory=list)
    verification: str = ""
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return self.result is not None and self.result.changed


@dataclass
class FixOutcome:
    before_model: onnx.ModelProto
    model: onnx.ModelProto
    tail: onnx.ModelProto | None
    steps: list[Step]
    before: TargetReport
    after: TargetReport

    @property
    def changed(self) -> bool:
        return any(step.changed for step in self.steps)


def candidates(names: Iterable[str], unsafe: bool) -> list[tuple[Pass, str | None]]:
    """The passes ``fix`` considers, in run order, each with a fixed reason or None.

    Named passes always run. Otherwise exact passes run when they have something to do,
    interface-changing ones only with ``--unsafe-fixes``, approximate ones never unasked.
    """
    named = {get_pass(name).name for name in names}
    chosen = []
    for item in PASSES.values():
        if item.name in named:
            chosen.append((item, "named with --pass"))
        elif not named and (
            item.semantics is Semantics.EXACT or (item.semantics is Semantics.INTERFACE and unsafe)
        ):
            chosen.append((item, None))
    return chosen


@dataclass(frozen=True)
class FixRequest:
    """What the user asked ``fix`` for: passes by name, unsafe fixes, options, pinned shapes."""

    passes: tuple[str, ...] = ()
    unsafe: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    input_shapes: Mapping[str, list[int]] = field(default_factory=dict)
    allow_unverified: bool = False  # write what onnxruntime cannot run, saying so
    config: Config = field(default_factory=Config)

    def context(self, model: onnx.ModelProto, target: Target) -> PassContext:
        options, shapes = dict(self.options), dict(self.input_shapes)
        return PassContext(model, target, options, shapes, self.config)


def _considered(request: FixRequest) -> list[tuple[Pass, str | None]]:
    """``candidates`` for the request, after checking each option belongs to one of them."""
    chosen = candidates(request.passes, request.unsafe)
    owners = {o.name: p.name for p in PASSES.values() for o in p.options}
    considered = {p.name for p, _ in chosen}
    for key in request.options:
        if key not in owners:
            raise suggest(key, list(owners), "pass option")
        if owners[key] not in considered:
            raise ConfigError(
                f"--option {key} is for {owners[key]}, which this run does not run; "
                f"add --pass {owners[key]}"
                + (
                    " or --unsafe-fixes"
                    if PASSES[owners[key]].semantics is Semantics.INTERFACE
                    else ""
                )
            )
    return chosen


def plan(
    model: onnx.ModelProto, target: Target, request: FixRequest = FixRequest()
) -> list[tuple[Pass, str | None]]:
    """What ``fix`` would run on ``model`` as it is now: (pass, reason) or reason None."""
    chosen = _considered(request)
    ctx = request.context(model, target)
    return [(item, reason or _guarded(item, item.wanted, ctx)) for item, reason in chosen]


def fix_model(
    model: onnx.ModelProto, target: Target, request: FixRequest = FixRequest()
) -> FixOutcome:
    """Run the planned passes one by one, verifying each; raise ``FixError`` on a broken promise.

    Unnamed (or doubly named) nodes first get the names ``check`` shows for them, so that
    findings, pass reports and the written model all speak of the same nodes.
    """
    chosen = _considered(request)
    shapes, config = dict(request.input_shapes), request.config
    before_report = check_in_memory(model, target, None, config)  # the models as they are
    prover = _Prover(model, shapes, request.allow_unverified)
    current, tail, steps = _named(model), None, []
    for item, fixed_reason in chosen:
        ctx = request.context(copy_model(current), target)
        reason = fixed_reason or _guarded(item, item.wanted, ctx)
        if reason is None:
            continue
        step = Step(item, reason)
        started = time.perf_counter()
        step.result = _guarded(item, item.run, ctx)
        if step.changed:
            step.result.model = _guarded(item, _tidy, step.result.model)
            _validate(step.result.model, item, current)
            if step.result.tail is not None:
                _validate(step.result.tail, item, current, "its tail model")
            prover.prove(step)
            if step.result.tail is not None:
                tail = _single_cut(step.result.tail, tail)
            current = step.result.model
        step.seconds = time.perf_counter() - started
        steps.append(step)
    after_report = check_in_memory(current, target, None, config)
    return FixOutcome(model, current, tail, steps, before_report, after_report)


def _guarded(item: Pass, call: Callable[[Any], Any], argument: Any) -> Any:
    """``call(argument)`` for pass ``item``; a crash inside it stops the run with one line."""
    try:
        return call(argument)
    except PortlintError:
        raise
    except Exception as exc:
        raise FixError(
            f"pass {item.name} failed on this model ({type(exc).__name__}: {first_line(exc)}); "
            "nothing written"
        ) from exc


def _named(model: onnx.ModelProto) -> onnx.ModelProto:
    names = display_names(list(model.graph.node))
    if all(node.name == name for node, name in zip(model.graph.node, names, strict=True)):
        return model
    named = copy_model(model)
    for node, name in zip(named.graph.node, names, strict=True):
        node.name = name
    return named


def _tidy(model: onnx.ModelProto) -> onnx.ModelProto:
    """Graph cleanup and topological sort after every pass, whatever the pass did."""
    if model.ByteSize() >= PROTOBUF_LIMIT:
        return model
    return to_model(to_graph(model), model)


def _single_cut(new: onnx.ModelProto, old: onnx.ModelProto | None) -> onnx.ModelProto:
    """The run's one tail model: a second cut in the same run is refused, not composed."""
    if old is None:
        return new
    raise FixError("the graph was cut twice in one run; run strip-postprocess once")


def _validate(
    model: onnx.ModelProto, item: Pass, given: onnx.ModelProto, what: str = "the model"
) -> None:
    """Full onnx.checker and strict shape inference: a pass must leave a valid model.

    The checker serialises the model; one beyond the protobuf limit is left to the checks
    on the written file (issue: big models), and the step says it was not verified. When
    the model the pass was ``given`` fails the checker too, the message says so.
    """
    error = _checker_error(model)
    if error is None:
        return
    given_error = _checker_error(given)
    if given_error is not None:
        raise FixError(
            f"pass {item.name} cannot produce a valid model: the model it was given is not "
            f"valid ONNX ({given_error}); nothing written"
        )
    raise FixError(f"pass {item.name} produced an invalid model ({what}): {error}; nothing written")


def _checker_error(model: onnx.ModelProto) -> str | None:
    if model.ByteSize() >= PROTOBUF_LIMIT:
        return None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        return first_line(exc)
    return None


class _Prover:
    """Holds the seeded inputs and the current model's outputs, and proves each step."""

    def __init__(
        self, model: onnx.ModelProto, shapes: Mapping[str, list[int]], allow_unverified: bool
    ):
        self.feeds: dict[str, np.ndarray] = {}
        self.reference: dict[str, np.ndarray] | None = None
        self.model = model
        self.allow_unverified = allow_unverified
        self.unprovable = ""
        if model.ByteSize() >= PROTOBUF_LIMIT:
            self.unprovable = "model exceeds the 2 GB protobuf limit onnxruntime loads from memory"
            return
        try:
            self.feeds = random_inputs(model, shapes)
            self.reference = run(model, self.feeds)
        except NumericsError as exc:
            self.unprovable = str(exc)

    def prove(self, step: Step) -> None:
        result = step.result
        assert result is not None
        if self.reference is None:
            self._unproven(step)
            return
        semantics = step.pass_.semantics
        try:
            if semantics is Semantics.INTERFACE:
                self._prove_cut(step)
            else:
                outputs = run(result.model, self.feeds)
                step.deviations = compare(self.reference, outputs)
                self.reference = outputs
        except NumericsError as exc:
            raise FixError(
                f"pass {step.pass_.name}: cannot run its output in onnxruntime ({exc}); "
                "nothing written"
            ) from exc
        if semantics is Semantics.EXACT:
            self._require_exact(step, step.deviations, "output")
        step.verification = _verified_text(semantics, len(self.feeds))
        self.model = result.model

    def _unproven(self, step: Step) -> None:
        """A promise that cannot be checked is not written unless the user accepts that."""
        if step.pass_.semantics is not Semantics.APPROXIMATE and not self.allow_unverified:
            raise FixError(
                f"pass {step.pass_.name} cannot be proven: {self.unprovable}; nothing written "
                "(--allow-unverified writes it unproven)"
            )
        step.verification = f"NOT VERIFIED numerically: {self.unprovable}"
        self.model = step.result.model

    def _prove_cut(self, step: Step) -> None:
        """Head outputs must equal the cut tensors, and tail(head(x)) the old outputs."""
        result = step.result
        assert result is not None and self.reference is not None
        cut = [o.name for o in result.model.graph.output]
        original = run(self.model, self.feeds, [*self.reference, *cut])
        head = run(result.model, self.feeds)
        step.head_deviations = compare({name: original[name] for name in cut}, head)
        self._require_exact(step, step.head_deviations, "kept tensor")
        if result.tail is not None:
            composed = run(result.tail, {**self.feeds, **head})  # a tail may read inputs too
            step.deviations = compare(self.reference, composed)
            self._require_exact(step, step.deviations, "tail(head(x)) output")
        self.reference = head

    @staticmethod
    def _require_exact(step: Step, deviations: list[Deviation], what: str) -> None:
        for item in deviations:
            if not item.within():
                raise FixError(
                    f"pass {step.pass_.name} is declared {step.pass_.semantics.value} but "
                    f"changed {what} {item.name!r} (max abs error {item.max_abs:.3g}, "
                    f"cosine {item.cosine:.6f}); nothing written"
                )


def _verified_text(semantics: Semantics, inputs: int) -> str:
    what = {
        Semantics.EXACT: "outputs equal",
        Semantics.INTERFACE: "kept tensors equal and tail(head(x)) equals the original",
        Semantics.APPROXIMATE: "deviation measured",
    }[semantics]
    return f"{what} on seeded random inputs ({inputs} input tensors, onnxruntime, no fusion)"


def op_counts(model: onnx.ModelProto) -> Counter[str]:
    return Counter(node.op_type for node in model.graph.node)

"""``portlint fix``: plan the passes, run each one, and prove it kept its promise."""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from portlint.config import Config
from portlint.engine import TargetReport
from portlint.errors import EXIT_FINDINGS, ConfigError, PortlintError, first_line, suggest
from portlint.graph_view import display_names
from portlint.in_memory import check_in_memory, view_of
from portlint.model_io import loaded
from portlint.model_io.loaded import copy_model
from portlint.model_io.weightless import (
    checkable,
    gigabytes,
    light_copy,
    model_size,
    reattach,
    save_for_proof,
    staged,
    too_big,
)
from portlint.model_io.write import scratch_folder
from portlint.numerics import Deviation, NumericsError, compare, random_inputs, run
from portlint.passes.base import Pass, PassContext, PassResult, Semantics
from portlint.passes.registry import PASSES, get_pass
from portlint.passes.surgery import to_graph, to_model
from portlint.target import Target

__all__ = [
    "FixError",
    "FixOutcome",
    "FixRequest",
    "Owned",
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
    beside: Path | None = None
    """Where a big model is staged for onnxruntime to prove it (``weightless.staged``): a
    hidden folder beside this path (the output), which the next write to it removes should
    the run be killed. None: the system's temporary folder."""

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


class Owned:
    """A model handed to ``fix_model`` for keeps: the caller holds no other reference to it.

    ``fix`` may then name its nodes in place and let it go once a pass has replaced it, so
    that a big model's weights are held twice only while a pass builds its new model.
    """

    def __init__(self, model: onnx.ModelProto):
        self._model: onnx.ModelProto | None = model

    def take(self) -> onnx.ModelProto:
        model, self._model = self._model, None
        if model is None:
            raise ValueError("this model was handed over already")
        return model


def fix_model(
    model: onnx.ModelProto | Owned, target: Target, request: FixRequest = FixRequest()
) -> FixOutcome:
    """Run the planned passes one by one, verifying each; raise ``FixError`` on a broken promise.

    Unnamed (or doubly named) nodes first get the names ``check`` shows for them, so that
    findings, pass reports and the written model all speak of the same nodes. The model
    given is left as it is, unless it is handed over as ``Owned``; then ``before_model`` is
    its copy without weights, and so are the models of steps a later step replaced.
    """
    owned = isinstance(model, Owned)
    given = model.take() if isinstance(model, Owned) else model
    del model
    chosen = _considered(request)
    shapes, config = dict(request.input_shapes), request.config
    before_report = check_in_memory(given, target, None, config)  # the models as they are
    before_model = light_copy(given) if owned else given
    prover = _Prover(given, shapes, request.allow_unverified, request.beside)
    try:
        named = not _unnamed(given)
        current, tail, steps = _named(given, in_place=owned), None, []
        del given
        # a check of the current model, kept while it stays current: passes' ``ctx.report``
        known = (current, before_report) if named and not shapes else None
        for item, fixed_reason in chosen:
            ctx = request.context(current, target)  # ``wanted`` only reads it
            if known is not None and known[0] is current:
                ctx.report = known[1]
            reason = fixed_reason or _guarded(item, item.wanted, ctx)
            if "report" in vars(ctx):
                known = (current, ctx.report)
            if reason is None:
                continue
            step = Step(item, reason)
            started = time.perf_counter()
            if item.edits_in_place:
                ctx.model = copy_model(current)
            step.result = _guarded(item, item.run, ctx)
            del ctx  # the pass's copy of the weights, if it had one
            if step.changed:
                step.result.model = _guarded(item, _tidy, step.result.model)
                _validate(step.result.model, item, current)
                if step.result.tail is not None:
                    _validate(step.result.tail, item, current, "its tail model")
                cut_from = current if item.semantics is Semantics.INTERFACE else None
                current, known = step.result.model, None
                big = staged(current)
                if owned:  # let the replaced model go before the new one is proven
                    _keep_structure_only(steps)
                    if big:  # graphsurgeon's graphs hold its tensors in reference cycles
                        gc.collect()
                prover.prove(step, cut_from)
                del cut_from
                if big:
                    step.verification += f"; {STRUCTURE_WITHOUT_WEIGHTS}"
                if step.result.tail is not None:
                    tail = _single_cut(step.result.tail, tail)
            step.seconds = time.perf_counter() - started
            steps.append(step)
    finally:
        prover.close()
    if known is not None and known[0] is current and not shapes:
        after_report = known[1]
    else:
        after_report = check_in_memory(current, target, None, config)
    return FixOutcome(before_model, current, tail, steps, before_report, after_report)


STRUCTURE_WITHOUT_WEIGHTS = (
    "its structure was checked without the weights (onnx.checker, strict shape inference)"
)


def _keep_structure_only(steps: list[Step]) -> None:
    """The last changed step's model is about to be replaced: keep it without weights."""
    for step in reversed(steps):
        if step.changed and step.result is not None:
            step.result.model = light_copy(step.result.model)
            return


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


def _unnamed(model: onnx.ModelProto) -> bool:
    names = display_names(list(model.graph.node))
    return any(node.name != name for node, name in zip(model.graph.node, names, strict=True))


def _named(model: onnx.ModelProto, in_place: bool = False) -> onnx.ModelProto:
    if not _unnamed(model):
        return model
    names = display_names(list(model.graph.node))
    named = model if in_place else copy_model(model)
    for node, name in zip(named.graph.node, names, strict=True):
        node.name = name
    return named


def _tidy(model: onnx.ModelProto) -> onnx.ModelProto:
    """Graph cleanup and topological sort after every pass, whatever the pass did.

    graphsurgeon works on the model without its weights (its export would copy every one).
    A model it leaves as it is (passes that export through ``to_model`` are tidy already)
    is returned as it is; otherwise the tidied graph gets the weights back.
    """
    light = light_copy(model)
    tidied = to_model(to_graph(light), light)
    if tidied == light:
        return model
    return reattach(tidied, model)


def _single_cut(new: onnx.ModelProto, old: onnx.ModelProto | None) -> onnx.ModelProto:
    """The run's one tail model: a second cut in the same run is refused, not composed."""
    if old is None:
        return new
    raise FixError("the graph was cut twice in one run; run strip-postprocess once")


def _validate(
    model: onnx.ModelProto, item: Pass, given: onnx.ModelProto, what: str = "the model"
) -> None:
    """Full onnx.checker and strict shape inference: a pass must leave a valid model.

    The checker serialises the model; one beyond the protobuf limit (or big enough that this
    costs more than it tells, ``weightless.staged``) is checked without its weights (they
    become graph inputs of their type and shape), and the written file gets the full checker
    too (``api.fix_path``). When the model the pass was ``given`` fails the
    checker too, the message says so.
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
    if staged(model):
        model = checkable(light_copy(model))
        if too_big(model):  # too big even without its weights: left to the written file
            return None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        return first_line(exc)
    return None


class _Prover:
    """Holds the seeded inputs and the current model's outputs, and proves each step.

    A model beyond the protobuf limit cannot go to onnxruntime from memory; it is staged in
    a file with its weights as external data (streamed, not copied), which onnxruntime maps.
    So is any model with weights enough to make that the cheaper way (``weightless.staged``).
    """

    def __init__(
        self,
        model: onnx.ModelProto,
        shapes: Mapping[str, list[int]],
        allow_unverified: bool,
        beside: Path | None = None,
    ):
        self.feeds: dict[str, np.ndarray] = {}
        self.reference: dict[str, np.ndarray] | None = None
        self.allow_unverified = allow_unverified
        self.unprovable = ""
        self.beside = beside
        self.scratch: Path | None = None
        self.staged = ""  # how the last run got a big model to onnxruntime
        try:
            self.feeds = random_inputs(model, shapes)
            self.reference = self._run(model, self.feeds)
        except NumericsError as exc:
            self.unprovable = str(exc)
        except BaseException:  # interrupted: fix_model's cleanup never sees this prover
            self.close()
            raise

    def close(self) -> None:
        """Remove the folder big models were staged in."""
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def _run(
        self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] = ()
    ) -> dict[str, np.ndarray]:
        if not staged(model):
            return run(model, feeds, list(outputs) or None)
        size = model_size(model)
        folder = None
        try:
            if self.scratch is None:
                self.scratch = scratch_folder(self.beside)
            folder = Path(tempfile.mkdtemp(dir=self.scratch))
            path = save_for_proof(model, folder, outputs)
        except (OSError, ValueError) as exc:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            if size < loaded.PROTOBUF_LIMIT:  # it can still go from memory
                return run(model, feeds, list(outputs) or None)
            raise NumericsError(_too_big_text(size, first_line(exc))) from exc
        try:
            values = run(path, feeds, list(outputs) or None)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        past = ", past the 2 GB protobuf limit" if size >= loaded.PROTOBUF_LIMIT else ""
        self.staged = (
            f"onnxruntime ran it from a staged file with its weights as external data (the "
            f"model is {gigabytes(size)}{past})"
        )
        return values

    def prove(self, step: Step, cut_from: onnx.ModelProto | None = None) -> None:
        """Prove ``step``; an interface-changing one needs the model it cut (``cut_from``)."""
        result = step.result
        assert result is not None
        if self.reference is None:
            self._unproven(step)
            return
        semantics = step.pass_.semantics
        self.staged = ""
        try:
            if semantics is Semantics.INTERFACE:
                assert cut_from is not None
                self._prove_cut(step, cut_from)
            else:
                outputs = self._run(result.model, self.feeds)
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
        if self.staged:
            step.verification += f"; {self.staged}"

    def _unproven(self, step: Step) -> None:
        """A promise that cannot be checked is not written unless the user accepts that."""
        if step.pass_.semantics is not Semantics.APPROXIMATE and not self.allow_unverified:
            raise FixError(
                f"pass {step.pass_.name} cannot be proven: {self.unprovable}; nothing written "
                "(--allow-unverified writes it unproven)"
            )
        step.verification = f"NOT VERIFIED numerically: {self.unprovable}"

    def _prove_cut(self, step: Step, cut_from: onnx.ModelProto) -> None:
        """Head outputs must equal the cut tensors, and tail(head(x)) the old outputs."""
        result = step.result
        assert result is not None and self.reference is not None
        cut = [o.name for o in result.model.graph.output]
        original = self._run(cut_from, self.feeds, [*self.reference, *cut])
        head = self._run(result.model, self.feeds)
        step.head_deviations = compare({name: original[name] for name in cut}, head)
        self._require_exact(step, step.head_deviations, "kept tensor")
        if result.tail is not None:
            composed = self._run(result.tail, {**self.feeds, **head})  # may read inputs too
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


def _too_big_text(size: int, reason: str) -> str:
    return (
        f"the model is {gigabytes(size)}, above onnxruntime's 2 GB in-memory limit, and could "
        f"not be staged in a file for it ({reason})"
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

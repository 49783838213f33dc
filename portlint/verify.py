"""Set portlint's prediction beside what the real compiler did, and say where they differ.

Pure: it takes a ``TargetReport`` (what ``check`` predicted) and a ``CompileResult`` (what the
toolchain did) and lists every disagreement with the profile fact involved, so a user knows
whether to trust the verdict and a maintainer knows which line of which profile to fix.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx

from portlint.engine import DOES_NOT_COMPILE, RUNS, RUNS_WITH_FALLBACK, TargetReport
from portlint.findings import Finding
from portlint.graph_view import display_names
from portlint.target import Target
from portlint.toolchains import TOOLCHAINS, covered_targets, for_target
from portlint.toolchains.base import CONVERTER_FAILED, CPU, NPU, CompileResult, Toolchain
from portlint.toolchains.run import (
    ToolchainError,
    compile_model,
    normalise_options,
    require_interpreter,
)

CONVERTER_FAILS = "converter fails"
CONVERTS = "converts (the toolchain reports no layer placement)"
CONVERTS_ALL_NPU = "converts, all layers on the NPU"
CONVERTS_WITH_CPU = "converts, some layers on the CPU"
FAILS = "fails"
NO_VERDICT = "no verdict"
SAME_CLASS = {
    RUNS: CONVERTS_ALL_NPU,
    RUNS_WITH_FALLBACK: CONVERTS_WITH_CPU,
    DOES_NOT_COMPILE: FAILS,
}


@dataclass(frozen=True)
class Disagreement:
    """One place where the prediction and the compiler part ways, and the fact to look at."""

    kind: str  # verdict | cpu-not-predicted | npu-not-predicted | refusal-not-predicted | ...
    message: str
    node: str | None = None
    op: str | None = None
    fact: str | None = None  # "profile rk3588: ops.Erf (source rknn-crosscheck-2.5)"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Verification:
    """The prediction, the compiler's verdict and their differences for one model/target."""

    target: Target
    prediction: TargetReport
    result: CompileResult
    disagreements: list[Disagreement] = field(default_factory=list)
    reduced: Any = None  # a portlint.reduce.Reduction when --reduce ran

    @property
    def compiler_verdict(self) -> str:
        if not self.result.has_verdict:
            return NO_VERDICT
        if self.result.outcome == CONVERTER_FAILED:
            return CONVERTER_FAILS
        if not self.result.converts:
            return FAILS
        if not self.result.layers:
            return CONVERTS
        return CONVERTS_WITH_CPU if self.result.cpu_layers else CONVERTS_ALL_NPU

    @property
    def agrees(self) -> bool:
        """Same class of outcome. Layers the toolchain inserted itself (a Reshape around a
        Gemm) are no node of the model, so a CPU placement of only those is no fallback a
        profile could have predicted."""
        verdict = self.compiler_verdict
        if verdict == CONVERTS:  # nothing to say about placement: any "runs" agrees
            return self.prediction.verdict != DOES_NOT_COMPILE
        if verdict == CONVERTS_WITH_CPU and all(x.inserted for x in self.result.cpu_layers):
            verdict = CONVERTS_ALL_NPU if self.prediction.verdict == RUNS else verdict
        return SAME_CLASS[self.prediction.verdict] == verdict


def _op_fact(target: Target, op: str | None) -> str:
    support = target.ops.get(op or "") or target.patterns.get(op or "")
    if support is None:
        fact = target.unsupported_ops
        return (
            f"profile {target.name}: {op} is not listed (unsupported_ops: "
            f"{target.unsupported_effect}, source {fact.source})"
        )
    return (
        f"profile {target.name}: ops.{op} placement {support.placement} (source {support.source})"
    )


def _finding_fact(target: Target, finding: Finding) -> str:
    source = f"source {finding.source.key}" if finding.source else "no source"
    return f"profile {target.name}: {finding.rule} {finding.rule_name} ({source})"


def compare(
    target: Target, prediction: TargetReport, result: CompileResult, ops: Mapping[str, str]
) -> Verification:
    """``ops``: node name -> op type for every node of the model (for the facts named)."""
    found = Verification(target, prediction, result)
    if result.outcome == CONVERTER_FAILED:
        blamed = result.failing_nodes[0] if result.failing_nodes else None
        found.disagreements.append(
            Disagreement(
                "converter",
                f"{result.error}: the model never reached {result.toolchain}, so this is no "
                f"verdict on the {target.name} profile",
                blamed,
                ops.get(blamed or ""),
            )
        )
        return found
    if not result.has_verdict:
        return found
    found.disagreements += _verdict(target, prediction, result, ops)
    if result.converts:
        if any(layer.onnx_node for layer in result.layers):
            found.disagreements += _node_placements(target, prediction, result, ops)
        else:
            found.disagreements += _op_placements(target, prediction, result, ops)
    if not found.disagreements and not found.agrees:
        found.disagreements.append(
            Disagreement(
                "verdict",
                f"portlint predicted '{prediction.verdict}'; {result.toolchain} "
                f"{found.compiler_verdict}",
            )
        )
    return found


def _verdict(
    target: Target, prediction: TargetReport, result: CompileResult, ops: Mapping[str, str]
) -> list[Disagreement]:
    """A failure nobody predicted, or predicted errors the compiler does not confirm."""
    if not result.converts and prediction.verdict != DOES_NOT_COMPILE:
        blamed = list(result.failing_nodes)
        where = f" at {', '.join(repr(n) for n in blamed)}" if blamed else ""
        return [
            Disagreement(
                "refusal-not-predicted",
                f"{result.toolchain} {result.version} {result.outcome}{where} "
                f"({result.stage or 'unknown stage'}: {result.error}); portlint predicted "
                f"'{prediction.verdict}' and no profile fact covers this failure",
                blamed[0] if blamed else None,
                ops.get(blamed[0]) if blamed else None,
                _op_fact(target, ops.get(blamed[0])) if blamed else None,
            )
        ]
    if not result.converts:
        return []
    return [
        Disagreement(
            "error-not-confirmed",
            f"portlint says {finding.rule} ({finding.message}) refuses it, but "
            f"{result.toolchain} {result.version} converts the model",
            finding.location,
            finding.op_type,
            _finding_fact(target, finding),
        )
        for finding in prediction.findings
        if finding.blocks_compile
    ]


def _node_placements(
    target: Target, prediction: TargetReport, result: CompileResult, ops: Mapping[str, str]
) -> list[Disagreement]:
    """Node by node, where the toolchain's layer table names the ONNX node (rknn)."""
    out = []
    compiler_cpu = {layer.onnx_node for layer in result.cpu_layers if layer.onnx_node}
    compiler_npu = {
        layer.onnx_node for layer in result.layers if layer.onnx_node and layer.placement == NPU
    } - compiler_cpu
    places = prediction.placement
    order = {name: i for i, name in enumerate(places)}
    for node in sorted(compiler_cpu, key=lambda n: order.get(n, -1)):
        if places.get(node) == NPU:
            out.append(
                Disagreement(
                    "cpu-not-predicted",
                    f"{result.toolchain} {result.version} runs {node!r} on the CPU; "
                    "portlint predicted the NPU",
                    node,
                    ops.get(node),
                    _op_fact(target, ops.get(node)),
                )
            )
    for node, finding in _cpu_findings(prediction).items():
        if node in compiler_cpu:
            continue
        if node in compiler_npu:
            where = "runs it on the NPU"
        else:
            where = "lists no CPU layer for it (it fused or removed the node)"
        out.append(
            _npu_not_predicted(target, finding, f"{result.toolchain} {result.version}", where)
        )
    return out


def _op_placements(
    target: Target, prediction: TargetReport, result: CompileResult, ops: Mapping[str, str]
) -> list[Disagreement]:
    """Op type by op type, where the toolchain's layers cannot be traced to ONNX nodes (Vela
    sees onnx2tf's TFLite model) but their op types can."""
    out = []
    compiler_cpu = {
        layer.onnx_op for layer in result.cpu_layers if layer.onnx_op and not layer.inserted
    }
    predicted = {ops.get(n) for n, place in prediction.placement.items() if place == CPU}
    tool = f"{result.toolchain} {result.version}"
    for op in sorted(compiler_cpu - predicted):
        out.append(
            Disagreement(
                "cpu-not-predicted",
                f"{tool} runs {op} layers on the CPU; portlint predicted the NPU for every {op}",
                None,
                op,
                _op_fact(target, op),
            )
        )
    seen: set[str] = set()
    for finding in _cpu_findings(prediction).values():
        if finding.op_type in compiler_cpu or finding.op_type in seen:
            continue
        seen.add(finding.op_type or "")
        out.append(
            _npu_not_predicted(target, finding, tool, f"has no {finding.op_type} on the CPU")
        )
    return out


def _cpu_findings(prediction: TargetReport) -> dict[str, Finding]:
    return {f.location: f for f in prediction.findings if f.moves_to_cpu}


def _npu_not_predicted(target: Target, finding: Finding, tool: str, where: str) -> Disagreement:
    return Disagreement(
        "npu-not-predicted",
        f"portlint says {finding.rule} moves {finding.location!r} to the CPU; {tool} {where}",
        finding.location,
        finding.op_type,
        _finding_fact(target, finding),
    )


@dataclass(frozen=True)
class VerifyRequest:
    """How to run the compiler: which interpreter, how long, with which toolchain options."""

    toolchain_python: str | None = None
    configured: Mapping[str, str] = field(default_factory=dict)  # [tool.portlint.toolchains]
    timeout: float = 600.0
    options: Mapping[str, Any] = field(default_factory=dict)
    input_shapes: Mapping[str, list[int]] = field(default_factory=dict)
    reduce: bool = False


def toolchain_for(target: Target) -> tuple[Toolchain, str]:
    """The adapter for the target (or the shipped profile it extends), and that chip."""
    found = for_target(target.name, *target.lineage)
    if found is None:
        raise ToolchainError(
            f"no toolchain adapter builds for {target.name}; portlint verify covers: "
            f"{', '.join(covered_targets())}"
        )
    return found


def check_configured(configured: Mapping[str, str]) -> None:
    for name in configured:
        if name not in TOOLCHAINS:
            raise ToolchainError(
                f"unknown toolchain {name!r} in [tool.portlint.toolchains] "
                f"(known: {', '.join(TOOLCHAINS)})"
            )


def _without_avoided_defects(
    prediction: TargetReport, target: Target, options: Mapping[str, Any], toolchain: Toolchain
) -> TargetReport:
    """The prediction for a build with ``options``: a known defect whose compiler option
    (rknn's ``disable_rules``) the user passes is avoided, so it is no error for this run."""
    given = normalise_options(toolchain, options)

    def avoided(defect_options: Mapping[str, Any] | None) -> bool:
        if not defect_options:
            return False
        for key, value in defect_options.items():
            wanted = value if isinstance(value, list) else [value]
            have = given.get(key)
            have = have if isinstance(have, list) else [have]
            if not set(map(str, wanted)) <= set(map(str, have)):
                return False
        return True

    gone = {f"known defect {d.id}" for d in target.active_defects if avoided(d.options)}
    if not gone:
        return prediction
    kept = [f for f in prediction.findings if not (f.rule == "PL109" and f.limit in gone)]
    blocked = {f.location for f in kept if f.blocks_compile}
    placement = {
        node: "npu" if place == "rejected" and node not in blocked else place
        for node, place in prediction.placement.items()
    }
    rejected = sum(1 for place in placement.values() if place == "rejected")
    npu = sum(1 for place in placement.values() if place == "npu")
    return replace(
        prediction,
        findings=kept,
        placement=placement,
        rejected_nodes=rejected,
        npu_nodes=npu,
    )


def verify_model(
    path: Path,
    target: Target,
    prediction: TargetReport,
    request: VerifyRequest,
    progress: Callable[[str], None] | None = None,
) -> Verification:
    """Run the target's compiler on ``path`` and compare it with ``prediction``; with
    ``request.reduce``, cut a failing model down to the node the failure needs."""
    check_configured(request.configured)
    toolchain, chip = toolchain_for(target)
    python = require_interpreter(toolchain, request.toolchain_python, request.configured).python

    def run(model_path: Path) -> CompileResult:
        return compile_model(
            toolchain,
            model_path,
            target.name,
            python,
            timeout=request.timeout,
            input_shapes=request.input_shapes,
            options=request.options,
            chip=chip,
        )

    prediction = _without_avoided_defects(prediction, target, request.options, toolchain)
    if progress:
        progress(f"running {toolchain.display_name} for {target.name}")
    result = run(path)
    model = onnx.load(str(path), load_external_data=False)
    names = display_names(list(model.graph.node))
    ops = {name: node.op_type for name, node in zip(names, model.graph.node, strict=True)}
    found = compare(target, prediction, result, ops)
    if request.reduce and result.has_verdict and not result.converts:
        from portlint.model_io.load import load_for_fix
        from portlint.reduce import reduce_failure

        def run_in_memory(candidate: onnx.ModelProto) -> CompileResult:
            with tempfile.TemporaryDirectory(prefix="portlint-reduce-") as folder:
                candidate_path = Path(folder) / "candidate.onnx"
                onnx.save(candidate, candidate_path)
                return run(candidate_path)

        full = load_for_fix(path)[0]
        found.reduced = reduce_failure(full, names, run_in_memory, result.signature(), progress)
    return found

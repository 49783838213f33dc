"""Cut a failing model down to the smallest sub-model that fails the same way.

A compiler that crashes on a 300-node export says little about why; the sub-model that
still crashes the same way names the node and the pattern around it, and is what a vendor
wants in a bug report. Two bisections, so the number of compiler runs grows with
log(nodes), not nodes:

1. **prefix**: over the nodes in topological order, the shortest prefix whose sub-model
   (outputs: every tensor the prefix hands on to the rest) still fails. Its last node is
   the culprit: the failure needs it.
2. **inputs**: keeping only the culprit and its ancestors, the latest cut point such that
   the sub-model fed at that point (the cut tensors become graph inputs, typed from shape
   inference) still fails the same way.

"The same way" is ``CompileResult.signature()``: stage, exception type and (where the
toolchain names one) the fuse rule, with names and numbers blanked. Each candidate is built
with ``onnx.utils.Extractor``; identical candidates are compiled once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import onnx
from onnx.utils import Extractor

from portlint.graph_view import display_names
from portlint.model_io.loaded import copy_model
from portlint.passes.surgery import keep_model_fields
from portlint.toolchains.base import CompileResult

Compile = Callable[[onnx.ModelProto], CompileResult]
FLOAT_TYPES = frozenset(
    {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
)


@dataclass
class Reduction:
    """What the reduction found."""

    model: onnx.ModelProto  # the smallest failing sub-model
    culprit: str  # node name (as check shows it) whose inclusion makes the model fail
    culprit_op: str
    nodes: list[tuple[str, str]]  # (name, op) of the reduced model, in order
    inputs: list[str]
    outputs: list[str]
    signature: str
    result: CompileResult  # the compiler on the reduced model
    runs: int  # compiler runs it took (cache hits not counted)
    steps: list[str] = field(default_factory=list)

    @property
    def pattern(self) -> str:
        """The op sequence around the culprit, e.g. ``Reshape → Softmax → Conv → Reshape``."""
        ops = [op for _, op in self.nodes if op not in ("Constant",)]
        return " → ".join(ops[-8:])


class _Graph:
    """Index of the model's nodes and tensors for building sub-models."""

    def __init__(self, model: onnx.ModelProto, names: Sequence[str]):
        self.model = onnx.shape_inference.infer_shapes(model)
        self.extractor = Extractor(self.model)
        graph = self.model.graph
        self.nodes = list(graph.node)
        self.names = list(names)
        self.initializers = {t.name for t in graph.initializer}
        self.graph_inputs = [v.name for v in graph.input if v.name not in self.initializers]
        self.graph_outputs = [v.name for v in graph.output]
        self.types = {
            v.name: v.type.tensor_type.elem_type
            for v in (*graph.value_info, *graph.input, *graph.output)
        }
        self.producer = {out: i for i, n in enumerate(self.nodes) for out in n.output if out}
        self.dynamic = self._dynamic()

    def _dynamic(self) -> set[str]:
        """Tensors that depend on a graph input (the rest are constants a compiler folds)."""
        live = set(self.graph_inputs)
        for node in self.nodes:
            if any(name in live for name in node.input if name):
                live.update(o for o in node.output if o)
        return live

    def typed(self, name: str) -> bool:
        return name in self.extractor.value_infos

    def frontier(self, k: int) -> list[str]:
        """Dynamic float tensors made by the first ``k`` nodes and used after them."""
        made = {o for n in self.nodes[:k] for o in n.output if o}
        later = {i for n in self.nodes[k:] for i in n.input if i} | set(self.graph_outputs)
        return [
            o
            for n in self.nodes[:k]
            for o in n.output
            if o in made
            and o in later
            and o in self.dynamic
            and self.typed(o)
            and (self.types.get(o) in FLOAT_TYPES or o in self.graph_outputs)
        ]

    def depths(self, outputs: Sequence[str]) -> dict[int, int]:
        """Each dynamic ancestor of ``outputs`` -> its distance in edges from them (the
        shortest), so cutting at a depth keeps the pattern around the outputs, whichever
        branch each node sits on."""
        depth: dict[int, int] = {}
        frontier = [self.producer[o] for o in outputs if o in self.producer]
        level = 0
        while frontier:
            following = []
            for i in frontier:
                if i in depth:
                    continue
                depth[i] = level
                following.extend(
                    self.producer[name] for name in self.nodes[i].input if name in self.producer
                )
            frontier, level = following, level + 1
        return {
            i: d for i, d in depth.items() if any(o in self.dynamic for o in self.nodes[i].output)
        }

    def ancestors(self, outputs: Sequence[str]) -> list[int]:
        seen: set[int] = set()
        stack = [o for o in outputs if o in self.producer]
        while stack:
            i = self.producer[stack.pop()]
            if i in seen:
                continue
            seen.add(i)
            stack.extend(name for name in self.nodes[i].input if name in self.producer)
        return sorted(seen)

    def inputs_of(self, members: Sequence[int]) -> list[str]:
        """Tensors the member nodes read that no member makes and no initializer holds."""
        made = {o for i in members for o in self.nodes[i].output}
        needed: list[str] = []
        for i in members:
            for name in self.nodes[i].input:
                if name in self.dynamic and name not in made and name not in needed:
                    needed.append(name)
        return needed

    def extract(self, inputs: Sequence[str], outputs: Sequence[str]) -> onnx.ModelProto | None:
        if not outputs or not all(self.typed(n) for n in (*inputs, *outputs)):
            return None
        return self.extractor.extract_model(list(inputs), list(outputs))


def _drop_outputs(
    graph: _Graph,
    outputs: list[str],
    best: onnx.ModelProto,
    fails: Callable[[onnx.ModelProto | None, str], bool],
    limit: int = 8,
) -> tuple[list[str], onnx.ModelProto]:
    """Leave out, one at a time, outputs the failure does not need (up to ``limit`` tries:
    a prefix of a wide network hands on many tensors, most of them unrelated)."""
    for name in list(outputs)[:limit]:
        if len(outputs) == 1:
            break
        rest = [o for o in outputs if o != name]
        candidate = graph.extract(graph.inputs_of(graph.ancestors(rest)), rest)
        if fails(candidate, f"without output {name}"):
            outputs, best = rest, candidate
    return outputs, best


def _fold_constants(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """The model with its constant subgraphs folded by onnxsim (no other rewrites), or None
    when that changes nothing or onnxsim cannot do it."""
    import onnxsim

    try:
        folded, _ = onnxsim.simplify(copy_model(model), check_n=0, perform_optimization=False)
    except Exception:  # onnxsim raises bare RuntimeErrors from C++
        return None
    if len(folded.graph.node) >= len(model.graph.node):
        return None
    keep_model_fields(folded, model)
    return folded


def _key(model: onnx.ModelProto) -> str:
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()


def reduce_failure(
    model: onnx.ModelProto,
    names: Sequence[str],
    compile_model: Compile,
    signature: str,
    progress: Callable[[str], None] | None = None,
) -> Reduction | None:
    """The smallest sub-model of ``model`` whose compile signature is ``signature``.

    ``names``: node names as ``check`` shows them (same order as ``model.graph.node``).
    ``compile_model`` runs the compiler on an in-memory model. None if no sub-model fails
    the same way (the failure needs the whole graph, e.g. a whole-model resource limit).
    """
    cache: dict[str, CompileResult] = {}
    runs = 0
    steps: list[str] = []

    def fails(candidate: onnx.ModelProto | None, what: str) -> bool:
        nonlocal runs
        if candidate is None:
            return False
        key = _key(candidate)
        if key not in cache:
            runs += 1
            if progress:
                progress(f"run {runs}: {what} ({len(candidate.graph.node)} nodes)")
            cache[key] = compile_model(candidate)
        same = cache[key].signature() == signature
        steps.append(f"{what}: {'fails the same way' if same else cache[key].signature()}")
        return same

    folded = _fold_constants(model)
    if folded is not None and fails(folded, "constants folded (onnxsim)"):
        # compilers fold shape arithmetic anyway; without it the cuts follow the real layers
        model, names = folded, display_names(list(folded.graph.node))
    graph = _Graph(model, names)

    def prefix(k: int) -> onnx.ModelProto | None:
        return graph.extract(graph.graph_inputs, graph.frontier(k))

    lo, hi = 0, len(graph.nodes)  # prefix lo passes (nothing), prefix hi fails (the model)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fails(prefix(mid), f"first {mid} of {len(graph.nodes)} nodes"):
            hi = mid
        else:
            lo = mid
    culprit = hi - 1
    # the culprit's own outputs first; a fused pattern may need its siblings (rknn turns two
    # Slices of one tensor into a Split), so fall back to everything the prefix hands on
    outputs = [o for o in graph.nodes[culprit].output if o in graph.dynamic and graph.typed(o)]
    best = graph.extract(graph.inputs_of(graph.ancestors(outputs)), outputs)
    if not fails(best, f"{graph.names[culprit]} and its ancestors"):
        outputs = graph.frontier(hi)
        best = graph.extract(graph.inputs_of(graph.ancestors(outputs)), outputs)
        if not fails(best, f"first {hi} nodes"):
            return None
        outputs, best = _drop_outputs(graph, outputs, best, fails)
    # trim from the inputs: keep the nodes within `depth` edges of the outputs
    depth = graph.depths(outputs)
    lo, hi = -1, max(depth.values(), default=0)  # keeping every depth fails (that is `best`)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        kept = sorted(i for i, d in depth.items() if d <= mid)
        candidate = graph.extract(graph.inputs_of(kept), outputs)
        if fails(candidate, f"{len(kept)} nodes within {mid} edges of the outputs"):
            hi, best = mid, candidate
        else:
            lo = mid
    assert best is not None
    result = cache[_key(best)]
    kept_names = {n.output[0] if n.output else "" for n in best.graph.node}
    nodes = [
        (graph.names[i], graph.nodes[i].op_type)
        for i in range(len(graph.nodes))
        if graph.nodes[i].output and graph.nodes[i].output[0] in kept_names
    ]
    return Reduction(
        best,
        graph.names[culprit],
        graph.nodes[culprit].op_type,
        nodes,
        [v.name for v in best.graph.input],
        [v.name for v in best.graph.output],
        signature,
        result,
        runs,
        steps,
    )

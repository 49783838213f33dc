"""Fold what vendor compilers fold before they judge a graph: every value that follows from
static input shapes and constants.

A raw ``torch.onnx.export`` computes reshape targets, pads, ranges and masks from the input's
shape at run time (Shape → Gather → Div → Unsqueeze → Concat → Reshape). onnx's shape
inference carries such values through a few ops only (Add, Mul, Concat, Gather, Slice, ...),
so one Div, Range or ConstantOfShape leaves every shape after it unknown, and a linter that
judged that graph would call shapes "data-dependent" that no compiler ever sees as such
(rknn-toolkit2, onnx2tf and the Hailo parser all simplify before they look).

So the graph is walked once, in order: a node whose inputs are all known values is computed
with onnx's reference kernels (small outputs only: shape arithmetic, never weights), and a
node whose output shape inference left unknown is inferred again with the values now known,
which is what lets the next Shape node be read. Nothing here reads a weight payload.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from portlint.model_io.loaded import KEEP_CONSTANT_ELEMENTS, NodeTable, keep_limit
from portlint.model_io.validate import constant_source

FOLD_ELEMENTS = KEEP_CONSTANT_ELEMENTS
"""Outputs up to this many elements are computed (shape vectors, pads, small masks); larger
constant subgraphs (a relative-position bias table) keep their shape but not a value."""

NONDETERMINISTIC_OPS = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
    }
)
_SUBGRAPH_TYPES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
EXTERNAL = onnx.TensorProto.EXTERNAL
SHAPE_LIKE_ELEMENTS = 16
SIZED_BY_VALUES = frozenset(
    {"Range", "ConstantOfShape", "Expand", "Tile", "OneHot", "Pad", "Resize", "Upsample"}
)
"""Ops whose output size follows from their inputs' values: run only once inference, given
those values, confirms the output shape the model declares."""
INTEGER_TYPES = frozenset(
    {
        onnx.TensorProto.INT8,
        onnx.TensorProto.INT16,
        onnx.TensorProto.INT32,
        onnx.TensorProto.INT64,
        onnx.TensorProto.UINT8,
        onnx.TensorProto.UINT16,
        onnx.TensorProto.UINT32,
        onnx.TensorProto.UINT64,
    }
)
SHAPE_OPS = frozenset({"Shape", "Size"})
"""Ops that read only their input's shape: constant when that shape is static."""
_STANDARD_DOMAINS = ("", "ai.onnx")


@dataclass
class Folding:
    """What folding learnt: tensors whose shape it made static, and the values it computed."""

    types: dict[str, onnx.TypeProto] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def apply(self, model: onnx.ModelProto) -> None:
        """Write the new shapes into ``model``'s value_info and output types."""
        if not self.types:
            return
        pending = dict(self.types)
        graph = model.graph
        for value in (*graph.value_info, *graph.output):
            found = pending.get(value.name)
            if found is not None:
                value.type.CopyFrom(found)
        known = {v.name for v in (*graph.value_info, *graph.output)}
        for name, value_type in pending.items():
            if name not in known:
                graph.value_info.add(name=name).type.CopyFrom(value_type)


def fold_static_shapes(model: onnx.ModelProto, table: NodeTable | None = None) -> Folding:
    """Compute the values and shapes a shape-inferred model's static shapes determine."""
    table = table or NodeTable.of(model.graph.node)
    kept = {i.name for i in model.graph.initializer if i.data_location != EXTERNAL}
    if not _foldable(table, kept):
        return Folding()
    return _Walk(model).run()


def _foldable(table: NodeTable, constants: set[str]) -> bool:
    """Whether any node computes from constants or a shape: only such a node can make a new
    value or shape known (a Conv/Relu chain has none, and is not walked)."""
    known = constants | {""}
    for op, inputs, outputs in zip(table.ops, table.inputs, table.outputs, strict=True):
        if op in SHAPE_OPS:
            return True
        if op == "Constant":
            known.update(outputs)
        elif inputs and all(name in known for name in inputs):
            return True
    return False


def _static_dims(value_type: onnx.TypeProto | None) -> tuple[int, ...] | None:
    """The dims of a tensor type when every one is a known integer, else None (a 0 read
    from an unset dim is no size: only then are the fields asked which one it is)."""
    if value_type is None:
        return None
    tensor = value_type.tensor_type  # an empty one for sequence and map types
    if not tensor.HasField("shape"):
        return None
    dims = tuple(d.dim_value for d in tensor.shape.dim)
    if 0 in dims and not all(d.HasField("dim_value") for d in tensor.shape.dim):
        return None
    return dims


class _Walk:
    """One pass over the graph in node order, with what is known so far."""

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.nodes = graph.node
        self.opsets = {o.domain or "": o.version for o in model.opset_import}
        self.types: dict[str, onnx.TypeProto] = {}
        for value in (*graph.input, *graph.value_info, *graph.output):
            self.types[value.name] = value.type
        self.dims: dict[str, tuple[int, ...] | None] = {}
        self.sources: dict[str, onnx.TensorProto | onnx.NodeProto] = {}
        self.initializers = {init.name: init for init in graph.initializer}
        for name, init in self.initializers.items():
            self.dims[name] = tuple(init.dims)
            if init.data_location != EXTERNAL:
                self.sources[name] = init  # weights were stripped to external: no value
        self.values: dict[str, np.ndarray] = {}
        self.pending: dict[str, onnx.NodeProto] = {}
        self.large: set[str] = set()
        self.protos: dict[str, onnx.TensorProto] = {}  # values as inference takes them
        self.folding = Folding()
        self.kernels = _Kernels(self.opsets)
        self.schemas: dict[tuple[str, int], onnx.defs.OpSchema | None] = {}

    def run(self) -> Folding:
        live: list[onnx.NodeProto] = []
        for node in self.nodes:
            if node.domain not in _STANDARD_DOMAINS or node.op_type in NONDETERMINISTIC_OPS:
                live.append(node)
                continue
            if node.op_type == "Constant":
                if node.output and self._small_constant(node):
                    self.sources[node.output[0]] = node  # decoded when something reads it
                elif node.output:
                    self.large.add(node.output[0])  # a weight kept in a Constant: never read
                continue
            if any(a.type in _SUBGRAPH_TYPES for a in node.attribute):
                live.append(node)
                continue
            outputs = [o for o in node.output if o]
            if not all(self.static(o) is not None for o in outputs):
                self._infer(node)
            constant = node.op_type in SHAPE_OPS and self._shape_known(node)
            constant = constant or all(not i or self._computable(i) for i in node.input)
            if not constant:
                live.append(node)
            elif not all(self._small(o) for o in outputs):
                self.large.update(outputs)  # a constant, too large to compute: not needed
            elif node.op_type in SHAPE_OPS:
                self._store(node, self._shape_of(node))
            else:
                self.pending.update(dict.fromkeys(outputs, node))  # computed when read
        for node in live:  # the values live nodes read (reshape targets, pads, sizes)
            for name in node.input:
                if name in self.pending:
                    self.value(name)
        return self.folding

    def _computable(self, name: str) -> bool:
        """Whether ``name`` is a constant: known, computable, or too large to compute."""
        return (
            name in self.values
            or name in self.sources
            or name in self.pending
            or name in self.large
            or name in self.initializers
        )

    @staticmethod
    def _small_constant(node: onnx.NodeProto) -> bool:
        source = constant_source(node)
        if isinstance(source, onnx.TensorProto):
            return math.prod(source.dims) <= keep_limit(source.data_type)
        return source is not None  # value_float(s)/value_int(s): a few numbers at most

    def _shape_known(self, node: onnx.NodeProto) -> bool:
        return bool(node.input) and self.static(node.input[0]) is not None

    def static(self, name: str) -> tuple[int, ...] | None:
        if name not in self.dims:
            self.dims[name] = _static_dims(self.types.get(name))
        return self.dims[name]

    def _small(self, name: str) -> bool:
        dims = self.static(name)
        return dims is not None and math.prod(dims) <= FOLD_ELEMENTS

    def _type(self, name: str) -> onnx.TypeProto:
        found = self.types.get(name)
        if found is None:
            init = self.initializers[name]
            found = self.types[name] = onnx.helper.make_tensor_type_proto(init.data_type, init.dims)
        return found

    def value(self, name: str) -> np.ndarray | None:
        """The value of ``name``, computed now (with what it needs first) if it can be.

        An explicit stack, not recursion: a raw export may chain hundreds of shape ops."""
        stack = [name]
        while stack:
            top = stack[-1]
            if top in self.values or not (top in self.sources or top in self.pending):
                stack.pop()
            elif top in self.sources:
                found = _decode(self.sources.pop(top))
                if found is not None:
                    self.values[top] = found
                stack.pop()
            else:
                node = self.pending[top]
                needed = [i for i in node.input if i and i not in self.values]
                waiting = [i for i in needed if i in self.sources or i in self.pending]
                if waiting and len(stack) <= len(self.pending) + len(self.sources):
                    stack.extend(waiting)
                    continue
                for output in node.output:
                    self.pending.pop(output, None)
                if not needed:
                    self._evaluate(node)
                stack.pop()
        return self.values.get(name)

    def _evaluate(self, node: onnx.NodeProto) -> None:
        """Run the node's kernel on its known inputs, once its output size is proven small."""
        if node.op_type in SIZED_BY_VALUES and not self._proven_small(node):
            return
        args = [self.values[i] if i else None for i in node.input]
        self._store(node, self.kernels.run(node, args))

    def _proven_small(self, node: onnx.NodeProto) -> bool:
        """Whether inference, given the input values, agrees with the output shape the model
        declares: a Range or Expand whose declared shape is wrong must not allocate."""
        declared = {o: (self.types.get(o), self.static(o)) for o in node.output if o}
        for o in declared:
            self.dims.pop(o, None)
            self.types.pop(o, None)
        self._infer(node)
        if all(self.static(o) == dims for o, (_, dims) in declared.items()):
            return True
        for o, (value_type, dims) in declared.items():  # keep what the model said
            self.dims[o] = dims
            if value_type is not None:
                self.types[o] = value_type
        return False

    def _learn(self, name: str, value_type: onnx.TypeProto) -> None:
        if self.static(name) is None:
            dims = _static_dims(value_type)
            if dims is not None:
                self.types[name] = self.folding.types[name] = value_type
                self.dims[name] = dims

    def _infer(self, node: onnx.NodeProto) -> None:
        """Infer the node's outputs again, with the values of its inputs that are known."""
        inputs = [i for i in node.input if i]
        if not all(self.static(i) is not None for i in inputs):
            return
        schema = self._schema(node.op_type)
        if schema is None:
            return
        data = {}
        for name in inputs:
            proto = self.protos.get(name)
            if proto is None:
                value = self.value(name) if self._shape_like(name) else self.values.get(name)
                if value is not None:
                    proto = self.protos[name] = numpy_helper.from_array(value, name)
            if proto is not None:
                data[name] = proto
        try:
            inferred = onnx.shape_inference.infer_node_outputs(
                schema, node, {i: self._type(i) for i in inputs}, data
            )
        except Exception:  # onnx raises its own errors (and plain ones) for odd nodes
            return
        for name, value_type in inferred.items():
            self._learn(name, value_type)

    def _store(self, node: onnx.NodeProto, results: list[Any] | None) -> None:
        """Keep the values a node computed, when they have the shapes inference gave them."""
        for name, result in zip(node.output, results or (), strict=False):
            if not name or not isinstance(result, np.ndarray | np.generic):
                continue  # a sequence, or nothing: not a value shape folding uses
            value = np.asarray(result)
            if value.shape != self.static(name):
                continue  # the kernel and shape inference disagree: trust neither
            self.values[name] = self.folding.values[name] = value

    def _shape_like(self, name: str) -> bool:
        """Whether inference may need the value of ``name``: integers (shapes, axes, pads,
        counts) and short vectors (Resize scales). A mask or a bias table is not worth
        computing for the shapes it leads to: their shapes do not depend on their values."""
        dims = self.static(name)
        if dims is not None and math.prod(dims) <= SHAPE_LIKE_ELEMENTS:
            return True
        return self._type(name).tensor_type.elem_type in INTEGER_TYPES

    def _shape_of(self, node: onnx.NodeProto) -> list[np.ndarray] | None:
        """Shape and Size of a tensor whose shape is static, read from that shape."""
        dims = self.static(node.input[0]) if node.input else None
        if dims is None:
            return None
        if node.op_type == "Size":
            return [np.array(math.prod(dims), dtype=np.int64)]
        attrs = {a.name: a.i for a in node.attribute}
        return [np.array(dims[attrs.get("start", 0) : attrs.get("end", len(dims))], np.int64)]

    def _schema(self, op_type: str) -> onnx.defs.OpSchema | None:
        key = (op_type, self.opsets.get("", 0))
        if key not in self.schemas:
            try:
                self.schemas[key] = onnx.defs.get_schema(op_type, key[1], "")
            except onnx.defs.SchemaError:
                self.schemas[key] = None
        return self.schemas[key]


def _decode(source: onnx.TensorProto | onnx.NodeProto) -> np.ndarray | None:
    """An initializer's or a Constant node's value (None for kinds shape folding never
    needs: sparse or string values, or a tensor left in external data)."""
    if isinstance(source, onnx.NodeProto):
        found = constant_source(source)
        if found is None:
            return None
        if isinstance(found, onnx.AttributeProto):
            dtype = np.float32 if found.name.startswith("value_float") else np.int64
            return np.array(onnx.helper.get_attribute_value(found), dtype=dtype)
        source = found
    try:
        return numpy_helper.to_array(source)
    except Exception:  # a malformed payload: validation reports it; folding just skips it
        return None


class _Kernels:
    """onnx's reference implementation of each op, one node at a time.

    ``ReferenceEvaluator`` builds a whole evaluator per call (about 0.3 ms); a raw Swin export
    has thousands of shape nodes, so the op classes are loaded once per op and opset and run
    directly, with the parameters the evaluator would hand them."""

    def __init__(self, opsets: Mapping[str, int]):
        from onnx.reference import ReferenceEvaluator

        self.opsets = opsets
        self.params: dict[str, Any] = {
            "log": lambda *_: None,
            "opsets": dict(opsets),
            "verbose": 0,
            "new_ops": None,
            "existing_functions": {},
            "evaluator_cls": ReferenceEvaluator,
        }
        self.classes: dict[tuple[str, int], Any] = {}

    def run(self, node: onnx.NodeProto, args: list[np.ndarray | None]) -> list[Any] | None:
        from onnx.reference.ops import load_op

        key = (node.op_type, self.opsets.get("", 0))
        try:
            cls = self.classes.get(key)
            if cls is None:
                cls = self.classes[key] = load_op("", *key)
            results = cls(node, self.params).run(*args)
        except Exception:  # an op the reference lacks, or a kernel that refuses its inputs
            return None
        return list(results) if isinstance(results, tuple | list) else [results]

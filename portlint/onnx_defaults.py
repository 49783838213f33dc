"""Attribute values as ONNX semantics define them for a node's opset.

An exported Conv may omit ``strides``, ``dilations``, ``pads`` and even ``kernel_shape``;
vendor documents state limits on the effective values. Resolving defaults here keeps every
rule from repeating (and getting wrong) the spec's defaulting logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

import onnx


class TensorInfo(Protocol):
    """What the defaults need of a tensor: its shape, if known (``graph_view.TensorInfo``;
    declared here so this module stays below the graph view that uses it)."""

    @property
    def shape(self) -> tuple[Any, ...] | None: ...


WINDOWED_OPS = frozenset(
    {"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool", "LpPool"}
)
WEIGHT_INPUT_INDEX = {"Conv": 1, "ConvTranspose": 1, "ConvInteger": 1, "QLinearConv": 3}


ATTRIBUTE_TYPES = frozenset(onnx.AttributeProto.AttributeType.values()) - {0}
_LIST_OF = {
    onnx.AttributeProto.INT: onnx.AttributeProto.INTS,
    onnx.AttributeProto.FLOAT: onnx.AttributeProto.FLOATS,
    onnx.AttributeProto.STRING: onnx.AttributeProto.STRINGS,
}
"""A single value where the schema wants a list of them is read as a one-element list."""


class AttributeTypeError(ValueError):
    """An attribute without a type, or not of the type its op's schema declares."""


@lru_cache(maxsize=512)
def _schema(op_type: str, domain: str, opset: int) -> tuple[dict[str, Any], dict[str, int]]:
    """The op's attribute defaults, and the ``AttributeProto`` type of each of its attributes."""
    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except Exception:
        return {}, {}
    defaults = {}
    for name, attr in schema.attributes.items():
        if attr.default_value.name:
            defaults[name] = _decode(onnx.helper.get_attribute_value(attr.default_value))
    return defaults, {name: int(attr.type) for name, attr in schema.attributes.items()}


def attribute_type_problem(node: onnx.NodeProto, opsets: Mapping[str, int]) -> str | None:
    """'attribute 'strides' has type FLOAT, expected INTS' for the node's first bad attribute."""
    domain = node.domain or ""
    declared = _schema(node.op_type, domain, node_opset(domain, opsets))[1]
    kinds = onnx.AttributeProto.AttributeType
    for attr in node.attribute:
        expected = declared.get(attr.name)
        if attr.type in ATTRIBUTE_TYPES and expected in (None, attr.type, _LIST_OF.get(attr.type)):
            continue
        got = kinds.Name(attr.type) if attr.type in kinds.values() else str(attr.type)
        wanted = f", expected {kinds.Name(expected)}" if expected is not None else ""
        return f"attribute {attr.name!r} has type {got}{wanted}"
    return None


def node_opset(domain: str, opsets: Mapping[str, int]) -> int:
    """The opset a node of ``domain`` is read with ("" and "ai.onnx" are one domain)."""
    return opsets.get(domain, opsets.get("ai.onnx", 1) if domain == "" else 1)


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


_UNSHARED_TYPES = frozenset(
    {
        onnx.AttributeProto.TENSOR,
        onnx.AttributeProto.GRAPH,
        onnx.AttributeProto.SPARSE_TENSOR,
        onnx.AttributeProto.TENSORS,
        onnx.AttributeProto.GRAPHS,
        onnx.AttributeProto.SPARSE_TENSORS,
        onnx.AttributeProto.TYPE_PROTO,
        onnx.AttributeProto.TYPE_PROTOS,
    }
)
"""Attribute types whose values are not worth a cache key (tensors, subgraphs, types)."""


def attributes_key(
    node: onnx.NodeProto,
    opsets: Mapping[str, int],
    tensors: Mapping[str, TensorInfo],
    op_type: str | None = None,
    domain: str | None = None,
    inputs: tuple[str, ...] | None = None,
) -> tuple | None:
    """What ``resolved_attributes`` depends on, as a key: nodes with equal keys resolve to
    equal attributes. None for a node not worth caching (a tensor or subgraph attribute).

    ``op_type``, ``domain`` and ``inputs``: the node's, when the caller has them already.
    """
    blobs = []
    for attr in node.attribute:
        if attr.type in _UNSHARED_TYPES:
            return None
        blobs.append(attr.SerializeToString())
    op_type = node.op_type if op_type is None else op_type
    domain = (node.domain if domain is None else domain) or ""
    weight = None
    if op_type in WINDOWED_OPS and domain == "":
        inputs = tuple(node.input) if inputs is None else inputs
        index = WEIGHT_INPUT_INDEX.get(op_type)
        info = tensors.get(inputs[index]) if index is not None and len(inputs) > index else None
        weight = info.shape if info is not None else None
    return (op_type, domain, node_opset(domain, opsets), tuple(blobs), weight)


def resolved_attributes(
    node: onnx.NodeProto, opsets: Mapping[str, int], tensors: Mapping[str, TensorInfo]
) -> dict[str, Any]:
    """The node's attributes with schema defaults and spatial defaults filled in.

    Raises ``AttributeTypeError`` for an attribute of the wrong type (a TENSOR kernel_shape).
    """
    domain = node.domain or ""
    defaults, declared = _schema(node.op_type, domain, node_opset(domain, opsets))
    values = dict(defaults)
    for attr in node.attribute:
        name, kind = attr.name, attr.type
        expected = declared.get(name, kind)
        if kind not in ATTRIBUTE_TYPES or expected not in (kind, _LIST_OF.get(kind)):
            raise AttributeTypeError(attribute_type_problem(node, opsets))
        if kind in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            values[name] = "<subgraph>"
            continue
        value = _decode(onnx.helper.get_attribute_value(attr))
        values[name] = value if expected == kind else [value]
    if node.op_type in WINDOWED_OPS and domain == "":
        _fill_spatial_defaults(node, values, tensors)
    return values


def _fill_spatial_defaults(
    node: onnx.NodeProto, values: dict[str, Any], tensors: Mapping[str, TensorInfo]
) -> None:
    """Kernel from the weight, and strides/dilations/pads defaults sized to the kernel rank."""
    if "kernel_shape" not in values:
        index = WEIGHT_INPUT_INDEX.get(node.op_type)
        weight = (
            tensors.get(node.input[index])
            if index is not None and len(node.input) > index
            else None
        )
        if weight is not None and weight.shape is not None and len(weight.shape) > 2:
            spatial = weight.shape[2:]
            if all(isinstance(d, int) for d in spatial):
                values["kernel_shape"] = list(spatial)
    kernel = values.get("kernel_shape")
    if not kernel:
        return
    rank = len(kernel)
    values.setdefault("strides", [1] * rank)
    if node.op_type != "AveragePool" or "dilations" in values:
        values.setdefault("dilations", [1] * rank)
    values.setdefault("pads", [0] * (2 * rank))

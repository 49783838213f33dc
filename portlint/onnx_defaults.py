"""Attribute values as ONNX semantics define them for a node's opset.

An exported Conv may omit ``strides``, ``dilations``, ``pads`` and even ``kernel_shape``;
vendor documents state limits on the effective values. Resolving defaults here keeps every
rule from repeating (and getting wrong) the spec's defaulting logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import onnx

if TYPE_CHECKING:
    from portlint.graph_view import TensorInfo

WINDOWED_OPS = frozenset(
    {"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool", "LpPool"}
)
WEIGHT_INPUT_INDEX = {"Conv": 1, "ConvTranspose": 1, "ConvInteger": 1, "QLinearConv": 3}


@lru_cache(maxsize=512)
def _schema_defaults(op_type: str, domain: str, opset: int) -> dict[str, Any]:
    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except Exception:
        return {}
    defaults = {}
    for name, attr in schema.attributes.items():
        if attr.default_value.name:
            defaults[name] = _decode(onnx.helper.get_attribute_value(attr.default_value))
    return defaults


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def resolved_attributes(
    node: onnx.NodeProto, opsets: Mapping[str, int], tensors: Mapping[str, TensorInfo]
) -> dict[str, Any]:
    """The node's attributes with schema defaults and spatial defaults filled in."""
    domain = node.domain or ""
    opset = opsets.get(domain, opsets.get("ai.onnx", 1) if domain == "" else 1)
    values = dict(_schema_defaults(node.op_type, domain, opset))
    for attr in node.attribute:
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            values[attr.name] = "<subgraph>"
            continue
        values[attr.name] = _decode(onnx.helper.get_attribute_value(attr))
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

"""make-static: pin dynamic input dims, so every shape downstream becomes a number.

NPU compilers build one static program: a symbolic batch or image size stops Hailo's and
RKNN's converters, and hides channel counts from every other check. A symbolic batch dim is
pinned to 1 (NPUs run batch 1); any other dynamic dim needs ``--input-shape``. Shape
arithmetic that becomes constant is folded by the ``simplify`` pass that runs next.
"""

from __future__ import annotations

import onnx

from portlint.model_io.weightless import light_copy
from portlint.pass_catalog import pass_info
from portlint.passes.base import PassContext, PassResult, Rewrite

RULES = pass_info("make-static").resolves


def _dims(value: onnx.ValueInfoProto) -> list[onnx.TensorShapeProto.Dimension]:
    return list(value.type.tensor_type.shape.dim)


def _is_static(dim: onnx.TensorShapeProto.Dimension) -> bool:
    return dim.HasField("dim_value") and dim.dim_value > 0


def _pins(model: onnx.ModelProto, given) -> tuple[dict[str, list[int]], list[str]]:
    """The dims to pin per input, and a line for each input that cannot be pinned."""
    initializers = {t.name for t in model.graph.initializer}
    pins, skipped = {}, []
    for value in model.graph.input:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        dims = _dims(value)
        current = [d.dim_value if _is_static(d) else None for d in dims]
        if value.name in given:
            wanted = list(given[value.name])
            clash = [i for i, d in enumerate(current) if d is not None and d != wanted[i]]
            if len(wanted) != len(current) or clash:
                skipped.append(
                    f"input {value.name!r} is {current}: make-static pins dynamic dims only; "
                    f"re-export the model for {wanted}"
                )
            elif wanted != current:
                pins[value.name] = wanted
            continue
        dynamic = [i for i, d in enumerate(current) if d is None]
        if dynamic == [0]:
            pins[value.name] = [1, *current[1:]]
        elif dynamic:
            names = ", ".join(d.dim_param or "?" for d in dims if not _is_static(d))
            skipped.append(
                f"input {value.name!r} has dynamic dims ({names}) other than the batch: "
                f"pin them with --input-shape {value.name}:..."
            )
    return pins, skipped


def run(ctx: PassContext) -> PassResult:
    pins, skipped = _pins(ctx.model, ctx.input_shapes)
    if not pins:
        return PassResult(ctx.model, skipped=skipped)
    model = ctx.model
    inputs = {v.name: v for v in model.graph.input}
    changes = []
    for name, dims in pins.items():
        shape = inputs[name].type.tensor_type.shape
        old = [d.dim_value if _is_static(d) else (d.dim_param or "?") for d in shape.dim]
        shape.ClearField("dim")
        for value in dims:
            shape.dim.add().dim_value = value
        changes.append(f"input {name!r}: shape {old} -> {dims}")
    del model.graph.value_info[:]
    for output in model.graph.output:  # outputs get the shapes the pinned inputs imply
        if output.name in inputs:  # an input passed straight through: it has the pin
            output.type.CopyFrom(inputs[output.name].type)
        else:
            output.type.tensor_type.ClearField("shape")
    light = light_copy(model)  # inference serialises its input: not the weights
    inferred = onnx.shape_inference.infer_shapes(light, strict_mode=True, data_prop=True)
    for output, known in zip(model.graph.output, inferred.graph.output, strict=True):
        output.type.CopyFrom(known.type)
    return PassResult(model, changes, skipped)


def wanted(ctx: PassContext) -> str | None:
    """When the user pinned dims (so a pin that cannot apply is reported), or when the target
    flags the dynamic ones: pinning changes the interface, so not for targets that accept it."""
    if ctx.input_shapes:
        return "input shapes given with --input-shape"
    pins, _ = _pins(ctx.model, ctx.input_shapes)
    if not pins or not ctx.flagged(RULES):
        return None
    return f"dynamic input dims on {', '.join(repr(n) for n in pins)}"


REWRITE = Rewrite(run, wanted)

"""Check an in-memory model: how ``fix`` and its passes see what ``check`` would say."""

from __future__ import annotations

from collections.abc import Mapping

import onnx

from portlint.config import Config
from portlint.engine import TargetReport, check_target, selected_rules
from portlint.graph_view import GraphView, build_view
from portlint.model_io.weightless import light_loaded
from portlint.rule import load_rules
from portlint.target import Target


def view_of(
    model: onnx.ModelProto, input_shapes: Mapping[str, list[int]] | None = None
) -> GraphView:
    """A shape-inferred read-only view of an in-memory model: its weights are neither copied
    nor inferred over; the numerics rules read the ones they need from ``model``."""
    return build_view(light_loaded(model, input_shapes))


def check_in_memory(
    model: onnx.ModelProto,
    target: Target,
    input_shapes: Mapping[str, list[int]] | None = None,
    config: Config | None = None,
) -> TargetReport:
    """What ``check`` says of ``model`` on ``target``: the fixer's before/after yardstick."""
    config = config or Config()
    rules = selected_rules(load_rules(), config)
    return check_target(view_of(model, input_shapes), target, rules, config)

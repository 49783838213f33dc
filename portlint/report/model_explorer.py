"""Node data for Google's Model Explorer: the HTML report's colouring, in its own viewer.

Model Explorer (github.com/google-ai-edge/model-explorer) overlays "node data" on a graph: a
JSON file mapping node ids to values, each value with an optional colour. This writes, for
one model on one target, every live node's placement (``npu``, ``cpu`` or ``rejected``) with
the colour the HTML report uses for it, so both show the same picture.

The format, as read from Model Explorer's source (commit in brackets):

- ``src/ui/src/components/visualizer/common/types.ts`` [026dc29]: ``NodeDataProviderGraphData``
  is ``{name?, results: {nodeKey: NodeDataProviderResultData}, thresholds?, gradient?,
  showExpandedSummaryOnGroupNode?, showLabelCountColumnsInChildrenStatsTable?, ...}``;
  a result is ``{value: any, bgColor?, textColor?}`` and a result's ``bgColor`` overrides
  thresholds and gradient; a key is a node id of the input graph or an output tensor name.
  The two ``show...`` flags "only work with non-numerical (e.g. string) node data values".
- ``src/ui/src/components/visualizer/node_data_provider_dropdown.ts`` [2519d2c],
  ``getNodeDataProviderData``: an uploaded file whose top level has ``results`` applies to the
  graph on screen; any other file is ``{graphId: NodeDataProviderGraphData}``.
- ``src/ui/src/components/visualizer/node_data_provider_extension_service.ts`` [2c8226a]:
  string values are shown as they are, thresholds and gradients apply to numbers only, and a
  result's ``bgColor`` is used as given.
- ``src/server/package/src/model_explorer/node_data_builder.py`` [0609144]: the Python API's
  ``GraphNodeData(results=..., thresholds=..., gradient=...)`` / ``NodeDataResult(value,
  bgColor, textColor)`` that writes the same JSON.

So a file holds one set of values for one graph: one target per file. Several targets (or
models) need one file each, which Model Explorer then offers side by side as separate node
data runs. This writes the graph-less form, so it applies to whatever the ONNX graph is named.

Node ids: Model Explorer has no built-in ONNX adapter; its ONNX support is the
``model-explorer-onnx`` extension (github.com/justinchuby/model-explorer-onnx), whose
``src/model_explorer_onnx/main.py`` [2c0dc6c] builds each node as
``GraphNode(id=onnx_node.name, ...)``, and whose ``torch_utils.py`` keys its own node data by
node name. portlint's keys are the ONNX node names, so named nodes match. Nodes the ONNX file
leaves unnamed (portlint shows them as ``OpType_INDEX``) or names twice (``NAME#INDEX``) are
named differently by the adapter, depending on its version, and stay uncoloured; ``portlint
fix`` writes the names ``check`` shows, so its output matches in full.

Open it with ``pip install model-explorer-onnx`` and ``onnxvis MODEL.onnx
--node_data_paths=MODEL.TARGET.json``, or load the file from the node data menu of the
graph view.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from portlint.engine import ModelReport, TargetReport
from portlint.errors import ConfigError
from portlint.report.html import PLACEMENT_COLOURS, outline_of


def node_data(report: ModelReport, target: TargetReport) -> dict[str, Any]:
    """Model Explorer node data (one graph, no graph-id key) for ``target``'s placement."""
    return {
        "name": f"portlint {target.target.name}: {target.verdict}",
        "results": {
            name: {"value": place, "bgColor": PLACEMENT_COLOURS[place]}
            for name, place in target.placement.items()
        },
        "showExpandedSummaryOnGroupNode": True,
        "showLabelCountColumnsInChildrenStatsTable": True,
    }


def _graph_id(report: ModelReport) -> str:
    """The id the ONNX adapter gives the main graph: its name, else ``<main>``."""
    return outline_of(report).name or "<main>"


def render_model_explorer(reports: Sequence[ModelReport]) -> str:
    """One model on one target as a Model Explorer node data file; more is a usage error.

    The file is the graph-less form, unless a node is named ``results``: the viewer would
    then take the file for the keyed form, so it gets the ``{graphId: ...}`` form instead.
    """
    pairs = [(r, t) for r in reports for t in r.targets]
    if len(pairs) != 1:
        models = len(list(reports))
        raise ConfigError(
            "--format model-explorer writes one model on one target per file (Model Explorer "
            f"node data colours one graph by one set of values); got {models} model(s) and "
            f"{len(pairs)} model/target pair(s): run it once per target, e.g. "
            "-t rk3588 -o model.rk3588.json"
        )
    report, target = pairs[0]
    data: dict[str, Any] = node_data(report, target)
    if "results" in data["results"]:
        data = {_graph_id(report): data}
    return json.dumps(data, indent=2) + "\n"

"""Self-contained HTML report: the graph coloured by where each node runs, per target.

One file that opens from disk with no network at all: CSS and JS are inline (kept as package
data in ``assets/report.css`` and ``assets/report.js``), fonts are the system's, and a
Content-Security-Policy allows nothing but the page's own style and script (by hash), so even a
string that slipped past escaping could not run or load anything.

The graph is laid out here, in Python: a node's layer is the longest path to it from the
graph's sources, nodes within a layer keep the model's order, and the result is an inline
SVG with one ``<g class="node" data-node=NAME data-verdict-TARGET=npu|cpu|rejected>`` per
live node and a path per edge. The page's script only switches which target's verdict
colours the nodes (``?target=NAME`` preselects one, ``?node=NAME`` selects a node) and links
findings and nodes both ways. Folded constant nodes are not drawn (no target ever sees
them); above ``MAX_DRAWN_NODES`` live nodes the graph is left out and the findings remain.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from urllib.parse import urlsplit

from portlint import __version__
from portlint.engine import DOES_NOT_COMPILE, RUNS, ModelReport, TargetReport
from portlint.findings import NODE, TENSOR, Finding
from portlint.graph_outline import GraphOutline, read_outline
from portlint.rule import Severity

MAX_DRAWN_NODES = 3000
"""Above this many live nodes the page shows the findings without the graph."""

PLACEMENTS = ("npu", "cpu", "rejected")
PLACEMENT_LABELS = {"npu": "NPU", "cpu": "CPU fallback", "rejected": "error (rejected)"}
PLACEMENT_COLOURS = {"npu": "#a5d6a7", "cpu": "#ffcc80", "rejected": "#ef9a9a"}
"""Node fill per placement; the Model Explorer node data uses the same colours."""

NODE_WIDTH, NODE_HEIGHT = 184, 32
GAP_X, GAP_Y, MARGIN = 20, 16, 16
_EFFECT_LABELS = {
    "reject": "compile fails",
    "cpu": "runs on the CPU",
    "slow": "slower on the NPU",
    "accuracy": "changes the answers",
}
_PASS_RUNS = {  # how ``portlint fix`` runs a pass of each semantics (see docs/fix.md)
    "exact": "",
    "interface-changing": " --unsafe-fixes",
    "approximate": " --pass {name}",
}


def _e(value: object) -> str:
    """Escape text for an element body or a double-quoted attribute."""
    return escape(str(value), quote=True)


def _prose(text: str) -> str:
    """Escaped rule help, with its `backtick` spans shown as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def target_key(name: str) -> str:
    """A target name as it appears in ``data-verdict-KEY`` (``rk3588@1.6`` -> ``rk3588_1.6``)."""
    return re.sub(r"[^a-z0-9.-]", "_", name.lower())


# --------------------------------------------------------------------------- layout


def layered_layout(
    nodes: Sequence[str], edges: Iterable[tuple[str, str]]
) -> dict[str, tuple[int, int]]:
    """Node -> (layer, position): layer = longest path from a source, position = order.

    ``nodes`` come in the model's order, which also orders each layer. A cycle (not a valid
    ONNX graph) keeps the model's order and ignores the edges that point backwards.
    """
    import networkx as nx  # imported on use: only the HTML report lays graphs out

    order = {name: i for i, name in enumerate(nodes)}
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((a, b) for a, b in edges if a in order and b in order and a != b)
    try:
        sequence = list(nx.lexicographical_topological_sort(graph, key=order.__getitem__))
    except nx.NetworkXUnfeasible:
        sequence = list(nodes)
    layer: dict[str, int] = {}
    for name in sequence:
        layer[name] = max((layer[p] + 1 for p in graph.predecessors(name) if p in layer), default=0)
    rows: dict[int, list[str]] = {}
    for name in nodes:
        rows.setdefault(layer[name], []).append(name)
    return {name: (row, pos) for row, members in rows.items() for pos, name in enumerate(members)}


@dataclass
class _Graph:
    """What the page draws for one model: live nodes, edges between them, element ids."""

    nodes: list[tuple[str, str]] = field(default_factory=list)  # (name, op_type), model order
    edges: list[tuple[str, str]] = field(default_factory=list)
    producers: dict[str, str] = field(default_factory=dict)  # tensor -> live node name
    ids: dict[str, str] = field(default_factory=dict)  # node name -> element id
    note: str = ""


def outline_of(report: ModelReport) -> GraphOutline:
    """The graph ``report`` was made from, for drawing and naming it: the check's outline.

    A report made without the API (``portlint.engine.check_model`` called directly) has
    none; its model is read from the file instead (structure only, no weights).
    """
    return report.graph if report.graph is not None else read_outline(report.path)


def _graph(report: ModelReport, prefix: str) -> _Graph:
    """The nodes the check placed, the edges between them and their element ids."""
    live = set(report.targets[0].placement) if report.targets else set()
    if len(live) > MAX_DRAWN_NODES:
        return _Graph(
            note=f"The graph has {len(live)} live nodes; above {MAX_DRAWN_NODES} it is not "
            "drawn. The findings below are complete."
        )
    from portlint.errors import PortlintError

    try:
        outline = outline_of(report)
    except (PortlintError, OSError) as exc:
        return _Graph(note=f"The graph could not be re-read from {report.path}: {exc}")
    drawn = _Graph()
    drawn.nodes = [(name, op_type) for name, op_type in outline.nodes if name in live]
    drawn.producers = {t: name for t, name in outline.producers.items() if name in live}
    # A model changed on disk since the check: still draw every node the check placed.
    drawn.nodes.extend((name, "?") for name in sorted(live - {name for name, _ in drawn.nodes}))
    drawn.edges = [(a, b) for a, b in outline.edges if a in live and b in live]
    drawn.ids = {name: f"{prefix}-n{i}" for i, (name, _) in enumerate(drawn.nodes)}
    return drawn


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else "\u2026" + text[-(limit - 1) :]


def _svg(graph: _Graph, targets: list[TargetReport], flagged: set[str]) -> str:
    """The layered drawing; ``flagged`` holds the ids of nodes with findings on the first
    target (the script re-marks them when the target changes)."""
    places = layered_layout([n for n, _ in graph.nodes], graph.edges)
    rows: dict[int, int] = {}
    for row, _ in places.values():
        rows[row] = rows.get(row, 0) + 1
    widest = max(rows.values(), default=1)
    width = 2 * MARGIN + widest * NODE_WIDTH + (widest - 1) * GAP_X
    height = 2 * MARGIN + len(rows) * NODE_HEIGHT + max(len(rows) - 1, 0) * GAP_Y

    def corner(name: str) -> tuple[int, int]:
        row, pos = places[name]
        span = rows[row] * NODE_WIDTH + (rows[row] - 1) * GAP_X
        x = (width - span) // 2 + pos * (NODE_WIDTH + GAP_X)
        return x, MARGIN + row * (NODE_HEIGHT + GAP_Y)

    out = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="group" '
        f'aria-label="model graph, {len(graph.nodes)} nodes">',
        '<g class="edges">',
    ]
    for a, b in graph.edges:
        (xa, ya), (xb, yb) = corner(a), corner(b)
        x1, y1 = xa + NODE_WIDTH // 2, ya + NODE_HEIGHT
        x2, y2 = xb + NODE_WIDTH // 2, yb
        bend = max(min((y2 - y1) / 2, 48), 8)
        out.append(
            f'<path class="edge" data-from="{graph.ids[a]}" data-to="{graph.ids[b]}" '
            f'd="M{x1} {y1} C{x1} {y1 + bend:g} {x2} {y2 - bend:g} {x2} {y2}"/>'
        )
    out.append('</g><g class="nodes">')
    first = targets[0]
    for name, op_type in graph.nodes:
        x, y = corner(name)
        verdicts = "".join(
            f' data-verdict-{target_key(t.target.name)}="{_e(t.placement.get(name, "none"))}"'
            for t in targets
        )
        flag = ' data-flagged="1"' if graph.ids[name] in flagged else ""
        out.append(
            f'<g class="node" id="{graph.ids[name]}" data-node="{_e(name)}" '
            f'data-op="{_e(op_type)}" data-verdict="{_e(first.placement.get(name, "none"))}"'
            f'{verdicts}{flag} transform="translate({x} {y})" tabindex="0" role="button">'
            f"<title>{_e(name)} ({_e(op_type)})</title>"
            f'<rect width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="5"/>'
            f'<circle class="flag" cx="{NODE_WIDTH - 8}" cy="8" r="4"/>'
            f'<text class="op" x="8" y="13">{_e(_short(op_type, 24))}</text>'
            f'<text class="name" x="8" y="26">{_e(_short(name, 26))}</text></g>'
        )
    out.append("</g></svg>")
    return "\n".join(out)


# --------------------------------------------------------------------------- findings


def _link(url: str | None, text: str) -> str:
    """A citation link, only for http(s) URLs; anything else (javascript:, data:) is text."""
    if url and urlsplit(url).scheme in ("http", "https"):
        return f'<a href="{_e(url)}" rel="noopener noreferrer" target="_blank">{_e(text)}</a>'
    return _e(text)


def _node_of(finding: Finding, graph: _Graph) -> str | None:
    """The drawn node a finding points at: its node, or the producer of its tensor."""
    if finding.kind == NODE:
        return graph.ids.get(finding.location)
    if finding.kind == TENSOR and finding.location in graph.producers:
        return graph.ids.get(graph.producers[finding.location])
    return None


def _where(finding: Finding, node_id: str | None) -> str:
    what = {"node": "", "tensor": "tensor ", "graph_input": "input "}.get(finding.kind, "")
    label = _e(finding.location)
    if node_id is not None:
        label = (
            f'<a class="node-link" href="#{node_id}" data-node-id="{node_id}">'
            f"<code>{label}</code></a>"
        )
    elif finding.kind != "graph":
        label = f"<code>{label}</code>"
    op = f" ({_e(finding.op_type)})" if finding.op_type else ""
    return f"{what}{label}{op}"


def _passes(rule_code: str) -> list[tuple[str, str]]:
    """(pass name, semantics) of the ``portlint fix`` passes that resolve ``rule_code``."""
    from portlint.errors import PortlintError
    from portlint.pass_catalog import CATALOG
    from portlint.rule import load_rules

    try:
        names = load_rules().get(rule_code).fixes
    except PortlintError:
        return []
    return [(n, CATALOG[n].semantics.value) for n in names if n in CATALOG]


def _finding_item(finding: Finding, element_id: str, node_id: str | None) -> str:
    sev = finding.severity.value
    unverified = "" if finding.verified else ' <span class="tag unverified">unverified</span>'
    details = []
    if finding.actual:
        details.append(f"actual: {_e(finding.actual)}")
    if finding.limit:
        details.append(f"limit: {_e(finding.limit)}")
    if finding.source is not None:
        source = finding.source
        details.append(
            f"source: {_link(source.url, source.key)} {_e(source.title)}"
            + (f" ({_e(source.version)})" if source.version else "")
        )
    passes = _passes(finding.rule)
    fix = ""
    if finding.help or passes:
        fix = f'<details class="f-help"><summary>How to fix</summary>{_prose(finding.help)}'
        if passes:
            names = ", ".join(f"<code>{_e(n)}</code> ({_e(s)})" for n, s in passes)
            fix += f' <span class="passes">Resolved by <code>portlint fix</code>: {names}.</span>'
        fix += "</details>"
    node_attr = f' data-node-id="{node_id}"' if node_id else ""
    return (
        f'<li class="finding sev-{sev}" id="{element_id}" '
        f'data-for-target="{_e(finding.target)}" data-rule="{_e(finding.rule)}"{node_attr}>'
        f'<div class="f-head"><span class="sev">{sev}</span> <code>{_e(finding.rule)}</code> '
        f"{_e(finding.rule_name)} <span class=effect>{_e(_EFFECT_LABELS.get(finding.effect, ''))}"
        f"</span></div>"
        f'<div class="f-where">{_where(finding, node_id)}</div>'
        f'<div class="f-msg">{_e(finding.message)}{unverified}</div>'
        + (f'<div class="f-detail">{" · ".join(details)}</div>' if details else "")
        + (f'<div class="f-note">note: {_e(finding.note)}</div>' if finding.note else "")
        + fix
        + "</li>"
    )


def _fix_rows(report: ModelReport, target: TargetReport) -> list[str]:
    """One row per rule with findings on ``target``: its help and the passes that fix it."""
    by_rule: dict[str, list[Finding]] = {}
    for finding in target.findings:
        by_rule.setdefault(finding.rule, []).append(finding)
    model = shlex.quote(str(report.path))
    rows = []
    for code, findings in sorted(by_rule.items()):
        first = findings[0]
        commands: dict[str, list[str]] = {}
        for name, semantics in _passes(code):
            flags = _PASS_RUNS.get(semantics, " --pass {name}").format(name=name)
            command = f"portlint fix {model} --target {shlex.quote(target.target.name)}{flags}"
            commands.setdefault(command, []).append(
                f"<code>{_e(name)}</code> <span class=tag>{_e(semantics)}</span>"
            )
        items = "".join(
            f"<li>{', '.join(passes)}<br><code class=cmd>{_e(command)}</code></li>"
            for command, passes in commands.items()
        )
        passes = f"<ul class=cmds>{items}</ul>" if items else "<span class=muted>none</span>"
        rows.append(
            f'<tr data-for-target="{_e(target.target.name)}"><td><code>{_e(code)}</code> '
            f"{_e(first.rule_name)}<br><span class=muted>{len(findings)} finding"
            f"{'' if len(findings) == 1 else 's'}</span></td>"
            f"<td>{_prose(first.help) or '<span class=muted>-</span>'}</td><td>{passes}</td></tr>"
        )
    if not rows:
        rows.append(
            f'<tr data-for-target="{_e(target.target.name)}"><td colspan="3" class="muted">'
            f"Nothing to fix on {_e(target.target.name)}.</td></tr>"
        )
    return rows


# --------------------------------------------------------------------------- page


def _verdict_class(verdict: str) -> str:
    return {RUNS: "runs", DOES_NOT_COMPILE: "fails"}.get(verdict, "fallback")


def _matrix(report: ModelReport) -> str:
    rows = []
    for t in report.targets:
        counts = " / ".join(str(t.count(s)) for s in Severity)
        rows.append(
            f'<tr data-row-target="{_e(t.target.name)}"><td><code>{_e(t.target.name)}</code></td>'
            f"<td>{_e(t.target.label)}</td>"
            f'<td class="verdict-{_verdict_class(t.verdict)}">{_e(t.verdict)}</td>'
            f"<td>{t.npu_nodes}/{t.nodes}</td><td>{t.cpu_nodes}</td><td>{t.rejected_nodes}</td>"
            f"<td>{t.partitions}</td><td>{counts}</td></tr>"
        )
    return (
        '<table class="matrix"><thead><tr><th>target</th><th>toolchain</th><th>verdict</th>'
        "<th>NPU nodes</th><th>CPU</th><th>rejected</th><th>partitions</th>"
        "<th>errors / warnings / info</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _model_section(report: ModelReport, index: int) -> str:
    prefix = f"m{index}"
    graph = _graph(report, prefix)
    targets = report.targets
    first = targets[0] if targets else None
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(report.opsets.items()))
    folded = report.node_count - report.live_nodes
    counts = "".join(
        f'<li><span class="swatch {p}"></span>{PLACEMENT_LABELS[p]}: '
        f'<b data-count="{p}">'
        f"{sum(1 for v in first.placement.values() if v == p) if first else 0}</b></li>"
        for p in PLACEMENTS
    )
    items, flagged = [], set()
    for t in targets:
        for j, finding in enumerate(t.findings):
            node_id = _node_of(finding, graph)
            if node_id is not None and t is first:
                flagged.add(node_id)
            element_id = f"{prefix}-{target_key(t.target.name)}-f{j}"
            items.append(_finding_item(finding, element_id, node_id))
        if not t.findings:
            items.append(
                f'<li class="empty" data-for-target="{_e(t.target.name)}">'
                f"No findings on {_e(t.target.name)}.</li>"
            )
    fixes = [row for t in targets for row in _fix_rows(report, t)]
    if graph.nodes:
        drawing = f'<div class="graph-scroll" tabindex="-1">{_svg(graph, targets, flagged)}</div>'
    else:
        drawing = f'<p class="note">{_e(graph.note)}</p>'
    notes = []
    if folded:
        notes.append(f"{folded} folded constant nodes are not drawn.")
    if report.inference_error:
        notes.append(f"Shape inference failed: {_e(report.inference_error)}.")
    if report.unmatched_ignores:
        globs = ", ".join(f"<code>{_e(g)}</code>" for g in report.unmatched_ignores)
        notes.append(f"per-node-ignores entries that matched no finding: {globs}.")
    return f"""<section class="model" id="{prefix}">
<h2><code>{_e(report.path)}</code></h2>
<p class="meta">IR {report.ir_version} · opset {_e(opsets)} · {report.node_count} nodes,
{report.live_nodes} live{" · " + " ".join(notes) if notes else ""}</p>
{_matrix(report)}
<h3>How to fix</h3>
<table class="fixes"><thead><tr><th>rule</th><th>help</th>
<th><code>portlint fix</code> passes that resolve it</th></tr></thead><tbody>
{"".join(fixes)}
</tbody></table>
<ul class="legend counts">{counts}</ul>
<div class="panes">
<div class="graph-pane">{drawing}</div>
<aside class="side">
<div class="node-info" hidden>
<h3>Node <code class="ni-name"></code> <span class="ni-op muted"></span></h3>
<ul class="ni-places"></ul>
<p class="ni-count muted"></p>
<button type="button" class="show-all">Show all findings</button>
</div>
<h3>Findings</h3>
<ol class="findings">
{"".join(items)}
</ol>
</aside>
</div>
</section>"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def render_html(reports: Sequence[ModelReport]) -> str:
    """The whole report as one HTML page (see the module docstring)."""
    reports = list(reports)
    names = list(dict.fromkeys(t.target.name for r in reports for t in r.targets))
    options = "".join(
        f'<option value="{_e(n)}" data-attr="{_e(target_key(n))}">{_e(n)}</option>' for n in names
    )
    legend = "".join(
        f'<li><span class="swatch {p}"></span>{PLACEMENT_LABELS[p]}</li>' for p in PLACEMENTS
    )
    sections = "\n".join(_model_section(r, i) for i, r in enumerate(reports))
    title = reports[0].path.name if len(reports) == 1 else f"{len(reports)} models"
    csp = (
        f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="portlint {_e(__version__)}">
<title>portlint report: {_e(title)}</title>
<style>{_STYLE}</style>
</head>
<body data-target="{_e(names[0]) if names else ""}">
<header class="top">
<h1>portlint report</h1>
<label>Target <select id="pl-target">{options}</select></label>
<ul class="legend">{legend}<li><span class="swatch flagged"></span>has findings</li></ul>
<span class="hint">Click a node for its findings, a finding for its node.</span>
</header>
<main>
{sections}
</main>
<footer>Generated by portlint {_e(__version__)}. Colours: where each node runs on the selected
target, as <code>portlint check</code> placed it.</footer>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def _asset(name: str) -> str:
    """The text of ``assets/NAME``, package data shipped in the wheel: kept as real CSS and
    JS files so editors and linters read them, and inlined into every page."""
    return (resources.files("portlint.report") / "assets" / name).read_text(encoding="utf-8")


_STYLE = (
    "\n:root { color-scheme: light; "
    + " ".join(f"--{p}: {c};" for p, c in PLACEMENT_COLOURS.items())
    + " }\n"
    + _asset("report.css")
)
"""The page's style: the placement colours (shared with Model Explorer), then report.css."""

_SCRIPT = "\n" + _asset("report.js")
"""The page's script (report.js); the CSP allows exactly this text by its hash."""

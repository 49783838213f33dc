"""The visual report: the HTML page and the Model Explorer node data.

The page is checked as text (one node element per live node with each target's verdict,
findings linked to drawn nodes, nothing loaded from the network, model strings escaped) and,
when Debian's Chromium is installed (.ci/run installs it), as a browser sees it: the DOM
after the page's script ran, and a screenshot.
"""

from __future__ import annotations

import json
import re
import shlex
import struct
import subprocess
import zlib
from collections import Counter
from dataclasses import replace
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import numpy as np
import onnx
import pytest
from conftest import FIXTURES, run_check, run_cli
from onnx import TensorProto, helper

from portlint.api import check
from portlint.config import Config
from portlint.engine import ModelReport, check_model
from portlint.errors import ConfigError
from portlint.graph_outline import outline
from portlint.graph_view import build_view
from portlint.model_io.load import load_for_check
from portlint.report import html as html_report
from portlint.report import renderer
from portlint.report.html import PLACEMENT_COLOURS, layered_layout, target_key
from portlint.report.model_explorer import render_model_explorer
from portlint.rule import load_rules
from portlint.target import load_target

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)",
)
YOLO = FIXTURES / "yolov8n.onnx"
EVIL = (
    '"><script>document.body.setAttribute("data-pwned", "1")</script>'
    "<img src=x onerror=\"document.body.setAttribute('data-pwned', '2')\">"
)
GRAPH_DATA_KEYS = {  # NodeDataProviderGraphData in model-explorer's common/types.ts
    "name",
    "results",
    "thresholds",
    "gradient",
    "hideInAggregatedStatsTable",
    "hideInChildrenStatsTable",
    "hideAggregatedStats",
    "showExpandedSummaryOnGroupNode",
    "showLabelCountColumnsInChildrenStatsTable",
}


class Page(HTMLParser):
    """Every start tag of a page, with its attributes, and the ids it defines."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def with_class(self, tag: str, name: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and name in a.get("class", "").split()]

    @property
    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if "id" in a}

    def nodes(self) -> dict[str, dict[str, str]]:
        return {a["data-node"]: a for a in self.with_class("g", "node")}


@pytest.fixture(scope="module")
def yolo() -> ModelReport:
    targets = [load_target("rk3588"), load_target("hailo8")]
    view = build_view(load_for_check(YOLO))
    return check_model(view, YOLO, targets, load_rules(), Config())


@pytest.fixture(scope="module")
def yolo_page(yolo: ModelReport, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "yolov8n.html"
    path.write_text(renderer("html")([yolo]), encoding="utf-8")
    return path


def _evil_model() -> onnx.ModelProto:
    """Relu -> Softmax with names that are markup; hailo8 rejects the Softmax (a finding)."""
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"], name=EVIL),
            helper.make_node("Softmax", ["a"], ["y"], name=EVIL + "</title></svg><script>"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


# --------------------------------------------------------------------------- the page as text


def test_one_node_element_per_live_node_with_every_targets_verdict(
    yolo: ModelReport, yolo_page: Path
) -> None:
    page = Page(yolo_page.read_text(encoding="utf-8"))
    drawn = page.with_class("g", "node")
    assert len(drawn) == yolo.live_nodes == len({a["data-node"] for a in drawn})
    nodes = page.nodes()
    for target in yolo.targets:
        assert set(nodes) == set(target.placement)
        attr = f"data-verdict-{target_key(target.target.name)}"
        assert {n: a[attr] for n, a in nodes.items()} == target.placement
    # Without the script, the page shows the first target.
    assert {n: a["data-verdict"] for n, a in nodes.items()} == yolo.targets[0].placement
    assert len(page.with_class("path", "edge")) >= yolo.live_nodes - 1


def test_findings_link_to_the_drawn_node_they_are_about(yolo: ModelReport, yolo_page: Path) -> None:
    page = Page(yolo_page.read_text(encoding="utf-8"))
    by_id = {a["id"]: a for a in page.with_class("g", "node")}
    items = page.with_class("li", "finding")
    assert len(items) == len(yolo.findings)
    links = [a for t, a in page.tags if t == "a" and "node-link" in a.get("class", "")]
    node_findings = [f for f in yolo.findings if f.kind == "node"]
    assert len(links) == len(node_findings) > 0
    for link, finding in zip(links, node_findings, strict=True):
        assert link["href"] == "#" + link["data-node-id"]
        assert link["data-node-id"] in by_id, link
        assert by_id[link["data-node-id"]]["data-node"] == finding.location
    for item in items:
        assert item["data-for-target"] in {t.target.name for t in yolo.targets}
        if "data-node-id" in item:
            assert item["data-node-id"] in by_id


def test_page_loads_nothing_from_the_network(yolo_page: Path) -> None:
    text = yolo_page.read_text(encoding="utf-8")
    page = Page(text)
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.I)
    assert not re.search(r"<link\b", text, re.I)
    [style] = re.findall(r"<style>(.*?)</style>", text, re.S)
    assert not re.search(r"url\s*\(|@import", style, re.I)
    assert not re.search(r"url\s*\(\s*['\"]?\s*(https?:|//)", text, re.I)
    assert not [t for t, _ in page.tags if t in ("img", "iframe", "object", "embed", "link")]
    # Links are citations (http/https, opened on click) or jumps within the page.
    for tag, attrs in page.tags:
        for name in ("src", "href", "xlink:href", "action", "poster", "srcset"):
            if name in attrs:
                assert tag == "a" and name == "href", (tag, attrs)
                assert attrs[name].startswith(("#", "https://", "http://")), attrs
    [csp] = [a for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert csp["content"].startswith("default-src 'none';")
    assert "unsafe-inline" not in csp["content"]


def test_model_strings_are_escaped(tmp_path: Path) -> None:
    report = run_check(_evil_model(), tmp_path, ["hailo8", "rk3588"])
    assert any(f.location.startswith(EVIL) for f in report.findings)
    text = html_report.render_html([report])
    assert EVIL not in text and "<img" not in text
    page = Page(text)
    assert [t for t, _ in page.tags].count("script") == 1
    assert not [a for _, a in page.tags if any(k.startswith("on") for k in a)]
    assert set(page.nodes()) == set(report.targets[0].placement)
    (tmp_path / "evil.html").write_text(text, encoding="utf-8")


def test_graphs_above_the_limit_keep_their_findings(
    yolo: ModelReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(html_report, "MAX_DRAWN_NODES", 100)
    page = Page(text := html_report.render_html([yolo]))
    assert not page.with_class("g", "node") and "not drawn" in text
    assert len(page.with_class("li", "finding")) == len(yolo.findings)
    assert not [a for t, a in page.tags if t == "a" and "node-link" in a.get("class", "")]


def test_a_model_that_cannot_be_reread_still_reports(yolo: ModelReport, tmp_path: Path) -> None:
    text = html_report.render_html([replace(yolo, path=tmp_path / "gone.onnx")])
    assert "could not be re-read" in text
    assert len(Page(text).with_class("li", "finding")) == len(yolo.findings)


def test_a_checked_model_is_drawn_and_named_without_its_file(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    model = _evil_model()
    model.graph.node[0].name = "results"
    model.graph.name = "main_graph"
    onnx.save(model, path)
    [report] = check(path, targets=["hailo8"]).models
    path.unlink()  # reports use what the check recorded, never the file
    text = html_report.render_html([report])
    assert "could not be re-read" not in text
    assert set(Page(text).nodes()) == set(report.targets[0].placement)
    assert set(json.loads(render_model_explorer([report]))) == {"main_graph"}


def test_fix_suggestions_name_the_passes_that_resolve_each_rule(
    yolo: ModelReport, yolo_page: Path
) -> None:
    text = yolo_page.read_text(encoding="utf-8")
    rules = load_rules()
    for finding in yolo.findings:
        for name in rules.get(finding.rule).fixes:
            assert f"<code>{name}</code>" in text
    command = f"portlint fix {shlex.quote(str(YOLO))} --target hailo8 --unsafe-fixes"
    assert escape(command) in text


def test_the_outline_is_the_live_graph_the_check_placed(yolo: ModelReport) -> None:
    view = build_view(load_for_check(YOLO))
    drawn = outline(view, "main_graph")
    assert drawn.name == "main_graph"
    assert [name for name, _ in drawn.nodes] == list(yolo.targets[0].placement)
    assert len(set(drawn.edges)) == len(drawn.edges) >= yolo.live_nodes - 1
    live = {name for name, _ in drawn.nodes}
    assert {a for edge in drawn.edges for a in edge} <= live
    assert drawn.producers == {o: n.name for n in view.live_nodes() for o in n.outputs if o}


def test_layout_layers_are_longest_paths_and_keep_the_model_order() -> None:
    #  a -> b -> d, a -> c -> d, a -> d, e (isolated), and c listed before b
    places = layered_layout(
        ["a", "c", "b", "d", "e"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("a", "d")]
    )
    assert places == {"a": (0, 0), "e": (0, 1), "c": (1, 0), "b": (1, 1), "d": (2, 0)}
    # A cycle (invalid ONNX) falls back to the model order instead of failing.
    assert layered_layout(["x", "y"], [("x", "y"), ("y", "x")]) == {"x": (0, 0), "y": (1, 0)}


def test_target_keys_are_attribute_safe() -> None:
    assert target_key("rk3588") == "rk3588"
    assert target_key("rk3588@1.6") == "rk3588_1.6"


def test_cli_writes_the_page(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = run_cli("check", str(YOLO), "-t", "rk3588", "-f", "html", "-o", str(out))
    assert result.returncode == 1, result.stderr  # rknn 2.5.0's DFL crash (PL109)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# --------------------------------------------------------------------------- Model Explorer


def test_model_explorer_node_data_covers_every_live_node(yolo: ModelReport) -> None:
    for target in yolo.targets:
        data = json.loads(render_model_explorer([replace(yolo, targets=[target])]))
        assert set(data) <= GRAPH_DATA_KEYS
        # The viewer reads a file as one graph's data when `results` has no `results` key.
        assert isinstance(data["results"], dict) and "results" not in data["results"]
        assert set(data["results"]) == set(target.placement)
        for name, result in data["results"].items():
            assert set(result) <= {"value", "bgColor", "textColor"}
            assert result["value"] == target.placement[name]
            assert result["bgColor"] == PLACEMENT_COLOURS[result["value"]]
            assert re.fullmatch(r"#[0-9a-f]{6}", result["bgColor"])


def test_model_explorer_keys_by_graph_when_a_node_is_named_results(tmp_path: Path) -> None:
    model = _evil_model()
    model.graph.node[0].name = "results"
    model.graph.name = "main_graph"
    report = run_check(model, tmp_path, "hailo8")
    data = json.loads(render_model_explorer([report]))
    assert set(data) == {"main_graph"}
    assert set(data["main_graph"]["results"]) == set(report.targets[0].placement)


def test_model_explorer_wants_one_target_per_file(yolo: ModelReport) -> None:
    with pytest.raises(ConfigError, match="once per target"):
        render_model_explorer([yolo])


# --------------------------------------------------------------------------- in Chromium


def _chromium_command(profile: Path, url: str, *args: str) -> list[str]:
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        *args,
        url,
    ]


@pytest.fixture(scope="module")
def browser(yolo_page: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Every page load the browser tests need, run at once: DOMs (after the script) and a
    screenshot. Parallel runs keep the browser tests within a few seconds."""
    folder = tmp_path_factory.mktemp("chromium")
    evil = run_check(_evil_model(), folder, ["hailo8", "rk3588"])
    evil_page = folder / "evil.html"
    evil_page.write_text(html_report.render_html([evil]), encoding="utf-8")
    shot = folder / "report.png"
    yolo = yolo_page.as_uri()
    runs = {
        "default": (yolo, "--dump-dom"),
        "hailo8": (yolo + "?target=hailo8", "--dump-dom"),
        "node": (yolo + f"?target=hailo8&node={quote(SELECTED)}", "--dump-dom"),
        "evil": (evil_page.as_uri() + "?target=hailo8", "--dump-dom"),
        "screenshot": (
            yolo + "?target=rk3588",
            f"--screenshot={shot}",
            "--window-size=1400,2000",
            "--hide-scrollbars",
        ),
    }
    processes = {
        key: subprocess.Popen(
            _chromium_command(folder / f"profile-{key}", url, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key, (url, *args) in runs.items()
    }
    results: dict[str, object] = {"evil_report": evil, "screenshot": shot}
    for key, process in processes.items():
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        assert process.returncode == 0, f"chromium ({key}) failed: {err[-2000:]}"
        if key != "screenshot":
            results[key], results[key + ":text"] = Page(out), out
    return results


SELECTED = "/model.22/dfl/Softmax"


@needs_chromium
@pytest.mark.parametrize("target", [None, "hailo8"])
def test_browser_colours_nodes_by_the_selected_target(
    yolo: ModelReport, browser: dict, target: str | None
) -> None:
    dom = browser[target or "default"]
    chosen = next(t for t in yolo.targets if t.target.name == (target or "rk3588"))
    [body] = [a for t, a in dom.tags if t == "body"]
    assert body["data-ready"] == "1" and body["data-target"] == chosen.target.name
    nodes = dom.nodes()
    assert len(nodes) == yolo.live_nodes
    assert {n: a["data-verdict"] for n, a in nodes.items()} == chosen.placement
    # The legend shows the script's count of the nodes it coloured.
    counts = Counter(chosen.placement.values())
    text = browser[(target or "default") + ":text"]
    for place in ("npu", "cpu", "rejected"):
        assert re.findall(rf'data-count="{place}">(\d+)<', text) == [str(counts[place])]
    flagged = {a["data-node"] for a in nodes.values() if a.get("data-flagged") == "1"}
    assert flagged == {f.location for f in chosen.findings if f.kind == "node"}
    for item in dom.with_class("li", "finding"):
        hidden = "off-target" in item["class"].split()
        assert hidden == (item["data-for-target"] != chosen.target.name)


@needs_chromium
def test_browser_selects_a_node_and_its_findings(yolo: ModelReport, browser: dict) -> None:
    dom = browser["node"]
    [selected] = [a for a in dom.with_class("g", "node") if "selected" in a["class"].split()]
    assert selected["data-node"] == SELECTED and selected["data-verdict"] == "rejected"
    hot = dom.with_class("path", "hot")
    assert hot and all(selected["id"] in (e["data-from"], e["data-to"]) for e in hot)
    shown = [
        a
        for a in dom.with_class("li", "finding")
        if not {"off-target", "off-node"} & set(a["class"].split())
    ]
    expected = [f for f in yolo.targets[1].findings if f.location == SELECTED]
    assert len(shown) == len(expected) == 1
    assert shown[0]["data-node-id"] == selected["id"]


@needs_chromium
def test_browser_runs_no_model_provided_markup(browser: dict) -> None:
    dom, report = browser["evil"], browser["evil_report"]
    [body] = [a for t, a in dom.tags if t == "body"]
    assert body.get("data-ready") == "1", "the page's own script did not run"
    assert "data-pwned" not in body
    assert not [t for t, _ in dom.tags if t == "img"]
    assert set(dom.nodes()) == set(report.targets[0].placement)


def _read_png(path: Path) -> np.ndarray:
    """The pixels of an 8-bit RGB(A), non-interlaced PNG, as a height x width x 3 array."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8).reshape(height, stride + 1)
    rows = np.zeros((height, stride), np.uint8)
    previous = np.zeros(stride, np.uint8)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:]
        if kind == 0:
            row = line.copy()
        elif kind == 1:
            row = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            row = line + previous
        else:  # average (3) and Paeth (4) depend on the pixel to the left: byte by byte
            out, up = bytearray(line.tobytes()), previous.tobytes()
            for i in range(stride):
                left = out[i - bpp] if i >= bpp else 0
                if kind == 3:
                    out[i] = (out[i] + ((left + up[i]) >> 1)) & 255
                    continue
                corner = up[i - bpp] if i >= bpp else 0
                pa, pb = abs(up[i] - corner), abs(left - corner)
                pc = abs(left + up[i] - 2 * corner)
                guess = left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner
                out[i] = (out[i] + guess) & 255
            row = np.frombuffer(bytes(out), np.uint8)
        rows[y] = previous = row
    return rows.reshape(height, width, bpp)[:, :, :3]


@needs_chromium
def test_browser_screenshot_shows_the_coloured_graph(browser: dict) -> None:
    pixels = _read_png(browser["screenshot"])
    assert pixels.shape == (2000, 1400, 3)
    flat = pixels.reshape(-1, 3)
    assert len(np.unique(flat[::5], axis=0)) > 50, "the screenshot is (nearly) blank"
    fill = {p: int(np.all(flat == _rgb(c), axis=1).sum()) for p, c in PLACEMENT_COLOURS.items()}
    node_area = (html_report.NODE_WIDTH - 4) * (html_report.NODE_HEIGHT - 4)
    assert fill["npu"] > 5 * node_area, fill  # graph nodes, not just the legend
    assert fill["cpu"] > 50 and fill["rejected"] > 50, fill  # the legend swatches


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]

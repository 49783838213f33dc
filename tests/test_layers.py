"""The import-layer contract: portlint's modules form layers that only import downwards.

Each module belongs to exactly one layer; it may import modules of its own layer or of the
layers below it, never above, and no two modules may import each other (directly or through
others), including imports made inside functions and type-only imports. A new module must be
placed in a layer here, which is also the shortest map of the code base for a newcomer.

Profiles sit above the graph view, not below it: a profile's constraints name fields, and a
field is a function over the graph view (``portlint.fields``), declared once with its getter.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path

import networkx as nx
import pytest
from conftest import ROOT

PACKAGE = ROOT / "portlint"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation: errors, files, small shared types",
        (
            "errors",
            "resources",
            "yaml_io",
            "weights",
            "facts",
            "quant_math",
            "onnx_defaults",
        ),
    ),
    ("declarations: names and promises, no graph code", ("pattern_catalog", "pass_catalog")),
    ("model I/O: read, validate, write", ("model_io", "model_io.*")),
    (
        "graph view: what a model is, read-only",
        (
            "graph_view",
            "graph_patterns",
            "patterns",
            "view_patterns",
            "activations",
            "numerics",
            "inputs",
            "fields",
            "predicates",
            "ranges",
            "postprocess",
            "defect_patterns",
            "graph_outline",
        ),
    ),
    (
        "profiles and rules: what the targets and rules say",
        (
            "rule",
            "rule_cases",
            "profile_merge",
            "quant_scheme",
            "target",
            "config",
            "findings",
            "profile_schema",
        ),
    ),
    ("checks: graph view x target -> raw findings", ("checks", "checks.*")),
    ("engine: findings, severities, placement", ("engine", "in_memory")),
    (
        "rewrites, numerics and compilers: fix, compare, verify",
        (
            "passes",
            "passes.*",
            "fixer",
            "simulate",
            "simulate.*",
            "compare",
            "reduce",
            "toolchains",
            "toolchains.*",
            "verify",
            "probe",
            "probe.*",
        ),
    ),
    ("API: what the CLI and Python users call", ("results", "runner", "baseline", "api")),
    (
        "interfaces: reports, docs, command line",
        (
            "report",
            "report.*",
            "docs",
            "profile_reference",
            "validation_doc",
            "cli",
            "cli.*",
            "",
            "__main__",
        ),
    ),
)
"""Lowest first. Patterns are module names relative to ``portlint`` ("" is the package)."""

WORKERS = "toolchains.workers"
"""Run inside the vendor toolchains' own interpreters: they import nothing from portlint."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(path: Path, name: str, known: set[str]) -> Iterator[tuple[str, int]]:
    """(portlint module, line) for every import in ``path``, wherever it is made."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = f"portlint.{package}".rstrip(".").split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            submodules = [f"{module}.{alias.name}" for alias in node.names]
            inside = [s for s in submodules if s.removeprefix("portlint.") in known]
            # ``from portlint.x import module`` imports that module, not (only) the package
            targets = inside if len(inside) == len(submodules) else [module, *inside]
        else:
            continue
        for target in targets:
            if target == "portlint" or target.startswith("portlint."):
                relative = target.removeprefix("portlint").removeprefix(".")
                if relative in known and relative != name:
                    yield relative, node.lineno


def _layer_of(module: str) -> int | None:
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatchcase(module, pattern) for pattern in patterns):
            return index
    return None


def _graph() -> nx.DiGraph:
    modules = _modules()
    known = set(modules)
    graph = nx.DiGraph()
    for name, path in modules.items():
        if name.startswith(WORKERS):
            continue
        graph.add_node(name)
        for target, line in _imported(path, name, known):
            graph.add_edge(name, target, line=line)
    return graph


def test_every_package_is_in_the_wheel() -> None:
    """pyproject lists packages by hand (rules/ and targets/ are mapped into the package)."""
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(["portlint", *p.parent.relative_to(PACKAGE).parts])
        for p in PACKAGE.rglob("__init__.py")
    }
    assert not found - listed, f"add to pyproject.toml's packages: {sorted(found - listed)}"


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _modules() if not m.startswith(WORKERS) and _layer_of(m) is None]
    assert not unplaced, f"place these modules in a layer in tests/test_layers.py: {unplaced}"


def test_imports_only_point_down() -> None:
    upward = []
    for source, target, data in _graph().edges(data=True):
        low, high = _layer_of(source), _layer_of(target)
        if low is not None and high is not None and high > low:
            upward.append(
                f"portlint/{source.replace('.', '/')}:{data['line']} imports {target} "
                f"({LAYERS[low][0].split(':')[0]} -> {LAYERS[high][0].split(':')[0]})"
            )
    assert not upward, "imports that point up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    cycles = [sorted(c) for c in nx.strongly_connected_components(_graph()) if len(c) > 1]
    assert not cycles, f"modules that import each other: {cycles}"


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "toolchains" / "workers").glob("*.py")), ids=lambda p: p.name
)
def test_toolchain_workers_import_nothing_from_portlint(path: Path) -> None:
    known = set(_modules())
    found = list(_imported(path, _module_name(path), known))
    tree = ast.parse(path.read_text(encoding="utf-8"))
    absolute = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("portlint")
    ]
    assert not found and not absolute, f"{path.name} runs in a vendor's interpreter"


def test_the_contract_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an import from the graph view up into the engine is reported."""
    view = PACKAGE / "graph_view.py"
    late = "\n\ndef _late():\n    from portlint import engine\n"
    source = view.read_text(encoding="utf-8") + late
    copy = tmp_path / "graph_view.py"
    copy.write_text(source, encoding="utf-8")
    found = dict(_imported(copy, "graph_view", set(_modules())))
    assert "engine" in found
    assert _layer_of("engine") > _layer_of("graph_view")

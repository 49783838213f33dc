"""``extends:``: a profile built from another by adding and removing facts.

Users derive their board from a shipped target, and version variants (``rk3588@1.6``) are
the newest profile minus what the older toolchain lacked. Merging happens on the raw YAML
data, before validation, so a derived profile is checked exactly like a written-out one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from portlint.yaml_io import Where

MERGE_ONLY_KEYS = {
    "extends": "the profile this one starts from: a target name, or a YAML file next to this one",
    "remove_ops": "op types to drop from the parent's op list (each must be listed there)",
    "remove_constraints": "ids of the parent's constraints to drop (each must exist there)",
}
"""Keys a derived profile may write besides the profile's own; they never reach the loader."""
MERGED_BY_KEY = ("sources", "patterns")
"""Mappings: the child's entries join the parent's, replacing those of the same key."""
APPENDED = ("ops", "constraints", "defects")
"""Lists: the child's entries follow the parent's."""
LINEAGE = "_extends_chain"
"""Set on a merged profile: the names it extends, nearest first (``my-board`` -> rk3588), so
a derived profile still finds the compiler and chip of the profile it came from."""
RawLoader = Callable[[str, Path], tuple[Any, Path]]


def resolve_extends(
    data: Any, path: Path, load_raw: RawLoader, chain: tuple[Path, ...] = ()
) -> Any:
    """Return ``data`` with its ``extends`` chain merged in (parent first)."""
    if not isinstance(data, Mapping) or "extends" not in data:
        return data
    where = Where(path, ("extends",))
    if path in chain:
        raise where.error("profiles extend each other in a cycle")
    parent_data, parent_path = load_raw(str(data["extends"]), path)
    parent = resolve_extends(parent_data, parent_path, load_raw, (*chain, path))
    if not isinstance(parent, Mapping):
        raise where.error(f"{parent_path} is not a profile mapping")
    merged = merge(parent, data, Where(path))
    merged[LINEAGE] = [parent.get("name"), *parent.get(LINEAGE, [])]
    return merged


def merge(parent: Mapping[str, Any], child: Mapping[str, Any], where: Where) -> dict[str, Any]:
    """Child keys replace the parent's, except ``MERGED_BY_KEY`` and ``APPENDED``."""
    merged = dict(parent)
    # Removals apply to what the parent brings, so a child can drop an inherited constraint
    # and restate it under the same id.
    _remove_ops(merged, child.get("remove_ops") or [], where / "remove_ops")
    _remove_constraints(merged, child.get("remove_constraints") or [], where / "remove_constraints")
    parent = dict(merged)
    for key, value in child.items():
        if key in MERGE_ONLY_KEYS or key == LINEAGE:
            continue
        if key in MERGED_BY_KEY:
            merged[key] = {**(parent.get(key) or {}), **(value or {})}
        elif key in APPENDED:
            merged[key] = [*(parent.get(key) or []), *(value or [])]
        else:
            merged[key] = value
    return merged


def _remove_ops(merged: dict[str, Any], names: list[str], where: Where) -> None:
    listed = {n for group in merged.get("ops") or [] for n in group.get("names", [])}
    for name in names:
        if name not in listed:
            raise where.error(f"op {name!r} is not in the parent's op list")
    groups = []
    for group in merged.get("ops") or []:
        kept = [n for n in group.get("names", []) if n not in names]
        if kept:
            groups.append({**group, "names": kept})
    merged["ops"] = groups


def _remove_constraints(merged: dict[str, Any], ids: list[str], where: Where) -> None:
    known = {c.get("id") for c in merged.get("constraints") or [] if isinstance(c, Mapping)}
    for constraint_id in ids:
        if constraint_id not in known:
            raise where.error(f"no constraint with id {constraint_id!r} to remove")
    merged["constraints"] = [
        c
        for c in merged.get("constraints") or []
        if not (isinstance(c, Mapping) and c.get("id") in ids)
    ]

"""A profile that says what the compiler the user has actually does.

``portlint probe --write-profile OUT.yaml``: a user with another toolchain version gets a
profile that ``extends`` the shipped one and changes exactly the facts their compiler
contradicted, each citing the probe run (``kind: probe``) and the evidence file beside it:
ops placed where the compiler placed them, limits the compiler does not enforce removed,
limits it enforces differently restated with the effect it showed. What a probe cannot
settle (the side inside a limit also failing: the true bound is elsewhere) becomes a note.
"""

from __future__ import annotations

import copy
import datetime
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from portlint.errors import ConfigError
from portlint.probe.evidence import Evidence, dump
from portlint.probe.judge import ON_NPU, UNTESTABLE
from portlint.probe.run import ProbeOutcome
from portlint.probe.session import ProbeRun
from portlint.target import Target, load_target, raw_profile

SOURCE_KEY = "probe-{toolchain}-{version}"


def _contradicted(outcomes: Iterable[ProbeOutcome]) -> list[ProbeOutcome]:
    return [o for o in outcomes if o.agrees is False]


def _op_groups(wrong: list[ProbeOutcome], source: str) -> list[dict[str, Any]]:
    by_placement: dict[str, list[str]] = {}
    for o in wrong:
        if o.probe.id.startswith("op:"):
            by_placement.setdefault(o.observed, []).append(o.probe.op)
    groups = []
    for placement, names in sorted(by_placement.items()):
        group: dict[str, Any] = {"source": source, "names": sorted(set(names))}
        if placement != ON_NPU:
            group["placement"] = placement
        groups.append(group)
    return groups


def _constraint_changes(
    wrong: list[ProbeOutcome], target: Target, source: str
) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """(ids to remove, constraints restated with the observed effect, notes)."""
    raw = {c.get("id"): c for c in raw_profile(target).get("constraints") or ()}
    removed, restated, notes = [], [], []
    for o in wrong:
        if o.probe.id.startswith("block:"):
            notes.append(
                f"{o.probe.id}: the compiler {o.observed} where check predicts {o.predicted} "
                f"({o.message or o.result.outcome}); the profile's ops and limits for that "
                "block need a closer look"
            )
            continue
        if not o.probe.id.startswith("limit:"):
            continue
        _, cid, side = o.probe.id.split(":")
        if side == "inside" or cid not in raw:
            notes.append(
                f"{o.probe.id}: the compiler {o.observed} where the profile expects the NPU; "
                f"the limit {cid} is elsewhere than stated ({o.message or o.result.outcome})"
            )
        elif o.observed == ON_NPU:
            removed.append(cid)
        else:
            entry = copy.deepcopy(dict(raw[cid]))
            entry.update(effect=o.observed, source=source)
            entry["verified"] = True
            said = f": {o.message}" if o.message else ""
            entry["note"] = f"probe {o.probe.id}: {o.result.outcome}{said}"
            restated.append(entry)
    return sorted(set(removed)), restated, notes


def derive_profile(
    target: Target,
    outcomes: list[ProbeOutcome],
    name: str,
    toolchain: str,
    version: str,
    evidence_file: str,
) -> dict[str, Any]:
    """The ``extends`` profile for ``name`` that agrees with every judged probe outcome."""
    source = SOURCE_KEY.format(toolchain=toolchain.lower(), version=version)
    wrong = _contradicted(outcomes)
    removed, restated, notes = _constraint_changes(wrong, target, source)
    restated_ids = [c["id"] for c in restated]
    judged = sum(1 for o in outcomes if o.observed != UNTESTABLE)
    profile: dict[str, Any] = {
        "portlint_profile": 1,
        "name": name,
        "extends": target.name,
        "display_name": f"{target.display_name} ({toolchain} {version}, probed)",
        "toolchain": {"name": target.toolchain, "version": version},
        "sources": {
            source: {
                "title": f"portlint probe with {toolchain} {version} ({evidence_file})",
                "url": evidence_file,
                "version": version,
                "date": datetime.date.today().isoformat(),
                "kind": "probe",
                "note": f"{len(outcomes)} probes, {judged} with a verdict, "
                f"{len(wrong)} contradicting {target.name}",
            }
        },
    }
    ops = _op_groups(wrong, source)
    if ops:
        profile["ops"] = ops
    if removed or restated_ids:
        profile["remove_constraints"] = sorted({*removed, *restated_ids})
    if restated:
        profile["constraints"] = restated
    if notes:
        profile["notes"] = [{"text": text, "source": source} for text in notes]
    return profile


def as_yaml(profile: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(profile), sort_keys=False, width=100, allow_unicode=True)


def check_destination(out: Path) -> None:
    """Refuse, before any compiler runs, a profile path that cannot be written."""
    if out.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"{out}: --write-profile needs a .yaml file name")
    if out.is_dir() or not out.parent.is_dir():
        raise ConfigError(f"{out}: no such folder, or a folder itself: give a .yaml file path")


def _write_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)


def write_derived(run: ProbeRun, evidence: Evidence, out: Path) -> list[Path]:
    """Write the derived profile to ``out`` and its evidence beside it; the profile is
    loaded back, so what is written is a profile portlint reads."""
    check_destination(out)
    evidence_path = out.with_name(f"{out.stem}.evidence.yaml")
    profile = derive_profile(
        run.target, run.outcomes, out.stem, run.toolchain, run.version, evidence_path.name
    )
    _write_atomically(evidence_path, dump(evidence))
    _write_atomically(out, as_yaml(profile))
    load_target(str(out))
    return [out, evidence_path]

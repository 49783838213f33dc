"""Recorded probe outcomes: what a compiler version did with each probe of a profile.

One file per target and toolchain version, ``targets/evidence/<target>/<toolchain>-<version>
.yaml``: for each probe its id, the fact it tests, the recipe that rebuilds its model, the
model's hash, what the compiler did (reject / cpu / npu / untestable) and its own words.
Small and readable in a diff; CI rebuilds every model and asks ``check`` the same question
(``tests/test_evidence.py``), so a profile edit that contradicts a compiler fails there.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from portlint.probe.judge import UNTESTABLE
from portlint.probe.recipes import Recipe
from portlint.probe.run import ProbeOutcome
from portlint.resources import data_dir
from portlint.yaml_io import Where, expect_mapping, read_yaml

FORMAT = 1
RECORD_KEYS = ("id", "fact", "recipe", "sha256", "compiler", "outcome", "message", "cpu_layers")
REQUIRED_KEYS = RECORD_KEYS[:6]
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class Record:
    """One probe as the compiler answered it."""

    id: str
    fact: str
    recipe: Recipe
    sha256: str
    compiler: str  # reject | cpu | slow | npu | untestable
    outcome: str  # the adapter's outcome: converts, refuses, crashed, ...
    message: str = ""
    cpu_layers: tuple[str, ...] = ()  # OP:probe or OP:inserted, for each layer on the CPU

    @property
    def op(self) -> str:
        return self.recipe.get("op", "Relu")


@dataclass(frozen=True)
class Evidence:
    """Every recorded probe of one target with one toolchain version."""

    target: str
    toolchain: str
    version: str
    recorded: str
    records: tuple[Record, ...]
    path: Path | None = None

    @property
    def judged(self) -> tuple[Record, ...]:
        return tuple(r for r in self.records if r.compiler != UNTESTABLE)


def evidence_dir() -> Path:
    return data_dir("targets") / "evidence"


def file_name(toolchain: str, version: str) -> str:
    return f"{re.sub(r'[^a-z0-9.]+', '-', toolchain.lower())}-{version}.yaml"


def from_outcomes(
    outcomes: Iterable[ProbeOutcome], target: str, toolchain: str, version: str
) -> Evidence:
    records = tuple(
        Record(
            o.probe.id,
            o.probe.fact,
            o.probe.recipe,
            o.sha256,
            o.observed,
            o.result.outcome,
            " ".join((o.message or "").split())[:MESSAGE_CHARS],
            o.cpu_layers,
        )
        for o in sorted(outcomes, key=lambda o: o.probe.id)
    )
    today = datetime.date.today().isoformat()
    return Evidence(target, toolchain, version, today, records)


def dump(evidence: Evidence) -> str:
    data: dict[str, Any] = {
        "format": FORMAT,
        "target": evidence.target,
        "toolchain": evidence.toolchain,
        "version": evidence.version,
        "recorded": evidence.recorded,
        "probes": [
            {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in vars(r).items()
                if v not in ("", ())
            }
            for r in evidence.records
        ],
    }
    return yaml.safe_dump(
        data, sort_keys=False, width=100, allow_unicode=True, default_flow_style=None
    )


def write(evidence: Evidence, folder: Path, merge: bool = False) -> Path:
    """Write ``evidence`` under ``folder``; with ``merge`` (a run of some probes only), its
    records replace the same probes' in the file there and the others are kept."""
    path = folder / evidence.target / file_name(evidence.toolchain, evidence.version)
    if merge and path.is_file():
        evidence = merged(load(path), evidence)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(evidence), encoding="utf-8")
    return path


def merged(old: Evidence, new: Evidence) -> Evidence:
    records = {r.id: r for r in old.records} | {r.id: r for r in new.records}
    return Evidence(
        new.target,
        new.toolchain,
        new.version,
        new.recorded,
        tuple(records[k] for k in sorted(records)),
    )


def load(path: Path) -> Evidence:
    where = Where(path)
    data = expect_mapping(
        read_yaml(path),
        where,
        ("format", "target", "toolchain", "version", "recorded", "probes"),
        ("format", "target", "toolchain", "version", "probes"),
    )
    if data["format"] != FORMAT:
        raise (where / "format").error(f"expected format {FORMAT}")
    records = []
    for i, entry in enumerate(data["probes"] or ()):
        entry = expect_mapping(entry, where / "probes" / i, RECORD_KEYS, REQUIRED_KEYS)
        values = {k: entry.get(k, "") for k in RECORD_KEYS}
        values["cpu_layers"] = tuple(entry.get("cpu_layers") or ())
        records.append(Record(**values))
    return Evidence(
        str(data["target"]),
        str(data["toolchain"]),
        str(data["version"]),
        str(data.get("recorded", "")),
        tuple(records),
        path,
    )


def shipped(folder: Path | None = None) -> Iterator[Evidence]:
    """Every evidence file under ``folder`` (default: the shipped ``targets/evidence``)."""
    for path in sorted((folder or evidence_dir()).glob("*/*.yaml")):
        yield load(path)


@cache
def recorded() -> tuple[Evidence, ...]:
    """The shipped evidence, read once per process (docs and ``portlint targets`` ask for
    it per profile)."""
    return tuple(shipped())


def recorded_for(target: str, version: str) -> tuple[Evidence, ...]:
    """The shipped evidence of ``target`` recorded with the toolchain ``version``."""
    return tuple(e for e in recorded() if e.target == target and e.version == version)

"""Recorded compiler evidence, replayed without the compiler: the profiles must predict it.

Every probe in ``targets/evidence/`` is rebuilt from its recipe (its hash proves it is the
model the compiler saw) and ``check`` is asked what the compiler will do with it. A profile
edit that contradicts what a recorded compiler version did fails here, naming the probe and
the compiler's own message. Re-record with ``portlint probe -t TARGET --record targets/evidence``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from portlint.probe.evidence import Evidence, Record, load, shipped, write
from portlint.probe.replay import profile_for, replay

EVIDENCE = list(shipped())
RECORDS = [
    pytest.param(evidence, record, id=f"{evidence.target}:{evidence.version}:{record.id}")
    for evidence in EVIDENCE
    for record in evidence.judged
]


def test_evidence_is_recorded() -> None:
    assert EVIDENCE, "no evidence files under targets/evidence"


@pytest.mark.parametrize(("evidence", "record"), RECORDS)
def test_check_predicts_what_the_compiler_did(evidence: Evidence, record: Record) -> None:
    found = replay(record, evidence, profile_for(evidence))
    assert found.problem is None, found.problem


@pytest.mark.parametrize("evidence", EVIDENCE, ids=lambda e: f"{e.target}:{e.version}")
def test_evidence_file_is_well_formed(evidence: Evidence, tmp_path: Path) -> None:
    ids = [r.id for r in evidence.records]
    assert len(ids) == len(set(ids)), "probe ids repeat"
    assert evidence.path is not None and evidence.path.parent.name == evidence.target
    again = load(write(evidence, tmp_path))
    assert again.records == evidence.records


def test_a_profile_that_contradicts_the_record_is_named(tmp_path: Path) -> None:
    """Flip one recorded outcome: the replay names the probe, the fact and both sides."""
    evidence = next(e for e in EVIDENCE if any(r.compiler == "npu" for r in e.judged))
    record = next(r for r in evidence.judged if r.compiler == "npu")
    flipped = Record(**{**vars(record), "compiler": "reject", "message": "refused on purpose"})
    found = replay(flipped, evidence, profile_for(evidence))
    assert found.problem is not None
    assert record.id in found.problem and record.fact in found.problem
    assert "the build fails (refused on purpose); check predicts it runs on the NPU" in (
        found.problem
    )


def test_a_changed_probe_model_is_caught() -> None:
    evidence = EVIDENCE[0]
    record = evidence.judged[0]
    stale = Record(**{**vars(record), "sha256": "0" * 16})
    found = replay(stale, evidence, profile_for(evidence))
    assert found.problem is not None and "not the one recorded" in found.problem

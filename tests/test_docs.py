"""The committed docs are generated from rules/ and targets/; stale docs fail here."""

from __future__ import annotations

from conftest import ROOT

from portlint.docs import GENERATED, render_docs

DOCS = ROOT / "docs"


def test_committed_docs_are_current() -> None:
    pages = render_docs()
    stale = [
        p for p, text in pages.items() if not (DOCS / p).is_file() or (DOCS / p).read_text() != text
    ]
    orphans = [
        p.relative_to(DOCS).as_posix()
        for p in DOCS.glob("*/*.md")
        if p.read_text().startswith(GENERATED) and p.relative_to(DOCS).as_posix() not in pages
    ]
    assert not stale and not orphans, (
        f"docs out of date ({stale + orphans}); run: portlint docs --out docs"
    )


def test_rule_pages_list_the_targets_that_check_them() -> None:
    page = render_docs()["rules/PL220-channel-multiple.md"]
    assert "## Targets that check it" in page and "intel-gna" in page

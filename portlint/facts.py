"""What every profile statement carries: the source it comes from.

Its own module because everything that states facts about a target (profiles, quantization
schemes, findings, reports) needs these two types, and none of them should have to import
the profile loader to get them.
"""

from __future__ import annotations

from dataclasses import dataclass

EVIDENCE_KINDS = {
    "probe": "the compiler itself, run on probe models or exports (portlint probe / verify)",
    "zoo": "a model the vendor's own model zoo ships compiled for the chip",
    "issue": "a public issue or forum thread with the vendor's answer",
    "document": "a vendor document: manual, op table, release notes",
    "third-party": "a third party's test, talk or write-up",
}
"""Where a fact can come from, strongest first: where two kinds disagree, the stronger wins."""

SOURCE_KEYS = {
    "title": "the document's title",
    "url": "where to read it",
    "version": "the version of the document or of the toolchain it describes",
    "date": 'when it was published or read, quoted (`"2024-05-15"`)',
    "kind": "what kind of evidence it is: " + ", ".join(EVIDENCE_KINDS) + " (default document)",
    "note": "what in it backs the profile: pages, tables, caveats",
}


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    url: str
    version: str
    date: str = ""
    note: str = ""
    kind: str = "document"  # one of EVIDENCE_KINDS

    def cite(self) -> str:
        version = f" ({self.version})" if self.version else ""
        return f"{self.title}{version} {self.url}".strip()


@dataclass(frozen=True)
class Fact:
    """A sourced statement: where it comes from, whether a vendor document backs it."""

    source: str
    verified: bool = True
    note: str = ""

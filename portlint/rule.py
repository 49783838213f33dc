"""Rules: what a violation means, how bad it is by default, and how to resolve it.

The knowledge lives in ``rules/PLnnn-<name>.yaml`` (one file per rule); this module only
loads and validates it, so the CLI, the reports and the generated docs all read one text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

from portlint.errors import ProfileError, suggest
from portlint.pass_catalog import passes_resolving
from portlint.resources import data_dir
from portlint.yaml_io import Where, expect_mapping, expect_type, read_yaml

CODE_PATTERN = re.compile(r"^PL\d{3}$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
CATEGORIES = ("ops", "shapes", "quantization", "postprocessing")
STATUSES = ("stable", "preview", "deprecated")
RULE_KEYS = (
    "id",
    "name",
    "severity",
    "category",
    "status",
    "summary",
    "why",
    "check",
    "help",
    "example",
    "references",
)


class Severity(str, Enum):
    """How bad a finding is: what the toolchain does, not how we feel about it."""

    ERROR = "error"  # the vendor compiler refuses it or the board fails
    WARNING = "warning"  # it runs, but the toolchain moves it to the CPU
    INFO = "info"  # it runs on the NPU, slower or less precisely

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]


@dataclass(frozen=True)
class Rule:
    """One rule as declared in its YAML file."""

    code: str
    name: str
    severity: Severity
    category: str
    status: str
    summary: str
    why: str
    check: str
    help: str
    example: str
    references: tuple[str, ...]
    path: Path

    @property
    def label(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def fixes(self) -> tuple[str, ...]:
        """The ``fix`` passes that resolve this rule's findings, in run order."""
        return passes_resolving(self.code)


def _load_rule(path: Path) -> Rule:
    where = Where(path)
    data = expect_mapping(
        read_yaml(path),
        where,
        RULE_KEYS,
        ("id", "name", "severity", "category", "summary", "why", "check"),
    )
    code = expect_type(data["id"], str, where / "id", "a code like PL101")
    if not CODE_PATTERN.match(code):
        raise (where / "id").error(f"rule code {code!r} is not PL followed by three digits")
    if not path.name.startswith(f"{code}-"):
        raise (where / "id").error(f"file name must start with {code}-")
    name = expect_type(data["name"], str, where / "name", "a kebab-case name")
    if not NAME_PATTERN.match(name):
        raise (where / "name").error(f"rule name {name!r} is not kebab-case")
    try:
        severity = Severity(data["severity"])
    except ValueError:
        raise (where / "severity").error("must be error, warning or info") from None
    for key, allowed in (("category", CATEGORIES), ("status", STATUSES)):
        if data.get(key, "stable") not in allowed:
            raise (where / key).error(f"must be one of {', '.join(allowed)}")
    expect_type(data["check"], str, where / "check", "the name of a check")
    return Rule(
        code,
        name,
        severity,
        data["category"],
        data.get("status", "stable"),
        str(data["summary"]).strip(),
        str(data["why"]).strip(),
        data["check"],
        str(data.get("help", "")).strip(),
        str(data.get("example", "")).strip(),
        tuple(data.get("references") or ()),
        path,
    )


class RuleRegistry:
    """All rules, by code and by name; unknown names fail with close suggestions."""

    def __init__(self, rules: list[Rule]):
        self._by_code = {r.code: r for r in sorted(rules, key=lambda r: r.code)}
        self._by_name = {}
        for rule in rules:
            if rule.name in self._by_name:
                other = self._by_name[rule.name]
                raise ProfileError(
                    f"{rule.path}: name {rule.name!r} is already used by {other.code}"
                )
            self._by_name[rule.name] = rule

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)

    def __contains__(self, key: str) -> bool:
        return key.upper() in self._by_code or key in self._by_name

    def get(self, key: str) -> Rule:
        rule = self._by_code.get(key.upper()) or self._by_name.get(key)
        if rule is None:
            raise suggest(key, [*self._by_code, *self._by_name], "rule")
        return rule

    def matching(self, selector: str) -> list[Rule]:
        """Rules a select/ignore entry names: a code prefix (PL2, PL21) or a rule name."""
        if selector in self._by_name:
            return [self._by_name[selector]]
        prefix = selector.upper()
        if re.fullmatch(r"PL\d{0,3}", prefix):
            return [r for c, r in self._by_code.items() if c.startswith(prefix)]
        return []


@lru_cache(maxsize=4)
def load_rules(folder: Path | None = None) -> RuleRegistry:
    """Load every ``PLnnn-*.yaml`` in ``folder`` (default: the shipped rules)."""
    folder = folder or data_dir("rules")
    files = sorted(folder.glob("PL*.yaml"))
    if not files:
        raise ProfileError(f"{folder}: no rule files found (broken installation?)")
    rules = [_load_rule(path) for path in files]
    seen: dict[str, Path] = {}
    for rule in rules:
        if rule.code in seen:
            raise ProfileError(
                f"{rule.path}: rule {rule.code} is also defined in {seen[rule.code]}"
            )
        seen[rule.code] = rule.path
    return RuleRegistry(rules)

"""Target profiles: sourced facts about one NPU and its toolchain, loaded from YAML.

Profiles are data so that anyone holding a vendor document can add or correct a limit
without touching Python. The loader is strict (unknown keys, unknown fields, predicates,
rule codes and source keys are errors naming the file and YAML path) because a typo in a
profile would otherwise silently switch a check off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from portlint.errors import ProfileError, suggest
from portlint.facts import EVIDENCE_KINDS, SOURCE_KEYS, Fact, Source
from portlint.fields import GRAPH, NODE, SCOPES, get_field
from portlint.pattern_catalog import DEFECT_PATTERNS, FUSED_PATTERNS
from portlint.predicates import PREDICATES, parse_operand
from portlint.profile_merge import LINEAGE, resolve_extends
from portlint.quant_scheme import (
    Approximation,
    QuantScheme,
    parse_approximations,
    parse_scheme,
)
from portlint.resources import data_dir
from portlint.rule import RuleRegistry, Severity, load_rules
from portlint.yaml_io import Where, expect_mapping, expect_type, read_yaml

SCHEMA_VERSION = 1
EFFECTS = {"reject": Severity.ERROR, "cpu": Severity.WARNING, "slow": Severity.INFO}
SEVERITY_EFFECT = {v: k for k, v in EFFECTS.items()}
EFFECT_WORDS = {  # how docs and the schema say what an effect means
    "reject": "error: compile fails",
    "cpu": "warning: runs on CPU",
    "slow": "info: slower or less precise",
    "accuracy": "info: changes the answers",
}
PLACEMENTS = {
    "npu": "runs on the NPU (the default)",
    "cpu": "the toolchain runs it on the host CPU (PL102)",
    "slow": "runs on a slow path of the accelerator (PL107)",
    "reject": "the toolchain refuses it; listed so that the refusal is sourced (PL101)",
}
"""Where a listed op runs: the NPU, the host CPU, a slow path of the NPU, or nowhere."""
FACT_KEYS = {
    "source": "the key under `sources` of the document that states this fact",
    "verified": "false when no vendor document backs the fact (reports flag it); default true",
    "note": "free text shown with the fact: the document's wording, caveats",
}
"""What every sourced statement may carry (``Fact``)."""
TOP_KEYS = {
    "portlint_profile": "the version of the profile language: 1",
    "name": "the target name (`--target NAME`): kebab-case, `@version` for an older "
    "toolchain; a shipped profile is named like its file",
    "display_name": "the chip as people write it, shown in reports",
    "vendor": "who makes the chip",
    "status": "`stable`, or `preview` for a profile built from thin sources",
    "toolchain": "the compiler and version the facts hold for",
    "summary": "a paragraph on the chip and toolchain, shown by `portlint targets show`",
    "sources": "the documents the facts cite, by key: every `source:` names one",
    "opset": "the ONNX opset range the toolchain accepts (PL103)",
    "domains": 'the op domains the toolchain accepts, `""` being the default ONNX domain (PL104)',
    "unsupported_ops": "what happens to an op the profile does not list (PL101)",
    "ops": "the ops the toolchain accepts, in sourced groups with a placement",
    "patterns": "multi-node patterns the toolchain fuses into one layer, by name",
    "constraints": "limits on a field of nodes, tensors or the graph, each reported by a rule",
    "partitioning": "how the compiler splits the graph between the NPU and the CPU",
    "defects": "graph patterns that given toolchain versions are known to fail on (PL109)",
    "quantization": "the integer scheme, read by the PL3xx rules and `compare --simulate`",
    "postprocessing": "how the vendor recipe handles a detector's post-processing (informational)",
    "activations": "which activations run natively and which are approximated",
    "notes": "further sourced remarks, shown on the target page (informational)",
    LINEAGE: "set by the loader on a derived profile; never written by hand",
}
CONSTRAINT_KEYS = {
    "id": "a kebab-case name, unique in the profile, for `remove_constraints` in a derived one",
    "exclude_ops": "op types the constraint skips (with `ops: '*'`)",
    "rule": "the code of the rule that reports a violation",
    "ops": "the op types it applies to, or `'*'` for every op (needed in scope node)",
    "scope": "what it is evaluated on (default node)",
    "field": "the quantity it limits (needed unless `table` or `static`)",
    "effect": "what a violation costs (default: the rule's severity)",
    "enforced_by": "who refuses a violation: `compiler` (the default: the vendor's converter or "
    "compiler, which a probe can run) or `runtime` (the on-device runtime, at load or in "
    "wrong results: the converter accepts it, so no conversion can confirm it)",
    **FACT_KEYS,
    "when": "a condition: the constraint applies only where it holds",
    "unless": "a condition: the constraint does not apply where it holds",
    "static": "`true`: every input shape must be static (rule PL201, scope graph)",
    "table": "the allowed combinations of several fields: a list of rows, each a mapping "
    "field → allowed values; a subject passes when one row allows all its values",
    **{name: predicate.doc for name, predicate in PREDICATES.items()},
}
CONSTRAINT_REQUIRED = ("id", "rule", "source")
"""Every constraint has an id so that any of them can be removed by a derived profile."""
ENFORCERS = {
    "compiler": "the vendor's converter or compiler refuses it (what a probe runs)",
    "runtime": "the runtime on the device refuses it at load, or computes something else",
}
CONSTRAINT_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
NAME_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*(?:@[0-9][0-9a-z.]*)?$")
"""Kebab-case, optionally ``@version`` for a toolchain-version variant (``rk3588@1.6``)."""
PARTITION_MODELS = {
    "multi": "any op may run on the CPU while the ops around it stay on the NPU (the default)",
    "single": "one NPU partition: the first op off the NPU sends every later op to the CPU (PL106)",
}


@dataclass(frozen=True)
class OpSupport(Fact):
    placement: str = "npu"
    folds: bool = True
    """False when the toolchain's own constant folding leaves the op in place even where its
    inputs are constants or static shapes (rknn-toolkit2 and ``Size``): ``check`` then judges
    such nodes instead of treating them as folded."""


@dataclass(frozen=True)
class Condition:
    field: str
    predicate: str
    operand: Any


@dataclass(frozen=True)
class Constraint(Fact):
    """A limit on one field of matching nodes or tensors, evaluated by the generic engine."""

    index: int = 0
    rule: str = ""
    ops: frozenset[str] | None = None  # None = every op
    exclude_ops: frozenset[str] = frozenset()
    scope: str = NODE
    field: str | None = None
    predicate: str | None = None
    operand: Any = None
    effect: str | None = None
    when: Condition | None = None
    unless: Condition | None = None
    id: str = ""  # unique in the profile; ``remove_constraints`` in a derived one names it
    enforced_by: str = "compiler"  # or "runtime": the converter accepts it, the device does not

    def applies_to_op(self, op_type: str) -> bool:
        return (self.ops is None or op_type in self.ops) and op_type not in self.exclude_ops


@dataclass(frozen=True)
class Defect(Fact):
    """A graph pattern that given versions of the toolchain are known to fail on."""

    id: str = ""
    pattern: str = ""
    versions: tuple[str, ...] = ()
    effect: str = "reject"
    what: str = ""
    workaround: str = ""
    options: Mapping[str, Any] | None = None  # toolchain options that avoid it
    passes: tuple[str, ...] = ()  # `portlint fix` passes that remove the pattern
    chips: tuple[str, ...] = ()  # only builds for these chips fail; empty = every chip

    def applies_to(self, version: str, chip: str = "") -> bool:
        return version in self.versions and (not self.chips or chip in self.chips)


DEFECT_KEYS = {
    "id": "a name for the defect, unique in the profile",
    "pattern": "the graph pattern the toolchain fails on",
    "versions": "the toolchain versions that fail",
    "effect": "what the failure costs (default reject)",
    "what": "what goes wrong, in the toolchain's words",
    "workaround": "how to get the model through anyway",
    "options": "toolchain options that avoid it (a mapping, e.g. `disable_rules`)",
    "passes": "`portlint fix` passes that remove the pattern",
    "chips": "only builds for these chips fail; none listed = every chip",
    **FACT_KEYS,
}


@dataclass(frozen=True)
class Target:
    """Everything portlint knows about one NPU, each fact with its source."""

    name: str
    display_name: str
    vendor: str
    status: str
    toolchain: str
    toolchain_version: str
    summary: str
    sources: Mapping[str, Source]
    opset_min: int | None
    opset_max: int | None
    opset_fact: Fact | None
    domains: tuple[str, ...]
    unsupported_ops: Fact
    unsupported_effect: str
    ops: Mapping[str, OpSupport]
    patterns: Mapping[str, OpSupport]
    constraints: tuple[Constraint, ...]
    info: Mapping[str, Any]
    path: Path
    partitioning: str = "multi"
    partitioning_fact: Fact | None = None
    quant_scheme: QuantScheme | None = None  # parsed with the profile (portlint.quant_scheme)
    approximations: tuple[Approximation, ...] = ()
    defects: tuple[Defect, ...] = ()
    lineage: tuple[str, ...] = ()  # the profiles it extends, nearest first

    @property
    def chip(self) -> str:
        """The shipped profile this one is or derives from, without ``@version``: the chip a
        toolchain builds for (``my-board`` extending ``rv1106`` builds for rv1106)."""
        shipped = set(shipped_target_names())
        name = next((n for n in (self.name, *self.lineage) if n in shipped), self.name)
        return name.split("@", 1)[0]

    def facts(self) -> list[Fact]:
        """Every sourced statement the profile makes about the compiler."""
        facts: list[Fact] = [
            *self.ops.values(),
            *self.patterns.values(),
            *self.constraints,
            *self.defects,
            self.unsupported_ops,
        ]
        return facts + [f for f in (self.opset_fact, self.partitioning_fact) if f is not None]

    def evidence_kind(self, fact: Fact) -> str:
        """What kind of evidence backs ``fact``: its source's kind (probe, zoo, ...)."""
        source = self.sources.get(fact.source)
        return source.kind if source is not None else "document"

    @property
    def scheme(self) -> QuantScheme:
        """How the target quantizes, parsed and validated when its profile was loaded (an
        unknown scheme when the profile says nothing)."""
        return self.quant_scheme or QuantScheme(self.name)

    @cached_property
    def unfolded_ops(self) -> frozenset[str]:
        """Ops this toolchain leaves in place even on constant inputs (``folds: false``)."""
        return frozenset(name for name, support in self.ops.items() if not support.folds)

    @property
    def active_defects(self) -> tuple[Defect, ...]:
        """The known defects of the toolchain version (and chip) this profile describes."""
        return tuple(d for d in self.defects if d.applies_to(self.toolchain_version, self.chip))

    def constraints_for(self, rule: str) -> list[Constraint]:
        return [c for c in self.constraints if c.rule == rule]

    def runs_on_npu(self, op: str) -> bool:
        """Whether the profile lists ``op`` (or a fused pattern of that name) on the NPU."""
        support = self.ops.get(op) or self.patterns.get(op)
        return support is not None and support.placement == "npu"

    @property
    def label(self) -> str:
        return f"{self.display_name} ({self.toolchain} {self.toolchain_version})"


def effect_severity(effect: str | None, default: Severity) -> Severity:
    return EFFECTS[effect] if effect else default


def _fact(data: Mapping[str, Any], where: Where, sources: Mapping[str, Source]) -> Fact:
    source = data.get("source")
    if source is None:
        raise where.error("missing required key 'source'")
    if source not in sources:
        raise (where / "source").error(
            f"source {source!r} is not declared under 'sources' (declared: {', '.join(sources)})"
        )
    verified = data.get("verified", True)
    expect_type(verified, bool, where / "verified", "true or false")
    return Fact(source, verified, str(data.get("note", "")).strip())


def _load_sources(data: Any, where: Where) -> dict[str, Source]:
    if not isinstance(data, Mapping) or not data:
        raise where.error("expected a non-empty mapping of source keys")
    sources = {}
    for key, entry in data.items():
        entry = expect_mapping(entry, where / key, SOURCE_KEYS, ("title", "url"))
        kind = entry.get("kind", "document")
        if kind not in EVIDENCE_KINDS:
            raise (where / key / "kind").error(f"must be one of {', '.join(EVIDENCE_KINDS)}")
        sources[key] = Source(
            str(key),
            str(entry["title"]),
            str(entry["url"]),
            str(entry.get("version", "")),
            str(entry.get("date", "")),
            str(entry.get("note", "")),
            kind,
        )
    return sources


def _load_ops(data: Any, where: Where, sources: Mapping[str, Source]) -> dict[str, OpSupport]:
    ops: dict[str, OpSupport] = {}
    if data is None:
        return ops
    if not isinstance(data, list):
        raise where.error("expected a list of op groups")
    for i, group in enumerate(data):
        here = where / i
        group = expect_mapping(
            group,
            here,
            ("names", "source", "verified", "note", "placement", "folds"),
            ("names", "source"),
        )
        fact = _fact(group, here, sources)
        placement = group.get("placement", "npu")
        if placement not in PLACEMENTS:
            raise (here / "placement").error(f"must be one of {', '.join(PLACEMENTS)}")
        folds = group.get("folds", True)
        if not isinstance(folds, bool):
            raise (here / "folds").error("expected true or false")
        names = group["names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise (here / "names").error("expected a list of op names")
        for name in names:
            ops[name] = OpSupport(fact.source, fact.verified, fact.note, placement, folds)
    return ops


def _load_patterns(data: Any, where: Where, sources: Mapping[str, Source]) -> dict[str, OpSupport]:
    patterns = {}
    for name, entry in (data or {}).items():
        if name not in FUSED_PATTERNS:
            raise (where / name).error(f"unknown pattern (known: {', '.join(FUSED_PATTERNS)})")
        entry = expect_mapping(entry, where / name, ("source", "verified", "note"), ("source",))
        fact = _fact(entry, where / name, sources)
        patterns[name] = OpSupport(fact.source, fact.verified, fact.note)
    return patterns


def _predicate_of(data: Mapping[str, Any], where: Where) -> tuple[str, Any]:
    present = [k for k in (*PREDICATES, "table", "static") if k in data]
    if len(present) != 1:
        raise where.error(
            f"needs exactly one predicate ({', '.join((*PREDICATES, 'table'))}), "
            f"found {len(present)}"
        )
    name = present[0]
    operand = parse_operand(data[name])
    if name in PREDICATES and not PREDICATES[name].operand_ok(operand):
        raise (where / name).error(f"expected {PREDICATES[name].operand_kind}, got {data[name]!r}")
    return name, operand


def _check_field(name: Any, scope: str, where: Where) -> str:
    field = get_field(name) if isinstance(name, str) else None
    if field is None:
        raise where.error(f"unknown field {name!r}")
    if scope not in field.scopes:
        raise where.error(f"field {name!r} does not apply to scope {scope!r}")
    return name


def _load_condition(data: Any, where: Where, scope: str) -> Condition:
    data = expect_mapping(data, where, ("field", *PREDICATES), ("field",))
    field = _check_field(data["field"], scope, where / "field")
    predicate, operand = _predicate_of(data, where)
    return Condition(field, predicate, operand)


def _load_table(rows: Any, where: Where, scope: str) -> list[dict[str, list[Any]]]:
    if not isinstance(rows, list) or not rows:
        raise where.error("expected a non-empty list of rows")
    table = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or not row:
            raise (where / i).error("expected a mapping of field -> allowed values")
        parsed = {}
        for key, values in row.items():
            _check_field(key, scope, where / i / key)
            if not isinstance(values, list):
                raise (where / i / key).error("expected a list of allowed values")
            parsed[key] = parse_operand(values)
        table.append(parsed)
    return table


def _load_constraint(
    i: int, data: Any, where: Where, sources: Mapping[str, Source], rules: RuleRegistry
) -> Constraint:
    here = where / i
    data = expect_mapping(data, here, CONSTRAINT_KEYS, CONSTRAINT_REQUIRED)
    if not isinstance(data["id"], str) or not CONSTRAINT_ID.match(data["id"]):
        raise (here / "id").error(f"constraint ids are kebab-case, got {data['id']!r}")
    code = data["rule"]
    if not isinstance(code, str) or code not in rules:
        raise suggest(str(code), [r.code for r in rules], f"rule code in {here / 'rule'}:")
    rule = rules.get(code)
    scope = data.get("scope", NODE)
    if scope not in SCOPES:
        raise (here / "scope").error(f"must be one of {', '.join(SCOPES)}")
    ops = data.get("ops")
    if scope == NODE and ops is None:
        raise here.error("node constraints need 'ops' (a list of op types, or '*')")
    ops_set = (
        None
        if ops in (None, "*")
        else frozenset(expect_type(ops, list, here / "ops", "a list of op types"))
    )
    predicate, operand = _predicate_of(data, here)
    if predicate == "static":
        if rule.check != "dynamic_shape" or scope != GRAPH:
            raise (here / "static").error("'static' is only for rule PL201 with scope graph")
    elif rule.check != "constraint":
        raise (here / "rule").error(f"{rule.code} is not evaluated from target constraints")
    if predicate == "table":
        operand = _load_table(operand, here / "table", scope)
    field = data.get("field")
    if predicate not in ("static", "table"):
        field = _check_field(field, scope, here / "field")
    effect = data.get("effect")
    if effect is not None and effect not in EFFECTS:
        raise (here / "effect").error(f"must be one of {', '.join(EFFECTS)}")
    fact = _fact(data, here, sources)
    when = _load_condition(data["when"], here / "when", scope) if "when" in data else None
    unless = _load_condition(data["unless"], here / "unless", scope) if "unless" in data else None
    exclude = data.get("exclude_ops", [])
    expect_type(exclude, list, here / "exclude_ops", "a list of op types")
    enforced_by = data.get("enforced_by", "compiler")
    if enforced_by not in ENFORCERS:
        raise (here / "enforced_by").error(f"must be one of {', '.join(ENFORCERS)}")
    return Constraint(
        fact.source,
        fact.verified,
        fact.note,
        i,
        rule.code,
        ops_set,
        frozenset(exclude),
        scope,
        field,
        predicate,
        operand,
        effect,
        when,
        unless,
        data["id"],
        enforced_by,
    )


def _check_info_sources(value: Any, where: Where, sources: Mapping[str, Source]) -> None:
    """Every ``source`` key anywhere in the informational blocks must resolve too."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == "source" and item not in sources:
                raise (where / key).error(f"source {item!r} is not declared under 'sources'")
            _check_info_sources(item, where / str(key), sources)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_info_sources(item, where / i, sources)


def _load_partitioning(
    data: Any, where: Where, sources: Mapping[str, Source]
) -> tuple[str, Fact | None]:
    """How the compiler splits the graph: ``multi`` (any op may go to the CPU) or ``single``
    (one NPU partition: the first op off the NPU sends everything after it to the CPU)."""
    if data is None:
        return "multi", None
    here = where / "partitioning"
    data = expect_mapping(data, here, ("model", "source", "verified", "note"), ("model", "source"))
    if data["model"] not in PARTITION_MODELS:
        raise (here / "model").error(f"must be one of {', '.join(PARTITION_MODELS)}")
    return data["model"], _fact(data, here, sources)


def _load_defects(data: Any, where: Where, sources: Mapping[str, Source]) -> tuple[Defect, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise where.error("expected a list of known toolchain defects")
    defects = []
    for i, entry in enumerate(data):
        here = where / i
        entry = expect_mapping(
            entry, here, DEFECT_KEYS, ("id", "pattern", "versions", "what", "workaround", "source")
        )
        if entry["pattern"] not in DEFECT_PATTERNS:
            raise (here / "pattern").error(
                f"unknown pattern {entry['pattern']!r} (known: {', '.join(DEFECT_PATTERNS)})"
            )
        versions = expect_type(entry["versions"], list, here / "versions", "a list of versions")
        effect = entry.get("effect", "reject")
        if effect not in EFFECTS:
            raise (here / "effect").error(f"must be one of {', '.join(EFFECTS)}")
        options = entry.get("options")
        if options is not None:
            expect_type(options, dict, here / "options", "a mapping of toolchain options")
        passes = expect_type(entry.get("passes", []), list, here / "passes", "a list of passes")
        chips = expect_type(entry.get("chips", []), list, here / "chips", "a list of chip names")
        fact = _fact(entry, here, sources)
        defects.append(
            Defect(
                fact.source,
                fact.verified,
                fact.note,
                str(entry["id"]),
                entry["pattern"],
                tuple(str(v) for v in versions),
                effect,
                " ".join(str(entry["what"]).split()),
                " ".join(str(entry["workaround"]).split()),
                options,
                tuple(passes),
                tuple(str(c) for c in chips),
            )
        )
    ids = [d.id for d in defects]
    if len(ids) != len(set(ids)):
        raise where.error("defect ids must be unique")
    return tuple(defects)


def parse_target(data: Any, path: Path, rules: RuleRegistry) -> Target:
    """Validate a profile mapping and build the ``Target``."""
    where = Where(path)
    data = expect_mapping(
        data,
        where,
        TOP_KEYS,
        ("portlint_profile", "name", "display_name", "toolchain", "sources", "ops"),
    )
    if data["portlint_profile"] != SCHEMA_VERSION:
        raise (where / "portlint_profile").error(
            f"unsupported schema version (expected {SCHEMA_VERSION})"
        )
    name = data["name"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise (where / "name").error("target names are kebab-case")
    sources = _load_sources(data["sources"], where / "sources")
    toolchain = expect_mapping(
        data["toolchain"], where / "toolchain", ("name", "version"), ("name", "version")
    )
    opset = data.get("opset")
    opset_fact = None
    if opset is not None:
        opset = expect_mapping(opset, where / "opset", ("min", "max", "source", "verified", "note"))
        opset_fact = _fact(opset, where / "opset", sources)
    unsupported = expect_mapping(
        data.get("unsupported_ops"),
        where / "unsupported_ops",
        ("effect", "source", "verified", "note"),
        ("effect", "source"),
    )
    if unsupported["effect"] not in EFFECTS:
        raise (where / "unsupported_ops" / "effect").error(f"must be one of {', '.join(EFFECTS)}")
    constraints = data.get("constraints") or []
    if not isinstance(constraints, list):
        raise (where / "constraints").error("expected a list")
    ids = [c.get("id") for c in constraints if isinstance(c, Mapping) and c.get("id")]
    if len(ids) != len(set(ids)):
        raise (where / "constraints").error("constraint ids must be unique")
    for key in ("quantization", "postprocessing", "activations", "notes"):
        _check_info_sources(data.get(key), where / key, sources)
    scheme = parse_scheme(data.get("quantization"), where / "quantization", name)
    approximations = parse_approximations(data.get("activations"), where / "activations")
    partitioning, partitioning_fact = _load_partitioning(data.get("partitioning"), where, sources)
    status = data.get("status", "stable")
    if status not in ("stable", "preview"):
        raise (where / "status").error("must be stable or preview")
    return Target(
        name=name,
        display_name=str(data["display_name"]),
        vendor=str(data.get("vendor", "")),
        status=status,
        toolchain=str(toolchain["name"]),
        toolchain_version=str(toolchain["version"]),
        summary=str(data.get("summary", "")).strip(),
        sources=sources,
        opset_min=opset.get("min") if opset else None,
        opset_max=opset.get("max") if opset else None,
        opset_fact=opset_fact,
        domains=tuple(data.get("domains", [""])),
        unsupported_ops=_fact(unsupported, where / "unsupported_ops", sources),
        unsupported_effect=unsupported["effect"],
        ops=_load_ops(data["ops"], where / "ops", sources),
        patterns=_load_patterns(data.get("patterns"), where / "patterns", sources),
        constraints=tuple(
            _load_constraint(i, c, where / "constraints", sources, rules)
            for i, c in enumerate(constraints)
        ),
        info={
            k: data[k]
            for k in ("quantization", "postprocessing", "activations", "notes")
            if k in data
        },
        path=path,
        partitioning=partitioning,
        partitioning_fact=partitioning_fact,
        quant_scheme=scheme,
        approximations=approximations,
        defects=_load_defects(data.get("defects"), where / "defects", sources),
        lineage=tuple(str(n) for n in data.get(LINEAGE, [])),
    )


def shipped_target_names() -> list[str]:
    return sorted(p.stem for p in data_dir("targets").glob("*.yaml") if not p.stem.startswith("_"))


def resolve_target_path(name: str, extra_dirs: tuple[Path, ...] = ()) -> Path:
    """A profile path from a target name or a path to a YAML file."""
    if name.endswith((".yaml", ".yml")) or "/" in name or "\\" in name:
        path = Path(name)
        if not path.is_file():
            raise ProfileError(f"{name}: no such target profile file")
        return path
    for folder in (*extra_dirs, data_dir("targets")):
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    known = sorted(
        {
            p.stem
            for d in (*extra_dirs, data_dir("targets"))
            for p in d.glob("*.yaml")
            if not p.stem.startswith("_")
        }
    )
    raise suggest(name, known, "target")


def _raw_loader(extra_dirs: tuple[Path, ...]):
    """Find an ``extends:`` parent: next to the child, in the profile dirs, or shipped."""

    def load_raw(name: str, child: Path) -> tuple[Any, Path]:
        if name.endswith((".yaml", ".yml")):
            path = (child.parent / name).resolve()
            if not path.is_file():
                raise Where(child, ("extends",)).error(f"no such profile file {name!r}")
        else:
            path = resolve_target_path(name, (child.parent, *extra_dirs)).resolve()
        return read_yaml(path), path

    return load_raw


def raw_profile(target: Target) -> Any:
    """The profile's YAML data with its ``extends`` chain merged in, as the loader saw it:
    what a derived profile copies a fact from to restate it."""
    return resolve_extends(read_yaml(target.path), target.path, _raw_loader(()))


@lru_cache(maxsize=64)
def _load_path(path: Path, extra_dirs: tuple[Path, ...] = ()) -> Target:
    data = resolve_extends(read_yaml(path), path, _raw_loader(extra_dirs))
    target = parse_target(data, path, load_rules())
    if target.name != path.stem and path.parent == data_dir("targets").resolve():
        raise Where(path, ("name",)).error(f"name {target.name!r} must match the file name")
    return target


def load_target(name: str, extra_dirs: tuple[Path, ...] = ()) -> Target:
    """Load a shipped target by name (``rk3588``, ``rk3588@1.6``), or a user profile by path."""
    dirs = tuple(d.resolve() for d in extra_dirs)
    return _load_path(resolve_target_path(name, dirs).resolve(), dirs)

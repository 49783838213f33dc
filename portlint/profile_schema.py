"""The JSON Schema of a profile file, generated from the declarations the loader checks with.

An editor that reads ``# yaml-language-server: $schema=...`` completes keys, shows their docs
and flags a misspelt key or a wrong type while a profile is being written. The loader stays
the authority: it also checks what a schema cannot say (that a ``source`` is declared, that a
field applies to the constraint's scope, that a range is ordered). Keys and their docs come
from the loader's constants (``TOP_KEYS``, ``CONSTRAINT_KEYS``, ``FIELDS``, ``PREDICATES``,
``SCHEME_KEYS``, ...); the few small sections whose keys the loader lists inline are declared
below, and tests/test_profile_language.py checks that schema and loader agree on every key
(declared keys accepted, others refused, the same ones required) of a profile using them all.
The schema ships as ``portlint/schema/profile-v1.schema.json``; a test keeps it current.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portlint.facts import EVIDENCE_KINDS, SOURCE_KEYS
from portlint.fields import FIELDS, SCOPES, get_field
from portlint.pattern_catalog import DEFECT_PATTERNS, FUSED_PATTERNS
from portlint.predicates import PREDICATES
from portlint.profile_merge import LINEAGE, MERGE_ONLY_KEYS
from portlint.quant_scheme import (
    ACTIVATION_KEYS,
    APPROXIMATION_KEYS,
    GRANULARITIES,
    SCHEME_KEYS,
    SIXTEEN_BIT_KEYS,
    SIXTEEN_BIT_LAYERS,
    WEIGHT_KEYS,
)
from portlint.rule import load_rules
from portlint.target import (
    CONSTRAINT_ID,
    CONSTRAINT_KEYS,
    CONSTRAINT_REQUIRED,
    DEFECT_KEYS,
    EFFECT_WORDS,
    EFFECTS,
    ENFORCERS,
    FACT_KEYS,
    NAME_PATTERN,
    PARTITION_MODELS,
    PLACEMENTS,
    SCHEMA_VERSION,
    TOP_KEYS,
)

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "profile-v1.schema.json"
CONSTRAINT_RULE_CHECKS = ("constraint", "dynamic_shape")
"""The checks of the rules a constraint can name (PL201 only with ``static``)."""

# The sections whose keys the loader lists inline (parse_target, _load_sources, ...).
STATUSES = {"stable": "built from vendor documents", "preview": "built from thin sources"}
TOP_REQUIRED = (
    "portlint_profile",
    "name",
    "display_name",
    "toolchain",
    "sources",
    "ops",
    "unsupported_ops",
)
DERIVED_REQUIRED = ("portlint_profile", "name")
"""A profile that ``extends`` another gets the rest from its parent."""
TOOLCHAIN_KEYS = {
    "name": "the compiler, e.g. `RKNN-Toolkit2`",
    "version": 'the compiler version the facts hold for, quoted (`"2.1.0"`)',
}
OPSET_KEYS = {"min": "the oldest opset accepted", "max": "the newest opset accepted", **FACT_KEYS}
UNSUPPORTED_KEYS = {"effect": "what happens to an op the profile does not list", **FACT_KEYS}
OP_GROUP_KEYS = {
    "names": "op types, or fused pattern names, in this group",
    "placement": "where they run (default npu)",
    "folds": "false when the toolchain does not fold these ops even on constant or static-shape "
    "inputs, so `check` judges them where it would otherwise fold them (default true)",
    **FACT_KEYS,
}
PARTITIONING_KEYS = {"model": "how the graph is split", **FACT_KEYS}
CONDITION_KEYS = {
    "field": "the field the condition tests",
    **{name: predicate.doc for name, predicate in PREDICATES.items()},
}
DEFECT_REQUIRED = ("id", "pattern", "versions", "what", "workaround", "source")

STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
FACT_VALUES = {"source": STRING, "verified": BOOLEAN, "note": STRING}
CONSTRAINT_ID_VALUE = {"type": "string", "pattern": CONSTRAINT_ID.pattern, "title": "kebab-case id"}
PREDICATE_KEYS = tuple(PREDICATES)
TABLE_OR_STATIC = ("table", "static")
ATTRIBUTE_PREFIXES = ("attr.", "has_attr.")


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/definitions/{name}"}


def _list(items: Mapping[str, Any], **limits: Any) -> dict[str, Any]:
    return {"type": "array", "items": dict(items), **limits}


def _choice(values: Mapping[str, str]) -> dict[str, Any]:
    """One of the named values, each with its doc (editors show it when completing)."""
    return {"anyOf": [{"const": value, "description": doc} for value, doc in values.items()]}


def _one_key_of(keys: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"required": [key]} for key in keys]


def _section(
    title: str,
    description: str,
    keys: Mapping[str, str],
    values: Mapping[str, Mapping[str, Any]],
    required: tuple[str, ...] = (),
    informational: bool = False,
) -> dict[str, Any]:
    """A mapping of the profile language: its keys with their docs and value shapes.

    ``informational`` sections accept keys beyond the declared ones, as the loader does.
    """
    if set(keys) != set(values):
        raise ValueError(
            f"{title}: keys and value shapes differ: {sorted(set(keys) ^ set(values))}"
        )
    section: dict[str, Any] = {
        "title": title,
        "description": description,
        "type": "object",
        "properties": {key: {**values[key], "description": doc} for key, doc in keys.items()},
    }
    if required:
        section["required"] = list(required)
    if not informational:
        section["additionalProperties"] = False
    return section


def _attribute_field(prefix: str) -> dict[str, Any]:
    """``attr.NAME`` / ``has_attr.NAME``: any attribute, documented by the field it makes."""
    example = get_field(f"{prefix}NAME")
    doc = example.doc if example is not None else ""
    pattern = "^" + prefix.replace(".", "[.]") + ".+$"
    return {"type": "string", "pattern": pattern, "description": f"`{prefix}NAME`: {doc}"}


def _field_name() -> dict[str, Any]:
    return {
        "title": "Field",
        "description": "A quantity computed from a node, a tensor or the graph: a name below, "
        "or any ONNX attribute.",
        "anyOf": [
            *({"const": name, "description": field.doc} for name, field in FIELDS.items()),
            *(_attribute_field(prefix) for prefix in ATTRIBUTE_PREFIXES),
        ],
    }


def _constraint() -> dict[str, Any]:
    values = {
        "id": CONSTRAINT_ID_VALUE,
        "exclude_ops": _list(STRING),
        "rule": _ref("rule"),
        "ops": {"anyOf": [{"const": "*", "description": "every op"}, _list(STRING)]},
        "scope": _choice(SCOPES),
        "field": _ref("field"),
        "effect": _ref("effect"),
        "enforced_by": _choice(ENFORCERS),
        **FACT_VALUES,
        "when": _ref("condition"),
        "unless": _ref("condition"),
        "static": BOOLEAN,
        "table": _list(_ref("table_row"), minItems=1),
        **{name: predicate.operand_schema for name, predicate in PREDICATES.items()},
    }
    section = _section(
        "Constraint",
        "A limit on one field: a rule, the ops it applies to, a field and exactly one predicate "
        "(or a `table`, or `static`). Node constraints need `ops`.",
        CONSTRAINT_KEYS,
        values,
        CONSTRAINT_REQUIRED,
    )
    section["oneOf"] = _one_key_of((*PREDICATE_KEYS, *TABLE_OR_STATIC))
    section["allOf"] = [
        {"if": {"anyOf": _one_key_of(TABLE_OR_STATIC)}, "else": {"required": ["field"]}},
        {"if": {"properties": {"scope": {"const": "node"}}}, "then": {"required": ["ops"]}},
    ]
    return section


def _condition() -> dict[str, Any]:
    values = {"field": _ref("field"), **{n: p.operand_schema for n, p in PREDICATES.items()}}
    section = _section(
        "Condition",
        "`when` / `unless` of a constraint: a field and exactly one predicate.",
        CONDITION_KEYS,
        values,
        ("field",),
    )
    section["oneOf"] = _one_key_of(PREDICATE_KEYS)
    return section


def _quantization() -> dict[str, dict[str, Any]]:
    flag = {"anyOf": [BOOLEAN, STRING]}
    answer = {"anyOf": [*flag["anyOf"], {**_fact_section({"value": flag}), "required": ["value"]}]}
    op_list = {
        "anyOf": [
            _list(STRING),
            {**_fact_section({"ops": _list(STRING)}), "required": ["ops"]},
        ]
    }
    bits = {
        **_list({"type": "integer", "minimum": 2, "maximum": 32}),
        "title": "bit widths, 2 to 32",
    }
    return {
        "quantization": _section(
            "Quantization",
            "The integer scheme. Keys not listed here are informational.",
            SCHEME_KEYS,
            {
                "weights": _ref("weights"),
                "activations": _ref("activation_quantization"),
                "power_of_two_scales": answer,
                "shared_scale_ops": op_list,
                "shared_scale": _fact_section({}),
                "inherit_q_ops": op_list,
                "fixed_q_ops": op_list,
                "sixteen_bit": _ref("sixteen_bit"),
            },
            informational=True,
        ),
        "weights": _section(
            "Weights",
            "`quantization.weights`: how weights are quantized.",
            {**WEIGHT_KEYS, **FACT_KEYS},
            {
                "bits": bits,
                "granularity": _choice(GRANULARITIES),
                "symmetric": answer,
                "default_bits": INTEGER,
                **FACT_VALUES,
            },
        ),
        "activation_quantization": _section(
            "Activation quantization",
            "`quantization.activations`: how activations are quantized.",
            {**ACTIVATION_KEYS, **FACT_KEYS},
            {"bits": bits, "symmetric": answer, **FACT_VALUES},
        ),
        "sixteen_bit": _section(
            "Sixteen-bit layers",
            "`quantization.sixteen_bit`: where the vendor advises 16 bits.",
            {**SIXTEEN_BIT_KEYS, **FACT_KEYS},
            {
                "layers": _list(_choice(SIXTEEN_BIT_LAYERS), minItems=1),
                "range_above": NUMBER,
                **FACT_VALUES,
            },
            ("layers",),
        ),
    }


def _fact_section(values: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A value written with its source: ``{value: ..., source: ..., verified: ..., note: ...}``."""
    return {
        "type": "object",
        "properties": {
            **{key: dict(value) for key, value in values.items()},
            **{key: {**FACT_VALUES[key], "description": doc} for key, doc in FACT_KEYS.items()},
        },
        "additionalProperties": False,
    }


def _definitions() -> dict[str, dict[str, Any]]:
    rules = {
        r.code: f"{r.name}: {r.summary}" for r in load_rules() if r.check in CONSTRAINT_RULE_CHECKS
    }
    return {
        "toolchain": _section(
            "Toolchain",
            "`toolchain`: the compiler the facts hold for.",
            TOOLCHAIN_KEYS,
            {"name": STRING, "version": STRING},
            ("name", "version"),
        ),
        "source": _section(
            "Source",
            "An entry of `sources`, under the key facts cite it by.",
            SOURCE_KEYS,
            {**{key: STRING for key in SOURCE_KEYS}, "kind": _choice(EVIDENCE_KINDS)},
            ("title", "url"),
        ),
        "opset": _section(
            "Opset",
            "`opset`: the ONNX opsets the toolchain accepts.",
            OPSET_KEYS,
            {"min": INTEGER, "max": INTEGER, **FACT_VALUES},
            ("source",),
        ),
        "unsupported_ops": _section(
            "Unsupported ops",
            "`unsupported_ops`: what happens to an op the profile does not list.",
            UNSUPPORTED_KEYS,
            {"effect": _ref("effect"), **FACT_VALUES},
            ("effect", "source"),
        ),
        "op_group": _section(
            "Op group",
            "An entry of `ops`: op types that share a source and a placement.",
            OP_GROUP_KEYS,
            {
                "names": _list(STRING),
                "placement": _choice(PLACEMENTS),
                "folds": BOOLEAN,
                **FACT_VALUES,
            },
            ("names", "source"),
        ),
        "fused_pattern": _section(
            "Fused pattern",
            "An entry of `patterns`, under the pattern's name.",
            FACT_KEYS,
            FACT_VALUES,
            ("source",),
        ),
        "partitioning": _section(
            "Partitioning",
            "`partitioning`: how the compiler splits the graph (default multi).",
            PARTITIONING_KEYS,
            {"model": _choice(PARTITION_MODELS), **FACT_VALUES},
            ("model", "source"),
        ),
        "constraint": _constraint(),
        "condition": _condition(),
        "table_row": {
            "title": "Table row",
            "description": "A row of a constraint's `table`: field → the values it allows.",
            "type": "object",
            "minProperties": 1,
            "propertyNames": _ref("field"),
            "additionalProperties": {"type": "array"},
        },
        "field": _field_name(),
        "rule": {
            "title": "Rule",
            "description": "The rules a constraint can name: those evaluated from constraints.",
            **_choice(rules),
        },
        "effect": {
            "title": "Effect",
            "description": "What a violation (or an op the profile does not list) costs; "
            "each effect is a finding severity.",
            **_choice({effect: EFFECT_WORDS[effect] for effect in EFFECTS}),
        },
        "defect": _section(
            "Defect",
            "An entry of `defects`: a graph pattern given toolchain versions fail on.",
            DEFECT_KEYS,
            {
                "id": STRING,
                "pattern": _choice(DEFECT_PATTERNS),
                "versions": _list(STRING),
                "effect": _ref("effect"),
                "what": STRING,
                "workaround": STRING,
                "options": {"type": "object"},
                "passes": _list(STRING),
                "chips": _list(STRING),
                **FACT_VALUES,
            },
            DEFECT_REQUIRED,
        ),
        **_quantization(),
        "activations": _section(
            "Activations",
            "`activations`: informational, except `approximated`.",
            {"approximated": "activations the target computes approximately"},
            {"approximated": _list(_ref("approximation"))},
            informational=True,
        ),
        "approximation": _section(
            "Approximated activation",
            "An entry of `activations.approximated`.",
            {**APPROXIMATION_KEYS, **FACT_KEYS},
            {
                "name": STRING,
                "how": STRING,
                "max_error_percent": NUMBER,
                "input_range_limit": NUMBER,
                **FACT_VALUES,
            },
            ("name",),
        ),
    }


def _top_values() -> dict[str, dict[str, Any]]:
    return {
        "portlint_profile": {"const": SCHEMA_VERSION},
        "name": {"type": "string", "pattern": NAME_PATTERN.pattern, "title": "kebab-case name"},
        "display_name": STRING,
        "vendor": STRING,
        "status": _choice(STATUSES),
        "toolchain": _ref("toolchain"),
        "summary": STRING,
        "sources": {"type": "object", "minProperties": 1, "additionalProperties": _ref("source")},
        "opset": _ref("opset"),
        "domains": _list(STRING),
        "unsupported_ops": _ref("unsupported_ops"),
        "ops": _list(_ref("op_group")),
        "patterns": {
            "type": "object",
            "properties": {
                name: {**_ref("fused_pattern"), "description": doc}
                for name, doc in FUSED_PATTERNS.items()
            },
            "additionalProperties": False,
        },
        "constraints": _list(_ref("constraint")),
        "partitioning": _ref("partitioning"),
        "defects": _list(_ref("defect")),
        "quantization": _ref("quantization"),
        "postprocessing": {"type": "object"},
        "activations": _ref("activations"),
        "notes": {"type": "array"},
        "extends": STRING,
        "remove_ops": _list(STRING),
        "remove_constraints": _list(CONSTRAINT_ID_VALUE),
    }


def profile_schema() -> dict[str, Any]:
    """The schema of a profile file as written (before ``extends`` is resolved)."""
    keys = {key: doc for key, doc in TOP_KEYS.items() if key != LINEAGE} | dict(MERGE_ONLY_KEYS)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        **_section(
            "portlint target profile",
            "What one NPU and its toolchain accept, each fact with its source.",
            keys,
            _top_values(),
        ),
        "if": {"required": ["extends"]},
        "then": {"required": list(DERIVED_REQUIRED)},
        "else": {"required": list(TOP_REQUIRED)},
        "dependencies": {key: ["extends"] for key in MERGE_ONLY_KEYS if key != "extends"},
        "definitions": _definitions(),
    }


def render_schema() -> str:
    """The text ``SCHEMA_PATH`` holds; ``python -m portlint.profile_schema`` rewrites it."""
    return json.dumps(profile_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render_schema(), encoding="utf-8")
    print(SCHEMA_PATH)

"""docs/profiles.md: the profile language, rendered from the schema the loader's keys make.

Every key, its doc, its value shape and its allowed values come from ``profile_schema`` (so
from the loader's declarations); fields and predicates come from their registries, and how
the shipped profiles use each field from the profiles themselves. Nothing here restates what
a key means, so the page cannot drift from what the loader accepts.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from portlint import target as loader
from portlint.fields import FIELDS, NODE, Field, get_field
from portlint.predicates import LIST_VALUES, PREDICATES
from portlint.profile_merge import APPENDED, MERGE_ONLY_KEYS, MERGED_BY_KEY
from portlint.profile_schema import (
    ATTRIBUTE_PREFIXES,
    DERIVED_REQUIRED,
    SCHEMA_PATH,
    TOP_REQUIRED,
    profile_schema,
)
from portlint.target import Target

Schema = Mapping[str, Any]
TYPE_WORDS = {
    "int": "integer",
    "float": "number",
    "str": "text",
    "bool": "`true` or `false`",
    "Any": "as written in the model",
    "list[int]": "list of integers",
    "list[float]": "list of numbers",
}
"""A field function's return annotation, in words."""
JSON_WORDS = {
    "string": "text",
    "boolean": "`true` or `false`",
    "integer": "integer",
    "number": "number",
}


def _anchor(title: str) -> str:
    """The id GitHub gives the heading ``## title``."""
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")


def _link(definition: Schema) -> str:
    return f"[{definition['title'].lower()}](#{_anchor(definition['title'])})"


def _code(value: Any) -> str:
    return f"`{value if isinstance(value, str) else json.dumps(value)}`"


def _words(items: Iterable[Any]) -> str:
    """`a`, `b` and `c`."""
    codes = [_code(item) for item in items]
    return " and ".join([", ".join(codes[:-1]), codes[-1]] if len(codes) > 1 else codes)


def _paragraphs(docstring: str | None) -> list[str]:
    """A docstring as Markdown paragraphs (reST ``code`` becomes `code`)."""
    text = inspect.cleandoc(docstring or "").replace("``", "`")
    return [" ".join(part.split()) for part in text.split("\n\n")]


def _resolve(value: Schema, definitions: Schema) -> Schema:
    if "$ref" in value:
        return definitions[value["$ref"].rsplit("/", 1)[1]]
    return value


def _describe(value: Schema, definitions: Schema) -> str:
    """A value shape in words: "list of [op group](#op-group)", "one of `npu`, `cpu`"."""
    if "$ref" in value:
        return _link(_resolve(value, definitions))
    if "title" in value:
        return value["title"]
    if "const" in value:
        return _code(value["const"])
    if "anyOf" in value:
        if all("const" in option for option in value["anyOf"]):
            return "one of " + ", ".join(_code(option["const"]) for option in value["anyOf"])
        return " or ".join(_describe(option, definitions) for option in value["anyOf"])
    kind = value.get("type")
    if kind == "array":
        return f"list of {_describe(value['items'], definitions)}" if "items" in value else "list"
    if kind == "object":
        return _describe_mapping(value, definitions)
    words = JSON_WORDS.get(kind, kind or "any value")
    return f"{words} ≥ {value['minimum']}" if "minimum" in value else words


def _describe_mapping(value: Schema, definitions: Schema) -> str:
    entries = value.get("additionalProperties")
    if isinstance(entries, Mapping):
        return f"mapping of key → {_describe(entries, definitions)}"
    properties = value.get("properties", {})
    refs = {v.get("$ref") for v in properties.values()}
    if len(refs) == 1 and None not in refs:  # named entries of one kind (`patterns`)
        return f"mapping of name → {_describe(next(iter(properties.values())), definitions)}"
    if properties:
        return "`{" + ", ".join(properties) + "}`"
    return "mapping"


def _choices(value: Schema) -> list[tuple[str, str]]:
    """Named values with their docs: an enum, or the names a mapping accepts."""
    if value.get("type") == "array" and "items" in value:
        return _choices(value["items"])
    options = value.get("anyOf", [])
    if options and all("const" in o and "description" in o for o in options):
        return [(str(o["const"]), o["description"]) for o in options]
    properties = value.get("properties", {})
    if properties and all("$ref" in v and "description" in v for v in properties.values()):
        return [(name, v["description"]) for name, v in properties.items()]
    return []


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _section(
    title: str, section: Schema, definitions: Schema, required: Iterable[str]
) -> list[str]:
    """A heading, the section's description, its keys, then the values of each enum key."""
    required = set(required)
    properties = section["properties"]
    lines = [f"## {title}", "", section["description"], ""]
    lines += _table(
        ("key", "required", "value", "meaning"),
        (
            (
                f"`{key}`",
                "yes" if key in required else "",
                _describe(value, definitions),
                value["description"],
            )
            for key, value in properties.items()
        ),
    )
    for key, value in properties.items():
        choices = _choices(value)
        if choices:
            lines += ["", f"`{key}`:", ""]
            lines += [f"- `{name}`: {doc}" for name, doc in choices]
    if "additionalProperties" not in section:
        lines += ["", "Other keys are accepted and shown as written (informational)."]
    return [*lines, ""]


def _value_words(field: Field) -> str:
    annotation = str(inspect.signature(field.get).return_annotation).replace(" | None", "")
    words = TYPE_WORDS.get(annotation, f"`{annotation}`")
    return f"{words}, written HxW" if field.spatial else words


def _field_use(targets: Iterable[Target]) -> dict[str, set[str]]:
    """Field name -> the op types (or scopes) shipped constraints apply it to."""
    use: dict[str, set[str]] = {}
    for target in targets:
        for c in target.constraints:
            everything = "any op" if c.scope == NODE else f"`{c.scope}`"
            subjects = set(c.ops) if c.ops is not None else {everything}
            names = {c.field} | {x.field for x in (c.when, c.unless) if x is not None}
            if c.predicate == "table":
                names |= {key for row in c.operand for key in row}
            for name in names - {None}:
                use.setdefault(str(name), set()).update(subjects)
    return use


def _fields(definition: Schema, targets: list[Target]) -> list[str]:
    use = _field_use(targets)
    rows = [
        (
            f"`{name}`",
            _value_words(field),
            ", ".join(field.scopes),
            field.doc,
            ", ".join(sorted(use.get(name, ()))) or "—",
        )
        for name, field in FIELDS.items()
    ]
    for prefix in ATTRIBUTE_PREFIXES:
        example = get_field(f"{prefix}NAME")
        if example is None:
            continue
        used = sorted((n, ops) for n, ops in use.items() if n.startswith(prefix))
        rows.append(
            (
                f"`{prefix}NAME`",
                _value_words(example),
                ", ".join(example.scopes),
                f"any attribute: {example.doc}",
                "; ".join(f"`{n}`: {', '.join(sorted(ops))}" for n, ops in used) or "—",
            )
        )
    header = ("field", "value", "scopes", "meaning", "shipped profiles apply it to")
    return ["## Field", "", definition["description"], "", *_table(header, rows), ""]


def _predicates() -> list[str]:
    rows = [
        (
            f"`{p.name}`",
            p.operand_kind,
            p.doc,
            p.requirement.format(op="X", lo="MIN", hi="MAX"),
        )
        for p in PREDICATES.values()
    ]
    header = ("predicate", "operand", "holds when", "reads in messages and docs")
    return ["## Predicate", "", *_table(header, rows), "", LIST_VALUES, ""]


def _derived() -> list[str]:
    return [
        "## Derived profiles",
        "",
        f"A profile with `extends` starts from another one ({_words(MERGE_ONLY_KEYS)} in the "
        f"table above) and needs only {_words(DERIVED_REQUIRED)} of its own. The removals "
        "apply to the parent first, so a constraint can be dropped and restated under the "
        "same id; then the child's keys merge in:",
        "",
        f"- {_words(MERGED_BY_KEY)}: the child's entries join the parent's, replacing those "
        "of the same key;",
        f"- {_words(APPENDED)}: the child's entries follow the parent's;",
        "- any other key: the child's value replaces the parent's.",
        "",
        "The merged profile is then checked like a written-out one.",
        "",
    ]


def _editor_hint() -> list[str]:
    shipped = f"portlint/{SCHEMA_PATH.parent.name}/{SCHEMA_PATH.name}"
    return [
        "## Editor support",
        "",
        f"portlint ships a JSON Schema of this language, `{shipped}`, generated from the same "
        "declarations as this page. Point a profile at it with this first line, and an "
        "editor with YAML language support (yaml-language-server, e.g. the VS Code YAML "
        "extension) completes keys, shows their docs and marks a misspelt key or a wrong "
        "type as you type:",
        "",
        f"    # yaml-language-server: $schema=PATH/TO/{SCHEMA_PATH.name}",
        "",
        f"In a checkout, a profile in `targets/` uses `../{shipped}`; for an installed "
        "portlint, `python -c 'from portlint.profile_schema import SCHEMA_PATH; "
        "print(SCHEMA_PATH)'` prints the path. The loader checks more than the schema can "
        "(that every `source` is declared, that a field applies to the constraint's scope, "
        "that a range is ordered), so `portlint targets show PROFILE` has the last word.",
        "",
    ]


def render_profile_reference(targets: list[Target]) -> str:
    """The page: editor setup, every section's keys, fields, predicates, rules."""
    schema = profile_schema()
    definitions = schema["definitions"]
    lines = [
        "# Profile language",
        "",
        *(line for paragraph in _paragraphs(loader.__doc__) for line in (paragraph, "")),
        *_editor_hint(),
        *_section("Top level", schema, definitions, TOP_REQUIRED),
        *_derived(),
    ]
    for name, definition in definitions.items():
        if name == "field":
            lines += [*_fields(definition, targets), *_predicates()]
        elif "properties" in definition:
            lines += _section(
                definition["title"], definition, definitions, definition.get("required", ())
            )
        else:
            lines += [f"## {definition['title']}", "", definition["description"], ""]
            lines += [*(f"- `{name}`: {doc}" for name, doc in _choices(definition)), ""]
    return "\n".join(lines).replace("\n\n\n", "\n\n").rstrip() + "\n"

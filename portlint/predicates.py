"""Predicates a target constraint applies to a field, each with its message templates.

One sentence per predicate serves three readers: the CLI message ("output channels 30 is
not a multiple of 4"), the generated target docs ("output channels must be a multiple of
4") and the JSON ``limit`` field. Writing it once keeps the three from drifting apart.

Each predicate also declares its operand twice, side by side: as a check the loader runs and
as the JSON Schema editors validate with (``portlint.profile_schema``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_HXW = re.compile(r"^\d+(?:\.\d+)?(?:x\d+(?:\.\d+)?)+$")
LIST_VALUES = (
    "A list-valued field (kernel, strides, ...) satisfies a scalar predicate when every element "
    'does; an operand written "HxW" (`"3x3"`) compares the whole value.'
)
"""How a predicate reads list values; the profile reference quotes it."""


def parse_operand(value: Any) -> Any:
    """Turn "3x3" into (3, 3) (recursively in lists); keep everything else as written."""
    if isinstance(value, str) and _HXW.match(value):
        parts = value.split("x")
        return tuple(float(p) if "." in p else int(p) for p in parts)
    if isinstance(value, list):
        return [parse_operand(v) for v in value]
    return value


def format_value(value: Any, spatial: bool = False) -> str:
    """Render a value the way vendor documents write it (3x3, [0, 1, 0, 1], 2.5)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        items = [format_value(v) for v in value]
        if spatial or isinstance(value, tuple):
            return "x".join(items)
        return "[" + ", ".join(items) + "]"
    return str(value)


def format_options(options: Any) -> str:
    if isinstance(options, list):
        return ", ".join(format_value(o) for o in options)
    return format_value(options)


def _each(value: Any, test: Callable[[Any], bool]) -> bool:
    if isinstance(value, (list, tuple)):
        return all(test(v) for v in value)
    return test(value)


def _whole_or_each(value: Any, operand: Any, test: Callable[[Any, Any], bool]) -> bool:
    if isinstance(operand, tuple) and isinstance(value, (list, tuple)):
        return test(tuple(value), operand)
    return _each(value, lambda v: test(v, operand))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in(value: Any, options: list) -> bool:
    if isinstance(value, (list, tuple)) and any(isinstance(o, tuple) for o in options):
        return tuple(value) in options
    return _each(value, lambda v: v in options)


def _not_in(value: Any, options: list) -> bool:
    if isinstance(value, (list, tuple)) and any(isinstance(o, tuple) for o in options):
        return tuple(value) not in options
    return _each(value, lambda v: v not in options)


@dataclass(frozen=True)
class Predicate:
    """A test on a field value, and the two sentences that explain it."""

    name: str
    holds: Callable[[Any, Any], bool]
    failure: str
    requirement: str
    operand_ok: Callable[[Any], bool]
    operand_kind: str
    doc: str
    """What holds when the predicate passes, for the profile reference."""
    operand_schema: Mapping[str, Any]
    """The JSON Schema of what ``operand_ok`` accepts (without the order of a range)."""

    def explain_failure(self, operand: Any) -> str:
        return self.failure.format(op=format_options(operand), **_range_parts(operand))

    def explain_requirement(self, operand: Any) -> str:
        return self.requirement.format(op=format_options(operand), **_range_parts(operand))


def _range_parts(operand: Any) -> dict[str, str]:
    if isinstance(operand, list) and len(operand) == 2:
        return {"lo": format_value(operand[0]), "hi": format_value(operand[1])}
    return {"lo": "", "hi": ""}


def _range_ok(operand: Any) -> bool:
    return (
        isinstance(operand, list)
        and len(operand) == 2
        and all(_is_number(v) for v in operand)
        and operand[0] <= operand[1]
    )


_NON_EMPTY_LIST = {"type": "array", "minItems": 1}
_NUMBER = {"type": "number"}

PREDICATES: dict[str, Predicate] = {
    p.name: p
    for p in (
        Predicate(
            "one_of",
            _in,
            "is not one of {op}",
            "must be one of {op}",
            lambda o: isinstance(o, list) and bool(o),
            "a non-empty list",
            "the value is one of the listed values",
            _NON_EMPTY_LIST,
        ),
        Predicate(
            "not_one_of",
            _not_in,
            "is not allowed (not allowed: {op})",
            "must not be any of {op}",
            lambda o: isinstance(o, list) and bool(o),
            "a non-empty list",
            "the value is none of the listed values",
            _NON_EMPTY_LIST,
        ),
        Predicate(
            "range",
            lambda v, o: _each(v, lambda x: o[0] <= x <= o[1]),
            "is outside [{lo}, {hi}]",
            "must be within [{lo}, {hi}]",
            _range_ok,
            "a [min, max] pair of numbers",
            "the value lies within [min, max], both ends included",
            {
                "type": "array",
                "items": {"type": "number"},
                "minItems": 2,
                "maxItems": 2,
                "title": "[min, max]",
            },
        ),
        Predicate(
            "min",
            lambda v, o: _whole_or_each(v, o, lambda x, m: x >= m),
            "is below the minimum {op}",
            "must be at least {op}",
            _is_number,
            "a number",
            "the value is at least the operand",
            _NUMBER,
        ),
        Predicate(
            "max",
            lambda v, o: _whole_or_each(v, o, lambda x, m: x <= m),
            "exceeds the maximum {op}",
            "must be at most {op}",
            _is_number,
            "a number",
            "the value is at most the operand",
            _NUMBER,
        ),
        Predicate(
            "multiple_of",
            lambda v, o: _each(v, lambda x: x % o == 0),
            "is not a multiple of {op}",
            "must be a multiple of {op}",
            lambda o: _is_number(o) and isinstance(o, int) and o > 0,
            "a positive integer",
            "the value is a whole multiple of the operand (alignment)",
            {"type": "integer", "minimum": 1},
        ),
        Predicate(
            "equals",
            lambda v, o: _whole_or_each(v, o, lambda x, e: x == e),
            "is not {op}",
            "must be {op}",
            lambda o: o is not None,
            "a value",
            "the value equals the operand",
            {"not": {"type": "null"}, "title": "a value"},
        ),
    )
}

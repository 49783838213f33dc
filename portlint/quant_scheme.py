"""A target's quantization scheme, read from its profile's ``quantization`` section.

The hazard rules (PL3xx) and ``compare --simulate`` ask the same questions of a target: are
weights per-tensor or per-channel, are scales powers of two, which ops force one scale on
their inputs, which keep their input's scale. Each answer keeps its source, and an answer the
profile does not give is ``None``: a rule then stays silent rather than guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portlint.facts import Fact
from portlint.yaml_io import Where

GRANULARITIES = {
    "per-tensor": "one scale for the whole weight tensor",
    "per-channel": "one scale per output channel",
}
SIXTEEN_BIT_LAYERS = {
    "outputs": "the layers producing the model's outputs",
    "detector-heads": "a detector's head convolutions",
    "wide-range": "any tensor whose values exceed `range_above`",
}
"""Where a vendor advises 16 bits."""
SCHEME_KEYS = {
    "weights": "how weights are quantized",
    "activations": "how activations are quantized",
    "power_of_two_scales": "whether every scale is a power of two: `true`, `false`, or "
    "`{value: ..., source: ...}`; free text (a mode-dependent answer) is no answer",
    "shared_scale_ops": "ops whose inputs must share one scale: a list of op types, or "
    "`{ops: [...], source: ...}`",
    "shared_scale": "the source and note of `shared_scale_ops`, when written apart",
    "inherit_q_ops": "ops whose output keeps its input's scale (they cannot rescale), written "
    "like `shared_scale_ops`",
    "fixed_q_ops": "ops whose output is pinned to a fixed range, written like `shared_scale_ops`",
    "sixteen_bit": "where the vendor advises 16 bits",
}
"""The keys of ``quantization`` that ``parse_scheme`` reads; others are informational."""
WEIGHT_KEYS = {
    "bits": "the bit widths offered, e.g. `[8, 16]`",
    "granularity": "how many scales a weight tensor gets",
    "symmetric": "whether the zero point is 0: `true`, `false` or `{value: ..., source: ...}`",
    "default_bits": "the width a model gets unless the user picks another (default 8 when offered)",
}
ACTIVATION_KEYS = {key: WEIGHT_KEYS[key] for key in ("bits", "symmetric")}
SIXTEEN_BIT_KEYS = {
    "layers": "which layers to keep in 16 bits",
    "range_above": "the value range above which a tensor counts as wide (with `wide-range`)",
}
APPROXIMATION_KEYS = {
    "name": "the activation (op type or pattern name)",
    "how": "how the target computes it (lookup table, piecewise-linear, ...)",
    "max_error_percent": "the source's stated worst-case error, in percent",
    "input_range_limit": "inputs beyond ± this break the approximation",
}
"""The keys of an ``activations.approximated`` entry that ``parse_approximations`` reads."""
CALIBRATIONS = ("minmax", "percentile", "entropy")


@dataclass(frozen=True)
class SchemeFact(Fact):
    """One sourced answer of the scheme (``value`` is what the profile says)."""

    value: Any = None


@dataclass(frozen=True)
class QuantScheme:
    """What a target's integer pipeline does to a float model."""

    target: str
    weight_bits: tuple[int, ...] = ()
    activation_bits: tuple[int, ...] = ()
    weight_granularity: SchemeFact | None = None
    weight_symmetric: SchemeFact | None = None
    activation_symmetric: SchemeFact | None = None
    power_of_two: SchemeFact | None = None
    shared_scale: SchemeFact | None = None  # value: frozenset of ops whose inputs share a scale
    inherit_scale: SchemeFact | None = None  # value: frozenset of ops that keep the input scale
    fixed_scale: SchemeFact | None = None  # value: frozenset of ops pinned to a fixed range
    default_bits: int | None = None
    sixteen_bit: SchemeFact | None = None  # value: frozenset of SIXTEEN_BIT_LAYERS
    sixteen_bit_range: float | None = None
    facts: Mapping[str, SchemeFact] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        """Whether the profile describes a quantization scheme at all."""
        return bool(self.weight_bits or self.activation_bits or self.facts)

    @property
    def per_tensor_weights(self) -> bool:
        return _value(self.weight_granularity) == "per-tensor"

    @property
    def pot_scales(self) -> bool:
        return _value(self.power_of_two) is True

    def shares_scale(self, op: str) -> bool:
        return op in (_value(self.shared_scale) or ())

    def keeps_input_scale(self, op: str) -> bool:
        """The op's output is quantized with its input's scale (it cannot rescale)."""
        return op in (_value(self.inherit_scale) or ()) or (
            op in ("AveragePool", "GlobalAveragePool") and self.shares_scale("AveragePool")
        )

    def bits(self) -> int:
        """The bit width a model gets unless the user picks another: the profile's default,
        else 8 when offered (every vendor's default), else the narrowest listed."""
        if self.default_bits:
            return self.default_bits
        offered = self.activation_bits or self.weight_bits
        return 8 if 8 in offered or not offered else min(offered)


def _value(fact: SchemeFact | None) -> Any:
    return None if fact is None else fact.value


def _bits(data: Any, where: Where) -> tuple[int, ...]:
    if data is None:
        return ()
    if not isinstance(data, list) or not all(isinstance(b, int) and 1 < b <= 32 for b in data):
        raise where.error("expected a list of bit widths, e.g. [8, 16]")
    return tuple(data)


def _fact_of(value: Any, entry: Mapping[str, Any], default_source: str) -> SchemeFact:
    return SchemeFact(
        source=str(entry.get("source") or default_source),
        verified=bool(entry.get("verified", True)),
        note=str(entry.get("note", "")),
        value=value,
    )


def _flag(data: Any, where: Where, default_source: str) -> SchemeFact | None:
    """A yes/no answer, written ``true`` or ``{value: true, source: ..., verified: ...}``.

    Free text (a scheme that depends on the mode) is not an answer: ``None``.
    """
    entry = data if isinstance(data, Mapping) else {"value": data}
    value = entry.get("value")
    if value is None or isinstance(value, str):
        return None
    if not isinstance(value, bool):
        raise where.error("expected true, false or {value: ..., source: ...}")
    return _fact_of(value, entry, default_source)


def _ops(data: Any, where: Where, default_source: str, note: Any = None) -> SchemeFact | None:
    """An op list, written ``[Concat, ...]`` or ``{ops: [...], source: ..., note: ...}``."""
    if data is None:
        return None
    entry = data if isinstance(data, Mapping) else {"ops": data}
    ops = entry.get("ops")
    if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
        raise where.error("expected a list of op names")
    if isinstance(note, Mapping):  # the separate ``shared_scale`` note and source
        entry = {**entry, **{k: v for k, v in note.items() if k in ("source", "note", "verified")}}
    return _fact_of(frozenset(ops), entry, default_source)


def parse_scheme(data: Any, where: Where, target: str = "") -> QuantScheme:
    """Validate a profile's ``quantization`` section; raise ``ProfileError`` naming the path."""
    if data is None:
        return QuantScheme(target)
    if not isinstance(data, Mapping):
        raise where.error("expected a mapping")
    weights = data.get("weights") or {}
    activations = data.get("activations") or {}
    for key, section in (("weights", weights), ("activations", activations)):
        if not isinstance(section, Mapping):
            raise (where / key).error("expected a mapping")
    w_source = str(weights.get("source", ""))
    a_source = str(activations.get("source", w_source))
    facts: dict[str, SchemeFact] = {}
    granularity = weights.get("granularity")
    if granularity is not None:
        if granularity not in GRANULARITIES:
            raise (where / "weights" / "granularity").error(
                f"must be one of {', '.join(GRANULARITIES)}"
            )
        facts["weight_granularity"] = _fact_of(granularity, weights, w_source)
    for name, section, source in (
        ("weight_symmetric", weights, w_source),
        ("activation_symmetric", activations, a_source),
    ):
        if "symmetric" in section:
            key = "weights" if section is weights else "activations"
            flag = _flag(section["symmetric"], where / key / "symmetric", source)
            if flag is not None:
                facts[name] = _fact_of(flag.value, section, source)
    pot = _flag(data.get("power_of_two_scales"), where / "power_of_two_scales", w_source)
    if pot is not None:
        facts["power_of_two"] = pot
    for name, key, note in (
        ("shared_scale", "shared_scale_ops", data.get("shared_scale")),
        ("inherit_scale", "inherit_q_ops", None),
        ("fixed_scale", "fixed_q_ops", None),
    ):
        ops = _ops(data.get(key), where / key, w_source, note)
        if ops is not None:
            facts[name] = ops
    sixteen, sixteen_range = _sixteen_bit(data.get("sixteen_bit"), where / "sixteen_bit", w_source)
    if sixteen is not None:
        facts["sixteen_bit"] = sixteen
    default_bits = weights.get("default_bits")
    if default_bits is not None and not isinstance(default_bits, int):
        raise (where / "weights" / "default_bits").error("expected a bit width")
    return QuantScheme(
        target=target,
        weight_bits=_bits(weights.get("bits"), where / "weights" / "bits"),
        activation_bits=_bits(activations.get("bits"), where / "activations" / "bits"),
        default_bits=default_bits,
        sixteen_bit_range=sixteen_range,
        facts=facts,
        **facts,
    )


def _sixteen_bit(
    data: Any, where: Where, default_source: str
) -> tuple[SchemeFact | None, float | None]:
    """``sixteen_bit: {layers: [outputs, ...], range_above: 256, source: ...}``."""
    if data is None:
        return None, None
    if not isinstance(data, Mapping):
        raise where.error("expected a mapping with layers")
    layers = data.get("layers")
    if not isinstance(layers, list) or not set(layers) <= set(SIXTEEN_BIT_LAYERS) or not layers:
        raise (where / "layers").error(f"expected a list of {', '.join(SIXTEEN_BIT_LAYERS)}")
    limit = data.get("range_above")
    if ("wide-range" in layers) != (limit is not None):
        raise (where / "range_above").error("wide-range needs range_above, and only it")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float)):
        raise (where / "range_above").error("expected a number")
    fact = _fact_of(frozenset(layers), data, default_source)
    return fact, None if limit is None else float(limit)


@dataclass(frozen=True)
class Approximation(Fact):
    """An activation the target computes approximately, and what the source says it costs."""

    name: str = ""
    how: str = ""
    max_error_percent: float | None = None  # the source's stated worst-case error
    input_range_limit: float | None = None  # inputs wider than ±this break the approximation


def parse_approximations(data: Any, where: Where) -> tuple[Approximation, ...]:
    """``activations.approximated`` entries, validated (numbers must be numbers)."""
    if not isinstance(data, Mapping):
        return ()
    entries = data.get("approximated") or []
    if not isinstance(entries, list):
        raise (where / "approximated").error("expected a list")
    found = []
    for i, entry in enumerate(entries):
        here = where / "approximated" / i
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise here.error("expected a mapping with a name")
        numbers = {}
        for key in ("max_error_percent", "input_range_limit"):
            value = entry.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise (here / key).error("expected a number")
            numbers[key] = None if value is None else float(value)
        found.append(
            Approximation(
                source=str(entry.get("source") or data.get("source", "")),
                verified=bool(entry.get("verified", True)),
                note=str(entry.get("note", "")),
                name=entry["name"],
                how=str(entry.get("how", "")),
                **numbers,
            )
        )
    return tuple(found)

"""The target's quantization scheme as simulated: every open question answered, and said so."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portlint.errors import PortlintError
from portlint.quant_scheme import QuantScheme, SchemeFact

SUPPORTED_BITS = (8, 16)
AVERAGE_POOLS = ("AveragePool", "GlobalAveragePool")
DEFAULTS = {
    "weight_granularity": "per-channel",
    "weight_symmetric": True,
    "activation_symmetric": False,
    "power_of_two": False,
}
"""What a profile that says nothing gets: per-channel symmetric weights, asymmetric per-tensor
activations with arbitrary float scales (the TFLite int8 spec most vendors follow)."""


class SimulationError(PortlintError, ValueError):
    """The simulation cannot be built as asked (bit width, calibration, samples, model size)."""


@dataclass(frozen=True)
class Plan:
    """What the simulation does: bit widths, granularity, symmetry and the scale rules."""

    activation_bits: int
    weight_bits: int
    per_channel: bool
    weight_symmetric: bool
    activation_symmetric: bool
    power_of_two: bool
    shared: frozenset[str]  # ops whose inputs (and, for data movement, output) share a scale
    inherit: frozenset[str]  # ops whose output keeps their input's scale
    fixed: frozenset[str]  # ops whose output is pinned to [-1, 1)

    def keeps_input_scale(self, op: str) -> bool:
        """The op cannot rescale: average pools on targets that share or inherit their scale."""
        return op in self.inherit or (
            op in AVERAGE_POOLS and "AveragePool" in self.shared | self.inherit
        )

    def fuses(self, activation: str) -> bool:
        """A Relu/Clip is applied inside the layer before it, unless the target gives the
        activation its input's scale (NNoM's Relu): then the layer's output is quantized."""
        return activation not in self.inherit and activation not in self.shared

    def describe(self) -> str:
        return (
            f"{self.activation_bits}-bit "
            f"{'symmetric' if self.activation_symmetric else 'asymmetric'} per-tensor "
            f"activations, {self.weight_bits}-bit "
            f"{'per-channel' if self.per_channel else 'per-tensor'} "
            f"{'symmetric' if self.weight_symmetric else 'asymmetric'} weights"
            f"{', power-of-two scales' if self.power_of_two else ''}"
        )


def plan_of(scheme: QuantScheme, name: str, bits: int | None, notes: list[str]) -> Plan:
    """The plan for ``scheme``; defaults the profile leaves open and unverified facts used
    are added to ``notes``."""
    activation_bits, weight_bits = _bit_widths(scheme, name, bits, notes)
    assumed: list[str] = []
    unverified: list[str] = []

    def answer(key: str, fact: SchemeFact | None, describe: Callable[[Any], str]) -> Any:
        if fact is None or fact.value is None:
            assumed.append(describe(DEFAULTS[key]))
            return DEFAULTS[key]
        if not fact.verified:
            unverified.append(f"{describe(fact.value)} ({fact.source})")
        return fact.value

    granularity = answer("weight_granularity", scheme.weight_granularity, "{} weights".format)
    weight_symmetric = answer(
        "weight_symmetric",
        scheme.weight_symmetric,
        lambda v: f"{'symmetric' if v else 'asymmetric'} weights",
    )
    activation_symmetric = answer(
        "activation_symmetric",
        scheme.activation_symmetric,
        lambda v: f"{'symmetric' if v else 'asymmetric'} activations",
    )
    power_of_two = answer(
        "power_of_two",
        scheme.power_of_two,
        lambda v: "power-of-two scales" if v else "arbitrary (not power-of-two) scales",
    )
    ops = {}
    for key, fact in (
        ("shared", scheme.shared_scale),
        ("inherit", scheme.inherit_scale),
        ("fixed", scheme.fixed_scale),
    ):
        ops[key] = frozenset(fact.value) if fact is not None else frozenset()
        if fact is not None and not fact.verified:
            unverified.append(f"{key} scale for {', '.join(sorted(fact.value))} ({fact.source})")
    if not (scheme.shared_scale or scheme.inherit_scale):
        assumed.append(
            "no shared or inherited scales beyond data-movement ops keeping their input's "
            "(average pooling rescales its output)"
        )
    if assumed:
        notes.append(f"{name}'s profile does not say; assumed: {'; '.join(assumed)}")
    if unverified:
        notes.append(f"unverified profile facts used: {'; '.join(unverified)}")
    return Plan(
        activation_bits=activation_bits,
        weight_bits=weight_bits,
        per_channel=granularity == "per-channel",
        weight_symmetric=bool(weight_symmetric),
        activation_symmetric=bool(activation_symmetric),
        power_of_two=bool(power_of_two),
        shared=ops["shared"],
        inherit=ops["inherit"],
        fixed=ops["fixed"],
    )


def _bit_widths(
    scheme: QuantScheme, name: str, bits: int | None, notes: list[str]
) -> tuple[int, int]:
    """(activation bits, weight bits): weights stay narrower when the target has no wider."""
    chosen = scheme.bits() if bits is None else bits
    if chosen not in SUPPORTED_BITS:
        raise SimulationError(
            f"cannot simulate {chosen}-bit quantization (8 or 16)"
            + ("" if bits is not None else f"; pick one of {name}'s widths with --bits")
        )
    offered = scheme.activation_bits or scheme.weight_bits
    if offered and chosen not in offered:
        raise SimulationError(
            f"{name} does not run {chosen}-bit activations "
            f"(it lists {', '.join(str(b) for b in offered)})"
        )
    if not offered:
        notes.append(f"{name}'s profile lists no bit widths; simulated at {chosen} bits")
    narrower = [b for b in scheme.weight_bits if b in SUPPORTED_BITS and b <= chosen]
    weight_bits = (
        chosen
        if not scheme.weight_bits or chosen in scheme.weight_bits
        else max(narrower, default=chosen)
    )
    if weight_bits != chosen:
        notes.append(
            f"{chosen}-bit activations with {weight_bits}-bit weights "
            f"({name} lists weights at {', '.join(str(b) for b in scheme.weight_bits)} bits)"
        )
    return chosen, weight_bits

"""The arithmetic of integer quantization the hazard rules and their messages share.

Pure numpy: a step size for a range under a target's scheme, the SQNR of a tensor quantized
with a given step, the bits a value loses when it must use someone else's scale.
"""

from __future__ import annotations

import math

import numpy as np


def levels(bits: int, symmetric: bool) -> int:
    """Quantization steps across the range: 127 for symmetric int8, 255 for asymmetric."""
    return 2 ** (bits - 1) - 1 if symmetric else 2**bits - 1


def step(low: float, high: float, bits: int, symmetric: bool, power_of_two: bool) -> float:
    """The quantization step a per-tensor scheme gives the range [low, high].

    Symmetric schemes cover ±max|x|; asymmetric ones the span (with zero representable);
    power-of-two scales are NNoM's Q-format: ceil(log2 max) integer bits, the rest of the
    code fractional (a max of exactly 2^k clips by one step, as on the target).
    """
    width = max(abs(low), abs(high)) if symmetric else max(high, 0.0) - min(low, 0.0)
    if power_of_two and width > 0:  # NNoM: integer bits ceil(log2 max), the rest fractional
        return 2.0 ** (math.ceil(math.log2(width)) - (bits - 1 if symmetric else bits))
    return width / levels(bits, symmetric)


def fake_quantize(values: np.ndarray, size: float, bits: int) -> np.ndarray:
    """Symmetric round-to-nearest with clipping: what an int weight holds, dequantized."""
    if size <= 0:
        return np.zeros_like(values)
    limit = 2 ** (bits - 1) - 1
    return np.clip(np.round(values / size), -limit, limit) * size


def sqnr_db(reference: np.ndarray, approximation: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB; inf when nothing was lost."""
    signal = float(np.sum(np.square(reference, dtype=np.float64)))
    noise = float(np.sum(np.square(reference - approximation, dtype=np.float64)))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def bits_lost(own: float, shared: float) -> float:
    """Bits a value of width ``own`` gives up when quantized on a scale made for ``shared``."""
    if own <= 0.0 or shared <= own:
        return 0.0
    return math.log2(shared / own)


def fmt(value: float) -> str:
    """Three significant digits, no exponent for everyday magnitudes."""
    return f"{value:.3g}"

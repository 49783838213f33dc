"""The proof's yardstick: element-wise tolerances per dtype, exact integers."""

from __future__ import annotations

import numpy as np
import pytest

from portlint.numerics import deviation


def test_a_small_score_cannot_hide_behind_a_large_coordinate():
    """YOLO's output0 holds boxes up to ~640 and class scores ~1e-5 side by side."""
    reference = np.array([636.0, 1e-5, 0.5], np.float32)
    moved = np.array([636.0, 4e-3, 0.5], np.float32)  # a score 400x larger
    assert not deviation("output0", reference, moved).within()


def test_float_rounding_is_forgiven():
    reference = np.array([636.0, 1e-5, 0.5, -3.25], np.float32)
    rounded = reference * np.float32(1 + 3e-7)
    assert deviation("output0", reference, rounded).within()


def test_cancellation_near_zero_is_forgiven_in_proportion_to_the_output_range():
    reference = np.array([600.0, 0.0], np.float32)
    assert deviation("y", reference, np.array([600.0, 2e-4], np.float32)).within()
    assert not deviation("y", reference, np.array([600.0, 5e-2], np.float32)).within()


def test_half_precision_has_its_own_tolerance():
    reference = np.linspace(-4, 4, 101).astype(np.float16)
    rounded = (reference.astype(np.float32) * 1.0005).astype(np.float16)
    assert deviation("y", reference, rounded).within()
    assert not deviation("y", reference, reference + np.float16(0.25)).within()


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_integers_must_match_exactly(dtype):
    reference = np.arange(6).astype(dtype)
    changed = reference.copy()
    changed[-1] = not changed[-1] if dtype == np.bool_ else changed[-1] + 1
    assert deviation("i", reference, reference.copy()).within()
    assert not deviation("i", reference, changed).within()


def test_nans_in_the_same_places_agree_and_new_nans_do_not():
    reference = np.array([1.0, np.nan], np.float32)
    assert deviation("y", reference, reference.copy()).within()
    assert not deviation("y", np.array([1.0, 2.0], np.float32), reference).within()

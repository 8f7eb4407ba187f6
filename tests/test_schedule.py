"""The poly learning-rate decay."""

from __future__ import annotations

import math

import pytest

from duetseg.training.schedule import poly_lr


def test_poly_lr_start_middle_end() -> None:
    assert poly_lr(0.01, 0, 1000) == pytest.approx(0.01)
    assert poly_lr(0.01, 500, 1000) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 750, 1000) == pytest.approx(0.01 * 0.25**0.9)
    assert poly_lr(0.01, 1000, 1000) == 0.0


def test_poly_lr_decreases_and_power_one_is_linear() -> None:
    values = [poly_lr(0.1, i, 10) for i in range(11)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert poly_lr(0.1, 3, 10, power=1.0) == pytest.approx(0.07)
    assert math.isclose(poly_lr(2.0, 1, 4, power=2.0), 2.0 * 0.75**2)

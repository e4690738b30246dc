"""The learning-curve benchmark (benchmarks/spio_learning_curve.py): its table reader and both fits, on known truth."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import spio_learning_curve as lc  # noqa: E402  (a benchmark module, found through sys.path)

TABLE = """# SPIO: paired differences

### samples 0–399 of seed 1 as it is (the rules' bins)

| candidate | all (n = 399) | ∞ (n = 40) |
|---|---|---|
| B | 0.402 | 0.283 |
| A | 0.524 | 0.407 |
| A − B (paired ± s.e.) | +0.1222 ± 0.0055 | +0.1241 ± 0.0215 |

### samples 0–399 of seed 1's images without noise

| candidate | all (n = 399) | ∞ (n = 399) |
|---|---|---|
| B | 0.312 | 0.312 |
| A | 0.457 | 0.457 |
| A − B (paired ± s.e.) | +0.1448 ± 0.0052 | +0.1448 ± 0.0052 |
"""


def test_reader_takes_the_reference_mean_plus_each_paired_difference_per_section() -> None:
    drawn = lc.read_means(TABLE, "as it is")
    clean = lc.read_means(TABLE, "without noise")
    assert drawn == pytest.approx({"B": 0.402, "A": 0.402 + 0.1222})
    assert clean == pytest.approx({"B": 0.312, "A": 0.312 + 0.1448})


def test_power_law_fit_recovers_a_known_curve_and_its_steps_to_target() -> None:
    steps = np.array([2_000, 5_000, 10_000, 20_000, 40_000, 80_000.0])
    nmae = lc.power_law(steps / 1000, 0.2, 0.5, 0.8)
    fit = lc.fits(steps, nmae, target=0.25)
    assert (fit["a"], fit["b"], fit["c"]) == pytest.approx((0.2, 0.5, 0.8), rel=1e-3)
    expected = 1000 * ((0.25 - 0.2) / 0.5) ** (-1 / 0.8)  # solve a + b s^-c = target
    assert fit["power_steps"] == pytest.approx(expected, rel=1e-2)
    never = lc.fits(steps, lc.power_law(steps / 1000, 0.3, 0.5, 0.8), target=0.25)
    assert never["power_steps"] == np.inf  # asymptote above the target: never


def test_log_linear_fit_uses_the_last_three_points_only() -> None:
    steps = np.array([1_000, 2_000, 10_000, 20_000, 40_000.0])
    nmae = 0.9 - 0.05 * np.log(steps)
    nmae[:2] += 0.3  # early points off the line must not move the fit
    fit = lc.fits(steps, nmae, target=0.25)
    assert fit["per_doubling"] == pytest.approx(-0.05 * np.log(2))
    assert fit["log_steps"] == pytest.approx(np.exp((0.9 - 0.25) / 0.05))

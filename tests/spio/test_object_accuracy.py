"""The per-object benchmark (benchmarks/spio_object_accuracy.py): its object measures on known truth."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import spio_object_accuracy as oa  # noqa: E402  (a benchmark module, found through sys.path)

from lightning_modules.spio.viewline import PIXEL_MM  # noqa: E402


def _two_objects() -> np.ndarray:
    truth = np.zeros((64, 64))
    truth[10:14, 10:14] = 2.0   # 16 px at 2 µg Fe/mm³
    truth[40:50, 30:40] = 5.0   # 100 px at 5 µg Fe/mm³
    return truth


def test_a_perfect_map_reads_every_object_exactly():
    truth = _two_objects()
    rows = np.array(oa.object_rows(truth.copy(), truth, 15.0))
    assert rows.shape == (2, 5)
    assert sorted(rows[:, 0]) == pytest.approx([16 * PIXEL_MM[0] * PIXEL_MM[1], 100 * PIXEL_MM[0] * PIXEL_MM[1]])
    assert np.all(rows[:, 1] == 15.0) and np.all(rows[:, 2] == 1.0)
    assert rows[:, 3] == pytest.approx([1.0, 1.0]) and rows[:, 4] == pytest.approx([1.0, 1.0])


def test_level_iron_and_found_follow_the_map():
    truth = _two_objects()
    prediction = 0.5 * truth
    prediction[12:14, 10:14] = 0.0                # the small object: half its pixels missed
    prediction[40:50, 41] = 5.0                   # iron beside the large object, within 1 mm: counted in its iron
    rows = {round(r[0] / (PIXEL_MM[0] * PIXEL_MM[1])): r for r in oa.object_rows(prediction, truth, 8.0)}
    assert rows[16][2] == 1.0 and rows[16][3] == pytest.approx(0.25) and rows[16][4] == pytest.approx(0.25)
    assert rows[100][3] == pytest.approx(0.5) and rows[100][4] == pytest.approx((250 + 50) / 500)
    prediction[10:14, 10:13] = 0.0                # now 3/4 of the small object's pixels are zero: not found
    small = [r for r in oa.object_rows(prediction, truth, 8.0) if round(r[0] / (PIXEL_MM[0] * PIXEL_MM[1])) == 16]
    assert small[0][2] == 0.0


def test_exclusive_regions_count_each_pixel_for_the_nearest_object_only():
    """Session 38: two tubes 3 pixels apart, each map spread over a 1-pixel "wall" ring with its iron kept (what the
    shipped weights do to a walled tube): the level inside reads low, the iron summed with exclusive 3-pixel regions
    is exact, and overlapping regions would count the gap's iron twice."""
    truth = np.zeros((64, 64))
    truth[20:30, 20:30] = 4.0
    truth[20:30, 33:43] = 1.0
    prediction = np.zeros_like(truth)
    for rows, value in (((slice(19, 31), slice(19, 31)), 4.0), ((slice(19, 31), slice(32, 44)), 1.0)):
        prediction[rows] = value * 100 / 144      # 100 px of iron spread over 12 × 12 px
    exclusive = oa.object_rows(prediction, truth, 20.0, margin_px=3, exclusive=True)
    assert [r[3] for r in exclusive] == pytest.approx([100 / 144, 100 / 144])
    assert [r[4] for r in exclusive] == pytest.approx([1.0, 1.0])
    shared = oa.object_rows(prediction, truth, 20.0, margin_px=3)
    assert shared[0][4] > 1.01 and shared[1][4] > 1.2   # each region reaches the other's ring


def test_tube_totals_rows_carry_level_snr_and_both_ratios():
    import spio_tube_totals as tt

    truth = np.zeros((64, 64))
    truth[20:30, 20:30] = 4.0
    prediction = np.zeros_like(truth)
    prediction[19:31, 19:31] = 4.0 * 100 / 144
    (row,) = tt.tube_rows(prediction, truth, 11.0, [3, 0])
    assert row[:3] == pytest.approx([4.0, 11.0, 1.0])
    assert row[3] == pytest.approx(100 / 144) and row[4] == pytest.approx(1.0)
    assert row[5] == pytest.approx(100 / 144)       # a region without margin misses the ring's iron

"""The tube-phantom training family and its judge generator (issue 24, session 37): known geometry in and out."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import label

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import spio_tube_phantoms as judge  # noqa: E402  (a benchmark module, found through sys.path)

from lightning_modules.spio import acquisition as acq  # noqa: E402
from lightning_modules.spio.data import random_sample_with_snr  # noqa: E402
from lightning_modules.spio.families import tilted_axis, tube_phantom_sample  # noqa: E402

LOW, HIGH = acq.SPIO_CONCENTRATION_RANGE_UG_FE_PER_MM3


def test_tilted_axes_are_unit_vectors_within_the_tilt_of_y() -> None:
    rng = np.random.default_rng(0)
    angles = []
    for _ in range(200):
        axis = tilted_axis(rng, 6.0)
        assert math.isclose(float(np.linalg.norm(axis)), 1.0, rel_tol=1e-12)
        angles.append(math.degrees(math.acos(axis[1])))
    assert max(angles) <= 6.0 and max(angles) > 5.0 and min(angles) < 1.0


def test_training_phantoms_hold_their_iron_in_tubes_through_the_whole_slab() -> None:
    for seed in range(6):
        rho, concentration = tube_phantom_sample(np.random.default_rng(seed))
        nx, nz = acq.VIEWLINE_MATRIX
        assert rho.shape == (nx, nz) and concentration.shape == (nx, acq.VIEWLINE_NY, nz)
        iron = concentration > 0
        assert iron.any()  # at least one tube holds iron
        per_slice = iron.sum(dim=(0, 2)).float()  # a tube within 6° of y: the same cross-section in every slice
        assert per_slice.min() >= 0.8 * per_slice.max()
        levels = concentration[iron]
        assert levels.min() >= LOW - 1e-6 and levels.max() <= HIGH + 1e-6
        plane = concentration[:, acq.VIEWLINE_NY // 2, :].numpy()
        components, n = label(plane > 0)
        for k in range(1, n + 1):  # one level per tube
            assert np.unique(plane[components == k]).size == 1


def test_training_phantoms_are_images_the_bundle_accepts() -> None:
    """Signal in well over 1 % of the pixels: DeepSPIO divides by the 99th percentile, and an image without it
    (tubes in air, session 37's first run) drove its batch statistics to 10¹¹ and its maps to zero."""
    for index in range(8):
        image, _, _ = random_sample_with_snr(11, index, tube_phantoms=1.0, noise_free_fraction=1.0)
        total = image.sum(dim=0)
        assert float((total > 0.05 * total.max()).float().mean()) > 0.05
        assert float(torch.quantile(total.flatten(), 0.99)) > 0.2 * float(total.max())


def test_the_train_json_option_draws_the_family_on_its_own_stream() -> None:
    for index in range(3):
        rng = np.random.default_rng([4, index, 71])
        assert rng.random() < 1.0
        _, concentration = tube_phantom_sample(rng)
        sample = random_sample_with_snr(4, index, tube_phantoms=1.0)
        plain = random_sample_with_snr(4, index)
        assert torch.equal(sample[1][0], concentration[:, acq.VIEWLINE_NY // 2, :].float())
        assert sample[2] == plain[2]  # the SNR is drawn as for the plain sample


def test_judge_racks_are_dilution_series_and_rods_are_single_levels() -> None:
    kinds = {judge.tube_phantom_kind(51, i) for i in range(30)}
    assert kinds == {"tube rack", "rods in gel"}
    racks = 0
    for index in range(12):
        image, truth, snr = judge.tube_phantom_judge_sample(51, index)
        again = judge.tube_phantom_judge_sample(51, index)
        np.testing.assert_array_equal(image, again[0])
        assert image.shape == (2, *acq.VIEWLINE_MATRIX) and truth.shape == acq.VIEWLINE_MATRIX
        levels = np.unique(truth[truth > 0])
        assert levels.size and levels.min() >= LOW - 1e-6 and levels.max() <= HIGH + 1e-6
        if judge.tube_phantom_kind(51, index) == "tube rack":
            racks += 1
            ratios = np.log2(levels.max() / levels)  # every tube a halving of the first
            np.testing.assert_allclose(ratios, np.round(ratios), atol=1e-4)
            assert levels.max() >= 1.75 - 1e-6
    assert racks >= 3


def test_judge_racks_without_walls_change_only_the_walls() -> None:
    for index in range(6):
        walled = judge.tube_phantom_judge_sample(51, index)
        bare = judge.tube_phantom_judge_sample(51, index, walls=False)
        np.testing.assert_array_equal(walled[1], bare[1])  # the same iron, level for level
        assert walled[2] == bare[2]
        if judge.tube_phantom_kind(51, index) == "rods in gel":  # no walls to leave out
            np.testing.assert_array_equal(walled[0], bare[0])
        else:
            assert not np.array_equal(walled[0], bare[0])

"""The third generator variant (benchmarks/spio_variant3.py, session 36): known geometry in, known geometry out."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import spio_variant3 as v3  # noqa: E402  (a benchmark module, found through sys.path)

from lightning_modules.spio import acquisition as acq  # noqa: E402
from lightning_modules.spio.viewline import VOXEL_3D_MM  # noqa: E402

VOXEL_MM3 = float(np.prod(VOXEL_3D_MM))


def test_samples_are_reproducible_one_by_one_and_name_their_base() -> None:
    image, truth, snr = v3.variant3_sample(7, 2)
    again = v3.variant3_sample(7, 2)
    assert image.shape == (2, *acq.VIEWLINE_MATRIX) and truth.shape == acq.VIEWLINE_MATRIX
    np.testing.assert_array_equal(image, again[0])
    np.testing.assert_array_equal(truth, again[1])
    assert snr == again[2]
    assert not np.array_equal(truth, v3.variant3_sample(7, 3)[1])
    kinds = [v3.variant3_base_kind(43, i) for i in range(40)]
    assert set(kinds) == {"abdomen", "layered gel"}


def test_a_shell_is_hollow_with_the_volume_between_its_two_spheres() -> None:
    rng = np.random.default_rng(0)
    centre = np.array([0.3, 0.0, -1.1])
    for _ in range(4):
        state = rng.bit_generator.state
        outer = float(rng.uniform(1.5, 4.0))
        wall = float(rng.uniform(0.5, min(1.5, outer - 0.5)))
        rng.bit_generator.state = state
        mask = v3.shell(rng, centre)
        expected = 4 / 3 * math.pi * (outer**3 - (outer - wall) ** 3)
        assert abs(float(mask.sum()) * VOXEL_MM3 / expected - 1) < 0.35  # 1.25 mm voxels along y
        assert not bool(v3.sphere(tuple(centre), outer - wall - 0.5).logical_and(mask).any())  # hollow core
        assert not bool(mask.logical_and(~v3.sphere(tuple(centre), outer)).any())  # nothing outside the shell


def test_a_vessel_is_a_tube_of_its_radius_through_its_centre() -> None:
    centre = np.array([0.0, 0.0, 0.0])
    mask = v3.vessel(np.random.default_rng(3), centre)
    radius = float(np.random.default_rng(3).uniform(0.6, 2.0))
    assert bool(v3.sphere(tuple(centre), 0.5 * radius).logical_and(mask).any())  # through its centre
    length = float(mask.sum()) * VOXEL_MM3 / (math.pi * radius**2)  # volume / cross-section
    assert 5.0 < length < 30.0  # 8–20 mm drawn, voxelised on a coarse y grid


def test_gels_are_layered_and_abdomens_have_a_bright_fat_layer() -> None:
    gel = v3.layered_gel(np.random.default_rng(1))
    values = torch.unique(gel[gel > 0])
    assert 2 <= len(values) <= 4 and float(gel.max()) == 1.0
    body = v3.abdomen(np.random.default_rng(2))
    assert float(body.max()) == 1.0 and float((body == 0).float().mean()) > 0.2  # air around the body

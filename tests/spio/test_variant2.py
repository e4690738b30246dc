"""The second generator variant (benchmarks/spio_variant2.py): known geometry in, known geometry out."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import spio_variant2 as v2  # noqa: E402  (a benchmark module, found through sys.path)

from lightning_modules.spio import acquisition as acq  # noqa: E402
from lightning_modules.spio import families  # noqa: E402
from lightning_modules.spio.phantoms import grid_3d_mm  # noqa: E402
from lightning_modules.spio.viewline import PIXEL_MM, VOXEL_3D_MM  # noqa: E402


def test_samples_are_reproducible_one_by_one_and_differ_between_indices() -> None:
    image, truth, snr = v2.variant2_sample(5, 3)
    again = v2.variant2_sample(5, 3)
    assert image.shape == (2, *acq.VIEWLINE_MATRIX) and truth.shape == acq.VIEWLINE_MATRIX
    np.testing.assert_array_equal(image, again[0])
    np.testing.assert_array_equal(truth, again[1])
    assert snr == again[2]
    assert not np.array_equal(truth, v2.variant2_sample(5, 4)[1])


def test_vials_sit_apart_inside_the_container_behind_dark_walls() -> None:
    x, z = families.plane_mm()
    for index in range(6):
        rho, vials = families.vial_phantom(np.random.default_rng(index))
        assert 1 <= len(vials) <= 7
        for a, (ax, az, ar) in enumerate(vials):
            assert 3.0 <= ar <= 7.0
            distance = torch.sqrt((x - ax) ** 2 + (z - az) ** 2)
            inside = rho[distance <= ar - PIXEL_MM[0]]
            assert float(inside.min()) == float(inside.max()) > 0  # one intensity per vial
            wall = rho[(distance > ar + 0.5 * PIXEL_MM[0]) & (distance <= ar + 0.5)]
            assert wall.numel() > 0 and float(wall.max()) == 0.0  # the wall (≥ 0.5 mm) is dark
            for bx, bz, br in vials[a + 1:]:
                assert np.hypot(ax - bx, az - bz) > ar + br + 1.5


def test_iron_fills_chosen_vials_along_y_one_level_each() -> None:
    rng = np.random.default_rng(0)
    rho, vials = families.vial_phantom(rng)
    concentration = families.vials_clusters_boxes(rng, rho, vials)
    assert torch.equal(concentration, concentration[:, :1, :].expand_as(concentration))  # cylinders along y
    plane = concentration[:, acq.VIEWLINE_NY // 2, :]
    x, z = families.plane_mm()
    in_some_vial = torch.zeros_like(plane, dtype=torch.bool)
    low, high = acq.SPIO_CONCENTRATION_RANGE_UG_FE_PER_MM3
    for vx, vz, radius in vials:
        vial = (x - vx) ** 2 + (z - vz) ** 2 <= radius**2
        in_some_vial |= vial
        values = plane[vial].unique()
        assert len(values) == 1 and (float(values) == 0 or low <= float(values) <= high)
    assert float(plane[~in_some_vial].abs().max()) == 0.0 and float(plane.max()) > 0


def test_a_box_has_the_volume_of_its_sides() -> None:
    mask = families.box(np.random.default_rng(1), np.zeros(3))
    replay = np.random.default_rng(1)  # the box's own draws: its rotation, then its half sides
    replay.normal(size=(3, 3))
    half = replay.uniform(1.0, 4.0, size=3)
    volume_mm3 = float(mask.sum()) * float(np.prod(VOXEL_3D_MM))
    np.testing.assert_allclose(volume_mm3, 8 * np.prod(half), rtol=0.1)


def test_a_cluster_keeps_the_upper_60_percent_of_its_ellipsoid() -> None:
    x, y, z = grid_3d_mm()
    mask = families.cluster(np.random.default_rng(2), np.zeros(3))
    semi = np.random.default_rng(2).uniform(1.5, 5.0, size=3)  # the cluster's first draw
    ellipsoid = (x / semi[0]) ** 2 + (y / semi[1]) ** 2 + (z / semi[2]) ** 2 <= 1.0
    assert not (mask & ~ellipsoid).any()
    np.testing.assert_allclose(float(mask.sum()) / float(ellipsoid.sum()), 0.6, atol=0.01)

"""Connected components (26-connectivity), RAS centroids and volumes, patches at image borders, the edge rule."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_modules.rim.lesions import (
    PATCH_VOXELS,
    describe_lesions,
    edge_minus_core_ppm,
    extract_patch,
    label_lesions,
)


def test_binary_mask_gives_26_connected_lesions() -> None:
    mask = np.zeros((10, 10, 10), dtype=np.uint8)
    mask[1, 1, 1] = mask[2, 2, 2] = 1  # corner neighbours: one lesion under 26-connectivity
    mask[6:8, 6:8, 6:8] = 1
    labels = label_lesions(mask)
    assert labels.max() == 2
    assert labels[1, 1, 1] == labels[2, 2, 2] != labels[6, 6, 6]


def test_integer_labels_are_kept_and_bad_values_rejected() -> None:
    mask = np.zeros((6, 6, 6))
    mask[1, 1, 1], mask[1, 1, 2], mask[4, 4, 4] = 3, 7, 3  # touching labels stay separate, split labels stay one
    labels = label_lesions(mask)
    assert sorted(np.unique(labels).tolist()) == [0, 3, 7]
    assert [les.n_voxels for les in describe_lesions(labels, np.eye(4))] == [2, 1]
    with pytest.raises(ValueError, match="integers"):
        label_lesions(mask * 0.5)
    with pytest.raises(ValueError, match="integers"):
        label_lesions(-mask)


def test_centroid_and_volume_in_ras_mm_with_an_oblique_anisotropic_affine() -> None:
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.5, 1.0, 2.0])
    affine[:3, 3] = [-20.0, 10.0, 5.0]
    labels = np.zeros((12, 12, 12), dtype=np.int32)
    labels[2:5, 6, 3:5] = 1  # voxel centroid (3, 6, 3.5)
    (lesion,) = describe_lesions(labels, affine)
    assert lesion.n_voxels == 6
    assert lesion.volume_mm3 == pytest.approx(6 * 0.5 * 1.0 * 2.0)
    np.testing.assert_allclose(lesion.centroid_voxel, [3.0, 6.0, 3.5])
    expected = rotation @ np.array([3.0 * 0.5, 6.0 * 1.0, 3.5 * 2.0]) + [-20.0, 10.0, 5.0]
    np.testing.assert_allclose(lesion.centroid_ras_mm, expected, atol=1e-9)


def test_patch_at_the_border_is_zero_padded_and_centred() -> None:
    volume = np.ones((20, 20, 20), dtype=np.float32)
    volume[0, 0, 0] = 5.0
    patch = extract_patch(volume, np.array([0.0, 0.0, 0.0]), np.ones(3), patch_size_mm=24.0, patch_voxels=24)
    assert patch.shape == (PATCH_VOXELS,) * 3
    # samples at −11.5…+11.5 mm: the half below 0 lies outside the image and is zero
    assert np.all(patch[:11] == 0) and np.all(patch[:, :11] == 0)
    assert np.all(patch[13:, 13:, 13:] == 1.0)
    assert patch[12, 12, 12] == pytest.approx(1.0 + 4.0 / 8)  # trilinear, 0.5 voxel from the bright corner


def test_patch_covers_the_same_millimetres_at_any_voxel_size() -> None:
    fine = np.zeros((60, 60, 60), dtype=np.float32)
    fine[25:35, 25:35, 25:35] = 1.0  # a 10 mm cube at 1 mm voxels
    coarse = fine.reshape(30, 2, 30, 2, 30, 2).mean(axis=(1, 3, 5))  # the same cube at 2 mm voxels
    p_fine = extract_patch(fine, np.array([29.5] * 3), np.ones(3), order=1)
    p_coarse = extract_patch(coarse, np.array([14.5] * 3), np.full(3, 2.0), order=1)
    assert abs(p_fine.sum() - p_coarse.sum()) / p_fine.sum() < 0.15


def test_edge_rule_is_positive_for_a_paramagnetic_rim() -> None:
    radius = np.linalg.norm(np.indices((21, 21, 21)) - 10.0, axis=0)
    lesion = radius <= 6
    qsm = np.where((radius > 4.5) & lesion, 0.05, 0.0)
    assert edge_minus_core_ppm(qsm, lesion) > 0.005
    assert edge_minus_core_ppm(np.where(lesion, 0.05, 0.0), lesion) < 0  # uniformly hyperintense lesion

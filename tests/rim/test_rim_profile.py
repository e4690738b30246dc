"""The rim profile: edge-layer contrasts against the core, and how much of the edge a rim covers."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from lightning_modules.rim.profile import COVERAGE_THRESHOLDS_PPM, SECTOR_QUANTILES, RimProfile

N = 24
SCALE = 20.0
# feature layout: 5 radial contrasts, the sector quantiles, the sector mean, the coverage fractions
Q13 = 5 + SECTOR_QUANTILES.index(1.0 / 3.0)
MEAN = 5 + len(SECTOR_QUANTILES)
COVER_02 = MEAN + 1 + COVERAGE_THRESHOLDS_PPM.index(0.02)


def _sphere(radius: float) -> np.ndarray:
    grid = np.indices((N, N, N)) - (N - 1) / 2
    return (np.sqrt((grid**2).sum(0)) <= radius).astype(np.float32)


def _patch(qsm: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.stack([qsm, np.ones_like(qsm), mask])[None], dtype=torch.float32)


def _outer_layer(mask: np.ndarray) -> np.ndarray:
    return mask.astype(bool) & ~ndimage.binary_erosion(mask.astype(bool), np.ones((3, 3, 3)), border_value=0)


def test_full_rim_gives_its_contrast_in_the_outer_layer_and_full_coverage() -> None:
    mask = _sphere(7.0)
    # core −0.01 ppm, rim +0.04 ppm (0.05 above the core), outside 0
    qsm = np.where(_outer_layer(mask), 0.04, np.where(mask > 0, -0.01, 0.0)).astype(np.float32)
    features = RimProfile()(_patch(qsm, mask))[0].numpy()
    assert features.shape == (RimProfile.n_features,)
    np.testing.assert_allclose(features[0], 0.05 * SCALE, rtol=1e-5)  # outermost layer − core, ×20/ppm
    np.testing.assert_allclose(features[1], 0.0, atol=1e-6)  # second layer is core-like
    np.testing.assert_allclose(features[2:4], 0.01 * SCALE, rtol=1e-5)  # outside (0 ppm) − core (−0.01)
    assert features[COVER_02] == 1.0
    assert features[Q13] > 0.02 * SCALE


def test_short_arc_covers_little_of_the_edge_and_keeps_the_one_third_quantile_at_zero() -> None:
    mask = _sphere(7.0)
    grid = np.indices((N, N, N)) - (N - 1) / 2
    arc = _outer_layer(mask) & (grid[0] > 4.0)  # one cap of the edge
    qsm = np.where(arc, 0.06, 0.0).astype(np.float32)
    features = RimProfile()(_patch(qsm, mask))[0].numpy()
    assert 0.0 < features[COVER_02] < 1.0 / 3.0
    np.testing.assert_allclose(features[Q13], 0.0, atol=1e-6)
    rim = RimProfile()(_patch(np.where(_outer_layer(mask), 0.06, 0.0).astype(np.float32), mask))[0].numpy()
    assert rim[COVER_02] == 1.0 and rim[MEAN] > features[MEAN]


def test_tiny_and_empty_lesions_give_finite_features() -> None:
    mask = np.zeros((N, N, N), dtype=np.float32)
    single = mask.copy()
    single[12, 12, 12] = 1.0
    qsm = np.random.default_rng(0).normal(0, 0.02, (N, N, N)).astype(np.float32)
    features = RimProfile()(torch.cat([_patch(qsm, mask), _patch(qsm, single)]))
    assert torch.isfinite(features).all()


def test_batch_rows_are_independent() -> None:
    mask = _sphere(6.0)
    rng = np.random.default_rng(1)
    patches = torch.cat([_patch(rng.normal(0, 0.02, (N, N, N)).astype(np.float32), mask) for _ in range(3)])
    together = RimProfile()(patches)
    alone = torch.cat([RimProfile()(patches[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone)

"""Susceptibility phantoms and simulated local fields with known truth (for the demo, tests and training).

A head-like phantom: an ellipsoidal brain with diamagnetic white matter, paramagnetic deep grey nuclei,
thin vessels and a few small sources of either sign, all in ppm, on a grid of any voxel size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lightning_modules.qsm.dipole import forward_field


@dataclass
class SimulatedCase:
    """A phantom and its field: ``chi_ppm`` and ``field_ppm`` (i, j, k) arrays, boolean ``mask``."""

    chi_ppm: np.ndarray
    field_ppm: np.ndarray
    mask: np.ndarray
    voxel_size_mm: tuple[float, float, float]
    b0_direction: tuple[float, float, float]


def _coordinates(shape: Sequence[int], voxel_size_mm: Sequence[float]) -> np.ndarray:
    """Voxel centres in mm relative to the grid centre, shape (*shape, 3)."""
    axes = [(np.arange(n) - (n - 1) / 2) * d for n, d in zip(shape, voxel_size_mm)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def _ellipsoid(pos: np.ndarray, centre_mm: Sequence[float], radii_mm: Sequence[float]) -> np.ndarray:
    return (((pos - np.asarray(centre_mm)) / np.asarray(radii_mm)) ** 2).sum(-1) <= 1.0


def _tube(pos: np.ndarray, point_mm: np.ndarray, direction: np.ndarray, radius_mm: float) -> np.ndarray:
    d = direction / np.linalg.norm(direction)
    rel = pos - point_mm
    return np.linalg.norm(rel - (rel @ d)[..., None] * d, axis=-1) <= radius_mm


def head_phantom(
    shape: Sequence[int] = (96, 96, 80),
    voxel_size_mm: Sequence[float] = (2.0, 2.0, 2.0),
    *,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A brain-like susceptibility phantom.

    Args:
        shape: grid shape (i, j, k).
        voxel_size_mm: voxel sizes, mm.
        seed: random seed for the positions of vessels and small sources.

    Returns:
        ``(chi_ppm, brain_mask)``; χ is 0 outside the brain.
    """
    rng = np.random.default_rng(seed)
    pos = _coordinates(shape, voxel_size_mm)
    extent = np.asarray(shape) * np.asarray(voxel_size_mm)
    brain_radii = 0.42 * extent
    brain = _ellipsoid(pos, (0, 0, 0), brain_radii)
    chi = np.zeros(tuple(shape), dtype=np.float64)
    chi[_ellipsoid(pos, (0, 0, 0), 0.75 * brain_radii)] = -0.03  # white matter
    for side in (-1, 1):  # deep grey nuclei: caudate, putamen, globus pallidus
        chi[_ellipsoid(pos, (side * 0.18 * brain_radii[0], 0.15 * brain_radii[1], 0.05 * brain_radii[2]),
                       0.12 * brain_radii)] = 0.06
        chi[_ellipsoid(pos, (side * 0.32 * brain_radii[0], -0.05 * brain_radii[1], 0.0),
                       (0.10 * brain_radii[0], 0.22 * brain_radii[1], 0.14 * brain_radii[2]))] = 0.08
        chi[_ellipsoid(pos, (side * 0.24 * brain_radii[0], -0.12 * brain_radii[1], -0.02 * brain_radii[2]),
                       0.07 * brain_radii)] = 0.15
    for _ in range(6):  # vessels in random orientations
        point = rng.uniform(-0.5, 0.5, 3) * brain_radii
        chi[_tube(pos, point, rng.normal(size=3), rng.uniform(0.8, 1.6) * max(voxel_size_mm))] = rng.uniform(
            0.2, 0.45)
    for _ in range(8):  # small calcification (−) and haemorrhage (+) like sources
        centre = rng.uniform(-0.55, 0.55, 3) * brain_radii
        chi[_ellipsoid(pos, centre, np.full(3, rng.uniform(1.5, 3.0) * max(voxel_size_mm)))] = rng.choice(
            [-0.1, 0.3])
    chi[~brain] = 0.0
    return chi, brain


def simulate_field(
    chi_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float] = (1.0, 1.0, 1.0),
    b0_direction: Sequence[float] = (0.0, 0.0, 1.0),
    *,
    noise_std_ppm: float = 0.0,
    seed: int = 0,
) -> SimulatedCase:
    """Local field of χ by the padded forward model, plus Gaussian noise inside the mask; 0 outside."""
    field = forward_field(torch.as_tensor(chi_ppm, dtype=torch.float64), voxel_size_mm, b0_direction).numpy()
    if noise_std_ppm > 0:
        field = field + np.random.default_rng(seed).normal(0.0, noise_std_ppm, field.shape)
    field = np.where(mask, field, 0.0)
    return SimulatedCase(chi_ppm, field, mask.astype(bool), tuple(map(float, voxel_size_mm)),
                         tuple(map(float, b0_direction)))

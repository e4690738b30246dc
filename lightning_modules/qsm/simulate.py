"""Susceptibility phantoms and simulated local fields with known truth (for the demo, tests and training).

A head-like phantom: an ellipsoidal brain with diamagnetic white matter, paramagnetic deep grey nuclei,
thin vessels and a few small sources of either sign, all in ppm, on a grid of any voxel size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lightning_modules.physics.dipole import forward_field


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


def _mni_tissue() -> tuple[np.ndarray, np.ndarray]:
    """MNI ICBM152 2009 grey- and white-matter probability maps (1 mm) shipped inside the nilearn wheel."""
    global _MNI_CACHE
    if _MNI_CACHE is None:
        from nilearn import datasets

        grey = datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32)
        white = datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32)
        _MNI_CACHE = (grey, white)
    return _MNI_CACHE


_MNI_CACHE: tuple[np.ndarray, np.ndarray] | None = None


def random_b0_direction(rng: np.random.Generator, *, max_tilt_degrees: float = 30.0) -> np.ndarray:
    """A unit B0 direction within ``max_tilt_degrees`` of the volume's z axis, uniform in azimuth."""
    tilt = np.radians(rng.uniform(0.0, max_tilt_degrees))
    azimuth = rng.uniform(0.0, 2 * np.pi)
    return np.array([np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), np.cos(tilt)])


def random_voxel_size(rng: np.random.Generator, *, low_mm: float = 0.6, high_mm: float = 1.5) -> np.ndarray:
    """Isotropic (half of the draws) or anisotropic voxel sizes in [low, high] mm."""
    if rng.random() < 0.5:
        return np.full(3, rng.uniform(low_mm, high_mm))
    return rng.uniform(low_mm, high_mm, 3)


def brain_like_chi(
    shape: Sequence[int], voxel_size_mm: Sequence[float], rng: np.random.Generator, *, enclosed: bool = False,
    large_shapes: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """A random brain-like χ (ppm) and brain mask on a grid: MNI grey/white matter crop + random sources.

    Tissue: white matter −0.03…−0.01 ppm, cortex 0…+0.03 ppm (MNI probability maps sampled at a random
    position on the requested grid); deep-grey-like nuclei +0.05…0.2 ppm, random ellipsoids/boxes of either
    sign (DeepQSM-style), vessels as thin tubes +0.2…0.45 ppm in any orientation, calcification-like −0.1…−0.3
    spots and haemorrhage-like +0.3…0.6 blobs. A third of the masks are the whole box (no brain edge).

    ``enclosed``: the mask is cut to an ellipsoid with semi-axes of 30–40 % of the box, centred, so every source
    and its whole field lie inside the box, as a brain does inside a head volume (without it, sources touch the
    box faces and their fields are cut off by the box).
    ``large_shapes``: first adds 1–5 overlapping DeepQSM-style shapes (ellipsoids, boxes and finite cylinders in
    any orientation, half-sizes 8–35 % of the box, −0.15…+0.2 ppm each, summed where they overlap), so that
    sources much larger than the nuclei, whose field vanishes inside, are part of the training distribution.
    """
    from scipy import ndimage

    grey, white = _mni_tissue()
    shape = tuple(int(s) for s in shape)
    extent = np.asarray(shape) * np.asarray(voxel_size_mm)
    centre = np.array([rng.uniform(50, 147), rng.uniform(60, 173), rng.uniform(40, 130)])
    coords = [centre[a] + (np.arange(shape[a]) - shape[a] / 2) * voxel_size_mm[a] for a in range(3)]
    grid = np.stack(np.meshgrid(*coords, indexing="ij"))
    gm = ndimage.map_coordinates(grey, grid, order=1, mode="constant")
    wm = ndimage.map_coordinates(white, grid, order=1, mode="constant")
    chi = gm * rng.uniform(0.0, 0.03) - wm * rng.uniform(0.01, 0.03)
    brain = (gm + wm) > 0.35
    if rng.random() < 0.33 or brain.mean() < 0.3:
        brain = np.ones(shape, bool)
    pos = _coordinates(shape, voxel_size_mm)
    for _ in range(rng.integers(1, 6) if large_shapes else 0):
        chi += rng.uniform(-0.15, 0.2) * _large_shape(pos, extent, rng)
    for _ in range(rng.integers(2, 10)):
        centre_mm = rng.uniform(-0.45, 0.45, 3) * extent
        radii = rng.uniform(1.5, 8.0, 3)
        value = rng.choice([rng.uniform(0.05, 0.2), rng.uniform(-0.1, 0.1)])
        region = _ellipsoid(pos, centre_mm, radii) if rng.random() < 0.7 else np.all(
            np.abs(pos - centre_mm) <= radii, axis=-1)
        chi[region] = value
    for _ in range(rng.integers(0, 4)):
        chi[_tube(pos, rng.uniform(-0.4, 0.4, 3) * extent, rng.normal(size=3), rng.uniform(0.5, 1.5))] = \
            rng.uniform(0.2, 0.45)
    if rng.random() < 0.3:
        chi[_ellipsoid(pos, rng.uniform(-0.4, 0.4, 3) * extent, np.full(3, rng.uniform(1.0, 2.5)))] = \
            rng.uniform(-0.3, -0.1)
    if rng.random() < 0.2:
        chi[_ellipsoid(pos, rng.uniform(-0.4, 0.4, 3) * extent, rng.uniform(2.0, 5.0, 3))] = rng.uniform(0.3, 0.6)
    if enclosed:
        brain &= _ellipsoid(pos, (0, 0, 0), rng.uniform(0.30, 0.40, 3) * extent)
    chi[~brain] = 0.0
    return chi, brain


def shapes_chi(shape: Sequence[int], voxel_size_mm: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """A piecewise-constant phantom (ppm) on a zero background, as test phantoms are: 1–3 large low-contrast
    regions (ellipsoids, boxes, finite cylinders in any orientation, half-sizes up to 60 % of the box, so they
    may run out of it; |χ| log-uniform in 0.005–0.05 ppm, either sign) and 2–8 smaller shapes inside or across
    them (half-sizes 3–15 % of the box, −0.1…+0.35 ppm); overlapping values add up."""
    shape = tuple(int(s) for s in shape)
    extent = np.asarray(shape) * np.asarray(voxel_size_mm)
    pos = _coordinates(shape, voxel_size_mm)
    chi = np.zeros(shape)
    for _ in range(rng.integers(1, 4)):
        value = rng.choice([-1.0, 1.0]) * np.exp(rng.uniform(np.log(0.005), np.log(0.05)))
        chi += value * _large_shape(pos, extent, rng, half_range=(0.15, 0.6))
    for _ in range(rng.integers(2, 9)):
        chi += rng.uniform(-0.1, 0.35) * _large_shape(pos, extent, rng, half_range=(0.03, 0.15))
    return chi


def sources_chi(shape: Sequence[int], voxel_size_mm: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """A dense DeepQSM-style source phantom (ppm) that fills the box: 20–60 boxes, ellipsoids and finite cylinders
    (any orientation) placed anywhere, so many run out of the box, drawn from large (half-sizes up to 30 % of
    the box) to small; each takes one value N(0, σ²), σ log-uniform in 0.03–0.12 ppm, and later shapes cover
    earlier ones (piecewise constant, no tissue background)."""
    shape = tuple(int(s) for s in shape)
    extent = np.asarray(shape) * np.asarray(voxel_size_mm)
    pos = _coordinates(shape, voxel_size_mm)
    chi = np.zeros(shape)
    sigma = np.exp(rng.uniform(np.log(0.03), np.log(0.12)))
    total = int(rng.integers(20, 61))
    for i in range(total):
        shrink = 1.0 / (1.0 + i / total)
        region = _large_shape(pos, extent, rng, half_range=(0.02 * shrink, 0.3 * shrink), centre_range=0.5)
        chi[region] = rng.normal(0.0, sigma)
    return chi


def _large_shape(
    pos: np.ndarray, extent: np.ndarray, rng: np.random.Generator, *, half_range: tuple[float, float] = (0.08, 0.35),
    centre_range: float = 0.3,
) -> np.ndarray:
    """A random ellipsoid, box or finite cylinder (any orientation), half-sizes in ``half_range`` (default
    8–35 %) of ``extent``, centred within ±``centre_range`` of ``extent`` from the box centre."""
    centre = rng.uniform(-centre_range, centre_range, 3) * extent
    half = rng.uniform(*half_range, 3) * extent
    kind = rng.integers(3)
    if kind == 0:
        return _ellipsoid(pos, centre, half)
    if kind == 1:
        return np.all(np.abs(pos - centre) <= half, axis=-1)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return _tube(pos, centre, axis, half[0]) & (np.abs((pos - centre) @ axis) <= half[1])


def random_training_case(
    shape: Sequence[int], rng: np.random.Generator, *, max_noise_ppm: float = 3e-3,
    max_background_ppm: float = 5e-3, voxel_size_mm: Sequence[float] | None = None,
    b0_direction: Sequence[float] | None = None, min_noise_ppm: float = 0.0, enclosed: bool = False,
    large_shapes: bool = False, phantom_fraction: float = 0.0, sources_fraction: float = 0.0,
) -> SimulatedCase:
    """A training sample for learned inversion: random anatomy, voxel size, B0 direction, noise level and
    a smooth residual background field (imperfect background removal), with the field 0 outside the mask.
    A given ``voxel_size_mm`` or ``b0_direction`` is used instead of a random one (fixed-geometry networks).
    The noise σ is uniform in [0, ``max_noise_ppm``], or log-uniform in [``min_noise_ppm``, ``max_noise_ppm``]
    when ``min_noise_ppm`` > 0 (so that low-noise fields are as common as noisy ones); ``enclosed`` and
    ``large_shapes``: see :func:`brain_like_chi`. With ``enclosed``, two thirds of the cases are local fields cut
    at the brain edge (0 outside, as after background-field removal in vivo) and a third keep the field of the
    whole box with a whole-box mask (a phantom whose field is known everywhere). A ``phantom_fraction`` of the
    cases are instead piecewise-constant phantoms (:func:`shapes_chi`) with the complete field of the whole box,
    its mean removed in half of them (a field known up to a constant), and no background field; a further
    ``sources_fraction`` are dense source phantoms (:func:`sources_chi`) simulated the same way."""
    voxel_size = random_voxel_size(rng) if voxel_size_mm is None else np.asarray(voxel_size_mm, dtype=float)
    b0 = random_b0_direction(rng) if b0_direction is None else np.asarray(b0_direction, dtype=float)
    draw = rng.random() if phantom_fraction + sources_fraction > 0 else 1.0
    if draw < phantom_fraction + sources_fraction:
        chi = (shapes_chi if draw < phantom_fraction else sources_chi)(shape, voxel_size, rng)
        noise = _noise_std(rng, min_noise_ppm, max_noise_ppm)
        case = simulate_field(chi, np.ones(chi.shape, bool), voxel_size, b0, noise_std_ppm=noise,
                              seed=int(rng.integers(2**31)))
        if rng.random() < 0.5:
            case.field_ppm = case.field_ppm - case.field_ppm.mean()
        return case
    chi, brain = brain_like_chi(shape, voxel_size, rng, enclosed=enclosed, large_shapes=large_shapes)
    if enclosed and rng.random() < 1 / 3:
        brain = np.ones_like(brain)  # the field is known everywhere (a full-FOV phantom), not cut at the brain edge
    noise = _noise_std(rng, min_noise_ppm, max_noise_ppm)
    case = simulate_field(chi, brain, voxel_size, b0, noise_std_ppm=noise,
                          seed=int(rng.integers(2**31)))
    if rng.random() < 0.5:
        pos = _coordinates(shape, voxel_size) / (np.asarray(shape) * voxel_size)
        coefficients = rng.uniform(-1, 1, 3) * rng.uniform(0, max_background_ppm)
        case.field_ppm = case.field_ppm + np.where(brain, pos @ coefficients, 0.0)
    return case


def _noise_std(rng: np.random.Generator, min_noise_ppm: float, max_noise_ppm: float) -> float:
    """Uniform in [0, max], or log-uniform in [min, max] when min > 0."""
    if min_noise_ppm > 0:
        return float(np.exp(rng.uniform(np.log(min_noise_ppm), np.log(max_noise_ppm))))
    return float(rng.uniform(0.0, max_noise_ppm))

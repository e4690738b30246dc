"""A second generator variant for SPIO networks, built without rim contrasts (issue 24, session 26).

Variant 1 (``spio_variant.py``) motivated a training family (session 25's rim-contrast bases), so it can no longer
test that family fairly. This variant was written before any network ran on it and shares no base or shape family
with training or with variant 1. Same View Line acquisition and SNR draw as training
(``lightning_modules.spio.data``):

- base images, half each:
  - a **vial phantom** (the bench experiment): a circular or rounded-square container of water, 30–50 mm across,
    holding 3–7 vials (radius 3–7 mm) of intensity 0.3–1.2 behind dark walls 0.5–1 mm thick;
  - an **organ**: a smooth random closed region 25–45 mm across (thresholded smooth noise around a centre) with a
    smooth intensity texture and 0–3 dark or bright lesions;
- SPIO objects, 1–5, concentrations log-uniform 0.22–27.9 µg Fe/mm³ as in training:
  - in a vial phantom, iron fills whole vials as cylinders along y (inside the walls), one level per vial;
  - in an organ, irregular **clusters** (thresholded smooth 3-D noise inside an ellipsoid of 3–10 mm) or rotated
    **boxes** (sides 2–8 mm), centred on tissue, up to 1.5 mm off the plane.

Sample ``i`` of a seed is reproducible on its own.

Usage (the same images as ``spio_paired_bins.py --generator variant2``):
    .venv/bin/python benchmarks/spio_variant2.py --n 8 --figure benchmarks/results/spio/spio_variant2.png
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from spio_variant import _plane_mm, ellipsoid  # benchmarks/ is on sys.path

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.data import P_NOISE_FREE, SNR_RANGE_DB
from lightning_modules.spio.phantoms import grid_3d_mm, log_uniform_level
from lightning_modules.spio.viewline import VOXEL_3D_MM, simulate_viewline


def _rounded_square(x, z, centre, half_side_mm: float, corner_mm: float) -> torch.Tensor:
    """Boolean rounded square (x, z) of half side ``half_side_mm`` and corner radius ``corner_mm``."""
    qx = ((x - centre[0]).abs() - (half_side_mm - corner_mm)).clamp_min(0.0)
    qz = ((z - centre[1]).abs() - (half_side_mm - corner_mm)).clamp_min(0.0)
    return qx**2 + qz**2 <= corner_mm**2


def vial_phantom(rng: np.random.Generator) -> tuple[torch.Tensor, list[tuple[float, float, float]]]:
    """Spin density (x, z) of a container with vials, and the vials' inner (x mm, z mm, radius mm)."""
    x, z = _plane_mm()
    half = rng.uniform(15.0, 25.0)
    centre = rng.uniform(-2.0, 2.0, size=2)
    if rng.random() < 0.5:
        container = (x - centre[0]) ** 2 + (z - centre[1]) ** 2 <= half**2
    else:
        container = _rounded_square(x, z, centre, half * 0.85, rng.uniform(2.0, 8.0))
    rho = container.float() * rng.uniform(0.6, 1.0)
    vials: list[tuple[float, float, float]] = []
    wanted = int(rng.integers(3, 8))
    for _ in range(200):  # rejection sampling: vials inside the container, apart from each other
        if len(vials) == wanted:
            break
        radius, wall = rng.uniform(3.0, 7.0), rng.uniform(0.5, 1.0)
        at = centre + rng.uniform(-half, half, size=2)
        outer = radius + wall
        if np.hypot(*(at - centre)) + outer > half * 0.85 - 0.5:
            continue
        if any(np.hypot(at[0] - vx, at[1] - vz) < outer + vr + 1.5 for vx, vz, vr in vials):
            continue
        distance = torch.sqrt((x - at[0]) ** 2 + (z - at[1]) ** 2)
        rho = torch.where(distance <= outer, torch.tensor(0.0), rho)
        rho = torch.where(distance <= radius, torch.tensor(float(rng.uniform(0.3, 1.2))), rho)
        vials.append((float(at[0]), float(at[1]), float(radius)))
    return rho, vials


def organ(rng: np.random.Generator) -> torch.Tensor:
    """Spin density (x, z) of a smooth random closed region with texture and 0–3 lesions."""
    nx, nz = acq.VIEWLINE_MATRIX
    x, z = _plane_mm()
    radius = rng.uniform(12.5, 22.5)
    centre = rng.uniform(-3.0, 3.0, size=2)
    wobble = gaussian_filter(rng.normal(size=(nx, nz)), rng.uniform(8.0, 16.0))
    wobble = torch.from_numpy(wobble / max(float(wobble.std()), 1e-12)).float()
    r = torch.sqrt((x - centre[0]) ** 2 + (z - centre[1]) ** 2)
    region = (r / radius + 0.15 * wobble) <= 1.0
    texture = gaussian_filter(rng.normal(size=(nx, nz)), rng.uniform(3.0, 10.0))
    texture = torch.from_numpy(texture / max(float(texture.std()), 1e-12)).float()
    rho = region.float() * torch.exp(rng.uniform(0.1, 0.3) * texture) * rng.uniform(0.5, 1.0)
    for _ in range(int(rng.integers(0, 4))):
        at = centre + rng.uniform(-0.6, 0.6, size=2) * radius
        size = rng.uniform(1.5, 5.0)
        lesion = ((x - at[0]) ** 2 + (z - at[1]) ** 2 <= size**2) & region
        rho = torch.where(lesion, rho * float(rng.uniform(0.3, 0.6) if rng.random() < 0.5 else rng.uniform(1.3, 1.8)),
                          rho)
    return rho / rho.max().clamp_min(1e-6)


def cluster(rng: np.random.Generator, centre_mm: np.ndarray) -> torch.Tensor:
    """Boolean irregular cluster (x, y, z): smooth 3-D noise above its 60th percentile inside an ellipsoid of
    semi-axes 1.5–5 mm around ``centre_mm``."""
    inside = ellipsoid(centre_mm, rng.uniform(1.5, 5.0, size=3), np.eye(3))
    width_mm = rng.uniform(0.8, 1.6)
    noise = gaussian_filter(rng.normal(size=tuple(inside.shape)), [width_mm / s for s in VOXEL_3D_MM])
    noise = torch.from_numpy(noise).float()
    if not inside.any():
        return inside
    return inside & (noise >= torch.quantile(noise[inside], 0.4))


def box(rng: np.random.Generator, centre_mm: np.ndarray) -> torch.Tensor:
    """Boolean box (x, y, z) with sides 2–8 mm in a random orientation around ``centre_mm``."""
    x, y, z = grid_3d_mm()
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    half = rng.uniform(1.0, 4.0, size=3)
    q = (x - centre_mm[0], y - centre_mm[1], z - centre_mm[2])
    inside = torch.ones((), dtype=torch.bool)
    for axis in range(3):
        along = q[0] * rotation[0, axis] + q[1] * rotation[1, axis] + q[2] * rotation[2, axis]
        inside = inside & (along.abs() <= half[axis])
    return inside


def variant2_concentration(rng: np.random.Generator, spin_density: torch.Tensor,
                           vials: list[tuple[float, float, float]]) -> torch.Tensor:
    """3-D SPIO concentration (x, y, z), µg Fe/mm³: iron-filled vials, or clusters and boxes on tissue."""
    x, y, z = grid_3d_mm()
    concentration = torch.zeros(x.shape[0], acq.VIEWLINE_NY, z.shape[2])
    if vials:
        chosen = rng.choice(len(vials), size=int(rng.integers(1, min(5, len(vials)) + 1)), replace=False)
        for v in chosen:
            vx, vz, radius = vials[int(v)]
            filled = ((x - vx) ** 2 + (z - vz) ** 2 <= radius**2).expand_as(concentration)
            concentration = torch.where(filled, torch.tensor(log_uniform_level(rng)), concentration)
        return concentration
    tissue = torch.nonzero(spin_density > 0.2 * spin_density.max())
    for _ in range(int(rng.integers(1, 6))):
        i, k = tissue[rng.integers(len(tissue))].tolist() if len(tissue) else (64, 64)
        centre = np.array([float(x[i, 0, 0]), float(rng.uniform(-1.5, 1.5)), float(z[0, 0, k])])
        mask = cluster(rng, centre) if rng.random() < 0.5 else box(rng, centre)
        concentration = torch.where(mask, torch.tensor(log_uniform_level(rng)), concentration)
    return concentration


def variant2_base_kind(seed: int, index: int) -> str:
    """Which base image :func:`variant2_sample` draws for ``(seed, index)`` (its first two random numbers)."""
    rng = np.random.default_rng([int(seed), int(index), 26])
    rng.integers(2**62)
    return "vial phantom" if rng.random() < 0.5 else "organ"


def variant2_sample(seed: int, index: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Sample ``index`` of ``seed``: View Line image (2, x, z), concentration (x, z), SNR in dB."""
    rng = np.random.default_rng([int(seed), int(index), 26])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    if rng.random() < 0.5:
        rho, vials = vial_phantom(rng)
    else:
        rho, vials = organ(rng), []
    rho = rho * float(rng.uniform(0.5, 2.0))
    concentration = variant2_concentration(rng, rho, vials)
    snr_db = math.inf if rng.random() < P_NOISE_FREE else float(rng.uniform(*SNR_RANGE_DB))
    image, plane = simulate_viewline(rho, concentration, snr_db=snr_db, generator=generator)
    return image.float().numpy(), plane.float().numpy(), snr_db


def sample_figure(sample, seed: int, n: int, figure: str, name: str) -> str:
    """Saves images and in-plane iron of samples ``0 … n−1`` of ``seed`` (``sample(seed, i)`` as
    :func:`variant2_sample` gives them) to ``figure``, titled with the generator's ``name``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, n, figsize=(2.0 * n, 4.2))
    for i in range(n):
        image, plane, snr = sample(seed, i)
        axes[0, i].imshow(image[0].T, cmap="gray", origin="lower")
        axes[0, i].set_title(f"#{i}, {snr:.0f} dB" if math.isfinite(snr) else f"#{i}, no noise", fontsize=8)
        axes[1, i].imshow(plane.T, cmap="magma", origin="lower")
        axes[1, i].set_title(f"max {plane.max():.1f} µg Fe/mm³", fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(f"{name} (seed {seed}): View Line image (even lines) and the iron in the plane")
    fig.tight_layout()
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=80)
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--n", type=int, default=8, help="images in the figure")
    parser.add_argument("--figure", default="benchmarks/results/spio/spio_variant2.png")
    args = parser.parse_args()
    print(sample_figure(variant2_sample, args.seed, args.n, args.figure, "Generator variant 2"))


if __name__ == "__main__":
    main()

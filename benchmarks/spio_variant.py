"""A generator variant for testing SPIO networks on data unlike their training set (issue 24).

Same View Line acquisition and SNR distribution as training (``lightning_modules.spio.data``), but other base
images and other shapes, none of which training ever drew:

- base images: a Shepp–Logan head phantom (scikit-image) at a random scale, rotation and shift, or a random
  ellipse phantom (3–8 overlapping ellipses of random intensity inside an outer ellipse), never the MNI template
  or a uniform disk;
- SPIO objects: 1–5 objects, each either a random ellipsoid (semi-axes 1–5 mm, random orientation) or a chain of
  2–4 touching spheres (radii 1–3 mm, each sphere tangent to the previous one) with a concentration of its own
  per sphere; log-uniform 0.22–27.9 µg Fe/mm³ as in training.

Sample ``i`` of a seed is reproducible on its own.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.data import P_NOISE_FREE, SNR_RANGE_DB
from lightning_modules.spio.phantoms import grid_3d_mm, log_uniform_level, sphere
from lightning_modules.spio.viewline import PIXEL_MM, pixel_centres_mm, simulate_viewline


@functools.lru_cache(maxsize=1)
def _shepp_logan() -> torch.Tensor:
    from skimage.data import shepp_logan_phantom

    return torch.from_numpy(shepp_logan_phantom().astype(np.float32))[None, None]


def _plane_mm() -> tuple[torch.Tensor, torch.Tensor]:
    nx, nz = acq.VIEWLINE_MATRIX
    return pixel_centres_mm(nx, PIXEL_MM[0])[:, None], pixel_centres_mm(nz, PIXEL_MM[1])[None, :]


def shepp_logan_base(rng: np.random.Generator) -> torch.Tensor:
    """Spin density (x, z): the Shepp–Logan phantom, scaled to 35–55 mm, rotated and shifted at random."""
    x, z = _plane_mm()
    size_mm, angle = rng.uniform(35.0, 55.0), rng.uniform(0, 2 * math.pi)
    shift = rng.uniform(-4.0, 4.0, size=2)
    u = ((x - shift[0]) * math.cos(angle) + (z - shift[1]) * math.sin(angle)) / (size_mm / 2)
    v = (-(x - shift[0]) * math.sin(angle) + (z - shift[1]) * math.cos(angle)) / (size_mm / 2)
    grid = torch.stack([u.expand(-1, z.shape[1]), v.expand(x.shape[0], -1)], dim=-1)[None].float()
    rho = torch.nn.functional.grid_sample(_shepp_logan(), grid, align_corners=False)[0, 0]
    return rho / rho.max().clamp_min(1e-6)


def ellipse_base(rng: np.random.Generator) -> torch.Tensor:
    """Spin density (x, z): an outer ellipse (semi-axes 15–24 mm) holding 3–8 ellipses of intensity 0.3–1.5."""
    x, z = _plane_mm()

    def ellipse(cx, cz, a, b, angle):
        u = (x - cx) * math.cos(angle) + (z - cz) * math.sin(angle)
        v = -(x - cx) * math.sin(angle) + (z - cz) * math.cos(angle)
        return ((u / a) ** 2 + (v / b) ** 2 <= 1.0).float()

    outer = ellipse(*rng.uniform(-3, 3, size=2), *rng.uniform(15.0, 24.0, size=2), rng.uniform(0, math.pi))
    rho = 0.8 * outer
    for _ in range(int(rng.integers(3, 9))):
        inner = ellipse(*rng.uniform(-12, 12, size=2), *rng.uniform(2.0, 9.0, size=2), rng.uniform(0, math.pi))
        rho = torch.where(inner > 0, torch.tensor(float(rng.uniform(0.3, 1.5))), rho) * outer
    return rho / rho.max().clamp_min(1e-6)


def ellipsoid(centre_mm, semi_axes_mm, rotation: np.ndarray) -> torch.Tensor:
    """Boolean ellipsoid (x, y, z) with ``semi_axes_mm`` along the columns of the rotation matrix."""
    x, y, z = grid_3d_mm()
    q = (x - centre_mm[0], y - centre_mm[1], z - centre_mm[2])
    total = 0.0
    for axis in range(3):
        along = q[0] * rotation[0, axis] + q[1] * rotation[1, axis] + q[2] * rotation[2, axis]
        total = total + (along / semi_axes_mm[axis]) ** 2
    return total <= 1.0


def variant_concentration(rng: np.random.Generator, spin_density: torch.Tensor) -> torch.Tensor:
    """3-D SPIO concentration (x, y, z), µg Fe/mm³: 1–5 ellipsoids or chains of touching spheres on tissue."""
    tissue = torch.nonzero(spin_density > 0.2 * spin_density.max())
    x, _, z = grid_3d_mm()
    concentration = torch.zeros(x.shape[0], acq.VIEWLINE_NY, z.shape[2])
    for _ in range(int(rng.integers(1, 6))):
        i, k = tissue[rng.integers(len(tissue))].tolist() if len(tissue) else (64, 64)
        centre = np.array([float(x[i, 0, 0]), float(rng.uniform(-1.0, 1.0)), float(z[0, 0, k])])
        if rng.random() < 0.5:
            rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
            masks = [(ellipsoid(centre, rng.uniform(1.0, 5.0, size=3), rotation), log_uniform_level(rng))]
        else:
            masks, radius = [], float(rng.uniform(1.0, 3.0))
            for _ in range(int(rng.integers(2, 5))):
                masks.append((sphere(tuple(centre), radius), log_uniform_level(rng)))
                direction = rng.normal(size=3)
                direction[1] *= 0.2  # stay near the imaged plane
                direction /= np.linalg.norm(direction)
                new_radius = float(rng.uniform(1.0, 3.0))
                centre = centre + (radius + new_radius) * direction
                radius = new_radius
        for mask, value in masks:
            concentration = torch.where(mask, torch.tensor(value), concentration)
    return concentration


def variant_base_kind(seed: int, index: int) -> str:
    """Which base image :func:`variant_sample` draws for ``(seed, index)`` (its first two random numbers)."""
    rng = np.random.default_rng([int(seed), int(index), 24])
    rng.integers(2**62)
    return "Shepp–Logan" if rng.random() < 0.5 else "random ellipses"


def variant_sample(seed: int, index: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Sample ``index`` of ``seed``: View Line image (2, x, z), concentration (x, z), SNR in dB."""
    rng = np.random.default_rng([int(seed), int(index), 24])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rho = (shepp_logan_base(rng) if rng.random() < 0.5 else ellipse_base(rng)) * float(rng.uniform(0.5, 2.0))
    concentration = variant_concentration(rng, rho)
    snr_db = math.inf if rng.random() < P_NOISE_FREE else float(rng.uniform(*SNR_RANGE_DB))
    image, plane = simulate_viewline(rho, concentration, snr_db=snr_db, generator=generator)
    return image.float().numpy(), plane.float().numpy(), snr_db

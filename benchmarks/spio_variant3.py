"""A third generator variant for SPIO networks (issue 24, session 36), written before any network ran on it.

Session 36 trained on variants 1 and 2 (report only), so neither can judge a network that has seen them. This
variant shares no base or shape family with training (MNI slices, agar disks; metaballs, tori, cylinders; rim,
head-anatomy and intensity changes; capsules, multi-level metaballs), variant 1 (Shepp–Logan, random ellipses;
ellipsoids, touching sphere chains) or variant 2 (vial phantoms, organs; filled vials, clusters, boxes). Same View
Line acquisition and SNR draw as training (``lightning_modules.spio.data``):

- base images, half each:
  - a **small-animal abdomen**: an elliptical body 20–44 mm × 16–32 mm with a bright subcutaneous fat layer
    (1–2.5 mm), 2–4 organs as superellipses of their own intensity, a dark spine and sometimes a gas pocket
    (no signal, air's susceptibility is not modelled: only the SPIO's field);
  - a **layered gel**: a rectangle 30–46 mm × 24–40 mm of 2–4 layers of intensity 0.4–1.2 with tilted flat
    interfaces (a layered agar phantom);
- SPIO objects, 1–4, concentrations log-uniform 0.22–27.9 µg Fe/mm³ as in training, centred on tissue:
  - **hollow shells** (outer radius 1.5–4 mm, wall 0.5–1.5 mm; a labelled rim around an unlabelled core), centre up
    to 1.5 mm off the plane;
  - **curved vessels** (a tube of radius 0.6–2 mm along a smooth random 3-D path 8–20 mm long, any direction);
  - **bead clumps** (4–10 balls of radius 0.5–1.5 mm within 4 mm of a centre, each at its own level, overlapping
    allowed; the last drawn wins).

Sample ``i`` of a seed is reproducible on its own.

Usage (the same images as ``spio_paired_bins.py --generator variant3``):
    .venv/bin/python benchmarks/spio_variant3.py --n 8 --figure benchmarks/results/spio/spio_variant3.png
"""

from __future__ import annotations

import math

import numpy as np
import torch
from spio_variant import draws_first_base, figure_main, finish_sample  # benchmarks/ is on sys.path

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.families import plane_mm
from lightning_modules.spio.phantoms import grid_3d_mm, log_uniform_level, sphere

STREAM = 36  # this variant's random stream, after the seed and the index


def _rotated(x, z, centre, angle: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates (u, v) of the plane in a frame at ``centre`` rotated by ``angle``."""
    u = (x - centre[0]) * math.cos(angle) + (z - centre[1]) * math.sin(angle)
    v = -(x - centre[0]) * math.sin(angle) + (z - centre[1]) * math.cos(angle)
    return u, v


def _superellipse(x, z, centre, a: float, b: float, power: float, angle: float) -> torch.Tensor:
    u, v = _rotated(x, z, centre, angle)
    return (u / a).abs() ** power + (v / b).abs() ** power <= 1.0


def abdomen(rng: np.random.Generator) -> torch.Tensor:
    """Spin density (x, z) of a small animal's abdomen: body, fat layer, organs, spine, sometimes gas."""
    x, z = plane_mm()
    centre, angle = rng.uniform(-3.0, 3.0, size=2), rng.uniform(0, math.pi)
    a, b = rng.uniform(10.0, 22.0), rng.uniform(8.0, 16.0)
    fat = rng.uniform(1.0, 2.5)
    body = _superellipse(x, z, centre, a, b, 2.0, angle)
    inner = _superellipse(x, z, centre, a - fat, b - fat, 2.0, angle)
    rho = torch.where(body, torch.tensor(float(rng.uniform(1.0, 1.4))), torch.tensor(0.0))
    rho = torch.where(inner, torch.tensor(float(rng.uniform(0.5, 0.8))), rho)
    for _ in range(int(rng.integers(2, 5))):
        at = centre + rng.uniform(-0.5, 0.5, size=2) * np.array([a, b])
        organ = _superellipse(x, z, at, rng.uniform(3.0, 9.0), rng.uniform(2.0, 6.0), rng.uniform(1.5, 4.0),
                              rng.uniform(0, math.pi)) & inner
        rho = torch.where(organ, torch.tensor(float(rng.uniform(0.4, 1.0))), rho)
    spine_at = centre + np.array([math.sin(angle), -math.cos(angle)]) * (b - fat - 3.0)
    spine = ((x - spine_at[0]) ** 2 + (z - spine_at[1]) ** 2 <= rng.uniform(1.5, 2.5) ** 2) & inner
    rho = torch.where(spine, torch.tensor(float(rng.uniform(0.05, 0.15))), rho)
    if rng.random() < 0.5:
        gas_at = centre + rng.uniform(-0.4, 0.4, size=2) * np.array([a, b])
        gas = ((x - gas_at[0]) ** 2 + (z - gas_at[1]) ** 2 <= rng.uniform(1.0, 3.0) ** 2) & inner
        rho = torch.where(gas, torch.tensor(0.0), rho)
    return rho / rho.max().clamp_min(1e-6)


def layered_gel(rng: np.random.Generator) -> torch.Tensor:
    """Spin density (x, z) of a rectangle of 2–4 gel layers with tilted flat interfaces."""
    x, z = plane_mm()
    centre = rng.uniform(-3.0, 3.0, size=2)
    half_x, half_z = rng.uniform(15.0, 23.0), rng.uniform(12.0, 20.0)
    inside = ((x - centre[0]).abs() <= half_x) & ((z - centre[1]).abs() <= half_z)
    tilt = rng.uniform(-0.35, 0.35)
    height = (z - centre[1]) + tilt * (x - centre[0])
    cuts = np.sort(rng.uniform(-half_z, half_z, size=int(rng.integers(1, 4))))
    rho = torch.full(inside.shape, float(rng.uniform(0.4, 1.2)))
    for cut in cuts:
        rho = torch.where(height > float(cut), torch.tensor(float(rng.uniform(0.4, 1.2))), rho)
    return torch.where(inside, rho, torch.tensor(0.0)) / rho.max().clamp_min(1e-6)


def shell(rng: np.random.Generator, centre_mm: np.ndarray) -> torch.Tensor:
    """Boolean hollow sphere (x, y, z): outer radius 1.5–4 mm, wall 0.5–1.5 mm."""
    outer = float(rng.uniform(1.5, 4.0))
    wall = float(rng.uniform(0.5, min(1.5, outer - 0.5)))
    return sphere(tuple(centre_mm), outer) & ~sphere(tuple(centre_mm), outer - wall)


def vessel(rng: np.random.Generator, centre_mm: np.ndarray) -> torch.Tensor:
    """Boolean tube (x, y, z) of radius 0.6–2 mm along a smooth random path 8–20 mm long through ``centre_mm``."""
    x, y, z = grid_3d_mm()
    radius, length = float(rng.uniform(0.6, 2.0)), float(rng.uniform(8.0, 20.0))
    step = 0.4 * radius
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    points, at = [centre_mm.astype(float)], centre_mm.astype(float)
    for sign in (1.0, -1.0):  # grow both ways from the centre, turning a little each step
        at, heading = centre_mm.astype(float), sign * direction
        for _ in range(int(length / 2 / step)):
            heading = heading + rng.normal(scale=0.08, size=3)
            heading /= np.linalg.norm(heading)
            at = at + step * heading
            points.append(at)
    inside = torch.zeros(x.shape[0], y.shape[1], z.shape[2], dtype=torch.bool)
    for px, py, pz in points:
        inside |= (x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2 <= radius**2
    return inside


def bead_clump(rng: np.random.Generator, centre_mm: np.ndarray) -> list[tuple[torch.Tensor, float]]:
    """4–10 balls of radius 0.5–1.5 mm within 4 mm of ``centre_mm``, each with its own level."""
    beads = []
    for _ in range(int(rng.integers(4, 11))):
        offset = rng.uniform(-4.0, 4.0, size=3) * np.array([1.0, 0.4, 1.0])
        beads.append((sphere(tuple(centre_mm + offset), float(rng.uniform(0.5, 1.5))), log_uniform_level(rng)))
    return beads


def variant3_concentration(rng: np.random.Generator, spin_density: torch.Tensor) -> torch.Tensor:
    """3-D SPIO concentration (x, y, z), µg Fe/mm³: 1–4 shells, vessels or bead clumps on tissue."""
    x, _, z = grid_3d_mm()
    concentration = torch.zeros(x.shape[0], acq.VIEWLINE_NY, z.shape[2])
    tissue = torch.nonzero(spin_density > 0.2 * spin_density.max())
    for _ in range(int(rng.integers(1, 5))):
        i, k = tissue[rng.integers(len(tissue))].tolist() if len(tissue) else (64, 64)
        centre = np.array([float(x[i, 0, 0]), float(rng.uniform(-1.5, 1.5)), float(z[0, 0, k])])
        kind = int(rng.integers(3))
        parts = ([(shell(rng, centre), log_uniform_level(rng))] if kind == 0
                 else [(vessel(rng, centre), log_uniform_level(rng))] if kind == 1
                 else bead_clump(rng, centre))
        for mask, level in parts:
            concentration = torch.where(mask, torch.tensor(level), concentration)
    return concentration


def variant3_base_kind(seed: int, index: int) -> str:
    """Which base image :func:`variant3_sample` draws for ``(seed, index)``."""
    return "abdomen" if draws_first_base(seed, index, STREAM) else "layered gel"


def variant3_sample(seed: int, index: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Sample ``index`` of ``seed``: View Line image (2, x, z), concentration (x, z), SNR in dB."""
    rng = np.random.default_rng([int(seed), int(index), STREAM])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rho = abdomen(rng) if rng.random() < 0.5 else layered_gel(rng)
    rho = rho * float(rng.uniform(0.5, 2.0))
    return finish_sample(rng, generator, rho, variant3_concentration(rng, rho))


def main() -> None:
    figure_main(variant3_sample, description=__doc__.splitlines()[0], seed=7,
                figure="benchmarks/results/spio/spio_variant3.png", name="Generator variant 3")


if __name__ == "__main__":
    main()

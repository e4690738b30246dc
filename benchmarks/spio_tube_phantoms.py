"""Bench phantoms of tubes for judging the ``tubes`` shape prior (issue 24, session 37).

Written and committed before any network was trained on tube phantoms, and never trained on: it judges the weights
trained on :func:`lightning_modules.spio.families.tube_phantom_sample`. Its phantoms are laid out as labs build them,
which that training family does not do: same View Line acquisition and SNR draw as training
(``lightning_modules.spio.data``; no air bubble), iron only inside tubes along y, and half each of

- a **tube rack**: a rectangular water bath (34–46 × 26–44 mm, rounded corners) with a regular grid of 2–3 × 2–4
  tubes (pitch 8.5–12 mm) of one size (inner radius 1.5–4 mm, wall 0.4–1 mm), the whole rack tilted by up to 10°
  from y; a **dilution series**: the first tube at 1.75–27.9 µg Fe/mm³ (log-uniform), each next one at half the
  previous, tubes below 0.22 µg Fe/mm³ blank (water), in a random order on the grid;
- **rods in gel**: a gel disc (radius 18–24 mm) with 1–4 gel rods without walls (radius 1.5–5 mm), each tilted by
  up to 10° on its own, each at its own level (log-uniform 0.22–27.9 µg Fe/mm³).

Sample ``i`` of a seed is reproducible on its own.

Usage (the same images as ``spio_paired_bins.py --generator tubes``):
    .venv/bin/python benchmarks/spio_tube_phantoms.py --n 8 --figure benchmarks/results/spio/spio_tube_phantoms.png
"""

from __future__ import annotations

import math

import numpy as np
import torch
from spio_variant import draws_first_base, figure_main, finish_sample  # benchmarks/ is on sys.path

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.families import plane_mm, rounded_rectangle, tilted_axis
from lightning_modules.spio.phantoms import agar_disk, cylinder, log_uniform_level

STREAM = 37
LOWEST_UG_PER_MM3, HIGHEST_UG_PER_MM3 = acq.SPIO_CONCENTRATION_RANGE_UG_FE_PER_MM3


def tube_phantom_kind(seed: int, index: int) -> str:
    """Which phantom :func:`tube_phantom_judge_sample` draws for ``(seed, index)``."""
    return "tube rack" if draws_first_base(seed, index, STREAM) else "rods in gel"


def _rack(rng: np.random.Generator, walls: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    x, z = plane_mm()
    plane = acq.VIEWLINE_NY // 2
    half = rng.uniform([17.0, 13.0], [23.0, 22.0])
    rho = rounded_rectangle(x, z, (0.0, 0.0), half, rng.uniform(1.0, 3.0)).float() * rng.uniform(0.6, 1.0)
    rows, cols = int(rng.integers(2, 4)), int(rng.integers(2, 5))
    pitch = min(rng.uniform(8.5, 12.0), 2 * (half[1] - 2.0) / rows, 2 * (half[0] - 2.0) / cols)
    wall = rng.uniform(0.4, 1.0)
    radius = min(rng.uniform(1.5, 4.0), pitch / 2 - wall - 0.5)
    axis = tilted_axis(rng, 10.0)
    first = math.exp(rng.uniform(math.log(1.75), math.log(HIGHEST_UG_PER_MM3)))
    levels = [first / 2**k for k in range(rows * cols)]
    order = rng.permutation(rows * cols)
    content = rng.uniform(0.4, 1.0)
    concentration = torch.zeros(x.shape[0], acq.VIEWLINE_NY, z.shape[1])
    for slot, k in enumerate(order):
        row, col = divmod(slot, cols)
        at = ((col - (cols - 1) / 2) * pitch, 0.0, (row - (rows - 1) / 2) * pitch)
        inside = cylinder(at, radius, axis)
        if walls:
            rho = torch.where(cylinder(at, radius + wall, axis)[:, plane, :], torch.tensor(0.0), rho)
        rho = torch.where(inside[:, plane, :], torch.tensor(float(content)), rho)
        if levels[k] >= LOWEST_UG_PER_MM3:
            concentration = torch.where(inside, torch.tensor(float(levels[k])), concentration)
    return rho, concentration


def _rods_in_gel(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x, z = plane_mm()
    radius_gel = rng.uniform(18.0, 24.0)
    rho = agar_disk(radius_mm=radius_gel, value=rng.uniform(0.6, 1.0))
    concentration = torch.zeros(x.shape[0], acq.VIEWLINE_NY, z.shape[1])
    rods: list[tuple[float, float, float]] = []
    wanted = int(rng.integers(1, 5))
    for _ in range(200):
        if len(rods) == wanted:
            break
        radius = rng.uniform(1.5, 5.0)
        at = rng.uniform(-radius_gel, radius_gel, size=2)
        if np.hypot(*at) + radius > radius_gel - 3.0:
            continue
        if any(np.hypot(at[0] - rx, at[1] - rz) < radius + rr + 2.0 for rx, rz, rr in rods):
            continue
        inside = cylinder((float(at[0]), 0.0, float(at[1])), radius, tilted_axis(rng, 10.0))
        concentration = torch.where(inside, torch.tensor(log_uniform_level(rng)), concentration)
        rods.append((float(at[0]), float(at[1]), radius))
    return rho, concentration


def tube_phantom_judge_sample(seed: int, index: int, *, walls: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Sample ``index`` of ``seed``: View Line image (2, x, z), concentration (x, z), SNR in dB. ``walls`` False
    (a diagnostic, session 37): the racks' tubes without their dark walls, every random draw and all else the same."""
    rng = np.random.default_rng([int(seed), int(index), STREAM])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rho, concentration = _rack(rng, walls) if rng.random() < 0.5 else _rods_in_gel(rng)
    rho = rho * float(rng.uniform(0.5, 2.0))
    return finish_sample(rng, generator, rho, concentration)


def main() -> None:
    figure_main(tube_phantom_judge_sample, description=__doc__.splitlines()[0], seed=51,
                figure="benchmarks/results/spio/spio_tube_phantoms.png", name="Bench tube phantoms (judge)")


if __name__ == "__main__":
    main()

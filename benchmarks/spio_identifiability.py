"""How well a View Line image pins down an object's level when its out-of-plane extent is unknown (issue 24).

An SPIO sphere (radius 3 mm, centred on the imaged plane, in an agar disk) at c0 is the reference. Ellipsoids
with the same cross-section in the plane but another extent along y (semi-axis 1.5, 3, 6 mm, or a cylinder
along y) are scaled to the level that best matches the sphere's noise-free image (least squares over 41 levels
from 0.3 to 3 × c0). Reported: the best-matching level, and the residual within 8 mm of the object as a
multiple of the residual that a 10 % level error on the right shape leaves (so < 1 means "fits the sphere's
image better than the sphere itself at 10 % off"). The plane alone does not show the extent along y.

Usage:
    .venv/bin/python benchmarks/spio_identifiability.py   # → benchmarks/results/spio/spio_identifiability.md
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.phantoms import agar_disk, grid_3d_mm
from lightning_modules.spio.viewline import acquire, offresonance_tesla

RADIUS_MM = 3.0
Y_SEMI_AXES_MM = (1.5, 3.0, 6.0, math.inf)
LEVELS_UG_PER_MM3 = (0.5, 1.0, 5.0, 20.0)
NEAR_MM = 8.0


def ellipsoid(y_semi_axis_mm: float) -> torch.Tensor:
    """Indicator (x, y, z) of an ellipsoid of in-plane radius 3 mm and the given semi-axis along y (∞: cylinder)."""
    x, y, z = grid_3d_mm()
    in_plane = (x**2 + z**2) / RADIUS_MM**2
    along_y = torch.zeros_like(y) if math.isinf(y_semi_axis_mm) else (y / y_semi_axis_mm) ** 2
    return (in_plane + along_y <= 1.0).float()


def image(shape: torch.Tensor, level: float, rho: torch.Tensor) -> torch.Tensor:
    concentration = level * shape
    return acquire(rho, concentration[:, concentration.shape[1] // 2], offresonance_tesla(concentration))


def main() -> None:
    torch.set_num_threads(1)
    rho = agar_disk(radius_mm=22.0)
    x, _, z = grid_3d_mm()
    near = (x[:, 0, :] ** 2 + z[:, 0, :] ** 2) <= NEAR_MM**2
    sphere = ellipsoid(RADIUS_MM)
    rows = []
    for c0 in LEVELS_UG_PER_MM3:
        reference = image(sphere, c0, rho)
        ten_percent = 0.5 * sum(float((image(sphere, f * c0, rho) - reference)[:, near].norm()) for f in (0.9, 1.1))
        for semi_axis in Y_SEMI_AXES_MM:
            shape = ellipsoid(semi_axis)
            levels = c0 * np.geomspace(0.3, 3.0, 41)
            residuals = [float((image(shape, c, rho) - reference).norm()) for c in levels]
            best = float(levels[int(np.argmin(residuals))])
            near_residual = float((image(shape, best, rho) - reference)[:, near].norm())
            rows.append(f"| {c0:g} | {'∞ (cylinder)' if math.isinf(semi_axis) else f'{semi_axis:g}'} | "
                        f"{best / c0:.2f} | {near_residual / ten_percent:.2f} |")
    text = "\n".join([
        "# Level against out-of-plane extent (issue 24)", "",
        "Command: `.venv/bin/python benchmarks/spio_identifiability.py`. Reference: a sphere of radius 3 mm at c0 "
        "centred on the plane, agar disk, noise-free. Each row: an ellipsoid with the same cross-section in the "
        "plane and another semi-axis along y, at the level that best matches the sphere's image.", "",
        "| c0 (µg Fe/mm³) | semi-axis along y (mm; sphere = 3) | best-matching level / c0 | residual within 8 mm "
        "/ residual of the sphere at 0.9 or 1.1 × c0 |",
        "|---|---|---|---|", *rows, ""])
    out = Path(__file__).resolve().parent / "results" / "spio" / "spio_identifiability.md"
    write_text_atomic(text, out)
    print(text)


if __name__ == "__main__":
    main()

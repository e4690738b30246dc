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

from lightning_modules.spio.data import P_NOISE_FREE, SNR_RANGE_DB
from lightning_modules.spio.families import organ, vial_phantom, vials_clusters_boxes
from lightning_modules.spio.viewline import simulate_viewline


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
    concentration = vials_clusters_boxes(rng, rho, vials)
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

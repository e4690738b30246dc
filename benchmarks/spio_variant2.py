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

import numpy as np
import torch
from spio_variant import draws_first_base, figure_main, finish_sample  # benchmarks/ is on sys.path

from lightning_modules.spio.families import organ, vial_phantom, vials_clusters_boxes


def variant2_base_kind(seed: int, index: int) -> str:
    """Which base image :func:`variant2_sample` draws for ``(seed, index)``."""
    return "vial phantom" if draws_first_base(seed, index, 26) else "organ"


def variant2_sample(seed: int, index: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Sample ``index`` of ``seed``: View Line image (2, x, z), concentration (x, z), SNR in dB."""
    rng = np.random.default_rng([int(seed), int(index), 26])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    if rng.random() < 0.5:
        rho, vials = vial_phantom(rng)
    else:
        rho, vials = organ(rng), []
    rho = rho * float(rng.uniform(0.5, 2.0))
    return finish_sample(rng, generator, rho, vials_clusters_boxes(rng, rho, vials))


def main() -> None:
    figure_main(variant2_sample, description=__doc__.splitlines()[0], seed=5,
                figure="benchmarks/results/spio/spio_variant2.png", name="Generator variant 2")


if __name__ == "__main__":
    main()

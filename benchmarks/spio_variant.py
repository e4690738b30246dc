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

import math

import numpy as np
import torch

from lightning_modules.spio.data import P_NOISE_FREE, SNR_RANGE_DB
from lightning_modules.spio.families import ellipse_base, ellipsoids_and_chains, shepp_logan_base
from lightning_modules.spio.viewline import simulate_viewline


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
    concentration = ellipsoids_and_chains(rng, rho)
    snr_db = math.inf if rng.random() < P_NOISE_FREE else float(rng.uniform(*SNR_RANGE_DB))
    image, plane = simulate_viewline(rho, concentration, snr_db=snr_db, generator=generator)
    return image.float().numpy(), plane.float().numpy(), snr_db

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

import argparse
import importlib
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lightning_modules.spio.data import P_NOISE_FREE, SNR_RANGE_DB
from lightning_modules.spio.families import ellipse_base, ellipsoids_and_chains, shepp_logan_base
from lightning_modules.spio.viewline import simulate_viewline


def draws_first_base(seed: int, index: int, stream: int) -> bool:
    """Whether a variant whose random generator is seeded by ``(seed, index, stream)`` draws its first base kind:
    every variant draws the noise generator's seed first and then picks one of two bases with probability 1/2."""
    rng = np.random.default_rng([int(seed), int(index), int(stream)])
    rng.integers(2**62)
    return bool(rng.random() < 0.5)


def finish_sample(rng: np.random.Generator, generator: torch.Generator, rho: torch.Tensor,
                  concentration: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float]:
    """The variants' last step: an SNR drawn as training draws it, the View Line simulation, arrays out."""
    snr_db = math.inf if rng.random() < P_NOISE_FREE else float(rng.uniform(*SNR_RANGE_DB))
    image, plane = simulate_viewline(rho, concentration, snr_db=snr_db, generator=generator)
    return image.float().numpy(), plane.float().numpy(), snr_db


#: The generator variants by name: (module, sample function, base-kind function), imported when asked for.
VARIANTS = {"variant": ("spio_variant", "variant_sample", "variant_base_kind"),
            "variant2": ("spio_variant2", "variant2_sample", "variant2_base_kind"),
            "variant3": ("spio_variant3", "variant3_sample", "variant3_base_kind"),
            "tubes": ("spio_tube_phantoms", "tube_phantom_judge_sample", "tube_phantom_kind")}


def variant_functions(name: str) -> tuple[Callable, Callable]:
    """The sample and base-kind functions of the variant ``name`` (a key of :data:`VARIANTS`)."""
    module, sample, kind = VARIANTS[name]
    loaded = importlib.import_module(module)
    return getattr(loaded, sample), getattr(loaded, kind)


def variant_base_kind(seed: int, index: int) -> str:
    """Which base image :func:`variant_sample` draws for ``(seed, index)``."""
    return "Shepp–Logan" if draws_first_base(seed, index, 24) else "random ellipses"


def variant_sample(seed: int, index: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Sample ``index`` of ``seed``: View Line image (2, x, z), concentration (x, z), SNR in dB."""
    rng = np.random.default_rng([int(seed), int(index), 24])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rho = (shepp_logan_base(rng) if rng.random() < 0.5 else ellipse_base(rng)) * float(rng.uniform(0.5, 2.0))
    return finish_sample(rng, generator, rho, ellipsoids_and_chains(rng, rho))


def sample_figure(sample, seed: int, n: int, figure: str, name: str) -> str:
    """Saves images and in-plane iron of samples ``0 … n−1`` of ``seed`` (``sample(seed, i)`` as
    :func:`variant_sample` gives them) to ``figure``, titled with the generator's ``name``; returns the path."""
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


def figure_main(sample, *, description: str, seed: int, figure: str, name: str) -> None:
    """A variant's command line: ``--seed``, ``--n`` and ``--figure`` (defaults ``seed``, 8, ``figure``) →
    :func:`sample_figure`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--n", type=int, default=8, help="images in the figure")
    parser.add_argument("--figure", default=figure)
    args = parser.parse_args()
    print(sample_figure(sample, args.seed, args.n, args.figure, name))

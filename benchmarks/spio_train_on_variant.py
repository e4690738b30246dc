"""Issue 24, session 36 (report only): train.json with every fresh training sample drawn from a generator variant.

Asks whether the generator-variant gap (variant 1 0.54, variant 2 0.49 against validation's 0.36) is a shift a
network can learn from samples of the variant itself, or what one plane leaves ambiguous whatever the training.
The weights this makes have seen a variant, so they may never judge that variant's acceptance item and are not
shipped; they only bound what in-distribution data would buy.

``--variant mix`` draws each sample from training's generator (with the run's options), variant 1 or variant 2,
1/3 each. ``--variant ellipsoids`` (session 39) draws a quarter of the samples, by a random stream of their own, as
training's bases with 1–5 axis-parallel **ellipsoids of random extent along y** (:func:`ellipsoid_sample`), and the
rest from training's generator with the run's options: does a family in which the extent along y varies
independently of the in-plane section teach the network to read it from the field (session 39 found 0.12.0 reading
isolated spheres of r = 1.5 mm ≈ 30 % low at every SNR, noise-free included, where one plane holds their level)?
Everything after ``--variant NAME`` goes to ``python -m monai.bundle run`` unchanged; pass ``--pool_size 0`` (fresh
samples; the cached pools are training's) and, except for ``ellipsoids``, no auxiliary targets (the variants do not
make them). Validation stays training's generator (seed + 1). The variant's own seed is the run's ``--seed`` + 100,
so the samples it trains on never coincide with the benchmarks' variant sets (seeds 3–6, 21–25 and 41–42).

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_train_on_variant.py --variant variant \\
    --config_file monai_bundles/spio_quantification/configs/train.json --pool_size 0 --seed 81 ... --model_path V1.pt
"""

from __future__ import annotations

import runpy
import sys

import numpy as np
import torch
from spio_variant import variant_functions  # benchmarks/ is on sys.path

import lightning_modules.spio.data as data
from lightning_modules.spio.auxiliary import auxiliary_targets
from lightning_modules.spio.families import ellipsoids_of_random_extent
from lightning_modules.spio.phantoms import random_base
from lightning_modules.spio.viewline import simulate_viewline_with_field

SEED_OFFSET = 100
P_ELLIPSOIDS = 0.25  # --variant ellipsoids: the share of samples drawn by ellipsoid_sample


def ellipsoid_sample(seed: int, index: int, *, with_targets: bool = False,
                     noise_free_fraction: float = data.P_NOISE_FREE):
    """Training's plain base (an MNI slice or an agar disk, scaled 0.5–2 ×; no head anatomy, augmentation or air
    bubble whatever the run's options) with :func:`~lightning_modules.spio.families.ellipsoids_of_random_extent`'s
    objects; SNR as training's
    (``noise_free_fraction`` noise-free, else 5–30 dB). Image (2, 128, 128) and plane concentration (1, 128, 128),
    and with ``with_targets`` the auxiliary targets (field and extent along y, as
    :func:`~lightning_modules.spio.data.random_sample_with_targets`)."""
    rng = np.random.default_rng([int(seed) + SEED_OFFSET, int(index), 89])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rho = random_base(rng) * float(rng.uniform(0.5, 2.0))
    concentration = ellipsoids_of_random_extent(rng, rho)
    snr_db = np.inf if rng.random() < noise_free_fraction else float(rng.uniform(*data.SNR_RANGE_DB))
    image, plane, delta_b = simulate_viewline_with_field(rho, concentration, snr_db=snr_db, generator=generator)
    if with_targets:
        return image.float(), plane[None].float(), auxiliary_targets(delta_b, concentration)
    return image.float(), plane[None].float()


def ellipsoid_random_sample(training_sample, *, with_targets: bool = False):
    """A drop-in for :func:`~lightning_modules.spio.data.random_sample` (``with_targets``: for
    ``random_sample_with_targets``): :func:`ellipsoid_sample` with probability :data:`P_ELLIPSOIDS` (a random stream
    of its own), else ``training_sample`` with the run's options — so a run with the same seed without the wrapper
    sees exactly the other samples."""

    def random_sample(seed: int, index: int, **options):
        if np.random.default_rng([int(seed), int(index), 83]).random() < P_ELLIPSOIDS:
            return ellipsoid_sample(seed, index, with_targets=with_targets,
                                    noise_free_fraction=options.get("noise_free_fraction", data.P_NOISE_FREE))
        return training_sample(seed, index, **options)

    return random_sample


def variant_random_sample(name: str):
    """A drop-in for :func:`lightning_modules.spio.data.random_sample` that draws sample ``index`` of the variant
    ``name`` at ``seed + SEED_OFFSET`` (the training generator's options are ignored: the variant has its own)."""
    if name not in ("variant", "variant2"):  # variant 3 judges what these train, so it is never trained on
        raise SystemExit(f"--variant must be variant, variant2, mix or ellipsoids, got {name!r}")
    sample, _ = variant_functions(name)

    def random_sample(seed: int, index: int, **_options) -> tuple[torch.Tensor, torch.Tensor]:
        image, plane, _ = sample(seed + SEED_OFFSET, index)
        return torch.from_numpy(image).float(), torch.from_numpy(plane).float()[None]

    return random_sample


def mixed_random_sample(training_sample):
    """A drop-in for :func:`~lightning_modules.spio.data.random_sample` that draws each sample, by a random stream
    of its own, from training's generator (``training_sample``, with the run's options), variant 1 or variant 2
    with probability 1/3 each (session 36's rule 2: can one network hold all three generators' shapes?)."""
    variants = (variant_random_sample("variant"), variant_random_sample("variant2"))

    def random_sample(seed: int, index: int, **options) -> tuple[torch.Tensor, torch.Tensor]:
        choice = int(np.random.default_rng([int(seed), int(index), 97]).integers(3))
        if choice == 0:
            return training_sample(seed, index, **options)
        return variants[choice - 1](seed, index)

    return random_sample


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] != "--variant":
        raise SystemExit(__doc__)
    name = sys.argv[2]
    if "--auxiliary_weight" in sys.argv and name != "ellipsoids":
        raise SystemExit("the variants make no auxiliary targets: leave --auxiliary_weight out")
    if name == "ellipsoids":
        data.random_sample = ellipsoid_random_sample(data.random_sample)
        data.random_sample_with_targets = ellipsoid_random_sample(data.random_sample_with_targets, with_targets=True)
    else:
        data.random_sample = (mixed_random_sample(data.random_sample) if name == "mix"
                              else variant_random_sample(name))
    sys.argv = ["monai.bundle", "run", *sys.argv[3:]]
    runpy.run_module("monai.bundle", run_name="__main__")


if __name__ == "__main__":
    main()

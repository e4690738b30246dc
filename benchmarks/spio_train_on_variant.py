"""Issue 24, session 36 (report only): train.json with every fresh training sample drawn from a generator variant.

Asks whether the generator-variant gap (variant 1 0.54, variant 2 0.49 against validation's 0.36) is a shift a
network can learn from samples of the variant itself, or what one plane leaves ambiguous whatever the training.
The weights this makes have seen a variant, so they may never judge that variant's acceptance item and are not
shipped; they only bound what in-distribution data would buy.

``--variant mix`` draws each sample from training's generator (with the run's options), variant 1 or variant 2,
1/3 each. Everything after ``--variant NAME`` goes to ``python -m monai.bundle run`` unchanged; pass
``--pool_size 0`` (fresh samples; the cached pools are training's) and no auxiliary targets (the variants do not
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

SEED_OFFSET = 100


def variant_random_sample(name: str):
    """A drop-in for :func:`lightning_modules.spio.data.random_sample` that draws sample ``index`` of the variant
    ``name`` at ``seed + SEED_OFFSET`` (the training generator's options are ignored: the variant has its own)."""
    if name not in ("variant", "variant2"):  # variant 3 judges what these train, so it is never trained on
        raise SystemExit(f"--variant must be variant, variant2 or mix, got {name!r}")
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
    if "--auxiliary_weight" in sys.argv:
        raise SystemExit("the variants make no auxiliary targets: leave --auxiliary_weight out")
    name = sys.argv[2]
    data.random_sample = (mixed_random_sample(data.random_sample) if name == "mix"
                          else variant_random_sample(name))
    sys.argv = ["monai.bundle", "run", *sys.argv[3:]]
    runpy.run_module("monai.bundle", run_name="__main__")


if __name__ == "__main__":
    main()

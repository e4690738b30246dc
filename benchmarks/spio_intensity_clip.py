"""Issue 24, session 32, candidate N: clip a View Line image's bright rim to training's range before the networks.

The networks divide each image by its 99th intensity percentile. On variant 1's Shepp–Logan bases a bright thin rim
sets that percentile at 3.8× the median tissue intensity (training's generator: 2.45, 90th percentile 3.41), so the
tissue that holds the iron sits at two thirds of the brightness the networks learned, and its iron is under-read.
Candidate N clips an image whose 99th percentile exceeds ``--ratio`` × its median tissue intensity (tissue: pixels of
the summed channels above 10 % of the maximum) at that level, scaling both channels of a clipped pixel alike; other
images are unchanged. Paired per image against the bundle as shipped (DeepSPIO + refiner), on one generator's
samples (``train``, ``variant``, ``variant2`` or ``real``).

Usage (one CPU thread, ≈ 2 min per 200 images):
    .venv/bin/python benchmarks/spio_intensity_clip.py --generator variant --seed 26 --n 200 \\
        --out benchmarks/results/spio/spio_intensity_clip_session32_variant.md
    .venv/bin/python benchmarks/spio_intensity_clip.py --generator train --seed 301 --n 200 \\
        --out benchmarks/results/spio/spio_intensity_clip_session32_validation.md
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from spio_simulation_refiner import MODEL, sample
from spio_variant import variant_sample
from spio_variant_factors import variant_base_kind

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.data import random_sample_with_snr
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.simulation_refiner import load_refiner

#: Training's generator's 90th percentile of (99th intensity percentile / median tissue intensity), 60 samples of
#: seed 301 with the last stage's head bases (session 32, fixed before any variant image was clipped).
TRAINING_P90_RATIO = 3.41


def median_tissue(total: np.ndarray) -> float:
    """Median of the summed channels ``total`` (x, z) over tissue: pixels above 10 % of its maximum."""
    return float(np.median(total[total > 0.1 * total.max()]))


def rim_clipped(image: np.ndarray, ratio: float = TRAINING_P90_RATIO) -> np.ndarray:
    """``image`` (2, x, z) with its summed intensity clipped at ``ratio`` × the median tissue intensity, if its 99th
    percentile exceeds that; both channels of a clipped pixel scaled alike. Otherwise ``image`` itself."""
    total = image.sum(0)
    cap = ratio * median_tissue(total)
    if np.percentile(total, 99) <= cap:
        return image
    return image * np.where(total > cap, cap / np.maximum(total, 1e-12), 1.0)[None]


def rim_ratio(image: np.ndarray) -> float:
    """99th intensity percentile / median tissue intensity of the summed channels (what :func:`rim_clipped` caps)."""
    total = image.sum(0)
    return float(np.percentile(total, 99)) / median_tissue(total)


def print_ratios() -> None:
    """The ratio's distribution on 60 samples of training's generator (seed 301, the last stage's head bases) and of
    variant 1 (seed 3, the acceptance run's set) split by base: the numbers behind :data:`TRAINING_P90_RATIO`."""
    training = [rim_ratio(random_sample_with_snr(301, i, head_bases=0.5, base_augmentation=0.5)[0].numpy())
                for i in range(60)]
    kinds: dict[str, list[float]] = {}
    for i in range(60):
        kinds.setdefault(variant_base_kind(3, i), []).append(rim_ratio(np.asarray(variant_sample(3, i)[0])))
    for name, values in [("training's generator", training), *sorted(kinds.items())]:
        print(f"{name}: median {np.median(values):.2f}, 10th–90th percentile {np.percentile(values, 10):.2f}–"
              f"{np.percentile(values, 90):.2f} ({len(values)} images)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="variant")
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--ratio", type=float, default=TRAINING_P90_RATIO)
    parser.add_argument("--refiner", default=f"{bundle_root('spio_quantification')}/models/refiner.pt",
                        help="the refiner run after DeepSPIO (default: the bundle's; session 32 ran 0.10.1's, "
                        "benchmarks/results/spio/session31_weights/BV.pt)")
    parser.add_argument("--ratios", action="store_true", help="only print the ratio's distributions")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.ratios:
        print_ratios()
        return
    network = load_network(DeepSpio(), str(MODEL))
    refiner = load_refiner(args.refiner)
    differences, changed, shipped = [], 0, []
    for i in range(args.start, args.start + args.n):
        image, truth, _ = sample(args.generator, args.seed, i)
        if truth.sum() <= 0:
            continue
        base = nmae(predict_concentration(network, image, refiner=refiner), truth)
        clipped = rim_clipped(image, args.ratio)
        if clipped is image:
            differences.append(0.0)
        else:
            changed += 1
            differences.append(nmae(predict_concentration(network, clipped, refiner=refiner), truth) - base)
        shipped.append(base)
    d = np.array(differences)
    text = "\n".join([
        f"# Candidate N (rim clipped at {args.ratio} × median tissue) − as shipped, paired: {args.generator}, "
        f"seed {args.seed}, samples {args.start}–{args.start + args.n - 1}", "",
        f"Command: `.venv/bin/python benchmarks/spio_intensity_clip.py --generator {args.generator} --seed {args.seed} "
        f"--start {args.start} --n {args.n} --ratio {args.ratio} --refiner {args.refiner}` (one CPU thread).", "",
        "| images with iron | clipped | DeepSPIO + refiner | N − that (± s.e.) |", "|---|---|---|---|",
        f"| {len(d)} | {changed} | {np.mean(shipped):.4f} | "
        f"{d.mean():+.4f} ± {d.std(ddof=1) / math.sqrt(len(d)):.4f} |",
        ""])
    print(text)
    if args.out:
        write_text_atomic(text, args.out)


if __name__ == "__main__":
    main()

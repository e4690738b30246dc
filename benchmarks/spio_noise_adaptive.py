"""The SPIO bundle with and without its noise-adaptive weights, paired per image (issue 24, session 34).

0.11.0's candidate keeps the shipped DeepSPIO and refiner for images whose noise between the lines is single-channel
Rician (:func:`lightning_modules.spio.snr.rician_like`) and maps the others with the noise-robust weights (session
33's DN: the recipe's last DeepSPIO stage and the refiner's, each with other noise models in a quarter of the noisy
samples). Both maps come from the bundle's own array path (``predict_concentration``); the table gives the paired
NMAE difference per SNR bin and how many noisy images the check switched.

    .venv/bin/python benchmarks/spio_noise_adaptive.py --generator train --noise_model magnitude --seed 1 \\
        --start 10400 --n 400 --out benchmarks/results/spio/spio_noise_adaptive_magnitude.md
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from spio_simulation_refiner import sample  # noqa: E402

from lightning_modules.bundle_app import bundle_root  # noqa: E402
from lightning_modules.io import write_text_atomic  # noqa: E402
from lightning_modules.metrics import nmae  # noqa: E402
from lightning_modules.spio.app import load_network, predict_concentration  # noqa: E402
from lightning_modules.spio.networks import DeepSpio  # noqa: E402
from lightning_modules.spio.simulation_refiner import load_refiner  # noqa: E402
from lightning_modules.spio.snr import rician_like  # noqa: E402
from lightning_modules.spio.viewline import EVALUATION_NOISE_MODELS, NOISE_MODELS  # noqa: E402

MODELS = Path(bundle_root("spio_quantification")) / "models"
BINS = (("∞", math.inf, math.inf), ("19–30 dB", 19, 30), ("11–19 dB", 11, 19), ("5–11 dB", 5, 11))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="train", help="train, variant, variant2 or real")
    parser.add_argument("--noise_model", choices=NOISE_MODELS + EVALUATION_NOISE_MODELS,
                        help="training's generator under this noise model")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--robust_model_path", default=str(MODELS / "model_noise_robust.pt"))
    parser.add_argument("--robust_refiner_path", default=str(MODELS / "refiner_noise_robust.pt"))
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    network, refiner = load_network(DeepSpio(), str(MODELS / "model.pt")), load_refiner(str(MODELS / "refiner.pt"))
    robust = load_network(DeepSpio(), args.robust_model_path)
    robust_refiner = load_refiner(args.robust_refiner_path)
    rows = []
    for i in range(args.start, args.start + args.n):
        image, truth, snr = sample(args.generator, args.seed, i, args.noise_model)
        if truth.sum() <= 0:
            continue
        shipped = predict_concentration(network, image, refiner=refiner)
        adaptive = predict_concentration(network, image, refiner=refiner, other_network=robust,
                                         other_refiner=robust_refiner)
        rows.append((snr, nmae(shipped, truth), nmae(adaptive, truth), not rician_like(image)))
    r = np.array(rows, dtype=float)
    d = r[:, 2] - r[:, 1]
    noisy = ~np.isinf(r[:, 0])
    name = f"{args.generator}{' (' + args.noise_model + ' noise)' if args.noise_model else ''}"
    lines = [f"# Noise-adaptive weights − the shipped weights, paired: {name}, seed {args.seed}, samples "
             f"{args.start}–{args.start + args.n - 1}", "",
             f"Command: `.venv/bin/python benchmarks/spio_noise_adaptive.py --generator {args.generator}"
             f"{' --noise_model ' + args.noise_model if args.noise_model else ''} --seed {args.seed} "
             f"--start {args.start} --n {args.n}` (one CPU thread; robust weights "
             f"{Path(args.robust_model_path).name}, {Path(args.robust_refiner_path).name}).", "",
             f"Noisy images mapped with the robust weights: **{int(r[noisy, 3].sum())} of {int(noisy.sum())}** "
             f"({100 * r[noisy, 3].mean():.1f} %); noise-free images: {int(r[~noisy, 3].sum())} of "
             f"{int((~noisy).sum())}.", "",
             "| set | images | switched | shipped | adaptive | adaptive − shipped (± s.e.) |",
             "|---|---|---|---|---|---|"]
    for label, lo, hi in (("as drawn", -math.inf, math.inf), *BINS):
        pick = (np.ones(len(r), bool) if label == "as drawn" else np.isinf(r[:, 0]) if math.isinf(lo)
                else (r[:, 0] >= lo) & (r[:, 0] < hi))
        if pick.sum() < 2:
            lines.append(f"| {label} | {int(pick.sum())} | — | — | — | — |")
            continue
        se = d[pick].std(ddof=1) / math.sqrt(pick.sum())
        lines.append(f"| {label} | {int(pick.sum())} | {int(r[pick, 3].sum())} | {r[pick, 1].mean():.4f} | "
                     f"{r[pick, 2].mean():.4f} | {d[pick].mean():+.4f} ± {se:.4f} |")
    text = "\n".join(lines + [""])
    print(text)
    if args.out:
        write_text_atomic(text, args.out)


if __name__ == "__main__":
    main()

"""The SPIO bundle's noise check and SNR estimate on integer-valued images (issue 24, session 34, rule 4).

Scanners store magnitude images as integers (DICOM) and exports often as 8-bit: when the noise is a few integer steps
the quantisation changes the shape of its distribution. Each sample of training's generator is scaled so that
σ̂ (``noise_sigma`` of the float image) is k integer steps and rounded; per noise model and k the table gives the
share of noisy images the check flags as not single-channel Rician, and the SNR estimate's median error against the
simulator's SNR, next to the same images' float estimate.

    .venv/bin/python benchmarks/spio_integer_images.py --seed 1700 --n 150 \
        --out benchmarks/results/spio/spio_integer_images.md
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.data import random_sample_with_snr
from lightning_modules.spio.snr import estimate_snr_db, noise_sigma, rician_like
from lightning_modules.spio.viewline import NOISE_MODELS

STEPS = (1, 2, 3, 5, 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--out")
    args = parser.parse_args()
    lines = [f"# Integer-valued View Line images: the noise check and the SNR estimate (seed {args.seed}, samples "
             f"{args.start}–{args.start + args.n - 1} of training's generator)", "",
             f"Command: `.venv/bin/python benchmarks/spio_integer_images.py --seed {args.seed} --start {args.start} "
             f"--n {args.n}`. Each image scaled so that σ̂ (the float image's noise_sigma) is k integer steps, then "
             "rounded; flagged = not single-channel Rician by `snr.rician_like`; SNR error = estimate − the "
             "simulator's SNR (median over the noisy images the check passes).", "",
             "| noise model | k (steps per σ̂) | noisy images | flagged | median SNR error, integer | … float |",
             "|---|---|---|---|---|---|"]
    for model in NOISE_MODELS:
        samples = []
        for i in range(args.start, args.start + args.n):
            image, _, snr = random_sample_with_snr(args.seed, i, noise_model=model)
            if not math.isinf(snr):
                samples.append((image.numpy().astype(np.float64), snr))
        float_error = [estimate_snr_db(image) - snr for image, snr in samples if rician_like(image)]
        for k in STEPS:
            flagged, errors = 0, []
            for image, snr in samples:
                rounded = np.round(image * (k / noise_sigma(image)))
                if rician_like(rounded):
                    errors.append(estimate_snr_db(rounded) - snr)
                else:
                    flagged += 1
            median = f"{np.median(errors):+.2f} dB" if errors else "—"
            float_median = f"{np.median(float_error):+.2f} dB" if float_error else "—"
            lines.append(f"| {model} | {k} | {len(samples)} | {100 * flagged / len(samples):.1f} % | {median} | "
                         f"{float_median} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines + [""])
    if args.out:
        write_text_atomic(text, args.out)


if __name__ == "__main__":
    main()

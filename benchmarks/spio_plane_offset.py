"""How much of DeepSPIO's error comes from objects centred off the imaged plane (issue 24, a diagnostic).

The training generator puts each object's centre up to 1.5 mm off the plane (``phantoms.random_concentration``),
so the plane cuts most objects off-centre and shows less of them than their field reflects; the ideal-observer
run (`spio_ideal_observer.py`) found that this alone biases a shape-model fit by 15–18 %. Here the tuning-set
samples (seed 1 from 1000) are simulated twice, identical except that every object's centre is moved onto the
plane (the random draws are the same; only the drawn offset is replaced by 0), and DeepSPIO 0.3.3 as shipped is
scored on both. No retraining: the network has only seen off-centre objects, so this shows how much the offsets
cost it, not what a network trained on centred objects would reach.

Usage:
    .venv/bin/python benchmarks/spio_plane_offset.py --n 200   # → benchmarks/results/spio/spio_plane_offset.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from spio_design_comparison import snr_bin
from spio_object_levels import shipped_network

from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio import phantoms
from lightning_modules.spio.app import predict_concentration
from lightning_modules.spio.data import random_sample_with_snr


def centred_sample(seed: int, index: int):
    """:func:`random_sample_with_snr` with every object's centre moved onto the plane (y = 0)."""
    original = phantoms.random_object

    def on_plane(rng, centre_mm, shape):
        return original(rng, (centre_mm[0], 0.0, centre_mm[2]), shape)

    phantoms.random_object = on_plane
    try:
        return random_sample_with_snr(seed, index)
    finally:
        phantoms.random_object = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--output", default="benchmarks/results/spio/spio_plane_offset.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    network = shipped_network()
    scores: dict[str, dict[str, list[float]]] = {"as generated (centres ≤ 1.5 mm off the plane)": {},
                                                 "every centre on the plane": {}}
    for index in range(1000, 1000 + args.n):
        for name, make in zip(scores, (random_sample_with_snr, centred_sample), strict=True):
            image, truth, snr = make(1, index)
            truth = truth[0].numpy()
            if not truth.any():
                continue
            value = nmae(predict_concentration(network, image.numpy()), truth)
            scores[name].setdefault("all", []).append(value)
            scores[name].setdefault(snr_bin(snr), []).append(value)
    bins = ["all", "∞", "5–11 dB", "11–19 dB", "19–30 dB"]
    lines = ["# DeepSPIO 0.3.3 on objects centred off and on the plane (issue 24)", "",
             f"`.venv/bin/python benchmarks/spio_plane_offset.py --n {args.n}`: samples 1000–{999 + args.n} of seed 1, "
             "each simulated twice with the same random draws; mean NMAE (images with iron in the plane).", "",
             "| objects | " + " | ".join(bins) + " |", "|---|" + "---|" * len(bins)]
    for name, by_bin in scores.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{np.mean(by_bin[b]):.3f} ({len(by_bin[b])})" if b in by_bin else "—" for b in bins) + " |")
    text = "\n".join(lines) + "\n"
    write_text_atomic(text, Path(args.output))
    print(text)


if __name__ == "__main__":
    main()

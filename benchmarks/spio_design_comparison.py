"""Issue 24's decision rule: SPIO networks side by side on the tuning set, overall and per SNR bin.

The tuning set is samples 1000–1299 of seed 1, simulated like training (``lightning_modules.spio.data``):
neither the training pool (seed 0), nor the validation set (seed 1, samples 0–63), nor the test set (seed 2).
Each network runs as the bundle runs it (``predict_concentration``: flip average, 0.1 µg Fe/mm³ floor).
NMAE ``‖Ĉ − C‖₁ / ‖C‖₁`` per image, mean over the images with iron in the plane. One CPU thread.

Usage:
    .venv/bin/python benchmarks/spio_design_comparison.py \\
        --candidate "A=lightning_modules.spio.line_unet.LineUNet()@/path/a.pt" \\
        --candidate "C=lightning_modules.spio.networks.DeepSpio()@monai_bundles/spio_quantification/models/deepspio.pt"
"""

from __future__ import annotations

import argparse
import importlib
import math
from pathlib import Path

import numpy as np
import torch

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.data import random_sample_with_snr

#: SNR bins (dB) of the per-SNR tables: [low, high), ∞ on its own.
SNR_BINS = (("∞", math.inf, math.inf), ("5–11 dB", 5.0, 11.0), ("11–19 dB", 11.0, 19.0), ("19–30 dB", 19.0, 30.0))


def snr_bin(snr_db: float) -> str:
    """Name of the bin of :data:`SNR_BINS` holding ``snr_db``."""
    for name, low, high in SNR_BINS:
        if (math.isinf(low) and math.isinf(snr_db)) or low <= snr_db < high or (high == 30.0 and snr_db == 30.0):
            return name
    raise ValueError(f"SNR {snr_db} dB is in no bin")


def add_model_path_argument(parser: argparse.ArgumentParser) -> None:
    """``--model_path``: DeepSPIO weights, by default the shipped ones (the SPIO diagnostics share it)."""
    parser.add_argument("--model_path", default=str(Path(bundle_root("spio_quantification")) / "models" / "model.pt"),
                        help="DeepSPIO weights (default: the shipped ones)")


def sample_arrays(seed: int, indices, **options):
    """Images (2, x, z), truths (x, z) and SNRs (dB) of samples ``indices`` of ``seed`` as arrays
    (``options`` go to ``random_sample_with_snr``, e.g. ``base=``)."""
    samples = (random_sample_with_snr(seed, i, **options) for i in indices)
    return [(image.numpy(), truth[0].numpy(), snr) for image, truth, snr in samples]


def tuning_set(seed: int = 1, start: int = 1000, n: int = 300):
    """The tuning set: :func:`sample_arrays` of samples ``start … start+n−1`` of ``seed``."""
    return sample_arrays(seed, range(start, start + n))


def build(expression: str) -> torch.nn.Module:
    """A network from ``module.path.Class(args)``."""
    module_name, call = expression.split("(", 1)[0].rsplit(".", 1)
    namespace = {call: getattr(importlib.import_module(module_name), call)}
    return eval(call + "(" + expression.split("(", 1)[1], namespace)  # noqa: S307 (command-line expression)


def scores(network: torch.nn.Module, samples, **inference) -> dict[str, list[float]]:
    """NMAE per image, keyed by SNR bin and ``"all"`` (images with iron in the plane only); ``inference`` goes to
    ``predict_concentration`` (default: as the bundle runs)."""
    result: dict[str, list[float]] = {"all": []}
    for image, truth, snr in samples:
        if not truth.any():
            continue
        value = nmae(predict_concentration(network, image, **inference), truth)
        result["all"].append(value)
        result.setdefault(snr_bin(snr), []).append(value)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", action="append", required=True,
                        help="NAME=module.Class(args)@weights.pt (repeat for each candidate)")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/spio/spio_design_comparison.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    samples = tuning_set(n=args.n)
    table = {}
    for candidate in args.candidate:
        name, rest = candidate.split("=", 1)
        expression, weights = rest.rsplit("@", 1)
        table[name] = scores(load_network(build(expression), weights), samples)
    bins = ["all"] + [b for b, _, _ in SNR_BINS]
    lines = [f"# SPIO design comparison on the tuning set (seed 1, samples 1000–{999 + args.n})", "",
             "Command: `.venv/bin/python benchmarks/spio_design_comparison.py " +
             " ".join(f'--candidate "{c}"' for c in args.candidate) + "`", "",
             "| candidate | " + " | ".join(f"{b} (n = {len(next(iter(table.values())).get(b, []))})" for b in bins)
             + " |", "|---" * (len(bins) + 1) + "|"]
    for name, result in table.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{np.mean(result[b]):.3f} ± {np.std(result[b]):.3f}" if result.get(b) else "—" for b in bins) + " |")
    text = "\n".join(lines) + "\n"
    write_text_atomic(text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()

"""Weight interpolation between the shipped DeepSPIO and a fine-tuned copy, on real anatomy and the tuning set.

For each α, the weights ``(1 − α) · θ(base) + α · θ(tuned)`` (``lightning_modules.spio.ensemble.interpolate_states``,
WiSE-FT) run as the bundle runs (``predict_concentration``: flip × shift average, floor) on session 19's two tuning
sets: R1 (training's generator on brain1's real head slices, seed 6; ``spio_real_bases.py``) and T (the training
generator, seed 1, samples 1000–1299; ``spio_design_comparison.py``). NMAE per image, mean, per SNR bin.

Usage:
    .venv/bin/python benchmarks/spio_weight_interpolation.py --tuned candM2.pt [--alphas 0.25,0.5,0.75]
    .venv/bin/python benchmarks/spio_weight_interpolation.py --tuned candM2.pt --save_alpha 0.5 --save_to W.pt
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch
from spio_design_comparison import SNR_BINS, sample_arrays, scores, tuning_set
from spio_real_bases import real_brain_slice

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import write_text_atomic
from lightning_modules.spio.ensemble import interpolate_states
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.training import save_state_dict


def real_tuning_set(n: int = 200):
    """R1: images (2, x, z), truths (x, z) and SNRs of training's generator on brain1's slices, seed 6."""
    return sample_arrays(6, range(n), base=functools.partial(real_brain_slice, brains=(0,)))


def table_row(network, samples) -> list[float]:
    """Mean NMAE overall and per SNR bin (images with iron in the plane only)."""
    per_bin = scores(network, samples)
    return [float(np.mean(per_bin.get(b, [np.nan]))) for b in ["all", *(name for name, _, _ in SNR_BINS)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    models = Path(bundle_root("spio_quantification")) / "models"
    parser.add_argument("--base", default=str(models / "model.pt"), help="the base weights (default: shipped)")
    parser.add_argument("--tuned", required=True, help="the fine-tuned copy's weights")
    parser.add_argument("--alphas", default="0.25,0.5,0.75")
    parser.add_argument("--n_real", type=int, default=200)
    parser.add_argument("--out", default=None, help="Markdown table (default: print only)")
    parser.add_argument("--save_alpha", type=float, default=None, help="also write the weights at this α ...")
    parser.add_argument("--save_to", default=None, help="... to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = torch.load(args.base, map_location="cpu", weights_only=True)
    tuned = torch.load(args.tuned, map_location="cpu", weights_only=True)
    if args.save_alpha is not None:
        print(f"wrote {save_state_dict(interpolate_states(base, tuned, args.save_alpha), args.save_to)}")
        return
    sets = {"R1": real_tuning_set(args.n_real), "T": tuning_set()}
    bins = ["all", *(name for name, _, _ in SNR_BINS)]
    command = (f".venv/bin/python benchmarks/spio_weight_interpolation.py --base {args.base} --tuned {args.tuned} "
               f"--alphas {args.alphas}")
    lines = [f"# Weight interpolation (1 − α) · {Path(args.base).name} + α · {Path(args.tuned).name}", "",
             f"Command: `{command}` (one CPU thread; as the bundle runs it: flip × shift average, floor). "
             "Mean NMAE per image.", "",
             "| α | R1 all | " + " | ".join(f"T {b}" for b in bins) + " |", "|---" * (len(bins) + 2) + "|"]
    for alpha in (float(a) for a in args.alphas.split(",")):
        network = DeepSpio()
        network.load_state_dict(interpolate_states(base, tuned, alpha))
        network.eval()
        r1, t = table_row(network, sets["R1"]), table_row(network, sets["T"])
        lines.append(f"| {alpha:g} | {r1[0]:.4f} | " + " | ".join(f"{v:.4f}" for v in t) + " |")
        print(lines[-1], flush=True)
    if args.out:
        write_text_atomic("\n".join(lines) + "\n", Path(args.out))


if __name__ == "__main__":
    main()

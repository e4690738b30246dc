"""Which half of the generator variant costs DeepSPIO its accuracy: the base images or the SPIO shapes? (issue 24)

The generator variant (``spio_variant.py``) changes two things at once against training: the base images
(Shepp–Logan or random ellipses instead of the MNI slice or a uniform disk) and the SPIO objects (ellipsoids and
chains of touching spheres instead of metaballs, tori and cylinders). This benchmark crosses them: training bases
with variant shapes, variant bases with training shapes, each as its own seed-3 set of ``--n`` images, with the
same SNR distribution, run as the bundle runs (``predict_concentration``); the sets with variant bases are also
split by base (Shepp–Logan or random ellipses). A diagnostic: nothing is chosen from it.

Usage:
    .venv/bin/python benchmarks/spio_variant_factors.py [--n 100]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from spio_design_comparison import SNR_BINS, add_model_path_argument, snr_bin
from spio_variant import variant_sample

from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.data import P_NOISE_FREE, SNR_RANGE_DB, random_sample_with_snr
from lightning_modules.spio.families import ellipse_base, ellipsoids_and_chains, shepp_logan_base
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.phantoms import random_base, random_concentration
from lightning_modules.spio.viewline import simulate_viewline


def variant_base_kind(seed: int, index: int) -> str:
    """Which base image ``spio_variant.variant_sample(seed, index)`` draws (its first two random numbers)."""
    rng = np.random.default_rng([int(seed), int(index), 24])
    rng.integers(2**62)
    return "Shepp–Logan" if rng.random() < 0.5 else "random ellipses"


def crossed_sample(seed: int, index: int, *, variant_base: bool, variant_shapes: bool):
    """View Line image (2, x, z), in-plane concentration (x, z), SNR (dB) and base kind, with the chosen halves of
    the variant."""
    rng = np.random.default_rng([int(seed), int(index), 2424])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    kind = "MNI or disk"
    if variant_base:
        kind = "Shepp–Logan" if rng.random() < 0.5 else "random ellipses"
        rho = shepp_logan_base(rng) if kind == "Shepp–Logan" else ellipse_base(rng)
    else:
        rho = random_base(rng)
    rho = rho * float(rng.uniform(0.5, 2.0))
    concentration = ellipsoids_and_chains(rng, rho) if variant_shapes else random_concentration(rng, rho)
    snr_db = math.inf if rng.random() < P_NOISE_FREE else float(rng.uniform(*SNR_RANGE_DB))
    image, plane = simulate_viewline(rho, concentration, snr_db=snr_db, generator=generator)
    return image.float().numpy(), plane.float().numpy(), snr_db, kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--out", default="benchmarks/results/spio/spio_variant_factors.md")
    add_model_path_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    network = load_network(DeepSpio(), args.model_path)
    sets = {
        "training generator (seed 2, the held-out test set)":
            lambda i: (*(v.numpy() if torch.is_tensor(v) else v for v in random_sample_with_snr(2, i)), None),
        "training bases, variant shapes": lambda i: crossed_sample(3, i, variant_base=False, variant_shapes=True),
        "variant bases, training shapes": lambda i: crossed_sample(3, i, variant_base=True, variant_shapes=False),
        "generator variant (seed 3)": lambda i: (*variant_sample(3, i), variant_base_kind(3, i)),
    }
    bins = ["all"] + [name for name, _, _ in SNR_BINS]
    command = f".venv/bin/python benchmarks/spio_variant_factors.py --n {args.n} --model_path {args.model_path}"
    lines = ["# Generator variant, factor by factor (DeepSPIO as the bundle runs it)", "",
             f"Command: `{command}` (one CPU thread). NMAE per image, mean [median] (n), images with iron in the "
             "plane only.", "",
             "| set | " + " | ".join(bins) + " |", "|---" * (len(bins) + 1) + "|"]
    for name, draw in sets.items():
        rows: dict[str, dict[str, list[float]]] = {name: {"all": []}}
        for i in range(args.n):
            image, truth, snr, kind = draw(i)
            truth = np.asarray(truth).reshape(image.shape[1:])
            if not truth.any():
                continue
            value = nmae(predict_concentration(network, image), truth)
            for row in [name] + ([f"{name}: {kind} bases only"] if kind and kind != "MNI or disk" else []):
                rows.setdefault(row, {"all": []})["all"].append(value)
                rows[row].setdefault(snr_bin(snr), []).append(value)
        for row, per_bin in rows.items():
            lines.append(f"| {row} | " + " | ".join(
                f"{np.mean(per_bin[b]):.3f} [{np.median(per_bin[b]):.3f}] ({len(per_bin[b])})" if per_bin.get(b)
                else "—" for b in bins) + " |")
            print(lines[-1], flush=True)
    write_text_atomic("\n".join(lines) + "\n", Path(args.out))


if __name__ == "__main__":
    main()

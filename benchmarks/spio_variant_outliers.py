"""Which images carry the generator variant's mean NMAE, and what the network does wrong in them (issue 24).

The variant set's mean NMAE (0.727 for 0.7.0) is far above its median (0.494): a few images score several times the
all-zero map's 1.0. For each image of the set ``spio_accuracy.py`` uses (``spio_variant.variant_sample(3, i)``,
``i < --n``, images with iron in the plane) this splits the NMAE into the error on pixels without iron (false iron,
relative to the true total) and on pixels with iron, names the base image, lists the worst and draws the four worst
(View Line image, map as the bundle runs it, truth). ``--variant 2`` does the same for the second variant
(``spio_variant2.variant2_sample(5, i)``: vial phantoms and organs; session 26). A diagnostic: nothing is chosen
from it.

Usage:
    .venv/bin/python benchmarks/spio_variant_outliers.py [--n 100] [--model_path W.pt] [--variant 1|2]
        [--out benchmarks/results/spio/spio_variant_outliers.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import torch
from spio_design_comparison import add_model_path_argument
from spio_variant import variant_sample
from spio_variant2 import variant2_base_kind, variant2_sample
from spio_variant_factors import variant_base_kind

from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import predict_concentration
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.simulation_refiner import load_refiner

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def figure(worst: list[tuple], path: Path) -> None:
    """Rows of (image, prediction, truth) for the worst images."""
    fig, axes = plt.subplots(len(worst), 3, figsize=(7.5, 2.6 * len(worst)), squeeze=False)
    for row, (index, kind, snr, image, prediction, truth, value) in zip(axes, worst, strict=True):
        vmax = max(float(truth.max()), 1e-3)
        row[0].imshow(image.sum(0).T, cmap="gray")
        row[0].set_title(f"#{index} {kind}, {snr:.0f} dB", fontsize=8)
        row[1].imshow(prediction.T, cmap="inferno", vmin=0, vmax=vmax)
        row[1].set_title(f"map: NMAE {value:.2f}, total {prediction.sum():.0f}", fontsize=8)
        row[2].imshow(truth.T, cmap="inferno", vmin=0, vmax=vmax)
        row[2].set_title(f"truth: total {truth.sum():.0f}, max {truth.max():.2f} µg Fe/mm³", fontsize=8)
        for axis in row:
            axis.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def base_row(kind: str, rows: list[tuple]) -> str:
    """One table row: the images of one base kind."""
    values = [r[6] for r in rows]
    return (f"| {kind} | {len(rows)} | {np.mean(values):.3f} | {np.median(values):.3f} | "
            f"{np.mean([r[7] for r in rows]):.3f} | {np.mean([r[8] for r in rows]):.3f} | "
            f"{sum(v > 1 for v in values)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="variant samples 0..n-1 of seed 3 (spio_accuracy's set)")
    add_model_path_argument(parser)
    parser.add_argument("--variant", type=int, choices=(1, 2), default=1,
                        help="1: spio_variant.py, seed 3; 2: spio_variant2.py, seed 5")
    parser.add_argument("--refiner", help="refiner weights run on the map as the bundle runs them (e.g. the bundle's "
                        "models/refiner.pt; session 32); default: DeepSPIO's map alone, as sessions 25-26 ran it")
    parser.add_argument("--out", default="benchmarks/results/spio/spio_variant_outliers.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    network = DeepSpio()
    network.load_state_dict(torch.load(args.model_path, map_location="cpu", weights_only=True))
    network.eval()
    refiner = load_refiner(args.refiner)
    seed, sample, kind_of = (3, variant_sample, variant_base_kind) if args.variant == 1 else \
        (5, variant2_sample, variant2_base_kind)
    rows = []
    for index in range(args.n):
        image, truth, snr = sample(seed, index)
        if not truth.any():
            continue
        prediction = predict_concentration(network, image, refiner=refiner)
        total = float(truth.sum())
        false_iron = float(np.abs(prediction[truth == 0]).sum()) / total
        in_iron = float(np.abs(prediction - truth)[truth > 0].sum()) / total
        rows.append((index, kind_of(seed, index), snr, image, prediction, truth, nmae(prediction, truth),
                     false_iron, in_iron))
    values = np.array([r[6] for r in rows])
    order = np.argsort(-values)
    above_one = values > 1.0
    kinds = sorted({r[1] for r in rows})
    out = Path(args.out)
    model = Path(args.model_path).resolve()
    model = model.relative_to(Path.cwd()) if model.is_relative_to(Path.cwd()) else model
    figure([rows[k][:7] for k in order[:4]], out.with_suffix(".png"))
    lines = [
        f"# Generator variant{'' if args.variant == 1 else ' 2'}: which images carry the mean NMAE", "",
        f"Command: `.venv/bin/python benchmarks/spio_variant_outliers.py --n {args.n} --model_path {model}"
        + ("" if args.variant == 1 else f" --variant {args.variant}")
        + (f" --refiner {args.refiner} --out {args.out}" if args.refiner else
           ("" if args.variant == 1 else f" --out {args.out}")) + "`", "",
        f"{len(rows)} images with iron in the plane: NMAE mean {values.mean():.3f}, median {np.median(values):.3f}; "
        f"{int(above_one.sum())} images above 1.0 (worse than the all-zero map) carry "
        f"{values[above_one].sum() / values.sum():.0%} of the sum; the mean without them is "
        f"{values[~above_one].mean():.3f}. Split of the NMAE (both parts relative to the true total): false iron on "
        f"pixels without iron {np.mean([r[7] for r in rows]):.3f}, error on pixels with iron "
        f"{np.mean([r[8] for r in rows]):.3f}.", "",
        "| base | n | mean | median | false-iron part | in-iron part | images above 1.0 |",
        "|---|---|---|---|---|---|---|", *[base_row(kind, [r for r in rows if r[1] == kind]) for kind in kinds], "",
        "The ten worst:", "",
        "| sample | base | SNR (dB) | true total | map total | NMAE | false-iron part | in-iron part |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| {rows[k][0]} | {rows[k][1]} | {rows[k][2]:.1f} | {rows[k][5].sum():.0f} | {rows[k][4].sum():.0f} | "
          f"{rows[k][6]:.2f} | {rows[k][7]:.2f} | {rows[k][8]:.2f} |" for k in order[:10]], "",
        f"![The four worst: View Line image, map, truth]({out.with_suffix('.png').name})", ""]
    write_text_atomic("\n".join(lines), out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Where two SPIO networks differ most on the generator variant, side by side (issue 24, session 28).

For the variant set ``spio_accuracy.py`` uses (``spio_variant.variant_sample(3, i)``, ``i < --n``, images with iron
in the plane), each network runs as the bundle runs it; the figure shows the ``--better`` images where the second
network's NMAE is lowest relative to the first's and the ``--worse`` images where it is highest (View Line image,
both maps on one colour scale, truth), so the change a new version makes is seen in both directions. A picture of
the paired table's extremes: nothing is chosen from it.

Usage:
    .venv/bin/python benchmarks/spio_version_figure.py --first 0.7.0=benchmarks/results/spio/session24_weights/G4n.pt \\
        --second 0.8.0=monai_bundles/spio_quantification/models/model.pt \\
        [--n 100 --better 3 --worse 1 --out benchmarks/results/spio/spio_version_080.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import torch
from spio_variant import variant_sample

from lightning_modules.bundle_app import load_network
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import predict_concentration
from lightning_modules.spio.networks import DeepSpio

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def named_weights(text: str) -> tuple[str, torch.nn.Module]:
    """``NAME=weights.pt`` → (NAME, DeepSPIO with those weights)."""
    name, path = text.split("=", 1)
    return name, load_network(DeepSpio(), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", required=True, help="NAME=weights.pt, the reference")
    parser.add_argument("--second", required=True, help="NAME=weights.pt, the new network")
    parser.add_argument("--n", type=int, default=100, help="variant samples (seed 3) from index 0")
    parser.add_argument("--better", type=int, default=3, help="rows where the second network gained most")
    parser.add_argument("--worse", type=int, default=1, help="rows where it lost most")
    parser.add_argument("--out", default="benchmarks/results/spio/spio_version_080.png")
    args = parser.parse_args()
    torch.set_num_threads(1)
    (name1, net1), (name2, net2) = named_weights(args.first), named_weights(args.second)
    rows = []
    for i in range(args.n):
        image, truth, _snr = variant_sample(3, i)
        if not truth.any():
            continue
        map1, map2 = predict_concentration(net1, image), predict_concentration(net2, image)
        rows.append((i, image, truth, (map1, nmae(map1, truth)), (map2, nmae(map2, truth))))
    rows.sort(key=lambda row: row[4][1] - row[3][1])   # the second network's change in NMAE, gains first
    chosen = rows[:args.better] + rows[len(rows) - args.worse:]
    fig, axes = plt.subplots(len(chosen), 4, figsize=(10, 2.6 * len(chosen)), squeeze=False)
    for ax_row, (i, image, truth, (map1, nmae1), (map2, nmae2)) in zip(axes, chosen, strict=True):
        vmax = float(max(truth.max(), map1.max(), map2.max()))
        ax_row[0].imshow(image.sum(0).T, cmap="gray")
        ax_row[0].set_title(f"variant sample {i}", fontsize=8)
        panels = ((map1, f"{name1}: NMAE {nmae1:.2f}"), (map2, f"{name2}: NMAE {nmae2:.2f}"), (truth, "truth"))
        for ax, (shown, title) in zip(ax_row[1:], panels, strict=True):
            im = ax.imshow(shown.T, cmap="inferno", vmin=0, vmax=vmax)
            ax.set_title(title, fontsize=8)
        fig.colorbar(im, ax=ax_row[3], label="µg Fe/mm³", fraction=0.046)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{name2} against {name1} on the generator variant (seed 3, {len(rows)} images): the "
                 f"{args.better} largest gains and the {args.worse} largest losses; mean NMAE "
                 f"{np.mean([r[3][1] for r in rows]):.3f} → {np.mean([r[4][1] for r in rows]):.3f}",
                 fontsize=9)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

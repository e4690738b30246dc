"""Issue 24, session 33: how well the shipped bundle reads each object's iron, by object size and SNR (report only).

The per-image NMAE of ``spio_accuracy.py`` mixes everything a user asks separately: is my object found, how far off
is its concentration, how far off its total iron? Here every connected component of the true concentration in the
imaged plane is an object, and for each: its area in the plane (mm²), whether the map finds it (a positive value in
at least half its pixels), the **level ratio** (the map's mean over the object's true pixels / the true mean) and the
**iron ratio** (the map's iron within 1 mm of the object / the object's true iron: what an integral over a drawn
region gives). Run as the bundle runs (``predict_concentration`` with ``models/refiner.pt``) on fresh sets: training's
generator (``--seed``, 1400 by default), variant 1 (seed + 1), variant 3 (seed + 5; session 36) and real subjects'
head slices (seed + 3, when the pyradiomics brains are in ../shared/data). Writes Markdown and a PNG next to
``--out``. One CPU thread, ≈ 4 min.

Usage:
    .venv/bin/python benchmarks/spio_object_accuracy.py --out benchmarks/results/spio/spio_object_accuracy.md
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from spio_design_comparison import SNR_BINS, sample_arrays, snr_bin
from spio_real_bases import REAL_BRAINS, real_brain_slice
from spio_variant import variant_sample
from spio_variant3 import variant3_sample

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import reference_data_dir, write_text_atomic
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.simulation_refiner import load_refiner
from lightning_modules.spio.tube_reading import exclusive_regions
from lightning_modules.spio.viewline import PIXEL_MM

#: Object area bins in the plane, mm² (equivalent diameters ≈ 2, 3.6 and 6.2 mm at the edges).
AREA_BINS_MM2 = ((0.0, 3.0), (3.0, 10.0), (10.0, 30.0), (30.0, math.inf))
#: The region an object's iron is integrated over: its true pixels dilated by this many pixels (≈ 1 mm).
IRON_MARGIN_PX = 3


def object_rows(prediction: np.ndarray, truth: np.ndarray, snr_db: float, *, margin_px: int = IRON_MARGIN_PX,
                exclusive: bool = False) -> list[tuple[float, ...]]:
    """(area mm², SNR dB, found 0/1, level ratio, iron ratio) of every connected component of ``truth`` > 0, in
    :func:`scipy.ndimage.label`'s order. The iron is summed over the component dilated by ``margin_px`` pixels;
    ``exclusive`` (session 38) counts each pixel for the nearest component only, as regions a user draws do not
    overlap (:func:`~lightning_modules.spio.tube_reading.exclusive_regions`)."""
    labels, n = ndimage.label(truth > 0)
    pixel_area = PIXEL_MM[0] * PIXEL_MM[1]
    regions = exclusive_regions(labels, margin_px) if exclusive else None
    rows = []
    for k in range(1, n + 1):
        support = labels == k
        if exclusive:
            region = regions == k
        else:  # (scipy's iterations=0 would dilate until nothing changes)
            region = ndimage.binary_dilation(support, iterations=margin_px) if margin_px > 0 else support
        true_iron = float(truth[support].sum())
        rows.append((float(support.sum()) * pixel_area, snr_db, float(np.mean(prediction[support] > 0) >= 0.5),
                     float(prediction[support].mean() / truth[support].mean()),
                     float(prediction[region].sum() / true_iron)))
    return rows


def set_rows(network, refiner, samples) -> np.ndarray:
    """The objects of every image of a set, (objects, 5)."""
    rows = []
    for image, truth, snr_db in samples:
        prediction = predict_concentration(network, image, refiner=refiner)
        rows += object_rows(prediction, truth, snr_db)
    return np.array(rows)


def table(rows: np.ndarray) -> list[str]:
    """Per area bin × SNR bin: objects, found, median level ratio [IQR], median iron ratio [IQR]."""
    lines = ["| area in the plane (mm²) | SNR | objects | found | level ratio, median [IQR] | "
             "iron ratio, median [IQR] |", "|---|---|---|---|---|---|"]
    for low, high in AREA_BINS_MM2:
        for snr_name in [name for name, _, _ in SNR_BINS] + ["all"]:
            keep = (rows[:, 0] >= low) & (rows[:, 0] < high)
            if snr_name != "all":
                keep &= np.array([snr_bin(s) == snr_name for s in rows[:, 1]])
            if not keep.any():
                continue
            level, iron = rows[keep, 3], rows[keep, 4]
            area = f"{low:g}–{high:g}" if math.isfinite(high) else f"≥ {low:g}"
            lines.append(f"| {area} | {snr_name} | {int(keep.sum())} | {100 * rows[keep, 2].mean():.0f} % | "
                         f"{np.median(level):.2f} [{np.percentile(level, 25):.2f}–{np.percentile(level, 75):.2f}] | "
                         f"{np.median(iron):.2f} [{np.percentile(iron, 25):.2f}–{np.percentile(iron, 75):.2f}] |")
    return lines


def figure(results: dict[str, np.ndarray], path: Path) -> None:
    """Iron ratio against object area, one panel per set, coloured by SNR (noise-free at the top of the scale);
    ratios outside 0.05–5 (a missed object reads 0) are drawn at the edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    for i, (ax, (name, rows)) in enumerate(zip(axes[0], results.items(), strict=True)):
        snr = np.where(np.isfinite(rows[:, 1]), rows[:, 1], 35.0)
        points = ax.scatter(rows[:, 0], np.clip(rows[:, 4], 0.05, 5.0), c=snr, s=8, cmap="viridis", vmin=5, vmax=35)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_ylim(0.045, 5.5)
        ax.set_xlabel("object area in the plane (mm²)")
        if i == 0:
            ax.set_ylabel("iron ratio (map / truth, within 1 mm; missed at 0.05)")
        ax.set_title(name, fontsize=9)
    fig.colorbar(points, ax=axes[0].tolist(), label="SNR (dB; 35 = noise-free)")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def shipped_bundle():
    """The shipped DeepSPIO network and refiner (``models/model.pt``, ``models/refiner.pt``), in eval mode."""
    models = Path(bundle_root("spio_quantification")) / "models"
    return load_network(DeepSpio(), str(models / "model.pt")), load_refiner(str(models / "refiner.pt"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_train", type=int, default=300)
    parser.add_argument("--n_unseen", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1400)
    parser.add_argument("--out", default="benchmarks/results/spio/spio_object_accuracy.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    network, refiner = shipped_bundle()
    sets = {f"training's generator (seed {args.seed})": sample_arrays(args.seed, range(args.n_train)),
            f"variant 1 (seed {args.seed + 1})": [variant_sample(args.seed + 1, i) for i in range(args.n_unseen)],
            f"variant 3 (seed {args.seed + 5})": [variant3_sample(args.seed + 5, i) for i in range(args.n_unseen)]}
    if all(reference_data_dir(name).is_file() for name in REAL_BRAINS):
        sets[f"real heads (seed {args.seed + 3})"] = sample_arrays(args.seed + 3, range(args.n_unseen),
                                                                   base=real_brain_slice)
    else:
        print(f"real brain MR not found at {reference_data_dir('pyradiomics')}: the real-heads set is left out")
    results = {name: set_rows(network, refiner, samples) for name, samples in sets.items()}
    out = Path(args.out)
    png = out.with_suffix(".png")
    lines = ["# SPIO: each object's iron as the shipped bundle reads it, by object size and SNR",
             "",
             f"Command: `.venv/bin/python benchmarks/spio_object_accuracy.py --n_train {args.n_train} --n_unseen "
             f"{args.n_unseen} --seed {args.seed} --out {args.out}` (one CPU thread; the bundle's computation: "
             "DeepSPIO's six-pass map, floor, refiner, floor). An object is a connected component of the true "
             "concentration in the plane. *Found*: the map is positive in at least half its pixels. *Level ratio*: "
             "the map's mean over the object's true pixels / the true mean (edges the map misses pull it down). "
             f"*Iron ratio*: the map's iron within {IRON_MARGIN_PX} pixels (≈ 1 mm) of the object / its true iron.",
             "", f"![iron ratio against object area]({png.name})", ""]
    for name, rows in results.items():
        lines += [f"## {name}: {len(rows)} objects", "", *table(rows), ""]
    figure(results, png)
    write_text_atomic("\n".join(lines), out)
    print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()

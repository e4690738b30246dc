"""Where DeepSPIO's error lies on samples like training: inside or outside the iron, by object size and level.

A diagnostic, not a target: on the validation set (seed 1) and the held-out test set (seed 2) of
``spio_accuracy.py`` it splits each image's NMAE ``‖Ĉ − C‖₁ / ‖C‖₁`` into the part inside the true SPIO objects
and the part outside (iron reported where there is none), groups the objects (connected regions of one
concentration in the imaged plane) by their area and by their concentration, and reports for each group the
relative error of the mean predicted level in the object's core (the object eroded by 2 pixels, or the object
itself when that leaves nothing) and the group's share of all error inside objects. It also gives the NMAE of the
truth blurred by a Gaussian (σ in pixels): a floor that any map with that much blur cannot beat.

Usage:
    .venv/bin/python benchmarks/spio_error_breakdown.py [--n_test 100] [--out benchmarks/results/spio]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.data import simulate_pool
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.viewline import PIXEL_MM

PIXEL_MM2 = PIXEL_MM[0] * PIXEL_MM[1]
AREA_BINS_MM2 = (0.0, 5.0, 15.0, 40.0, np.inf)
LEVEL_BINS = (0.22, 0.87, 3.49, 13.95, 27.91)
BLUR_SIGMAS_PX = (0.5, 1.0, 2.0)


def objects(truth: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """(concentration, mask) of every connected region of one concentration in a truth map (x, z)."""
    found = []
    for level in np.unique(truth[truth > 0]):
        labels, n = ndimage.label(np.isclose(truth, level))
        found += [(float(level), labels == k) for k in range(1, n + 1)]
    return found


def breakdown(predictions: list[np.ndarray], truths: list[np.ndarray]) -> dict:
    """Inside/outside split of NMAE and per-object rows (area mm², level, core level error, |error| share)."""
    inside, outside, rows = [], [], []
    for prediction, truth in zip(predictions, truths, strict=True):
        norm = np.abs(truth).sum()
        error = np.abs(prediction - truth)
        support = truth > 0
        inside.append(error[support].sum() / norm)
        outside.append(error[~support].sum() / norm)
        for level, mask in objects(truth):
            core = ndimage.binary_erosion(mask, iterations=2)
            core = core if core.any() else mask
            level_error = prediction[core].mean() / level - 1.0
            rows.append((mask.sum() * PIXEL_MM2, level, level_error, error[mask].sum() / norm))
    return {"inside": np.array(inside), "outside": np.array(outside), "objects": np.array(rows)}


def group_lines(rows: np.ndarray, column: int, bins: tuple[float, ...], unit: str) -> list[str]:
    """Markdown rows: objects per bin, median and mean |relative core level error|, share of inside error."""
    total = rows[:, 3].sum()
    lines = []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        pick = (rows[:, column] >= lo) & (rows[:, column] < hi)
        if not pick.any():
            continue
        level = rows[pick, 2]
        label = f"≥ {lo:g} {unit}" if np.isinf(hi) else f"{lo:g}–{hi:g} {unit}"
        median = round(100 * np.median(level))
        lines.append(f"| {label} | {pick.sum()} | {median:+d} | {100 * np.mean(np.abs(level)):.0f} "
                     f"| {100 * rows[pick, 3].sum() / total:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_val", type=int, default=64)
    parser.add_argument("--n_test", type=int, default=100)
    parser.add_argument("--out", default="benchmarks/results/spio")
    parser.add_argument("--model_path", default=str(Path(bundle_root("spio_quantification")) / "models" / "model.pt"))
    parser.add_argument("--cache_dir", default=str(Path("~/.cache/qsm_slicer_extension/spio/pools").expanduser()))
    args = parser.parse_args()
    torch.set_num_threads(1)
    network = load_network(DeepSpio(), args.model_path)
    lines = ["# Where DeepSPIO's error lies (diagnostic)", "",
             f"Command: `.venv/bin/python benchmarks/spio_error_breakdown.py --n_test {args.n_test}` (one CPU thread), "
             f"weights `{Path(args.model_path).name}`. Objects: connected regions of one concentration in the imaged "
             "plane; core = the object eroded by 2 pixels (0.78 mm); level error = mean predicted core "
             "concentration / true − 1.", ""]
    for name, seed, n in (("validation (seed 1)", 1, args.n_val), ("held-out test (seed 2)", 2, args.n_test)):
        images, concentrations = simulate_pool(seed, n, cache_dir=args.cache_dir if seed == 1 else None, log_every=0)
        truths = [c[0] for c in concentrations.float().numpy()]
        predictions = [predict_concentration(network, image) for image in images.float().numpy()]
        result = breakdown(predictions, truths)
        total = result["inside"] + result["outside"]
        rows = result["objects"]
        lines += [f"## {name}, {n} images, {len(rows)} objects", "",
                  f"- NMAE {total.mean():.3f} = inside the objects {result['inside'].mean():.3f} + outside "
                  f"{result['outside'].mean():.3f} ({100 * result['inside'].sum() / total.sum():.0f} % of the error "
                  "lies inside the true objects)",
                  "- NMAE of the truth blurred by a Gaussian: " + ", ".join(
                      f"σ = {s:g} px: {np.mean([nmae(ndimage.gaussian_filter(t, s), t) for t in truths]):.2f}"
                      for s in BLUR_SIGMAS_PX), "",
                  "| object area in the plane | objects | median core level error % | mean \\|core level error\\| % "
                  "| share of the error inside objects % |", "|---|---|---|---|---|"]
        lines += group_lines(rows, 0, AREA_BINS_MM2, "mm²")
        lines += ["", "| concentration | objects | median core level error % | "
                  "mean \\|core level error\\| % | share of the error inside objects % |", "|---|---|---|---|---|"]
        lines += group_lines(rows, 1, LEVEL_BINS, "µg Fe/mm³")
        lines.append("")
    write_text_atomic("\n".join(lines), Path(args.out) / "spio_error_breakdown.md")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

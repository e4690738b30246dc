"""Issue 24, session 42: where the shipped SPIO map's error is, and what a perfect per-object level would buy.

Every map is the bundle's (``predict_concentration`` with the shipped weights, refiner and one-level-per-object
step; :func:`spio_object_shrinkage.reference_maps` makes and caches the map before the step, which is applied
here). Per image with iron, the NMAE ‖m − t‖₁ / ‖t‖₁ is split by pixel into

- **missed**: true iron where the map is 0 — further split into objects of the truth the map misses entirely, and
  the rest by the pixel's distance to the map's support (≤ 1.5 px, 1.5–3.5 px, deeper);
- **false**: map iron where there is none;
- **level**: both nonzero;

and two oracles (they use the truth, so they only bound what an estimator could buy): each map object (a
4-connected component of the map) scaled by its best scale for L1 (the median of t/m weighted by m), and each
object with no true iron removed. Means over the images of a set; per SNR bin too.

Usage (one CPU thread; ≈ 70 s per 300 images, or seconds with a warm ``--cache``):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_error_budget.py --cache /tmp/spio_cache \\
        --set training=training:1:16800:300 --set real=real:110:0:150 --set variant=variant:111:0:150 \\
        --set variant3=variant3:112:0:150 --out benchmarks/results/spio/spio_error_budget_session42.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage
from spio_design_comparison import SNR_BINS, snr_bin  # benchmarks/ is on sys.path
from spio_object_shrinkage import reference_maps

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.transforms import object_components, shrink_object_levels

PARTS = ("NMAE", "missed", "missed: whole objects", "missed: ≤ 1.5 px from the map", "missed: 1.5–3.5 px",
         "missed: deeper", "false", "level", "oracle: best scale per object", "oracle: objects without iron removed")


def best_scale(truth: np.ndarray, estimate: np.ndarray) -> float:
    """The scale s minimising Σ|s·m − t| over pixels with m > 0: the m-weighted median of t / m."""
    ratio, weight = truth / estimate, estimate
    order = np.argsort(ratio)
    cumulative = np.cumsum(weight[order])
    return float(ratio[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def budget(truth: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """One image's error parts (each / the image's true total; missed + false + level = NMAE)."""
    t, m = truth.astype(np.float64), estimate.astype(np.float64)
    total, error = t.sum(), np.abs(m - t)
    missed = (t > 0) & (m <= 0)
    true_labels, n_true = ndimage.label(t > 0)
    whole = np.zeros_like(missed)
    for j in range(1, n_true + 1):
        obj = true_labels == j
        if not (m[obj] > 0).any():
            whole |= obj
    depth = ndimage.distance_transform_edt(m <= 0)
    rest = missed & ~whole
    labels, n = object_components(m)  # the bundle's objects: the floored map's components
    scaled, cleaned = m.copy(), m.copy()
    for j in range(1, n + 1):
        obj = labels == j
        scaled[obj] = m[obj] * best_scale(t[obj], m[obj])
        if not (t[obj] > 0).any():
            cleaned[obj] = 0.0
    return dict(zip(PARTS, (x / total for x in (
        error.sum(), error[missed].sum(), t[missed & whole].sum(), t[rest & (depth <= 1.5)].sum(),
        t[rest & (depth > 1.5) & (depth <= 3.5)].sum(), t[rest & (depth > 3.5)].sum(),
        error[(t <= 0) & (m > 0)].sum(), error[(t > 0) & (m > 0)].sum(), np.abs(scaled - t).sum(),
        np.abs(cleaned - t).sum())), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", required=True, help="NAME=GENERATOR:SEED:START:N (repeat)")
    parser.add_argument("--cache", type=Path, default=None, help="folder for the sets' maps (npz)")
    parser.add_argument("--out", type=Path, required=True, help="markdown report")
    args = parser.parse_args()
    lines = ["# SPIO: where the shipped map's error is (issue 24, session 42)", "",
             "The bundle's map (shipped weights, refiner, one level per object); per image with iron, the NMAE "
             "split by pixel (missed + false + level = NMAE), and two oracles that use the truth. Mean over the "
             "images; `benchmarks/spio_error_budget.py`.", ""]
    bins = [b for b, _, _ in SNR_BINS]
    for spec in args.set:
        name, rest = spec.split("=", 1)
        generator, seed, start, n = rest.split(":")
        truths, snrs, maps = reference_maps(generator, int(seed), int(start), int(n), args.cache)
        rows = [budget(t, shrink_object_levels(m)) for t, m in zip(truths, maps, strict=True)]
        labels = np.array([snr_bin(x) for x in snrs])
        lines += [f"## {name} ({generator}, seed {seed}, samples {start}–{int(start) + int(n) - 1}; "
                  f"{len(rows)} images with iron)", "", "| part | all | " + " | ".join(bins) + " |",
                  "|---" * (len(bins) + 2) + "|"]
        for part in PARTS:
            values = np.array([r[part] for r in rows])
            cells = [f"{values[labels == b].mean():.3f} ({int((labels == b).sum())})" if (labels == b).any() else "—"
                     for b in bins]
            lines.append(f"| {part} | {values.mean():.3f} | " + " | ".join(cells) + " |")
        lines.append("")
        print(f"[set] {name}: {len(rows)} images", flush=True)
    write_text_atomic("\n".join(lines), args.out)
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()

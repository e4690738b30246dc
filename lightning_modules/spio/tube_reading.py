"""Reading tubes of a bench phantom from the bundle's concentration map: iron summed around each tube, divided by
its lumen's area (issue 24, session 38).

For a tube along the slice normal y, the View Line image fixes how much iron the tube holds per millimetre of its
length (its far field), not where inside the dark ring of lumen and wall that iron sits; the shipped weights spread a
walled tube's iron over lumen and wall, so the map's mean inside the lumen reads ≈ 30 % low. The iron summed over a
region around the whole tube, divided by the lumen's area — which the lab knows, having filled the tubes — reads the
tube's concentration far better (judge phantoms never trained on, median error 0.087 against the lumen mean's 0.207,
tube racks 0.114 against 0.293: ``benchmarks/spio_tube_totals.py``, ``decision_rule_session38.md`` rule 2).

Usage (a label map of the lumens, 1 … n, on the concentration map's grid, e.g. from Slicer's Segment Editor; with
the tubes' known inner diameter the labels need only cover each lumen roughly):
    .venv/bin/python -m lightning_modules.spio.tube_reading --concentration output/case_concentration.nii.gz \\
        --lumens lumens.nii.gz --inner_diameter_mm 6.0 --out tubes.csv
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from lightning_modules.bundle_app import exit_on_input_error
from lightning_modules.io import InputError, load_nifti, voxel_sizes_mm, write_text_atomic

#: The default margin around a lumen: more than the walls of common sample tubes (0.3–1 mm) and the judge's (≤ 1 mm).
DEFAULT_MARGIN_MM = 1.2

COLUMNS = ("label", "drawn_area_mm2", "lumen_area_mm2", "lumen_mean_ug_per_mm3", "iron_ug_per_mm",
           "concentration_ug_per_mm3")


def exclusive_regions(lumens: np.ndarray, margin_px: int) -> np.ndarray:
    """Label image: every lumen (``lumens`` > 0, one label each) dilated by ``margin_px`` pixels, each pixel
    belonging to the nearest lumen only (regions a user draws around neighbouring tubes do not overlap)."""
    lumens = np.asarray(lumens).astype(np.int64)
    if not lumens.any():
        return np.zeros_like(lumens)
    _, indices = ndimage.distance_transform_edt(lumens == 0, return_indices=True)
    nearest = lumens[tuple(indices)]
    regions = np.zeros_like(lumens)
    for label in np.unique(lumens[lumens > 0]):
        lumen = lumens == label  # (scipy's iterations=0 would dilate until nothing changes)
        near = ndimage.binary_dilation(lumen, iterations=margin_px) if margin_px > 0 else lumen
        regions[near & (nearest == label)] = label
    return regions


def tube_readings(concentration: np.ndarray, lumens: np.ndarray, pixel_mm: tuple[float, float], *,
                  margin_mm: float = DEFAULT_MARGIN_MM, inner_diameter_mm: Sequence[float] | None = None,
                  ) -> list[dict[str, float]]:
    """Per label (ascending): the drawn area (mm²), the lumen's area (the drawn one, or π d² / 4 for the tube's
    known ``inner_diameter_mm`` — one value for every tube or one per label), the map's mean inside the drawn label
    (µg Fe/mm³), the iron summed over its exclusive region ``margin_mm`` around it (µg Fe per mm of tube along y)
    and that iron over the lumen's area: the tube's concentration (µg Fe/mm³). ``concentration`` and ``lumens``
    are 2-D on the same grid of ``pixel_mm``. A known diameter makes the reading independent of how exactly the
    labels were drawn (one pixel too small or large changes a drawn area of r = 3 mm by ≈ 25 %)."""
    concentration, lumens = np.asarray(concentration, dtype=np.float64), np.asarray(lumens).astype(np.int64)
    if concentration.shape != lumens.shape:
        raise InputError(f"the lumen labels' shape {lumens.shape} is not the concentration map's "
                         f"{concentration.shape}; draw them on the map's grid")
    if margin_mm < 0:
        raise InputError(f"--margin_mm must be ≥ 0, not {margin_mm}")
    labels = np.unique(lumens[lumens > 0])
    diameters = None if inner_diameter_mm is None else [float(d) for d in inner_diameter_mm]
    if diameters is not None:
        if len(diameters) not in (1, len(labels)) or min(diameters) <= 0:
            raise InputError(f"--inner_diameter_mm takes one diameter > 0 for every tube or one per label "
                             f"({len(labels)}), not {diameters}")
        diameters = diameters * len(labels) if len(diameters) == 1 else diameters
    pixel_area = float(pixel_mm[0] * pixel_mm[1])
    regions = exclusive_regions(lumens, int(round(margin_mm / min(pixel_mm))))
    rows = []
    for k, label in enumerate(labels):
        lumen = lumens == label
        iron = float(concentration[regions == label].sum()) * pixel_area
        drawn = float(lumen.sum()) * pixel_area
        area = drawn if diameters is None else math.pi * diameters[k] ** 2 / 4
        rows.append({"label": int(label), "drawn_area_mm2": drawn, "lumen_area_mm2": area,
                     "lumen_mean_ug_per_mm3": float(concentration[lumen].mean()), "iron_ug_per_mm": iron,
                     "concentration_ug_per_mm3": iron / area})
    return rows


def _plane(path: str, what: str) -> tuple[np.ndarray, tuple[float, float], np.ndarray]:
    data, affine, _ = load_nifti(path, what=what, ndim=(2, 3))
    if data.ndim == 3:
        if data.shape[2] != 1:
            raise InputError(f"{what} file {path!r} has {data.shape[2]} slices; give the bundle's one-slice map")
        data = data[:, :, 0]
    spacing = voxel_sizes_mm(affine)
    return data, (float(spacing[0]), float(spacing[1])), affine


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concentration", required=True, help="the bundle's {stem}_concentration.nii.gz")
    parser.add_argument("--lumens", required=True,
                        help="label map on the same grid: 0 outside, 1 … n the lumen (inside of the wall) of tube n; "
                             "label every tube that holds iron (an unlabelled one's iron within the margin of a "
                             "labelled tube is counted for it)")
    parser.add_argument("--margin_mm", type=float, default=DEFAULT_MARGIN_MM,
                        help=f"how far around each lumen the iron is summed, mm (default {DEFAULT_MARGIN_MM}; "
                             "at least the tube wall's thickness)")
    parser.add_argument("--inner_diameter_mm", type=float, nargs="+", default=None,
                        help="the tubes' known inner diameter, mm: one for all or one per label in order; then the "
                             "labels need only cover each lumen roughly (default: their drawn areas are the lumens)")
    parser.add_argument("--out", default=None, help="write the table as CSV here (default: print only)")
    args = parser.parse_args(argv)
    with exit_on_input_error():
        concentration, pixel_mm, affine = _plane(args.concentration, "concentration")
        lumens, _, lumen_affine = _plane(args.lumens, "lumen labels")
        if not np.allclose(affine, lumen_affine, atol=1e-3):
            raise InputError("the lumen labels' affine is not the concentration map's; draw them on the map's grid")
        if np.any(lumens < 0) or np.any(lumens != np.round(lumens)) or not np.any(lumens > 0):
            raise InputError("the lumen labels must be whole numbers ≥ 0 with at least one tube (> 0)")
        rows = tube_readings(concentration, lumens, pixel_mm, margin_mm=args.margin_mm,
                             inner_diameter_mm=args.inner_diameter_mm)
    text = ",".join(COLUMNS) + "\n" + "".join(
        ",".join(f"{row[c]:.6g}" for c in COLUMNS) + "\n" for row in rows)
    if args.out:
        write_text_atomic(text, Path(args.out))
    print(text, end="")


if __name__ == "__main__":
    main()

"""Issue 24, session 38: a tube's iron summed around it against the map's mean inside it (rule 2 of
``benchmarks/results/spio/decision_rule_session38.md``).

For a tube along y the far field fixes the iron per unit length but not where it sits: the shipped weights spread a
walled tube's iron over lumen and wall, so the map's level inside the lumen reads low while the iron it holds is
right. A lab knows the lumen of the tubes it filled, so it can read a tube as the map summed over a region drawn around
the whole tube, divided by the lumen's area. This compares that reading (the **iron ratio** of
:func:`spio_object_accuracy.object_rows`, regions exclusive: each pixel counts for the nearest tube) with the map's
mean inside the lumen (the **level ratio**), per tube with iron of the judge generator
(:mod:`spio_tube_phantoms`; never trained on), as the bundle runs (``predict_concentration`` with the refiner).
``--generator`` reads other generators' objects the same way (report only: a blob's in-plane iron depends on its unseen
extent, so there the summed reading has no physical argument). One CPU thread, ≈ 2 min for 300 phantoms. Writes
Markdown and a PNG next to ``--out``.

Usage:
    .venv/bin/python benchmarks/spio_tube_totals.py --seed 54 --n 300 \\
        --out benchmarks/results/spio/spio_tube_totals_session38.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from spio_design_comparison import SNR_BINS, sample_arrays, snr_bin
from spio_object_accuracy import object_rows, shipped_bundle
from spio_paired_bins import _base_kinds, _other_set
from spio_tube_phantoms import tube_phantom_judge_sample, tube_phantom_kind

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.app import predict_concentration
from lightning_modules.spio.tube_reading import exclusive_regions, tube_readings
from lightning_modules.spio.viewline import PIXEL_MM


def bundle_version() -> str:
    """The shipped bundle's version (its metadata), which the maps are made with."""
    import json

    from lightning_modules.bundle_app import bundle_root

    meta = Path(bundle_root("spio_quantification")) / "configs" / "metadata.json"
    return json.loads(meta.read_text())["version"]


#: True level bins, µg Fe/mm³ (the judge's range is 0.22–27.9).
LEVEL_BINS = ((0.22, 0.87), (0.87, 3.49), (3.49, 27.91))


def drawn_lumens(labels: np.ndarray, offset_px: int) -> np.ndarray:
    """The lumens as a user might draw them: each label grown (offset > 0, never into a neighbour's pixels) or
    shrunk (offset < 0) by ``|offset_px|`` pixels."""
    if offset_px >= 0:
        return exclusive_regions(labels, offset_px)
    drawn = np.zeros_like(labels)
    for label in range(1, labels.max() + 1):
        drawn[ndimage.binary_erosion(labels == label, iterations=-offset_px)] = label
    return drawn


def tube_rows(prediction: np.ndarray, truth: np.ndarray, snr_db: float, margins: list[int],
              drawn_offsets: list[int] = ()) -> list[list[float]]:
    """Per tube with iron: [true level, SNR dB, found, level ratio, iron ratio at each margin, then for each of
    ``drawn_offsets`` the summed reading over the true level with the lumen drawn that many pixels off, divided by
    the drawn area and by the lumen's own (known) area]."""
    labels, n = ndimage.label(truth > 0)
    levels = ndimage.mean(truth, labels, range(1, n + 1))
    per_margin = [object_rows(prediction, truth, snr_db, margin_px=m, exclusive=True) for m in margins]
    drawn = []
    for offset in drawn_offsets:  # a lumen shrunk away counts as not read (ratio 0)
        readings = {r["label"]: r for r in tube_readings(
            prediction, drawn_lumens(labels, offset), PIXEL_MM, margin_mm=(margins[0] - offset) * PIXEL_MM[0])}
        for known_area in (False, True):  # the drawn area, then the lumen's own (a lab knows its tubes' diameter)
            drawn.append([readings[k + 1]["iron_ug_per_mm"]
                          / (per_margin[0][k][0] if known_area else readings[k + 1]["lumen_area_mm2"])
                          / levels[k] if k + 1 in readings else 0.0 for k in range(n)])
    return [[float(levels[k]), snr_db, per_margin[0][k][2], per_margin[0][k][3]]
            + [rows[k][4] for rows in per_margin] + [d[k] for d in drawn] for k in range(n)]


def generator_samples(generator: str, seed: int, indices: range) -> tuple[list, list[str | None]]:
    """(image, truth, SNR dB) of ``generator`` at ``seed`` and each sample's kind (None where it names none)."""
    if generator == "tubes":
        return ([tube_phantom_judge_sample(seed, i) for i in indices], [tube_phantom_kind(seed, i) for i in indices])
    if generator == "train":
        return sample_arrays(seed, indices), [None] * len(indices)
    return _other_set(generator, indices, seed), _base_kinds(generator, indices, seed) or [None] * len(indices)


def summary_line(name: str, rows: np.ndarray) -> str:
    level, iron = rows[:, 3], rows[:, 4:]
    cells = [f"{np.median(np.abs(level - 1)):.3f}", f"{np.median(np.abs(iron[:, 0] - 1)):.3f}",
             f"{np.median(level):.2f} [{np.percentile(level, 25):.2f}–{np.percentile(level, 75):.2f}]",
             f"{np.median(iron[:, 0]):.2f} [{np.percentile(iron[:, 0], 25):.2f}–{np.percentile(iron[:, 0], 75):.2f}]"]
    cells += [f"{np.median(np.abs(iron[:, j] - 1)):.3f}" for j in range(1, iron.shape[1])]
    return f"| {name} | {len(rows)} | {100 * rows[:, 2].mean():.0f} % | " + " | ".join(cells) + " |"


def figure(rows: np.ndarray, kinds: list[str], path: Path) -> None:
    """Level ratio and iron ratio (rule's margin) against the true level, one colour per phantom kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, column, title in ((axes[0], 3, "map's mean inside the lumen / true level"),
                              (axes[1], 4, "iron summed around the tube / lumen area / true level")):
        for kind, colour in zip(dict.fromkeys(kinds), ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=False):
            keep = np.array([k == kind for k in kinds])
            ax.scatter(rows[keep, 0], np.clip(rows[keep, column], 0.05, 5.0), s=8, c=colour, label=kind or "all")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel("true level (µg Fe/mm³)")
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("ratio (missed at 0.05)")
    axes[0].legend(fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="tubes",
                        help="tubes (the judge, rule 2), a generator variant (variant, variant2, variant3), train or "
                             "real: the same reading for other objects, report only")
    parser.add_argument("--seed", type=int, default=54)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--margins", type=int, nargs="+", default=[3, 2, 5],
                        help="pixels around the lumen (0.39 mm each); the first is the rule's")
    parser.add_argument("--drawn_offsets", type=int, nargs="*", default=[],
                        help="also read each tube with its lumen drawn this many pixels too large (+) or too small "
                             "(−), the region reaching as far out as with the true lumen (report only)")
    parser.add_argument("--object_shrinkage", type=float, default=None,
                        help="the bundle's --object_shrinkage (default: its own; 0: 0.13.0's maps)")
    parser.add_argument("--out", default="benchmarks/results/spio/spio_tube_totals_session38.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    network, refiner = shipped_bundle()
    rows, kinds = [], []
    indices = range(args.start, args.start + args.n)
    for (image, truth, snr_db), kind in zip(*generator_samples(args.generator, args.seed, indices), strict=True):
        if not truth.any():
            continue
        shrinkage = {} if args.object_shrinkage is None else {"object_shrinkage": args.object_shrinkage}
        concentration = predict_concentration(network, image, refiner=refiner, **shrinkage)
        new = tube_rows(concentration, truth, snr_db, args.margins, args.drawn_offsets)
        rows += new
        kinds += [kind] * len(new)
    table = np.array(rows)
    groups = [("all", np.ones(len(table), bool))]
    groups += [(f"kind: {kind}", np.array([k == kind for k in kinds])) for kind in dict.fromkeys(kinds) if kind]
    groups += [(f"level {low:g}–{min(high, 27.9):g}", (table[:, 0] >= low) & (table[:, 0] < high))
               for low, high in LEVEL_BINS]
    groups += [(f"SNR {name}", np.array([snr_bin(s) == name for s in table[:, 1]])) for name, _, _ in SNR_BINS]
    others = " | ".join([f"median \\|iron − 1\\|, {m} px" for m in args.margins[1:]]
                        + [f"median \\|iron − 1\\|, lumen drawn {d:+d} px, {area} area" for d in args.drawn_offsets
                           for area in ("drawn", "known")])
    lines = ["# SPIO: a tube's iron summed around it against the map's mean inside it (issue 24, session 38)", "",
             f"Command: `.venv/bin/python benchmarks/spio_tube_totals.py --generator {args.generator} "
             f"--seed {args.seed} --start {args.start} "
             f"--n {args.n} --margins {' '.join(map(str, args.margins))}"
             + (f" --drawn_offsets {' '.join(map(str, args.drawn_offsets))}" if args.drawn_offsets else "")
             + ("" if args.object_shrinkage is None else f" --object_shrinkage {args.object_shrinkage:g}")
             + f" --out {args.out}`", "",
             f"{bundle_version()} as the bundle runs it"
             + ("" if args.object_shrinkage is None else f" with --object_shrinkage {args.object_shrinkage:g}")
             + f"; generator {args.generator} seed {args.seed}, images "
             f"{args.start}–{args.start + args.n - 1}; every object with iron (a tube, for the judge). "
             "Level ratio: the map's mean over the lumen / the true "
             f"level. Iron ratio: the map summed over the lumen dilated by {args.margins[0]} pixels "
             f"({args.margins[0] * PIXEL_MM[0]:.2f} mm; each pixel for the nearest tube) / the true iron in the "
             "lumen.", "",
             "| tubes | n | found | median \\|level − 1\\| | median \\|iron − 1\\| | level ratio, median [IQR] | "
             f"iron ratio, median [IQR] | {others} |",
             "|---" * (7 + len(args.margins) - 1 + 2 * len(args.drawn_offsets)) + "|"]
    lines += [summary_line(name, table[keep]) for name, keep in groups if keep.any()]
    verdicts = []
    for name, keep in [g for g in groups if g[0] == "all" or g[0].startswith("kind: ")]:
        level, iron = np.median(np.abs(table[keep, 3] - 1)), np.median(np.abs(table[keep, 4] - 1))
        verdicts.append(iron < level)
        lines.append(f"\n{name}: median |iron − 1| {iron:.3f} {'<' if iron < level else '≥'} "
                     f"median |level − 1| {level:.3f}")
    lines += ["", "Summed lower than the lumen mean overall and in every kind (rule 2, for the judge): "
              f"{'holds' if all(verdicts) else 'does not hold'}", ""]
    out = Path(args.out)
    figure(table, kinds, out.with_suffix(".png"))
    lines.append(f"Figure: `{out.with_suffix('.png').name}`")
    write_text_atomic("\n".join(lines) + "\n", out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Issue 24, session 41: one level per object — the bundle's map with every object's core pulled toward its median.

Rule: ``benchmarks/results/spio/decision_rule_session41.md``. The reference is the bundle's map without the step
(``predict_concentration(..., object_shrinkage=0)``: 0.13.0 as it runs); each candidate is that map through
:func:`~lightning_modules.spio.transforms.shrink_object_levels` with its (core fraction, strength) — exactly what
``predict_concentration`` and the bundle's ``ObjectLevelShrinkd`` do as their last step, so the pairs differ only
by it. Paired mean NMAE differences (images with iron) per set, per SNR bin and pooled over the sets of each
generator.

Sets (``--set NAME=GENERATOR:SEED:START:N``, repeat): ``training`` (training's generator, samples START … of SEED),
``real`` (real subjects' head slices), ``variant``/``variant2``/``variant3`` (the generator variants).
``--grid`` scores the rule's selection grid (core fraction 0.25 / 0.35 / 0.5 × strength 0.3 / 0.5 / 0.7 / 1.0)
and names the pair with the lowest mean over the sets of their mean paired difference; otherwise the one pair
``--core_fraction``/``--strength``. ``--cache DIR`` keeps each set's images, truths and reference maps (npz) so a
second run reads them. One CPU thread: ≈ 70 s per 300 images of training's generator.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_object_shrinkage.py --grid \\
        --set training=training:1:16800:300 --set real=real:110:0:150 --set variant=variant:111:0:150 \\
        --set variant3=variant3:112:0:150 --out benchmarks/results/spio/spio_object_shrinkage_session41_grid.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from spio_design_comparison import SNR_BINS, sample_arrays, snr_bin  # benchmarks/ is on sys.path
from spio_paired_bins import _other_set, paired_mean_se

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.simulation_refiner import load_refiner
from lightning_modules.spio.transforms import OBJECT_CORE_FRACTION, OBJECT_LEVEL_SHRINKAGE, shrink_object_levels

GRID = [(f, a) for f in (0.25, 0.35, 0.5) for a in (0.3, 0.5, 0.7, 1.0)]
#: A map component whose true iron spans more than this ratio of levels counts as "several levels" in --decompose.
MIXED_RATIO = 1.2


def decompose(truths, maps, core_fraction: float, strength: float) -> dict[str, tuple[int, float]]:
    """Where the step's change of the NMAE comes from: per map component (pixels ≥ the floor), its change of the
    absolute error / the image's true total, summed per kind — ``one level`` (the truth under it is one
    concentration within :data:`MIXED_RATIO`), ``several levels`` (touching objects of different levels), ``no
    iron`` — and divided by the number of images: (components, mean contribution per image)."""
    from scipy import ndimage

    from lightning_modules.spio.transforms import CONCENTRATION_FLOOR_UG_PER_MM3

    parts: dict[str, list[float]] = {"one level": [], "several levels": [], "no iron": []}
    for m, t in zip(maps, truths, strict=True):
        shrunk = shrink_object_levels(m, core_fraction=core_fraction, strength=strength)
        labels, n = ndimage.label(m >= CONCENTRATION_FLOOR_UG_PER_MM3)
        for j in range(1, n + 1):
            component = labels == j
            iron = t[component][t[component] > 0]
            kind = ("no iron" if iron.size == 0 else
                    "several levels" if iron.max() / iron.min() > MIXED_RATIO else "one level")
            change = np.abs(shrunk - t)[component].sum() - np.abs(m - t)[component].sum()
            parts[kind].append(float(change / np.abs(t).sum()))
    return {kind: (len(v), float(np.sum(v)) / len(maps)) for kind, v in parts.items()}


def reference_maps(generator: str, seed: int, start: int, n: int, cache: Path | None):
    """(truths, SNRs dB, the bundle's maps without the step) of one set's images with iron."""
    path = cache / f"{generator}_{seed}_{start}_{n}.npz" if cache else None
    if path is not None and path.is_file():
        d = np.load(path)
        return d["truth"], d["snr"], d["map"]
    models = Path(bundle_root("spio_quantification")) / "models"
    network, refiner = load_network(DeepSpio(), str(models / "model.pt")), load_refiner(str(models / "refiner.pt"))
    indices = range(start, start + n)
    data = sample_arrays(seed, indices) if generator == "training" else _other_set(generator, indices, seed)
    data = [(image, truth, snr) for image, truth, snr in data if truth.any()]
    truths = np.stack([truth for _, truth, _ in data]).astype(np.float32)
    snrs = np.array([snr for _, _, snr in data], float)
    maps = np.stack([predict_concentration(network, image, refiner=refiner, object_shrinkage=0.0)
                     for image, _, _ in data]).astype(np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, truth=truths, snr=snrs, map=maps)
    return truths, snrs, maps


def per_image(truths, maps, core_fraction: float, strength: float) -> np.ndarray:
    return np.array([nmae(shrink_object_levels(m, core_fraction=core_fraction, strength=strength), t)
                     for m, t in zip(maps, truths, strict=True)])


def pooled_cells(parts: list[tuple[np.ndarray, np.ndarray]], bins: list[str]) -> list[str]:
    """Per bin (``all`` or an SNR bin), the paired differences of several sets pooled: ``mean ± s.e. (mean + 2 s.e.;
    n = …)``; ``parts`` are (differences, SNRs dB) per set."""
    cells = []
    for b in bins:
        d = np.concatenate([diff[[b == "all" or snr_bin(x) == b for x in snrs]] for diff, snrs in parts])
        if len(d) < 2:
            cells.append("—")
            continue
        mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
        cells.append(f"{mean:+.4f} ± {se:.4f} ({mean + 2 * se:+.4f}; n = {len(d)})")
    return cells


def cell(values: np.ndarray, reference: np.ndarray) -> str:
    mean, se = paired_mean_se(list(values), list(reference))
    return f"{mean:+.4f} ± {se:.4f} ({mean + 2 * se:+.4f})"


def figure(truths, maps, path: Path, core_fraction: float, strength: float, n: int = 4) -> None:
    """The first ``n`` images of a set (not chosen by result): truth, the map without the step, the map with it (same
    colour scale per row, µg Fe/mm³; each map's NMAE in its title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(maps))
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for row, (t, m) in enumerate(zip(truths[:n], maps[:n], strict=True)):
        shrunk = shrink_object_levels(m, core_fraction=core_fraction, strength=strength)
        top = float(max(t.max(), m.max()))
        for ax, (title, image) in zip(axes[row], (("truth", t), (f"0.13.0, NMAE {nmae(m, t):.3f}", m),
                                                  (f"one level per object, NMAE {nmae(shrunk, t):.3f}", shrunk)),
                                      strict=True):
            shown = ax.imshow(image.T, origin="lower", cmap="inferno", vmin=0.0, vmax=top)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(shown, ax=axes[row].tolist(), shrink=0.8, label="µg Fe/mm³")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", required=True, help="NAME=GENERATOR:SEED:START:N (repeat)")
    parser.add_argument("--grid", action="store_true", help="score the rule's selection grid")
    parser.add_argument("--core_fraction", type=float, default=OBJECT_CORE_FRACTION)
    parser.add_argument("--strength", type=float, default=OBJECT_LEVEL_SHRINKAGE)
    parser.add_argument("--decompose", action="store_true",
                        help="also split each set's change by the kind of map component (one level, several, none)")
    parser.add_argument("--figure", type=Path, default=None,
                        help="PNG of the first set's first four images: truth, without and with the step")
    parser.add_argument("--cache", type=Path, default=None, help="folder for the sets' reference maps (npz)")
    parser.add_argument("--out", type=Path, required=True, help="markdown report")
    args = parser.parse_args()

    sets = {}
    for spec in args.set:
        name, rest = spec.split("=", 1)
        generator, seed, start, n = rest.split(":")
        sets[name] = (generator, *reference_maps(generator, int(seed), int(start), int(n), args.cache))
        print(f"[set] {name}: {len(sets[name][1])} images with iron", flush=True)

    pairs = GRID if args.grid else [(args.core_fraction, args.strength)]
    lines = ["# SPIO: one level per object (issue 24, session 41)", "",
             "Paired mean NMAE difference to the bundle's map without the step (0.13.0 as it runs), ± s.e. "
             "(mean + 2 s.e.); images with iron.", "", "| set (n) | 0.13.0 | "
             + " | ".join(f"core {f:g}, strength {a:g}" for f, a in pairs) + " |", "|---" * (len(pairs) + 2) + "|"]
    means: dict[tuple[float, float], list[float]] = {p: [] for p in pairs}
    scored: dict[str, dict] = {}
    for name, (generator, truths, snrs, maps) in sets.items():
        reference = per_image(truths, maps, 0.5, 0.0)
        values = {p: per_image(truths, maps, *p) for p in pairs}
        scored[name] = {"generator": generator, "snrs": snrs, "reference": reference, "values": values}
        lines.append(f"| {name} ({len(reference)}) | {reference.mean():.4f} | "
                     + " | ".join(cell(values[p], reference) for p in pairs) + " |")
        for p in pairs:
            means[p].append(float(np.mean(values[p] - reference)))
    lines.append("| mean over the sets | | " + " | ".join(f"{np.mean(means[p]):+.4f}" for p in pairs) + " |")
    if args.grid:
        lowest = min(np.mean(means[p]) for p in pairs)
        best = min((p for p in pairs if np.mean(means[p]) <= lowest + 0.0005), key=lambda p: (p[1], np.mean(means[p])))
        lines += ["", f"Selected (lowest mean over the sets; ties within 0.0005 → the smaller strength): core "
                      f"fraction {best[0]:g}, strength {best[1]:g}."]
    else:
        pair = pairs[0]
        generators = sorted({s["generator"] for s in scored.values()})
        bins = ["all"] + [b for b, _, _ in SNR_BINS]
        lines += ["", f"### Pooled per generator, core fraction {pair[0]:g}, strength {pair[1]:g}: paired "
                      "difference ± s.e. (mean + 2 s.e.)", "",
                  "| generator | " + " | ".join(bins) + " |", "|---" * (len(bins) + 1) + "|"]
        for generator in generators:
            parts = [(s["values"][pair] - s["reference"], s["snrs"]) for s in scored.values()
                     if s["generator"] == generator]
            lines.append(f"| {generator} | " + " | ".join(pooled_cells(parts, bins)) + " |")
    if args.decompose:
        pair = (args.core_fraction, args.strength)
        kinds = ("one level", "several levels", "no iron")
        lines += ["", f"### Where the change comes from (core fraction {pair[0]:g}, strength {pair[1]:g}): per kind "
                      f"of map component, the change of its absolute error / the image's true total, mean per image "
                      f"(components); several levels = true iron under it spans > {MIXED_RATIO:g} ×", "",
                  "| set | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
        for name, (_, truths, _, maps) in sets.items():
            parts = decompose(truths, maps, *pair)
            lines.append(f"| {name} | " + " | ".join(f"{parts[k][1]:+.4f} ({parts[k][0]})" for k in kinds) + " |")
    if args.figure is not None:
        _, truths, _, maps = next(iter(sets.values()))
        figure(truths, maps, args.figure, args.core_fraction, args.strength)
        lines += ["", f"![first images]({args.figure.name})"]
    write_text_atomic("\n".join(lines) + "\n", args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

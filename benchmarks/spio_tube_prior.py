"""Issue 24, session 37: the ``tubes`` shape prior (weights trained on bench phantoms) against the general weights.

Rule: ``benchmarks/results/spio/decision_rule_session37.md``. Every map is made as the bundle makes it
(:func:`~lightning_modules.spio.app.predict_concentration`: six DeepSPIO passes, floor, then the refiner when there is
one, floored again). Each candidate is ``NAME=DEEPSPIO.pt[+REFINER.pt]`` (a refiner reads the lifts its weights
hold); the first candidate is the reference of the paired differences.

Sets (``--sets``, comma-separated): ``tuning`` (the training family, ``train.json --tube_phantoms 1``, seed 72 — the
rule's one choice), ``judge`` (``benchmarks/spio_tube_phantoms.py``, seed 51), ``training`` (training's generator,
seed 1 from sample 12 800), ``variant``/``variant2``/``variant3`` (seeds 41/42/43), ``real`` (real heads' slices,
seed 44), ``judge_without_walls`` (the judge's phantoms with the racks' tube walls left out, every other draw
the same: a diagnostic), ``cylinders`` (the acceptance run's rod of r = 3 mm along y in agar, SNR ∞: centre
error per level), ``rod_support`` (session 38: that rod bare and in a dark 0.7 mm wall — the map's support and total
iron, the walled rod's centre error, and a figure of the first candidate's maps next to ``--out``), ``timing`` (one
thread, median of 20).

Usage (one CPU thread):
    M=monai_bundles/spio_quantification/models
    .venv/bin/python benchmarks/spio_tube_prior.py --candidate "G=$M/model.pt+$M/refiner.pt" \\
        --candidate "T=T.pt+T_refiner.pt" --sets judge,cylinders --n 300 \\
        --out benchmarks/results/spio/spio_tube_prior_judge.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from spio_accuracy import CONCENTRATIONS, CYLINDER_RADIUS_MM, centre_mask, cylinder_phantom  # benchmarks/ on sys.path
from spio_design_comparison import SNR_BINS, sample_arrays, snr_bin
from spio_paired_bins import _base_kinds, _other_set, paired_mean_se, table

from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.simulation_refiner import load_refiner
from lightning_modules.spio.viewline import PIXEL_MM

SEEDS = {"tuning": 72, "judge": 51, "judge_without_walls": 51, "training": 1, "variant": 41, "variant2": 42,
         "variant3": 43, "real": 44}
TRAINING_START = 12_800


def load_candidate(spec: str):
    """``NAME=DEEPSPIO.pt[+REFINER.pt[:LIFT,LIFT]]`` → (name, network, refiner or None). The lifts are needed only
    for weights trained before session 38 with lifts other than ``ball`` (session 37's ``T_refiner.pt``: ``:rod``);
    later weights record theirs."""
    name, paths = spec.split("=", 1)
    model, _, refiner = paths.partition("+")
    refiner, _, lifts = refiner.partition(":")
    return name, load_network(DeepSpio(), model), (
        load_refiner(refiner, lifts=tuple(lifts.split(",")) if lifts else None) if refiner else None)


def samples(set_name: str, start: int, n: int) -> tuple[list, list[str] | None]:
    """(image, truth, SNR dB) of ``set_name`` and each sample's kind where the generator names one."""
    seed, indices = SEEDS[set_name], range(start, start + n)
    if set_name == "tuning":
        return sample_arrays(seed, indices, tube_phantoms=1.0), None
    if set_name == "training":
        return sample_arrays(seed, range(TRAINING_START + start, TRAINING_START + start + n)), None
    if set_name == "judge_without_walls":  # the same phantoms, the racks' tube walls left out (a diagnostic)
        from spio_tube_phantoms import tube_phantom_judge_sample, tube_phantom_kind

        return ([tube_phantom_judge_sample(seed, i, walls=False) for i in indices],
                [tube_phantom_kind(seed, i) for i in indices])
    name = "tubes" if set_name == "judge" else set_name
    return _other_set(name, indices, seed), _base_kinds(name, indices, seed)


def paired_table(title: str, scores: dict[str, dict[str, list[float]]]) -> list[str]:
    """:func:`spio_paired_bins.table` over every SNR bin and phantom kind, plus each candidate's mean + 2 s.e. (the
    rule's bound) over all images."""
    names = list(scores)
    first = scores[names[0]]
    bins = ["all"] + [b for b, _, _ in SNR_BINS if b in first] + [k for k in first if k.startswith("kind: ")]
    lines = table(title, scores, bins)[:-1]
    for name in names[1:]:
        mean, se = paired_mean_se(scores[name]["all"], first["all"])
        lines.append(f"| {name} − {names[0]}: mean + 2 s.e. | {mean + 2 * se:+.4f} |" + " |" * (len(bins) - 1))
    return lines + [""]


def score_set(candidates, data: list, kinds: list[str] | None) -> dict[str, dict[str, list[float]]]:
    scores: dict[str, dict[str, list[float]]] = {}
    for name, network, refiner in candidates:
        result: dict[str, list[float]] = {"all": []}
        for k, (image, truth, snr) in enumerate(data):
            if not truth.any():
                continue
            value = nmae(predict_concentration(network, image, refiner=refiner), truth)
            result["all"].append(value)
            result.setdefault(snr_bin(snr), []).append(value)
            if kinds:
                result.setdefault(f"kind: {kinds[k]}", []).append(value)
        scores[name] = result
    return scores


def cylinder_table(candidates) -> list[str]:
    """Centre error (%) of the noise-free rod per level — the acceptance item's SNR ∞ column."""
    centre = centre_mask()
    lines = ["### Cylinder (r = 3 mm along y in agar), SNR ∞: centre error, %", "",
             "| candidate | " + " | ".join(f"{c:g}" for c in CONCENTRATIONS) + " | item holds? |",
             "|---" * (len(CONCENTRATIONS) + 2) + "|"]
    for name, network, refiner in candidates:
        errors = []
        for c in CONCENTRATIONS:
            image, _, _, _ = cylinder_phantom(c)
            prediction = predict_concentration(network, image.numpy(), refiner=refiner)
            errors.append(100 * abs(prediction[centre].mean() - c) / c)
        holds = all(e <= 10 for c, e in zip(CONCENTRATIONS, errors, strict=True) if c >= 1.75) and errors[0] <= 30
        lines.append(f"| {name} | " + " | ".join(f"{e:.1f}" for e in errors) + f" | {'yes' if holds else 'no'} |")
    return lines + [""]


#: The dark wall around the cylinder's rod in ``rod_support`` (session 38), mm.
ROD_WALL_MM = 0.7


def rod_support_maps(candidate, levels) -> dict[tuple[str, float], tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """(kind, level) → (map, truth, image) of the cylinder's rod, bare and in a dark :data:`ROD_WALL_MM` wall,
    noise-free, as ``candidate`` maps it."""
    _, network, refiner = candidate
    maps = {}
    for kind, wall_mm in (("bare", 0.0), ("walled", ROD_WALL_MM)):
        for c in levels:
            image, truth, _, _ = cylinder_phantom(c, wall_mm=wall_mm)
            maps[kind, c] = predict_concentration(network, image.numpy(), refiner=refiner), truth, image
    return maps


def rod_support_table(candidates, maps_of: list[dict], levels=(0.87, 3.49, 13.95)) -> list[str]:
    """Session 38: the cylinder's rod bare and inside a dark wall (noise-free; ``maps_of``: :func:`rod_support_maps`
    per candidate): the map's support (pixels ≥ the floor) and its total iron over the truth's — where each puts the
    iron and how much — and the walled rod's centre error at every level of the cylinder item."""
    centre = centre_mask()
    truth_pixels = int((maps_of[0]["bare", levels[0]][1] > 0).sum())
    lines = [f"### The cylinder's rod bare and in a {ROD_WALL_MM} mm dark wall, SNR ∞: support px (total iron ratio)",
             "", f"True lumen: {truth_pixels} px.", "",
             "| candidate | " + " | ".join(f"{wall} {c:g}" for wall in ("bare", "walled") for c in levels) + " |",
             "|---" * (2 * len(levels) + 1) + "|"]
    errors = ["### The walled rod's centre error, SNR ∞ (signed, %)", "",
              "| candidate | " + " | ".join(f"{c:g}" for c in CONCENTRATIONS) + " |",
              "|---" * (len(CONCENTRATIONS) + 1) + "|"]
    for (name, _, _), maps in zip(candidates, maps_of, strict=True):
        cells = [f"{int((maps[kind, c][0] > 0).sum())} ({maps[kind, c][0].sum() / maps[kind, c][1].sum():.2f})"
                 for kind in ("bare", "walled") for c in levels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        centre_errors = [100 * (maps["walled", c][0][centre].mean() - c) / c for c in CONCENTRATIONS]
        errors.append(f"| {name} | " + " | ".join(f"{e:+.1f}" for e in centre_errors) + " |")
    return lines + [""] + errors + [""]


def rod_support_figure(name: str, maps: dict, path: Path, level: float = 3.49) -> None:
    """The walled and the bare rod at ``level`` as candidate ``name`` maps them (``maps``: its
    :func:`rod_support_maps`): the walled rod's image, its map with the lumen and the wall's outer edge drawn, and
    the profiles through the rod's centre along x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    walled, truth, image = maps["walled", level]
    bare = maps["bare", level][0]
    n = truth.shape[0]
    x_mm = (np.arange(n) - (n - 1) / 2) * PIXEL_MM[0]
    zoom = np.abs(x_mm) <= 10.0
    extent = (x_mm[zoom][0], x_mm[zoom][-1], x_mm[zoom][0], x_mm[zoom][-1])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), layout="constrained")
    axes[0].imshow(image[0].numpy()[np.ix_(zoom, zoom)].T, cmap="gray", origin="lower", extent=extent)
    axes[0].set_title(f"View Line image (even lines), rod in a {ROD_WALL_MM} mm dark wall", fontsize=9)
    shown = axes[1].imshow(walled[np.ix_(zoom, zoom)].T, cmap="inferno", origin="lower", extent=extent,
                           vmin=0, vmax=1.2 * level)
    for radius, style in ((CYLINDER_RADIUS_MM, "-"), (CYLINDER_RADIUS_MM + ROD_WALL_MM, "--")):
        axes[1].add_patch(plt.Circle((0, 0), radius, fill=False, color="c", ls=style, lw=1))
    axes[1].set_title(f"{name}'s map; lumen (solid), wall's outer edge (dashed)", fontsize=9)
    fig.colorbar(shown, ax=axes[1], label="µg Fe/mm³")
    centre = n // 2
    axes[2].plot(x_mm[zoom], truth[zoom, centre], "k-", label="truth")
    axes[2].plot(x_mm[zoom], walled[zoom, centre], "r-", label="map, walled rod")
    axes[2].plot(x_mm[zoom], bare[zoom, centre], "b--", label="map, bare rod")
    axes[2].axvspan(-CYLINDER_RADIUS_MM - ROD_WALL_MM, -CYLINDER_RADIUS_MM, color="0.85")
    axes[2].axvspan(CYLINDER_RADIUS_MM, CYLINDER_RADIUS_MM + ROD_WALL_MM, color="0.85", label="wall")
    axes[2].set_xlabel("x (mm)")
    axes[2].set_ylabel("µg Fe/mm³")
    axes[2].set_title(f"profiles through the centre at {level:g} µg Fe/mm³", fontsize=9)
    axes[2].legend(fontsize=8)
    for ax in axes[:2]:
        ax.set_xlabel("x (mm)")
        ax.set_ylabel("z (mm)")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def timing_table(candidates) -> list[str]:
    image, _, _ = samples("judge", 0, 1)[0][0]
    lines = ["### Inference, one thread, median of 20 (s per image)", "", "| candidate | s |", "|---|---|"]
    for name, network, refiner in candidates:
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            predict_concentration(network, image, refiner=refiner)
            times.append(time.perf_counter() - t0)
        lines.append(f"| {name} | {np.median(times):.3f} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", action="append", required=True,
                        help="NAME=DEEPSPIO.pt[+REFINER.pt[:LIFT,LIFT]]")
    parser.add_argument("--sets", default="judge,cylinders")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--judge_seed", type=int, default=SEEDS["judge"], help="the judge set's seed (51; T2: 52)")
    parser.add_argument("--seed", action="append", default=[], metavar="SET=SEED",
                        help="another seed for a set (session 38: fresh seeds, e.g. real=45 variant3=46)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    candidates = [load_candidate(spec) for spec in args.candidate]
    SEEDS["judge"] = SEEDS["judge_without_walls"] = args.judge_seed
    for override in args.seed:
        set_name, seed = override.split("=")
        SEEDS[set_name] = int(seed)
    lines = ["# SPIO: weights for bench tube phantoms against the general ones (issue 24, sessions 37–38)", "",
             "Command: `.venv/bin/python benchmarks/spio_tube_prior.py "
             + " ".join(f'--candidate "{c}"' for c in args.candidate)
             + f" --sets {args.sets} --start {args.start} --n {args.n} --judge_seed {args.judge_seed}"
             + "".join(f" --seed {override}" for override in args.seed)
             + f" --out {args.out}`",
             ""]
    for set_name in args.sets.split(","):
        if set_name == "cylinders":
            lines += cylinder_table(candidates)
        elif set_name == "rod_support":  # every map made once, for the tables and the figure
            maps_of = [rod_support_maps(candidate, CONCENTRATIONS) for candidate in candidates]
            lines += rod_support_table(candidates, maps_of)
            rod_support_figure(candidates[0][0], maps_of[0], Path(args.out).with_suffix(".png"))
            lines += [f"Figure (the first candidate): `{Path(args.out).with_suffix('.png').name}`", ""]
        elif set_name == "timing":
            lines += timing_table(candidates)
        else:
            data, kinds = samples(set_name, args.start, args.n)
            seed = SEEDS[set_name]
            first = TRAINING_START + args.start if set_name == "training" else args.start
            title = f"{set_name}: seed {seed}, samples {first}–{first + args.n - 1}"
            lines += paired_table(title, score_set(candidates, data, kinds))
        write_text_atomic("\n".join(lines), Path(args.out))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

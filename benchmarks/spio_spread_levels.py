"""Issue 24, session 44: does the spread of DeepSPIO's six test-time passes tell how wrong each object's level is?

The bundle's DeepSPIO map is the mean of six passes (the image mirrored along x or not × shifted by −1, 0, +1
pixels). Where the passes disagree the network is unsure. Candidate K corrects each object of 0.14.0's final map
(the bundle's objects: 4-connected components of the floored map, after the one-level-per-object step) by a scale
predicted from the object's level, area, the image's estimated SNR and the passes' relative spread over the object,
fitted to each object's L1-optimal scale (:func:`spio_error_budget.best_scale`) on development images. Rule:
``benchmarks/results/spio/decision_rule_session44.md``.

The spread comes from the bundle's own inferers: run on ``[f(x), f(x)²]`` they give the six passes' mean and mean
square with the same weights as the map (each pixel over the shifts that saw it), so the spread is exact.

Usage (one CPU thread; ≈ 0.25 s per image, seconds with a warm ``--cache``):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_spread_levels.py --cache /tmp/spio44 \\
        --development training:1:16800:600 --judge training=training:1:17700:300 --judge real=real:120:0:150 \\
        --judge variant=variant:122:0:150 --judge variant3=variant3:124:0:150 \\
        --out benchmarks/results/spio/spio_spread_levels_session44.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import QuantileRegressor
from spio_design_comparison import SNR_BINS, sample_arrays, snr_bin  # benchmarks/ is on sys.path
from spio_error_budget import best_scale
from spio_paired_bins import _other_set

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.object_report import pass_mean_and_spread, relative_spread
from lightning_modules.spio.simulation_refiner import load_refiner
from lightning_modules.spio.snr import estimate_snr_db
from lightning_modules.spio.transforms import object_components

FEATURES = ("log level", "log area", "estimated SNR", "log relative spread")


def collect(spec: str, cache: Path | None) -> dict[str, np.ndarray]:
    """truth, snr (true, dB), estimated SNR, 0.14.0's final map and the passes' spread of one set's images with iron;
    ``spec`` is ``GENERATOR:SEED:START:N`` (GENERATOR ``training``, one of ``spio_paired_bins``' others, or
    ``blobs<SNR>`` — ``blobsinf``, ``blobs19`` … — for ``spio_blob_accuracy``'s metaballs in real heads, samples
    0 … N−1)."""
    generator, seed, start, n = spec.split(":")
    seed, start, n = int(seed), int(start), int(n)
    path = cache / f"spread_{generator}_{seed}_{start}_{n}.npz" if cache else None
    if path is not None and path.is_file():
        return dict(np.load(path))
    models = Path(bundle_root("spio_quantification")) / "models"
    network, refiner = load_network(DeepSpio(), str(models / "model.pt")), load_refiner(str(models / "refiner.pt"))
    indices = range(start, start + n)
    if generator.startswith("blobs"):  # blobs<SNR dB or inf>: spio_blob_accuracy's metaballs in real heads
        from spio_blob_accuracy import KINDS, samples

        snr = generator.removeprefix("blobs")
        data = samples(seed, n, float(snr), **KINDS["metaballs"])  # float("inf"): noise-free
    else:
        data = sample_arrays(seed, indices) if generator == "training" else _other_set(generator, indices, seed)
    out: dict[str, list] = {"truth": [], "snr": [], "estimated_snr": [], "map": [], "spread": []}
    for image, truth, snr in data:
        if not truth.any():
            continue
        out["truth"].append(truth.astype(np.float32))
        out["snr"].append(snr)
        out["estimated_snr"].append(estimate_snr_db(image))
        out["map"].append(predict_concentration(network, image, refiner=refiner).astype(np.float32))
        out["spread"].append(pass_mean_and_spread(network, image)[1].astype(np.float32))
    arrays = {k: np.asarray(v, np.float32) for k, v in out.items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
    return arrays


def objects(m: np.ndarray, spread: np.ndarray, estimated_snr: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Features (n, len(FEATURES)) and masks of the objects of one final map."""
    labels, n = object_components(m)
    masks = [labels == j for j in range(1, n + 1)]
    snr = min(float(estimated_snr), 40.0) if np.isfinite(estimated_snr) else 40.0
    rows = [(np.log(np.median(m[k])), np.log(k.sum()), snr, np.log(max(relative_spread(m[k], spread[k]), 1e-4)))
            for k in masks]
    return np.asarray(rows, float).reshape(-1, len(FEATURES)), masks


def object_table(s: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every object of a set: features, log best scale (0 for an object without iron: it is not scaled to 0, so
    its target is the scale it has), weight (its map iron's share of its image's true iron)."""
    xs, ys, ws = [], [], []
    for t, m, sp, e in zip(s["truth"], s["map"], s["spread"], s["estimated_snr"], strict=True):
        features, masks = objects(m, sp, e)
        for f, k in zip(features, masks, strict=True):
            scale = best_scale(t[k], m[k])
            xs.append(f)
            ys.append(np.log(scale) if scale > 0 else np.log(0.25))
            ws.append(m[k].sum() / t.sum())
    return np.asarray(xs), np.asarray(ys), np.asarray(ws)


def fit(kind: str, x: np.ndarray, y: np.ndarray, w: np.ndarray):
    if kind == "gbm":
        model = HistGradientBoostingRegressor(loss="absolute_error", max_iter=200, learning_rate=0.05,
                                              max_leaf_nodes=15, min_samples_leaf=40, random_state=0)
    else:
        model = QuantileRegressor(quantile=0.5, alpha=0.0, solver="highs")
    return model.fit(x, y, sample_weight=w)


def corrected(s: dict[str, np.ndarray], model, strength: float) -> np.ndarray:
    """Per image NMAE of the final maps with every object scaled by exp(strength · prediction)."""
    values = []
    for t, m, sp, e in zip(s["truth"], s["map"], s["spread"], s["estimated_snr"], strict=True):
        features, masks = objects(m, sp, e)
        out = m.copy()
        if len(masks):
            scales = np.exp(strength * model.predict(features))
            for scale, k in zip(scales, masks, strict=True):
                out[k] = m[k] * scale
        values.append(nmae(out, t))
    return np.asarray(values)


def baseline(s: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray([nmae(m, t) for t, m in zip(s["truth"], s["map"], strict=True)])


def halves(s: dict[str, np.ndarray]) -> tuple[dict, dict]:
    k = len(s["truth"]) // 2
    return {key: v[:k] for key, v in s.items()}, {key: v[k:] for key, v in s.items()}


def cell(d: np.ndarray) -> str:
    mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
    return f"{mean:+.4f} ± {se:.4f} ({mean + 2 * se:+.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--development", action="append", required=True,
                        help="GENERATOR:SEED:START:N the corrector is fitted on (repeat: concatenated; the 2-fold "
                             "choice splits the images in halves)")
    parser.add_argument("--judge", action="append", default=[], help="NAME=GENERATOR:SEED:START:N (repeat)")
    parser.add_argument("--choice", default=None, help="KIND:STRENGTH to judge (default: the development's best)")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = [collect(spec, args.cache) for spec in args.development]
    dev = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    lines = ["# Session 44: per-object level correction from the passes' spread (candidate K)", "",
             f"Development set `{' + '.join(args.development)}` ({len(dev['truth'])} images with iron); features: "
             + ", ".join(FEATURES) + ".", "", "## Choice on the development set (2-fold by image halves)", "",
             "| model | strength | fold 1: K − 0.14.0 | fold 2: K − 0.14.0 |", "|---|---|---|---|"]
    a, b = halves(dev)
    best, best_value = None, 0.0
    for kind in ("gbm", "linear"):
        for strength in (0.5, 1.0):
            diffs = []
            for train, test in ((a, b), (b, a)):
                model = fit(kind, *object_table(train))
                diffs.append(corrected(test, model, strength) - baseline(test))
            lines.append(f"| {kind} | {strength} | {cell(diffs[0])} | {cell(diffs[1])} |")
            if all(d.mean() < 0 for d in diffs) and sum(d.mean() for d in diffs) < best_value:
                best, best_value = (kind, strength), sum(d.mean() for d in diffs)
    if args.choice:
        kind, strength = args.choice.split(":")
        best = (kind, float(strength))
    lines += ["", f"Chosen: {best}" if best else "No choice is lower on both folds: K stops here (rule).", ""]
    if best and args.judge:
        model = fit(best[0], *object_table(dev))
        lines += ["## Judge sets: K − 0.14.0, paired (mean ± s.e. (mean + 2 s.e.))", "",
                  "| set | n | 0.14.0 | K | K − 0.14.0 | " + " | ".join(SNR_BINS) + " |",
                  "|---|---|---|---|---|" + "---|" * len(SNR_BINS)]
        for judge in args.judge:
            name, spec = judge.split("=", 1)
            s = collect(spec, args.cache)
            ref, new = baseline(s), corrected(s, model, best[1])
            bins = [snr_bin(x) for x in s["snr"]]
            per_bin = [cell(new[[b == k for b in bins]] - ref[[b == k for b in bins]])
                       if sum(b == k for b in bins) > 1 else "—" for k in SNR_BINS]
            lines.append(f"| {name} (`{spec}`) | {len(ref)} | {ref.mean():.4f} | {new.mean():.4f} | "
                         f"{cell(new - ref)} | " + " | ".join(per_bin) + " |")
    lines += ["", "```bash", "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_spread_levels.py"
              + "".join(f" --development {d}" for d in args.development) + "".join(f" --judge {j}" for j in args.judge)
              + (f" --choice {args.choice}" if args.choice else "") + f" --out {args.out}", "```", ""]
    write_text_atomic("\n".join(lines), args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

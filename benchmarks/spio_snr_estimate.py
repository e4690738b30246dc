"""Issue 24, session 33: how well the bundle's SNR estimate (``lightning_modules/spio/snr.py``) reads the SNR the
simulator put into an image, on fresh sets, and whether its low-SNR warning (below 11 dB) flags the right images.

Sets (``benchmarks/results/spio/decision_rule_session33.md``): training's generator (``--seed``, 1300 by default; the
first version was judged at 1200), its last stage's options (head bases, intensity augmentation, rim bases; the same
seed), generator variants 1 and 2 (seed + 1, + 2) and real subjects' head slices (seed + 3, when the pyradiomics
brains are in ../shared/data); plus the agar cylinder of
``spio_accuracy.py`` at 19 dB. Per set: the error (estimate − truth, dB) over noisy samples (median, mean, the share
within ± 3 dB), noise-free samples read ≥ 40 dB, and the warning's hits (< 11 dB) and false alarms (≥ 13 dB). Writes
Markdown to ``--out``. One CPU thread, ≈ 2 min.

Usage:
    .venv/bin/python benchmarks/spio_snr_estimate.py --out benchmarks/results/spio/spio_snr_estimate.md
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from spio_design_comparison import sample_arrays
from spio_real_bases import REAL_BRAINS, real_brain_slice
from spio_variant import variant_sample
from spio_variant2 import variant2_sample

from lightning_modules.io import reference_data_dir, write_text_atomic
from lightning_modules.spio.phantoms import agar_disk, cylinder
from lightning_modules.spio.refiner_module import LAST_STAGE
from lightning_modules.spio.snr import LOW_SNR_DB, estimate_snr_db, rician_like
from lightning_modules.spio.viewline import NOISE_MODELS, simulate_viewline

#: Above this true SNR (dB) a warning is a false alarm (a 2 dB guard band above the warning's 11 dB).
FALSE_ALARM_DB = 13.0


def judged_sets(n_train: int, n_unseen: int, seed: int) -> dict[str, list[tuple[np.ndarray, float]]]:
    """Set name → list of (image (2, x, z), true SNR dB): training's generator and its last stage's options at
    ``seed``, the variants and real heads at ``seed`` + 1, + 2, + 3."""
    def pairs(samples):
        return [(np.asarray(image), float(snr)) for image, _, snr in samples]

    sets = {f"training's generator (seed {seed})": pairs(sample_arrays(seed, range(n_train))),
            f"last stage's options (seed {seed})": pairs(sample_arrays(seed, range(n_train), **LAST_STAGE)),
            f"variant 1 (seed {seed + 1})": pairs(variant_sample(seed + 1, i) for i in range(n_unseen)),
            f"variant 2 (seed {seed + 2})": pairs(variant2_sample(seed + 2, i) for i in range(n_unseen))}
    if all(reference_data_dir(name).is_file() for name in REAL_BRAINS):
        sets[f"real heads (seed {seed + 3})"] = pairs(sample_arrays(seed + 3, range(n_unseen), base=real_brain_slice))
    else:
        print(f"real brain MR not found at {reference_data_dir('pyradiomics')}: the real-heads set is left out")
    return sets


def summarise(pairs: list[tuple[np.ndarray, float]]) -> dict[str, float]:
    """The rule's numbers for one set."""
    truth = np.array([snr for _, snr in pairs])
    estimate = np.array([estimate_snr_db(image) for image, _ in pairs])
    noisy = np.isfinite(truth)
    error = estimate[noisy] - truth[noisy]
    warned = estimate < LOW_SNR_DB
    low, high = noisy & (truth < LOW_SNR_DB), noisy & (truth >= FALSE_ALARM_DB)
    return {"n_noisy": int(noisy.sum()), "median": float(np.median(error)), "mean": float(error.mean()),
            "within3": float(np.mean(np.abs(error) <= 3.0)), "p95": float(np.percentile(np.abs(error), 95)),
            "n_free": int((~noisy).sum()), "free_ok": int(np.sum(estimate[~noisy] >= 40.0)),
            "hits": float(warned[low].mean()) if low.any() else math.nan, "n_low": int(low.sum()),
            "false": float(warned[high].mean()) if high.any() else math.nan, "n_high": int(high.sum())}


def noise_check_lines(n: int, seed: int) -> list[str]:
    """Addendum 3: the share of images :func:`rician_like` flags, per noise model, on training's generator and its
    last stage's options at ``seed`` (the same samples under each model)."""
    lines = [f"## The noise-model check (addendum 3; seed {seed}, {n} samples per set)", "",
             "Flagged = the gap pixels' median / lower quartile outside "
             "`RICIAN_RATIO_RANGE`: the bundle then warns that the noise is not single-channel Rician.", "",
             "| set | noise model | noisy images | flagged | noise-free images flagged |", "|---|---|---|---|---|"]
    for name, options in (("training's generator", {}), ("last stage's options", LAST_STAGE)):
        for model in NOISE_MODELS:
            flagged, free_flagged, noisy, free = 0, 0, 0, 0
            for i in range(n):
                image, _, snr = sample_arrays(seed, [i], noise_model=model, **options)[0]
                flag = not rician_like(image)
                if math.isinf(snr):
                    free, free_flagged = free + 1, free_flagged + int(flag)
                else:
                    noisy, flagged = noisy + 1, flagged + int(flag)
            lines.append(f"| {name} (seed {seed}) | {model} | {noisy} | {100 * flagged / noisy:.1f} % | "
                         f"{free_flagged}/{free} |")
            print(lines[-1], flush=True)
    return lines


def cylinder_rows() -> list[str]:
    """The agar cylinder (r = 3 mm along y) at 19 dB: the estimate at each concentration."""
    rows = []
    for level in (0.0, 0.87, 6.98, 27.9):
        concentration = level * cylinder((0.0, 0.0, 0.0), 3.0, np.array([0.0, 1.0, 0.0])).float()
        image, _ = simulate_viewline(agar_disk(radius_mm=22.0), concentration, snr_db=19.0,
                                     generator=torch.Generator().manual_seed(3))
        rows.append(f"| {level:g} | {estimate_snr_db(image.numpy()):.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_train", type=int, default=300)
    parser.add_argument("--n_unseen", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1300, help="seed of the first two sets (the others: +1, +2, +3)")
    parser.add_argument("--noise_check", action="store_true",
                        help="only the noise-model check (addendum 3), on training's generator and the last stage's "
                             "options at --seed under each noise model")
    parser.add_argument("--out", default="benchmarks/results/spio/spio_snr_estimate.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.noise_check:
        lines = ["# SPIO: does the noise look like single-channel Rician noise?", "",
                 f"Command: `.venv/bin/python benchmarks/spio_snr_estimate.py --noise_check --n_train {args.n_train} "
                 f"--seed {args.seed} --out {args.out}` (one CPU thread). Rule: `decision_rule_session33.md`, "
                 "addendum 3.", "", *noise_check_lines(args.n_train, args.seed)]
        write_text_atomic("\n".join(lines) + "\n", args.out)
        print(f"wrote {args.out}")
        return
    lines = ["# SPIO: the SNR estimate of a View Line image against the simulator's SNR",
             "",
             f"Command: `.venv/bin/python benchmarks/spio_snr_estimate.py --n_train {args.n_train} --n_unseen "
             f"{args.n_unseen} --seed {args.seed} --out {args.out}` (one CPU thread). Rule: "
             "`decision_rule_session33.md` (judged on the first two rows). Error = estimate − truth over the noisy "
             "samples; a warning is an estimate below "
             f"{LOW_SNR_DB:g} dB; hits among samples below {LOW_SNR_DB:g} dB, false alarms among samples at "
             f"≥ {FALSE_ALARM_DB:g} dB.",
             "",
             "| set | noisy | median error dB | mean error dB | within ± 3 dB | 95th pct. of \\|error\\| dB | "
             "noise-free read ≥ 40 dB | warned below 11 dB | warned at ≥ 13 dB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, pairs in judged_sets(args.n_train, args.n_unseen, args.seed).items():
        s = summarise(pairs)
        lines.append(f"| {name} | {s['n_noisy']} | {s['median']:+.2f} | {s['mean']:+.2f} | {100 * s['within3']:.0f} % "
                     f"| {s['p95']:.1f} | {s['free_ok']}/{s['n_free']} | {100 * s['hits']:.0f} % ({s['n_low']}) | "
                     f"{100 * s['false']:.0f} % ({s['n_high']}) |")
        print(lines[-1], flush=True)
    image = sample_arrays(1200, [0])[0][0]
    start = time.perf_counter()
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        estimate_snr_db(image)
        times.append(time.perf_counter() - t0)
    lines += ["", f"Time per estimate: {1000 * float(np.median(times)):.1f} ms (median of 20, one thread; "
                  f"{time.perf_counter() - start:.2f} s in all).",
              "",
              "Agar cylinder (r = 3 mm along y) at 19 dB, as in `spio_accuracy.py` (b): the iron bends lines into the "
              "gaps and darkens tissue, so heavy iron reads low.", "",
              "| c (µg Fe/mm³) | estimated SNR (dB) |", "|---|---|", *cylinder_rows()]
    write_text_atomic("\n".join(lines) + "\n", args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

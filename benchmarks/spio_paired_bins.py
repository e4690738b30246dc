"""Issue 24, session 24: how large a difference the tuning set's SNR bins can resolve — paired differences.

The decision rules since session 19 ship a candidate only if its mean NMAE on the tuning set (seed 1, samples
1000–1299) is not above the shipped network's in any SNR bin. The bins hold 32 (∞), 63, 86 and 116 images. This
benchmark gives, per bin, each candidate's mean NMAE minus the first candidate's on the same images (paired), with
its standard error, and the same on the tuning set's own images simulated without noise (``noise_free_fraction``
1: every image at SNR ∞, each otherwise identical), which measures the ∞ bin on all 297 images instead of 32.
Each network runs as the bundle runs it (``predict_concentration``). One CPU thread.

``--start``/``--n`` choose other samples of seed 1 (fresh ones for a confirmatory rule), ``--fixed_snrs`` the
fixed SNRs (dB, ``inf`` for none) at which the same images are also simulated (``random_sample_with_snr``'s
``snr_db``): one paired set per SNR, every image in every set. ``--generator`` takes the images from another
generator instead, each at its own seed (session 26; ``--seed`` picks another): ``variant`` (``spio_variant.py``,
seed 3), ``variant2`` (``spio_variant2.py``, seed 5), ``variant3`` (``spio_variant3.py``, session 36, seed 7) or
``real`` (real subjects' slices, ``spio_real_bases.py``, seed 2); these are compared as drawn only
(``--fixed_snrs ""``). ``--generator unseen`` (session 27) runs all three
at fresh seeds (4, 6, 8) and adds the mean over them, the average of the three sets' mean paired differences.
``--as_0_4_0 NAME`` (session 28) runs candidate NAME as bundle 0.4.0 ran its network — the issue's "today's network":
the flip average without the shift average, floor 0.1 µg Fe/mm³ — so the shipped map can be compared with 0.4.0's
(0.4.0's weights are 0.3.3's: ``git show 2af77b4:monai_bundles/spio_quantification/models/model.pt``).

Usage:
    .venv/bin/python benchmarks/spio_paired_bins.py \\
        --candidate "C=lightning_modules.spio.networks.DeepSpio()@monai_bundles/spio_quantification/models/model.pt" \\
        --candidate "G4n=lightning_modules.spio.networks.DeepSpio()@benchmarks/results/spio/session24_weights/G4n.pt" \\
        [--start 1000 --n 300 --fixed_snrs inf] [--out benchmarks/results/spio/spio_paired_bins_session24.md]
    .venv/bin/python benchmarks/spio_paired_bins.py --candidate ... --generator variant2 --start 0 --n 200 \
        --fixed_snrs "" --out benchmarks/results/spio/spio_paired_variant2.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from spio_design_comparison import SNR_BINS, build, sample_arrays, scores  # benchmarks/ is on sys.path
from spio_variant import VARIANTS, variant_functions

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.app import load_network

DEFAULT_SEEDS = {"variant": 3, "variant2": 5, "variant3": 7, "tubes": 51, "real": 2}
INFERENCE_0_4_0 = {"shifts_px": (0,), "floor_ug_per_mm3": 0.1}  # bundle 0.4.0: flip average only, floor 0.1
UNSEEN_SEEDS = {"variant": 4, "variant2": 6, "real": 8}  # session 27: fresh seeds (the default of --unseen_seeds)
_UNSEEN_DEFAULT = ",".join(str(seed) for seed in UNSEEN_SEEDS.values())


def _base_kinds(name: str, indices: range, seed: int) -> list[str] | None:
    """Each sample's base-image kind for the generator variants (None for other sets)."""
    if name not in VARIANTS:
        return None
    _, base_kind = variant_functions(name)
    return [base_kind(seed, i) for i in indices]


def split_by_kind(results: dict[str, dict[str, list[float]]], samples: list, kinds: list[str]) -> list[str]:
    """Adds to each candidate's results one bin per base kind (the images with iron, as :func:`scores` keeps
    them) and returns the kinds in order of first appearance."""
    with_iron = [kind for kind, (_, truth, _) in zip(kinds, samples, strict=True) if truth.any()]
    order = list(dict.fromkeys(with_iron))
    for result in results.values():
        for kind in order:
            result[kind] = [v for v, k in zip(result["all"], with_iron, strict=True) if k == kind]
    return order


def _other_set(name: str, indices: range, seed: int) -> list:
    """Samples of another generator at ``seed``, as :func:`sample_arrays` gives them (image (2, x, z), truth (x, z),
    SNR dB). Imported when asked for (the real subjects' slices need the peer data)."""
    if name in VARIANTS:
        sample, _ = variant_functions(name)
        return [sample(seed, i) for i in indices]
    from spio_real_bases import real_brain_slice

    return sample_arrays(seed, indices, base=real_brain_slice)


def paired_mean_se(values: list[float], reference: list[float]) -> tuple[float, float]:
    """Mean and standard error of the paired differences ``values − reference``."""
    d = np.asarray(values) - np.asarray(reference)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def paired_cell(values: list[float], reference: list[float]) -> str:
    """``mean ± standard error`` of the paired differences ``values − reference``."""
    mean, se = paired_mean_se(values, reference)
    return f"{mean:+.4f} ± {se:.4f}"


def mean_over_sets(per_set: list[tuple[float, float]]) -> tuple[float, float]:
    """The average of several sets' mean paired differences and its standard error, √(Σ s.e.²) / k (the sets are
    independent)."""
    means, ses = np.array(per_set).T
    return float(means.mean()), float(np.sqrt(np.sum(ses**2)) / len(ses))


def table(title: str, results: dict[str, dict[str, list[float]]], bins: list[str]) -> list[str]:
    """Markdown: mean NMAE per bin, then the paired differences from the first candidate."""
    names = list(results)
    first = results[names[0]]
    lines = [f"### {title}", "", "| candidate | " + " | ".join(f"{b} (n = {len(first[b])})" for b in bins) + " |",
             "|---" * (len(bins) + 1) + "|"]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{np.mean(results[name][b]):.3f}" for b in bins) + " |")
    for name in names[1:]:
        lines.append(f"| {name} − {names[0]} (paired ± s.e.) | "
                     + " | ".join(paired_cell(results[name][b], first[b]) for b in bins) + " |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", action="append", required=True,
                        help="NAME=module.Class(args)@weights.pt (repeat; the first is the reference)")
    parser.add_argument("--start", type=int, default=1000, help="first sample")
    parser.add_argument("--n", type=int, default=300, help="samples (per set)")
    parser.add_argument("--fixed_snrs", default="inf", help="comma-separated SNRs in dB (inf: no noise)")
    parser.add_argument("--generator",
                        choices=("training", "variant", "variant2", "variant3", "tubes", "real", "unseen"),
                        default="training",
                        help="training: seed 1 of the training generator; unseen: variant, variant2 and real at "
                             "their fresh seeds 4, 6, 8 and the mean over the three; others: see the module's text")
    parser.add_argument("--seed", type=int, default=None,
                        help="another generator's seed (default: variant 3, variant2 5, variant3 7, real 2)")
    parser.add_argument("--unseen_seeds", default=_UNSEEN_DEFAULT,
                        help="--generator unseen: the seeds of variant, variant2 and real (session 27's second, "
                             "confirmatory run: 9,10,11)")
    parser.add_argument("--as_0_4_0", action="append", default=[], metavar="NAME",
                        help="run candidate NAME as bundle 0.4.0 did (flip average only, floor 0.1; repeat)")
    parser.add_argument("--out", default="benchmarks/results/spio/spio_paired_bins_session24.md")
    args = parser.parse_args()
    snrs = [float(x) for x in args.fixed_snrs.split(",") if x.strip()]
    if args.generator != "training" and snrs:
        parser.error(f"--generator {args.generator} is compared as drawn only: pass --fixed_snrs \"\"")
    if args.seed is not None and args.generator in ("training", "unseen"):
        parser.error(f"--seed is for one other generator, not --generator {args.generator}")
    torch.set_num_threads(1)
    indices = range(args.start, args.start + args.n)
    kinds_of: dict[str, list[str] | None] = {}
    span = f"samples {args.start}–{args.start + args.n - 1}"
    if args.generator == "training":
        set_name = "the tuning set" if (args.start, args.n) == (1000, 300) else f"{span} of seed 1"
        sets = {f"{set_name} as it is (the rules' bins)": sample_arrays(1, indices)}
    else:
        unseen = dict(zip(UNSEEN_SEEDS, (int(x) for x in args.unseen_seeds.split(",")), strict=True))
        seeds = (unseen if args.generator == "unseen"
                 else {args.generator: DEFAULT_SEEDS[args.generator] if args.seed is None else args.seed})
        sets = {f"{name}: {span} of seed {seed} as drawn": _other_set(name, indices, seed)
                for name, seed in seeds.items()}
        kinds_of = {f"{name}: {span} of seed {seed} as drawn": _base_kinds(name, indices, seed)
                    for name, seed in seeds.items()}
        set_name = ""
    for snr in snrs:
        title = (f"{set_name}'s images without noise" if snr == float("inf")
                 else f"{set_name}'s images at {snr:g} dB")
        sets[title] = sample_arrays(1, indices, snr_db=snr)
    networks = {}
    for candidate in args.candidate:
        name, rest = candidate.split("=", 1)
        expression, weights = rest.rsplit("@", 1)
        networks[name] = load_network(build(expression), weights)
    unknown = set(args.as_0_4_0) - set(networks)
    if unknown:
        parser.error(f"--as_0_4_0 names no candidate: {', '.join(sorted(unknown))}")
    inference = {name: INFERENCE_0_4_0 if name in args.as_0_4_0 else {} for name in networks}
    lines = ["# SPIO: paired differences per SNR bin (issue 24, sessions 24, 26, 27 and 28)", "",
             "Command: `.venv/bin/python benchmarks/spio_paired_bins.py "
             + " ".join(f'--candidate "{c}"' for c in args.candidate)
             + ("" if (args.start, args.n, args.fixed_snrs) == (1000, 300, "inf")
                else f' --start {args.start} --n {args.n} --fixed_snrs "{args.fixed_snrs}"')
             + ("" if args.generator == "training" else f" --generator {args.generator}")
             + ("" if args.seed is None else f" --seed {args.seed}")
             + ("" if args.unseen_seeds == _UNSEEN_DEFAULT else f" --unseen_seeds {args.unseen_seeds}")
             + "".join(f" --as_0_4_0 {name}" for name in args.as_0_4_0) + "`", ""]
    per_set = {}
    for title, samples in sets.items():
        results = {name: scores(network, samples, **inference[name]) for name, network in networks.items()}
        per_set[title] = results
        bins = ["all"] + [b for b, _, _ in SNR_BINS if b in results[next(iter(results))]]
        if kinds_of.get(title):
            bins += split_by_kind(results, samples, kinds_of[title])
        lines += table(title, results, bins)
    if args.generator == "unseen":
        names = list(networks)
        lines += ["### Mean over the three unseen sets (average of the sets' means; s.e. = √(Σ s.e.²) / 3)", "",
                  "| candidate | mean NMAE | − " + names[0] + " (paired ± s.e.) |", "|---|---|---|"]
        for name in names:
            mean = np.mean([np.mean(r[name]["all"]) for r in per_set.values()])
            if name == names[0]:
                lines.append(f"| {name} | {mean:.3f} | — |")
                continue
            d, se = mean_over_sets([paired_mean_se(r[name]["all"], r[names[0]]["all"]) for r in per_set.values()])
            lines.append(f"| {name} | {mean:.3f} | {d:+.4f} ± {se:.4f} |")
        lines.append("")
    text = "\n".join(lines)
    write_text_atomic(text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()

"""The SPIO bundle with and without its noise-adaptive weights, paired per image (issue 24, session 34).

0.11.0's candidate keeps the shipped DeepSPIO and refiner for images whose noise between the lines is single-channel
Rician (:func:`lightning_modules.spio.snr.rician_like`) and maps the others with the noise-robust weights (session
33's DN: the recipe's last DeepSPIO stage and the refiner's, each with other noise models in a quarter of the noisy
samples). Both maps come from the bundle's own array path (``predict_concentration``); the table gives the paired
NMAE difference per SNR bin and how many noisy images the check switched.

    .venv/bin/python benchmarks/spio_noise_adaptive.py --generator train --noise_model magnitude --seed 1 \\
        --start 10400 --n 400 --out benchmarks/results/spio/spio_noise_adaptive_magnitude.md
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from spio_simulation_refiner import sample  # noqa: E402

from lightning_modules.bundle_app import bundle_root  # noqa: E402
from lightning_modules.io import write_text_atomic  # noqa: E402
from lightning_modules.metrics import nmae  # noqa: E402
from lightning_modules.spio.app import load_network, predict_concentration  # noqa: E402
from lightning_modules.spio.networks import DeepSpio  # noqa: E402
from lightning_modules.spio.simulation_refiner import load_refiner  # noqa: E402
from lightning_modules.spio.snr import rician_like  # noqa: E402
from lightning_modules.spio.viewline import EVALUATION_NOISE_MODELS, NOISE_MODELS  # noqa: E402

MODELS = Path(bundle_root("spio_quantification")) / "models"
BINS = (("∞", math.inf, math.inf), ("19–30 dB", 19, 30), ("11–19 dB", 11, 19), ("5–11 dB", 5, 11))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="train", help="train, variant, variant2 or real")
    parser.add_argument("--noise_model", choices=NOISE_MODELS + EVALUATION_NOISE_MODELS,
                        help="training's generator under this noise model")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--robust_model_path", default=str(MODELS / "model_noise_robust.pt"))
    parser.add_argument("--robust_refiner_path", default=str(MODELS / "refiner_noise_robust.pt"))
    parser.add_argument("--reference_robust_model_path",
                        help="session 35, rule 1: compare two companions, both behind the noise check: the reference "
                             "is the bundle with this companion DeepSPIO (and --reference_robust_refiner_path) "
                             "instead of the shipped weights alone")
    parser.add_argument("--reference_robust_refiner_path")
    parser.add_argument("--reference_unmatched", action="store_true",
                        help="session 35, rule 2: the reference is 0.11.0 (the companion reads many-coil images as "
                             "given), the candidate lowers their noise floor to the companion's 4 coils (0.12.0)")
    parser.add_argument("--out")
    parser.add_argument("--signed_as_given", action="store_true",
                        help="rule 5: compare 0.11.0 on the image as given (negative pixels kept) with 0.11.0 on its "
                             "absolute value (the |·| step rule 5 judged; the bundle refuses negative images instead), "
                             "instead of the shipped weights alone with 0.11.0")
    parser.add_argument("--figure", help="PNG: the first noisy sample under each noise model, both maps and the "
                                         "truth (--reference_unmatched: 8 and 32 coils, 0.11.0's and 0.12.0's maps)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    network, refiner = load_network(DeepSpio(), str(MODELS / "model.pt")), load_refiner(str(MODELS / "refiner.pt"))
    robust = load_network(DeepSpio(), args.robust_model_path)
    robust_refiner = load_refiner(args.robust_refiner_path)
    # the reference map's companion: none (the shipped weights alone), this run's, this run's as given, or another
    reference = {}
    if args.signed_as_given or args.reference_unmatched:
        reference = dict(other_network=robust, other_refiner=robust_refiner)
        if args.reference_unmatched:
            reference["other_coils"] = None
    elif args.reference_robust_model_path:
        reference = dict(other_network=load_network(DeepSpio(), args.reference_robust_model_path),
                         other_refiner=load_refiner(args.reference_robust_refiner_path))
    rows = []
    for i in range(args.start, args.start + args.n):
        image, truth, snr = sample(args.generator, args.seed, i, args.noise_model)
        if truth.sum() <= 0:
            continue
        given = image
        if args.signed_as_given:  # rule 5: the reference is 0.11.0 on the image as given, the candidate on |image|
            image = np.abs(image)
        shipped = predict_concentration(network, given, refiner=refiner, **reference)
        adaptive = predict_concentration(network, image, refiner=refiner, other_network=robust,
                                         other_refiner=robust_refiner)
        rows.append((snr, nmae(shipped, truth), nmae(adaptive, truth), not rician_like(image)))
    r = np.array(rows, dtype=float)
    ref_name, candidate = (("as given", "its absolute value") if args.signed_as_given
                            else ("reference companion", "companion") if args.reference_robust_model_path
                            else ("0.11.0 (as given)", "floor matched") if args.reference_unmatched
                            else ("shipped", "adaptive"))
    d = r[:, 2] - r[:, 1]
    noisy = ~np.isinf(r[:, 0])
    name = f"{args.generator}{' (' + args.noise_model + ' noise)' if args.noise_model else ''}"
    title = ("One noise-robust companion − another" if args.reference_robust_model_path
             else "Many-coil noise floor matched − as given" if args.reference_unmatched
             else "Noise-adaptive weights − the shipped weights")
    lines = [f"# {title}, paired: {name}, seed {args.seed}, samples "
             f"{args.start}–{args.start + args.n - 1}", "",
             f"Command: `.venv/bin/python benchmarks/spio_noise_adaptive.py --generator {args.generator}"
             f"{' --noise_model ' + args.noise_model if args.noise_model else ''} --seed {args.seed} "
             f"--start {args.start} --n {args.n}{' --signed_as_given' if args.signed_as_given else ''}"
             f"{' --reference_unmatched' if args.reference_unmatched else ''}` "
             f"(one CPU thread; robust weights "
             f"{Path(args.robust_model_path).name}, {Path(args.robust_refiner_path).name}"
             + (f"; the reference companion {Path(args.reference_robust_model_path).name}, "
                f"{Path(args.reference_robust_refiner_path).name}" if args.reference_robust_model_path else "")
             + ").", "",
             f"Noisy images mapped with the robust weights: **{int(r[noisy, 3].sum())} of {int(noisy.sum())}** "
             f"({100 * r[noisy, 3].mean():.1f} %); noise-free images: {int(r[~noisy, 3].sum())} of "
             f"{int((~noisy).sum())}.", "",
             (f"| set | images | switched | {ref_name} | {candidate} | {candidate} − {ref_name} (± s.e.) |"),
             "|---|---|---|---|---|---|"]
    for label, lo, hi in (("as drawn", -math.inf, math.inf), *BINS):
        pick = (np.ones(len(r), bool) if label == "as drawn" else np.isinf(r[:, 0]) if math.isinf(lo)
                else (r[:, 0] >= lo) & (r[:, 0] < hi))
        if pick.sum() < 2:
            lines.append(f"| {label} | {int(pick.sum())} | — | — | — | — |")
            continue
        se = d[pick].std(ddof=1) / math.sqrt(pick.sum())
        lines.append(f"| {label} | {int(pick.sum())} | {int(r[pick, 3].sum())} | {r[pick, 1].mean():.4f} | "
                     f"{r[pick, 2].mean():.4f} | {d[pick].mean():+.4f} ± {se:.4f} |")
    text = "\n".join(lines + [""])
    print(text)
    if args.out:
        write_text_atomic(text, args.out)
    if args.figure and args.reference_unmatched:
        coil_figure(args, network, refiner, robust, robust_refiner)
    elif args.figure:
        figure(args, network, refiner, robust, robust_refiner)


def _draw_row(fig, axes, panels) -> None:
    """One figure row: each panel (data (x, z), title, colour map, top) on its axis, then the maps' colour bar."""
    for ax, (data, title, cmap, top) in zip(axes, panels, strict=True):
        shown = ax.imshow(data.T, origin="lower", cmap=cmap, vmin=0, vmax=top)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=axes[1:], shrink=0.8, label="µg Fe/mm³")


def coil_figure(args: argparse.Namespace, network, refiner, robust, robust_refiner) -> None:
    """Rows: the first sample with iron at 11–19 dB of ``args``' set under 8 and 32 coils' root-sum-of-squares;
    columns: the image, the truth, 0.11.0's map (the companion reads the image as given) and 0.12.0's (its noise floor
    matched to 4 coils)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def shown_sample(i: int) -> bool:
        _, truth, snr = sample(args.generator, args.seed, i)
        return 11 <= snr < 19 and truth.sum() > 0

    index = next(i for i in range(args.start, args.start + args.n) if shown_sample(i))
    models = ("sos8", "sos32")
    fig, axes = plt.subplots(len(models), 4, figsize=(15, 3.4 * len(models)), squeeze=False)
    both = dict(refiner=refiner, other_network=robust, other_refiner=robust_refiner)
    for row, model in enumerate(models):
        image, truth, snr = sample(args.generator, args.seed, index, model)
        as_given = predict_concentration(network, image, other_coils=None, **both)
        matched = predict_concentration(network, image, **both)
        vmax = float(truth.max())
        panels = [(image.sum(0), f"{model} noise, {snr:.0f} dB", "gray", None), (truth, "truth", "inferno", vmax),
                  (as_given, f"0.11.0 (as given): NMAE {nmae(as_given, truth):.2f}", "inferno", vmax),
                  (matched, f"0.12.0 (floor matched to 4 coils): NMAE {nmae(matched, truth):.2f}", "inferno", vmax)]
        _draw_row(fig, axes[row], panels)
    fig.suptitle(f"{args.generator}, seed {args.seed}, sample {index}: root-sum-of-squares of 8 and 32 coils")
    fig.savefig(args.figure, dpi=80)


def figure(args: argparse.Namespace, network, refiner, robust, robust_refiner) -> None:
    """Rows: the first sample with iron at 5–11 dB of ``args``' set under each noise model of :data:`NOISE_MODELS`;
    columns: the image (even + odd lines), the truth, the shipped weights' map, the noise-adaptive map (NMAE in the
    titles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def shown_sample(i: int) -> bool:  # a sample with iron at 5-11 dB, where the noise model matters most
        _, truth, snr = sample(args.generator, args.seed, i)
        return 5 <= snr < 11 and truth.sum() > 0

    index = next(i for i in range(args.start, args.start + args.n) if shown_sample(i))
    fig, axes = plt.subplots(len(NOISE_MODELS), 4, figsize=(15, 3.4 * len(NOISE_MODELS)), squeeze=False)
    for row, model in enumerate(NOISE_MODELS):
        image, truth, snr = sample(args.generator, args.seed, index, model)
        shipped = predict_concentration(network, image, refiner=refiner)
        adaptive = predict_concentration(network, image, refiner=refiner, other_network=robust,
                                         other_refiner=robust_refiner)
        vmax = float(truth.max())
        panels = [(image.sum(0), f"{model} noise, {snr:.0f} dB", "gray", None), (truth, "truth", "inferno", vmax),
                  (shipped, f"shipped weights only: NMAE {nmae(shipped, truth):.2f}", "inferno", vmax),
                  (adaptive, f"noise-adaptive{' (switched)' if not rician_like(image) else ''}: "
                             f"NMAE {nmae(adaptive, truth):.2f}", "inferno", vmax)]
        _draw_row(fig, axes[row], panels)
    fig.suptitle(f"{args.generator}, seed {args.seed}, sample {index}: the same sample under each noise model")
    fig.savefig(args.figure, dpi=80)


if __name__ == "__main__":
    main()

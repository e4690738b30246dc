"""Issue 24, session 43: the bundle on blob-like iron in real heads — the kind of image issue 24 was tried on.

Issue 24 was filed after a try "as a new user would": an independent simulator's View Line images of real-brain slices
with 1–5 blobs at SNR ∞ / 19 / 11 / 5 dB. The acceptance run's "real subjects' head slices" set puts training's
objects on real heads — metaballs, tori and cylinders, 70 % of the cylinders 30 mm rods along the slice normal — and
session 39 found the weights read a small disc as such a rod would be read, so blobs may read otherwise. This
benchmark maps, on the same real-head bases (``spio_real_bases.real_brain_slice``: sample i has the same base in
every set; the metaballs' draws shift its bubble and SNR draws, the ellipsoids' do not), three kinds of iron:

- ``training's objects``: the acceptance run's real-head set (``random_sample_with_snr`` as drawn);
- ``metaballs``: the same with every object a metaball (1–3 fused balls of radius 1–3.5 mm), i.e. blobs;
- ``ellipsoids``: every sample's objects axis-parallel ellipsoids whose extent along y is 0.4–3 × their section
  (``extent_family`` 1: discs to short rods, session 40's family);

each at the SNR drawn as in training (5–30 dB, one in ten noise-free) and at the issue's fixed SNRs. Networks run as
the bundle runs them (``predict_concentration`` with the refiner and the one-level step); ``--candidate`` adds
another DeepSPIO + refiner pair, compared paired. Report only: it chooses nothing. One CPU thread.

Usage:
    git show 2af77b4:monai_bundles/spio_quantification/models/model.pt > /tmp/model_040.pt   # 0.4.0's weights
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_blob_accuracy.py --seed 150 --n 100 \\
        --as_0_4_0 /tmp/model_040.pt --out benchmarks/results/spio/spio_blob_accuracy_0140.md
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from spio_design_comparison import sample_arrays, snr_bin  # benchmarks/ is on sys.path
from spio_paired_bins import INFERENCE_0_4_0 as INFERENCE_0_4_0_DEEPSPIO
from spio_paired_bins import paired_cell
from spio_real_bases import real_brain_slice

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.simulation_refiner import load_refiner

MODELS = Path(bundle_root("spio_quantification")) / "models"
#: How bundle 0.4.0 mapped (``spio_paired_bins.INFERENCE_0_4_0``): the flip average alone, floor 0.1 µg Fe/mm³, and
#: neither the refiner nor the one-level step, which came later.
INFERENCE_0_4_0 = {**INFERENCE_0_4_0_DEEPSPIO, "object_shrinkage": 0.0}
#: The kinds of iron: options of ``random_sample_with_snr`` on the real-head bases.
KINDS = {"training's objects": {}, "metaballs": {"object_families": ("metaball",)},
         "ellipsoids": {"extent_family": 1.0}}
#: The SNRs issue 24 was tried at (dB), besides the SNR each sample draws.
FIXED_SNRS = (math.inf, 19.0, 11.0, 5.0)


def samples(seed: int, n: int, snr_db: float | None, **options) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(image (2, x, z), truth (x, z), SNR dB) of samples 0 … n−1 of ``seed`` on real-head bases, with iron only."""
    data = sample_arrays(seed, range(n), base=real_brain_slice, snr_db=snr_db, **options)
    return [(image, truth, snr) for image, truth, snr in data if truth.any()]


def summary(values: np.ndarray) -> str:
    """``mean ± sd (median)`` of per-image NMAE."""
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f} ({np.median(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=150, help="the sets' seed (real heads; unused by training)")
    parser.add_argument("--n", type=int, default=100, help="samples per set (those with iron in the plane count)")
    parser.add_argument("--candidate", default=None,
                        help="NAME=DEEPSPIO.pt@REFINER.pt, mapped the same way and compared paired (report only)")
    parser.add_argument("--as_0_4_0", type=Path, default=None,
                        help="weights mapped as bundle 0.4.0 mapped them (the network issue 24 was filed against: "
                             "flip average only, floor 0.1, no refiner, no one-level step), compared paired")
    parser.add_argument("--out", type=Path, required=True, help="markdown report")
    args = parser.parse_args()

    shipped = (load_network(DeepSpio(), str(MODELS / "model.pt")), load_refiner(str(MODELS / "refiner.pt")))
    pairs = {"0.14.0": (*shipped, {})}
    if args.candidate:
        name, weights = args.candidate.split("=", 1)
        network, refiner = weights.split("@")
        pairs[name] = (load_network(DeepSpio(), network), load_refiner(refiner), {})
    if args.as_0_4_0:
        pairs["0.4.0"] = (load_network(DeepSpio(), str(args.as_0_4_0)), None, INFERENCE_0_4_0)
    columns = ["drawn SNR"] + [("∞" if math.isinf(s) else f"{s:g} dB") for s in FIXED_SNRS]
    results: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for kind, options in KINDS.items():
        for column, snr in zip(columns, (None, *FIXED_SNRS), strict=True):
            data = samples(args.seed, args.n, snr, **options)
            for name, (network, refiner, inference) in pairs.items():
                values = np.array([nmae(predict_concentration(network, image, refiner=refiner, **inference), truth)
                                   for image, truth, _ in data])
                results.setdefault(name, {}).setdefault(kind, {})[column] = values
                if column == "drawn SNR":
                    results[name][kind]["bins"] = np.array([snr_bin(s) for _, _, s in data])
            print(kind, column, {name: round(float(r[kind][column].mean()), 4) for name, r in results.items()},
                  flush=True)

    command = (f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_blob_accuracy.py --seed {args.seed} --n {args.n}"
               + (f' --candidate "{args.candidate}"' if args.candidate else "")
               + (f" --as_0_4_0 {args.as_0_4_0}" if args.as_0_4_0 else "") + f" --out {args.out}")
    lines = ["# SPIO on blob-like iron in real heads (issue 24, session 43)", "", f"Command: `{command}` (one CPU "
             "thread). Real subjects' head slices as bases (`spio_real_bases.real_brain_slice`; sample i has the same "
             "base in every row); NMAE per image with iron in the plane, mean ± sd "
             "(median); maps as the bundle makes them.", ""]
    for name, by_kind in results.items():
        lines += [f"## {name}", "", "| iron (images) | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1)
                  + "|"]
        for kind, values in by_kind.items():
            lines.append(f"| {kind} ({len(values['drawn SNR'])}) | "
                         + " | ".join(summary(values[c]) for c in columns) + " |")
        lines += ["", "By the SNR bin each image drew (mean NMAE, images):", ""]
        for kind, values in by_kind.items():
            cells = [f"{b} {values['drawn SNR'][values['bins'] == b].mean():.3f} ({int((values['bins'] == b).sum())})"
                     for b in dict.fromkeys(sorted(values["bins"]))]
            lines.append(f"- {kind}: " + "; ".join(cells))
        lines.append("")
    first = next(iter(results))
    for other in list(results)[1:]:
        lines += [f"## {other} − {first} (paired mean ± s.e.)", "", "| iron | " + " | ".join(columns) + " |",
                  "|---" * (len(columns) + 1) + "|"]
        for kind in KINDS:
            cells = [paired_cell(results[other][kind][c], results[first][kind][c]) for c in columns]
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        lines.append("")
    write_text_atomic("\n".join(lines) + "\n", args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Issue 24, session 44 (report only): does a second draw of DeepSPIO's last stage average the level error away?

0.14.0 against the mean map of two draws of ``make train-spio``'s last stage — ``model.pt`` (seed 68) and session 42's
``G4h69.pt`` (seed 69), each with the bundle's six passes — as the bundle runs them (floor, the shipped refiner unless
``--no_refiner``, the one-level step), paired per image. Rule: ``decision_rule_session44.md``, addendum 1.

Usage (one thread):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_draw_ensemble.py --set training:1:18000:300 \\
        --set real:121:0:150 [--no_refiner] --out benchmarks/results/spio/spio_draw_ensemble_session44.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from spio_design_comparison import sample_arrays  # benchmarks/ is on sys.path
from spio_paired_bins import _other_set

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.ensemble import MapEnsemble
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.simulation_refiner import load_refiner

SECOND_DRAW = "benchmarks/results/spio/session42_weights/G4h69.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", required=True, help="GENERATOR:SEED:START:N (repeat)")
    parser.add_argument("--no_refiner", action="store_true", help="DeepSPIO's maps alone (floor and one-level step)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = Path(bundle_root("spio_quantification")) / "models"
    network = load_network(DeepSpio(), str(models / "model.pt"))
    ensemble = MapEnsemble([network, load_network(DeepSpio(), SECOND_DRAW)]).eval()
    refiner = None if args.no_refiner else load_refiner(str(models / "refiner.pt"))
    what = "DeepSPIO alone" if args.no_refiner else "with the shipped refiner"
    lines = [f"# Session 44: two draws of DeepSPIO's last stage averaged ({what}), paired against 0.14.0", "",
             "| set | n | 0.14.0 | two-draw mean | difference ± s.e. |", "|---|---|---|---|---|"]
    for spec in args.set:
        generator, seed, start, n = spec.split(":")
        indices = range(int(start), int(start) + int(n))
        data = (sample_arrays(int(seed), indices) if generator == "training"
                else _other_set(generator, indices, int(seed)))
        shipped, averaged = [], []
        for image, truth, _ in data:
            if truth.any():
                shipped.append(nmae(predict_concentration(network, image, refiner=refiner), truth))
                averaged.append(nmae(predict_concentration(ensemble, image, refiner=refiner), truth))
        d = np.subtract(averaged, shipped)
        lines.append(f"| `{spec}` | {len(d)} | {np.mean(shipped):.4f} | {np.mean(averaged):.4f} | "
                     f"{d.mean():+.4f} ± {d.std(ddof=1) / np.sqrt(len(d)):.4f} |")
    lines += ["", "```bash", "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_draw_ensemble.py"
              + "".join(f" --set {s}" for s in args.set) + (" --no_refiner" if args.no_refiner else "")
              + f" --out {args.out}", "```", ""]
    write_text_atomic("\n".join(lines), args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

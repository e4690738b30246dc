"""Issue 24, session 18: a test-time shift average and ensembles of DeepSPIO checkpoints on the tuning set.

Rule (written before the run): ``benchmarks/results/spio/decision_rule_session18.md``. Every candidate runs as
the bundle runs (``predict_concentration``: flip average, 0.1 µg Fe/mm³ floor) around the candidate network, on
the tuning set of ``spio_design_comparison.py`` (seed 1, samples 1000–1299); speed is the median of 20 calls of
``predict_concentration`` on one image, one CPU thread.

Usage:
    .venv/bin/python benchmarks/spio_ensembles.py --member C=monai_bundles/spio_quantification/models/model.pt \\
        --member S11=stage11.pt --member G=candG.pt [--member S12=stage12.pt]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from spio_design_comparison import SNR_BINS, scores, tuning_set
from torch import nn

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.ensemble import MapEnsemble
from lightning_modules.spio.inferers import ShiftAverageInferer
from lightning_modules.spio.line_inputs import DeepSpioLineInputs
from lightning_modules.spio.networks import DeepSpio

#: Members whose weights are DeepSPIO with line-feature inputs; every other member is plain DeepSPIO.
LINE_INPUT_MEMBERS = {"G"}


class WithInferer(nn.Module):
    """``network`` run through a MONAI inferer, as one module (so the bundle's flip average wraps it)."""

    def __init__(self, network: nn.Module, inferer) -> None:
        super().__init__()
        self.network, self.inferer = network, inferer

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.inferer(image, self.network)


def seconds_per_image(network: nn.Module, image: np.ndarray, repeats: int = 20) -> float:
    """Median wall time of ``predict_concentration`` on one image."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_concentration(network, image)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--member", action="append", required=True, help="NAME=weights.pt; the first is C")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/spio/spio_ensembles.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    members = {}
    for item in args.member:
        name, weights = item.split("=", 1)
        members[name] = load_network(DeepSpioLineInputs() if name in LINE_INPUT_MEMBERS else DeepSpio(), weights)
    names = list(members)
    c = members[names[0]]
    candidates = {names[0]: c,
                  "H3z": WithInferer(c, ShiftAverageInferer(shifts=(-1, 0, 1))),
                  "I3": MapEnsemble([members[n] for n in names[:3]])}
    if len(names) > 3:
        candidates["I4"] = MapEnsemble([members[n] for n in names[:4]])
    samples = tuning_set(n=args.n)
    bins = ["all"] + [b for b, _, _ in SNR_BINS]
    rows = []
    for name, network in candidates.items():
        network.eval()
        speed = seconds_per_image(network, samples[0][0])
        result = scores(network, samples)
        rows.append(f"| {name} | {speed:.3f} | " + " | ".join(
            f"{np.mean(result[b]):.3f}" if result.get(b) else "—" for b in bins) + " |")
        print(rows[-1], flush=True)
    counts = " | ".join(f"{b}" for b in bins)
    lines = [f"# SPIO shift averages and checkpoint ensembles on the tuning set (seed 1, samples 1000–{999 + args.n})",
             "", "Command: `.venv/bin/python benchmarks/spio_ensembles.py " +
             " ".join(f"--member {m}" for m in args.member) + "`", "",
             f"Members: {', '.join(names)}. H3z: {names[0]} averaged over x-shifts of −1, 0, 1 px (zeros shifted in); "
             f"I3: mean of "
             f"{', '.join(names[:3])}" + (f"; I4: mean of {', '.join(names[:4])}" if len(names) > 3 else "") +
             ". All with the flip average and 0.1 µg Fe/mm³ floor. Mean NMAE per bin.", "",
             f"| candidate | s per image (1 thread) | {counts} |", "|---" * (len(bins) + 2) + "|", *rows]
    text = "\n".join(lines) + "\n"
    write_text_atomic(text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()

"""Issue 24, session 45: what ``--objects true`` adds to a SPIO bundle run, side by side with the map in one run.

Per image (training's generator, seed 1, samples 19 000 …; development images, no judge set): the shipped bundle's map
(``predict_concentration``: six DeepSPIO passes, the refiner, the floors and the one-level step) against the object
report the bundle then makes (``ObjectReportd``'s work: the six passes on [f, f²] and the table), each the median of
``--repeats`` timings on one thread.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_objects_timing.py \\
        --out benchmarks/results/spio/spio_objects_timing_session45.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from spio_design_comparison import sample_arrays  # benchmarks/ is on sys.path
from spio_object_accuracy import shipped_bundle

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.app import predict_concentration
from lightning_modules.spio.object_report import csv_text, object_rows, pass_mean_and_spread
from lightning_modules.spio.viewline import PIXEL_MM


def median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="images")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/spio/spio_objects_timing_session45.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    network, refiner = shipped_bundle()
    rows = []
    for image, _, snr in sample_arrays(1, range(19000, 19000 + args.n)):
        final = predict_concentration(network, image, refiner=refiner)

        def report(image=image, final=final) -> str:
            return csv_text(object_rows(final, pass_mean_and_spread(network, image)[1], PIXEL_MM))

        with torch.no_grad():
            t_map = median_seconds(lambda image=image: predict_concentration(network, image, refiner=refiner),
                                   args.repeats)
            t_objects = median_seconds(report, args.repeats)
        rows.append((snr, t_map, t_objects))
        print(f"SNR {snr:.0f} dB: map {t_map:.3f} s, objects {t_objects:.3f} s", flush=True)
    t_map, t_objects = (float(np.median([r[k] for r in rows])) for k in (1, 2))
    lines = ["# What `--objects true` adds to a SPIO bundle run (session 45)", "",
             f"Command: `OMP_NUM_THREADS=1 .venv/bin/python {' '.join(map(shlex.quote, sys.argv))}`", "",
             f"One thread; median over {args.repeats} timings per image, then over {len(rows)} images of training's "
             "generator (seed 1, from 19 000).", "",
             "| image SNR (dB) | map (s) | object report (s) | ratio |", "|---|---|---|---|"]
    lines += [f"| {snr:.0f} | {a:.3f} | {b:.3f} | {b / a:.2f} |" for snr, a, b in rows]
    lines += [f"| **median** | **{t_map:.3f}** | **{t_objects:.3f}** | **{t_objects / t_map:.2f}** |", ""]
    write_text_atomic("\n".join(lines), Path(args.out))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

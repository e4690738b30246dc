"""The shipped SPIO bundle on the ideal observer's spheres: how far it is from what one plane holds (issue 24).

``spio_plane_identifiability.py`` found that one View Line plane fixes a sphere's level to ≈ 1 % at 15 dB and ≈ 8 %
at 8 dB even when its extent along y and its offset from the plane are unknown. This runs the shipped bundle
(``models/model.pt`` + ``models/refiner.pt``, as :func:`~lightning_modules.spio.app.predict_concentration` runs them)
on the same images — a sphere of radius a centred on the plane or a/2 off it, in the agar disk, at the same in-plane
positions and levels — and reports, within the observer's pixels (4a + 6 mm of the centre): the map's NMAE, its
level (mean over the disk the plane shows, / c) and its total iron (/ the truth's), each as |· − 1|.

``--model PATH`` maps with other DeepSPIO weights, ``--refiner PATH`` with another refiner (session 40: a candidate
bundle) and ``--no_refiner`` without the refiner (DeepSPIO's map alone, flip × shift averaged and floored as the
bundle does): session 39's probe of a training family.

Usage:
    .venv/bin/python benchmarks/spio_plane_network.py   # → benchmarks/results/spio/spio_plane_network.md
    .venv/bin/python benchmarks/spio_plane_network.py --model E.pt --no_refiner --output …_E.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from spio_ideal_observer import CENTRES_MM, LEVELS_UG_PER_MM3, RADII_MM, TRUTHS, agar_scene, image
from spio_object_accuracy import shipped_bundle
from spio_plane_identifiability import plane_view

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.simulation_refiner import load_refiner
from lightning_modules.spio.viewline import add_noise

SNRS_DB = (8.0, 15.0, 25.0, float("inf"))


def measures(prediction: np.ndarray, truth: np.ndarray, near: np.ndarray, disk: np.ndarray) -> tuple[float, ...]:
    """|NMAE|, |level / c − 1| and |total iron / truth's − 1| of a map within ``near``."""
    error = np.abs(prediction - truth)[near].sum() / truth[near].sum()
    level = prediction[disk].mean() / truth[disk].mean()
    total = prediction[near].sum() / truth[near].sum()
    return float(error), abs(float(level) - 1.0), abs(float(total) - 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realisations", type=int, default=10)
    parser.add_argument("--model", default=None, help="DeepSPIO weights (default: the bundle's models/model.pt)")
    parser.add_argument("--refiner", default=None, help="refiner weights (default: the bundle's models/refiner.pt)")
    parser.add_argument("--no_refiner", action="store_true", help="DeepSPIO's map alone")
    parser.add_argument("--output", default="benchmarks/results/spio/spio_plane_network.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    network, refiner = shipped_bundle()
    if args.model:
        network = load_network(DeepSpio(), args.model)
    if args.refiner:
        refiner = load_refiner(args.refiner)
    if args.no_refiner:
        refiner = None
    rng, rho, signal, x, z = agar_scene()
    rows, started = {}, time.perf_counter()
    for radius in RADII_MM:
        for centre in CENTRES_MM:
            distance2 = (x[:, 0, :] - centre[0]) ** 2 + (z[:, 0, :] - centre[1]) ** 2
            near = (distance2 <= (4 * radius + 6.0) ** 2).numpy()
            for truth in TRUTHS:
                y_truth = 0.0 if truth == "centred" else radius / 2
                field, in_plane = plane_view((radius, radius), y_truth, 0.0, centre, distance2)
                disk = in_plane.numpy() > 0
                for level in LEVELS_UG_PER_MM3:
                    clean = image(field, in_plane, level, rho)
                    for snr in SNRS_DB:
                        found = rows.setdefault((truth, radius, level, snr), [])
                        for _ in range(args.realisations if np.isfinite(snr) else 1):
                            noisy = add_noise(clean, snr_db=snr, signal=signal, generator=rng)
                            prediction = predict_concentration(network, noisy.numpy(), refiner=refiner)
                            found.append(measures(prediction, level * in_plane.numpy(), near, disk))
                    print(f"{truth} a={radius} centre={centre} c={level}: "
                          + ", ".join(f"{snr:g} dB {np.mean(rows[truth, radius, level, snr], 0).round(3).tolist()}"
                                      for snr in SNRS_DB) + f" ({time.perf_counter() - started:.0f} s)", flush=True)
    command = " ".join([".venv/bin/python", *sys.argv])
    write_text_atomic(report(rows, command, args.realisations), Path(args.output))
    print(f"wrote {args.output} ({time.perf_counter() - started:.0f} s)")


def report(rows: dict, command: str, realisations: int) -> str:
    lines = [
        "# SPIO: the shipped bundle on the ideal observer's spheres (issue 24, session 39)", "",
        f"`{command}` (one CPU thread; addenda 1–2 of `decision_rule_session39.md`). 0.12.0 (`model.pt` + "
        "`refiner.pt`, flip × shift average, floors; or the weights and refiner the command names) on the P1 images "
        "of `spio_plane_identifiability.md`: a sphere of radius a in the agar disk (r = 20 mm), centred on the plane "
        "or a/2 off it, at level c, 2 in-plane positions, "
        f"{realisations} noise draws per row (∞: one). Within 4a + 6 mm of the centre: NMAE, |level − 1| (the map's "
        "mean over the disk the plane shows / c) and |total iron − 1| (its sum / the truth's). Mean [median].", "",
        "| truth | a (mm) | c (µg Fe/mm³) | SNR (dB) | NMAE | level | total iron |", "|---|---|---|---|---|---|---|"]
    for (truth, radius, level, snr), found in rows.items():
        values = np.array(found)
        lines.append(f"| {truth} | {radius} | {level} | {snr:g} | "
                     + " | ".join(f"{values[:, k].mean():.3f} [{np.median(values[:, k]):.3f}]" for k in range(3))
                     + " |")
    lines += ["", "Mean over sizes, levels and positions (compare the observer's P1 |ĉ/c − 1| in "
              "`spio_plane_identifiability.md`):", "",
              "| SNR (dB) | truth | NMAE | level | total iron |", "|---|---|---|---|---|"]
    for snr in SNRS_DB:
        for truth in (*TRUTHS, "both"):
            sel = np.concatenate([np.array(found) for key, found in rows.items()
                                  if key[3] == snr and truth in (key[0], "both")])
            lines.append(f"| {snr:g} | {truth} | " + " | ".join(f"{v:.3f}" for v in sel.mean(0)) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

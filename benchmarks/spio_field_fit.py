"""Candidate F (issue 24): each object's level from a least-squares fit of its far field, on top of DeepSPIO.

The ideal-observer run (`spio_ideal_observer.py`) shows that at 15 dB and above one View Line plane pins an
object's level to a few per cent when its shape family is known: the information is in the far field. Here
DeepSPIO 0.3.3 (as shipped: flip average, floor) gives the map; each connected component is an object with a
ball-like 3-D model (half-chord along y ``s · sqrt(d (2R − d))`` from the in-plane distance d to its edge, R the
largest d; s = 1 a sphere through its centre); its unit field ``F_j`` (T per µg Fe/mm³) comes from the project's
dipole model. The measured field is the demodulated line displacement (`line_features.offresonance_from_iq`,
wrapped at |ΔB| ≈ 1.07e-4 T). Levels ``c ≥ 0`` minimise ``Σ_p w_p (Σ_j c_j F_j(p) − ΔB(p))²`` over pixels
with lines (amplitude ≥ a quarter of the median in tissue), outside the dilated objects, and where the modelled
field stays below half the wrap (re-masked from the current levels, 3 rounds); ``w = amplitude²`` (the phase
noise falls with the amplitude). Maps: **F-scale** (DeepSPIO's component × c_j / L_j) and **F-flat** (the core at
c_j), L_j the network's level (75th percentile of the component).

Usage:
    .venv/bin/python benchmarks/spio_field_fit.py --set dev --n 60 \
        --output benchmarks/results/spio/spio_field_fit.md           # samples 0–59 of seed 0 (development)
    .venv/bin/python benchmarks/spio_field_fit.py --set tuning --n 300   # the rule's evaluation (not run: see docs)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch
from scipy.optimize import nnls
from spio_design_comparison import snr_bin, tuning_set
from spio_ideal_observer import chord_occupancy
from spio_object_levels import objects, shipped_network

from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import predict_concentration
from lightning_modules.spio.data import random_sample_with_snr
from lightning_modules.spio.line_features import (
    DISPLACEMENT_MM_PER_TESLA,
    LINE_PERIOD_MM,
    LineFeatures,
    offresonance_from_iq,
)
from lightning_modules.spio.viewline import PIXEL_MM, offresonance_tesla

WRAP_TESLA = abs(LINE_PERIOD_MM / 2 / DISPLACEMENT_MM_PER_TESLA)
DILATE_PX = 3


def unit_field(component: np.ndarray, extent: float) -> np.ndarray:
    """ΔB (x, z) in T of the component at 1 µg Fe/mm³ with a ball-like extent along y (× ``extent``)."""
    d = ndi.distance_transform_edt(component) * PIXEL_MM[0]
    radius = d.max()
    half_chord = torch.as_tensor(extent * np.sqrt(np.clip(d * (2 * radius - d), 0.0, None)), dtype=torch.float32)
    return offresonance_tesla(chord_occupancy(half_chord[:, None, :])).numpy()


def fit_levels(image: np.ndarray, shipped: np.ndarray, line_features: LineFeatures, extent: float = 1.0):
    """(objects, fitted levels) for the components of the shipped map; the network's level where a fit fails."""
    found = objects(shipped)
    if not found:
        return found, np.zeros(0)
    x = line_features.normalise(torch.as_tensor(image, dtype=torch.float32)[None])
    iq = line_features.demodulate(x)[0, :2]
    measured = offresonance_from_iq(iq).numpy()
    amplitude = torch.sqrt(iq[0] ** 2 + iq[1] ** 2).numpy()
    envelope = line_features.low_pass(x.sum(1, keepdim=True))[0, 0].numpy()
    tissue = envelope > 0.2 * np.percentile(envelope, 99)
    union = np.zeros(shipped.shape, bool)
    for component, _, _ in found:
        union |= component
    lines = (tissue & (amplitude >= 0.25 * np.median(amplitude[tissue]))
             & ~ndi.binary_dilation(union, iterations=DILATE_PX))

    def smooth(f: np.ndarray) -> np.ndarray:
        return line_features.low_pass(torch.as_tensor(f, dtype=torch.float32)[None, None])[0, 0].numpy()

    fields = np.stack([smooth(unit_field(component, extent)) for component, _, _ in found])  # (J, x, z)
    levels = np.array([level for _, _, level in found])
    for _ in range(3):
        model = np.tensordot(levels, fields, axes=1)
        valid = lines & (np.abs(model) < 0.5 * WRAP_TESLA)
        if valid.sum() < 20:
            break
        w = amplitude[valid]
        levels_new, _ = nnls(fields[:, valid].T * w[:, None], measured[valid] * w)
        levels = levels_new
    return found, levels


def maps(image: np.ndarray, truth: np.ndarray, network, line_features: LineFeatures, extent: float,
         level_errors: dict[str, list[float]]) -> dict[str, np.ndarray]:
    """The candidate maps; appends |level / true level − 1| of objects ≥ 20 core pixels to ``level_errors``."""
    shipped = predict_concentration(network, image)
    found, levels = fit_levels(image, shipped, line_features, extent)
    flat, scaled = np.zeros_like(shipped), np.zeros_like(shipped)
    for (component, core, level), fitted in zip(found, levels, strict=True):
        flat[core] = fitted
        scaled[component] = shipped[component] * fitted / level
        inside = truth[core]
        if core.sum() >= 20 and (inside > 0).any():
            true_level = float(np.median(inside[inside > 0]))
            level_errors["network"].append(abs(level / true_level - 1))
            level_errors["fit"].append(abs(fitted / true_level - 1))
    return {"C (DeepSPIO as shipped)": shipped, "F-scale": scaled, "F-flat": flat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("dev", "tuning"), default="dev")
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--extent", type=float, default=1.0)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    network, line_features = shipped_network(), LineFeatures()
    if args.set == "dev":
        samples = [(im.numpy(), t[0].numpy(), s) for im, t, s in (random_sample_with_snr(0, i) for i in range(args.n))]
    else:
        samples = tuning_set(n=args.n)
    scores: dict[str, dict[str, list[float]]] = {}
    started = time.perf_counter()
    level_errors: dict[str, list[float]] = {"network": [], "fit": []}
    for i, (image, truth, snr) in enumerate(samples):
        if not truth.any():
            continue
        for name, estimate in maps(image, truth, network, line_features, args.extent, level_errors).items():
            value = nmae(estimate, truth)
            scores.setdefault(name, {}).setdefault("all", []).append(value)
            scores[name].setdefault(snr_bin(snr), []).append(value)
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{len(samples)} images ({time.perf_counter() - started:.0f} s): " + ", ".join(
                f"{k} {np.mean(v['all']):.3f}" for k, v in scores.items()), flush=True)
    bins = ["all", "∞", "5–11 dB", "11–19 dB", "19–30 dB"]
    lines = [f"# Candidate F (far-field level fit), {args.set} set, {args.n} images, extent × {args.extent}", "",
             "| candidate | " + " | ".join(bins) + " |", "|---|" + "---|" * len(bins)]
    for name, by_bin in scores.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{np.mean(by_bin[b]):.3f} ({len(by_bin[b])})" if b in by_bin else "—" for b in bins) + " |")
    lines += ["", f"Objects with ≥ 20 core pixels ({len(level_errors['fit'])}): |level / true level − 1| median "
              f"[mean]: DeepSPIO {np.median(level_errors['network']):.3f} [{np.mean(level_errors['network']):.3f}], "
              f"far-field fit {np.median(level_errors['fit']):.3f} [{np.mean(level_errors['fit']):.3f}]"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        write_text_atomic(text, Path(args.output))


if __name__ == "__main__":
    main()

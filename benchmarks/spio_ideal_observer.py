"""Ideal-observer level error: how well one View Line plane can pin down an object's concentration (issue 24).

An SPIO ellipsoid in a uniform agar disk, with circular cross-section of radius ``a`` in the imaged plane and a
semi-axis ``h`` along y (out of the plane; h = a: a sphere), at concentration ``c``. An observer that knows
everything else (the shape family, the position, the cross-section, the spin density and the noise level)
estimates c by maximum likelihood (Rician) over a grid of noise-free templates simulated by the project's own
simulator: levels c·r (r from 0.4 to 2.5, 61 log steps) and, when the extent is unknown, extents h·s (s from 0.5
to 3). The ellipsoid's occupancy along y is fractional (chord length per 1.25 mm voxel), so the field changes
smoothly with h. Reported: mean and median |ĉ/c − 1| over noise realisations, for the extent known (noise only)
and unknown (noise and the out-of-plane extent the plane does not show). For a perfectly shaped single-object
map, |ĉ/c − 1| is the map's NMAE, so these numbers are the in-object NMAE this observer pays.

A second truth is the same sphere centred half a radius off the plane (the generator puts object centres up to
1.5 mm off it): the plane then shows a smaller disk (radius sqrt(a² − (a/2)²)), and the observer, whose
templates are ellipsoids centred on the plane with that disk as cross-section, no longer has the truth among its
templates (a misspecified shape model, as any fit on real objects has).

Usage:
    .venv/bin/python benchmarks/spio_ideal_observer.py   # → benchmarks/results/spio/spio_ideal_observer.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.special import i0e

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.phantoms import agar_disk, grid_3d_mm
from lightning_modules.spio.viewline import VOXEL_3D_MM, acquire, add_noise, offresonance_tesla, tissue_signal

RADII_MM = (1.5, 3.0)
LEVELS_UG_PER_MM3 = (0.22, 0.87, 3.49, 13.95)
SNRS_DB = (8.0, 15.0, 25.0, float("inf"))
TRUTHS = ("centred", "off-centre")
CENTRES_MM = ((0.0, 0.3), (5.0, 1.3))
LEVEL_RATIOS = np.geomspace(0.4, 2.5, 61)
EXTENT_RATIOS = (0.5, 0.63, 0.8, 1.0, 1.25, 1.6, 2.0, 3.0)


def chord_occupancy(half_chord_mm: torch.Tensor, y_centre_mm: float = 0.0) -> torch.Tensor:
    """Fraction (x, y, z) of each voxel of the 3-D grid covered by a chord of half-length (x, 1, z) along y."""
    _, y, _ = grid_3d_mm()
    dy = VOXEL_3D_MM[1]
    low, high = y - y_centre_mm - dy / 2, y - y_centre_mm + dy / 2
    return torch.clamp(torch.minimum(high, half_chord_mm) - torch.maximum(low, -half_chord_mm), min=0.0) / dy


def ellipsoid_occupancy(radius_mm: float, y_semi_axis_mm: float, centre_mm: tuple[float, float],
                        y_centre_mm: float = 0.0) -> torch.Tensor:
    """Fraction (x, y, z) of each voxel inside the ellipsoid, exact along y (chord overlap), pixel centres in x, z."""
    x, _, z = grid_3d_mm()
    rho2 = ((x - centre_mm[0]) ** 2 + (z - centre_mm[1]) ** 2) / radius_mm**2
    return chord_occupancy(y_semi_axis_mm * torch.sqrt(torch.clamp(1.0 - rho2, min=0.0)), y_centre_mm)


def image(unit_field_t: torch.Tensor, in_plane: torch.Tensor, level: float, rho: torch.Tensor) -> torch.Tensor:
    """Noise-free View Line image of the object at ``level``; the field is linear in it (``unit_field_t`` at 1)."""
    return acquire(rho, level * in_plane, level * unit_field_t)


def rician_loglik(measured: np.ndarray, templates: np.ndarray, sigma: float) -> np.ndarray:
    """Rician log-likelihood of ``measured`` (P,) under each template (T, P), up to a constant."""
    arg = measured[None] * templates / sigma**2
    return (-(templates**2) / (2 * sigma**2) + np.log(i0e(arg)) + arg).sum(-1)


def agar_scene() -> tuple[torch.Generator, torch.Tensor, float, torch.Tensor, torch.Tensor]:
    """The observers' scene: the noise generator (seed 0), the agar disk (r = 20 mm) as spin density, its tissue
    signal and the 3-D grid's x and z (mm); also used by ``spio_plane_identifiability.py`` and
    ``spio_plane_network.py`` (session 39)."""
    rho = agar_disk(radius_mm=20.0)
    x, _, z = grid_3d_mm()
    return torch.Generator().manual_seed(0), rho, tissue_signal(rho), x, z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realisations", type=int, default=40)
    parser.add_argument("--output", default="benchmarks/results/spio/spio_ideal_observer.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng, rho, signal, x, z = agar_scene()
    truth_index = (int(np.argmin(np.abs(LEVEL_RATIOS - 1.0))), EXTENT_RATIOS.index(1.0))
    rows, started = [], time.perf_counter()
    for radius in RADII_MM:
        for level in LEVELS_UG_PER_MM3:
            errors = {(truth, snr): {"known": [], "unknown": []} for truth in TRUTHS for snr in SNRS_DB}
            for centre in CENTRES_MM:
                for truth in TRUTHS:
                    y_centre = 0.0 if truth == "centred" else radius / 2
                    seen = float(np.sqrt(radius**2 - y_centre**2))  # radius of the disk the plane shows
                    distance2 = (x[:, 0, :] - centre[0]) ** 2 + (z[:, 0, :] - centre[1]) ** 2
                    in_plane = (distance2 <= seen**2).float()
                    near = distance2 <= (4 * radius + 6.0) ** 2
                    fields = [offresonance_tesla(ellipsoid_occupancy(seen, seen * s, centre)) for s in EXTENT_RATIOS]
                    templates = np.stack([np.stack([
                        image(field, in_plane, level * r, rho)[:, near].flatten().numpy() for field in fields])
                        for r in LEVEL_RATIOS])  # (R, S, P)
                    truth_field = offresonance_tesla(ellipsoid_occupancy(radius, radius, centre, y_centre))
                    clean = image(truth_field, in_plane, level, rho)
                    flat = templates.reshape(-1, templates.shape[-1])
                    for snr in SNRS_DB:
                        for _ in range(args.realisations if np.isfinite(snr) else 1):
                            noisy = add_noise(clean, snr_db=snr, signal=signal, generator=rng)[:, near].flatten()
                            loglik = (rician_loglik(noisy.numpy(), flat, signal / 10 ** (snr / 20)) if np.isfinite(snr)
                                      else -((flat - noisy.numpy()[None]) ** 2).sum(-1)).reshape(templates.shape[:2])
                            known = LEVEL_RATIOS[int(np.argmax(loglik[:, truth_index[1]]))]
                            unknown = LEVEL_RATIOS[np.unravel_index(int(np.argmax(loglik)), loglik.shape)[0]]
                            errors[truth, snr]["known"].append(abs(known - 1.0))
                            errors[truth, snr]["unknown"].append(abs(unknown - 1.0))
            for truth in TRUTHS:
                for snr in SNRS_DB:
                    known, unknown = (np.array(errors[truth, snr][k]) for k in ("known", "unknown"))
                    rows.append((truth, radius, level, snr, known.mean(), np.median(known), unknown.mean(),
                                 np.median(unknown)))
                    print(f"{truth} a={radius} mm c={level} SNR {snr} dB: |error| known {known.mean():.3f}, "
                          f"unknown {unknown.mean():.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
    write_text_atomic(report(rows, args.realisations), Path(args.output))


def report(rows: list[tuple], realisations: int) -> str:
    lines = [
        "# SPIO ideal-observer level error (issue 24)", "",
        "`.venv/bin/python benchmarks/spio_ideal_observer.py` (one CPU thread). A sphere of radius a in an agar disk "
        "(r = 20 mm), centred on the plane or half a radius off it; the observer's templates are ellipsoids centred on "
        "the plane with the cross-section the plane shows: Rician maximum likelihood over 61 levels (0.4–2.5 × c) and, "
        "extent unknown, 8 extents along y (0.5–3 × the disk's radius); ∞: least squares, one realisation. "
        f"{realisations} noise realisations × {len(CENTRES_MM)} positions per row. Mean |ĉ/c − 1| [median]; "
        "'extent known' is the centred truth's own extent (for the off-centre truth no template is right).", "",
        "| truth | a (mm) | c (µg Fe/mm³) | SNR (dB) | extent known | extent unknown |", "|---|---|---|---|---|---|"]
    for truth, radius, level, snr, km, kmed, um, umed in rows:
        lines.append(f"| {truth} | {radius} | {level} | {snr:g} | {km:.3f} [{kmed:.3f}] | {um:.3f} [{umed:.3f}] |")
    lines.append("")
    for truth in TRUTHS:
        for snr in SNRS_DB:
            sel = [r for r in rows if r[0] == truth and r[3] == snr]
            lines.append(f"- {truth}, SNR {snr:g} dB, mean over sizes and levels: extent known "
                         f"{np.mean([r[4] for r in sel]):.3f}, unknown {np.mean([r[6] for r in sel]):.3f}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

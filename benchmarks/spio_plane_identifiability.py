"""Is an off-plane object's level identifiable from one View Line plane, or only from three? (issue 24, session 39)

Session 17's ideal observer (`spio_ideal_observer.py`) found the level to a few per cent when its 3-D shape family
held the truth and a 15–18 % bias for a sphere half a radius off the plane when it did not (templates centred on
the plane). Here the y-offset is an unknown of the observer and the truth is in its family: a sphere of radius a,
centred on the plane or a/2 off it, in the agar disk; templates are ellipsoids whose section with the plane y = 0
is the disk the truth shows there (radius ``seen``), with extent h = seen·s along y, centre y0 = h·t off the plane
and in-plane semi-axis seen/sqrt(1 − t²), at 61 levels (0.4–2.5 × c). Observers: P1 sees the plane y = 0 only
(the contract); P3 sees planes y = −d, 0, +d (the same acquisition with the excitation moved, independent noise),
log-likelihoods summed; "P1 offset known" knows s and t (only the level unknown). Each estimates c by joint Rician
maximum likelihood over its grid. A plane at y = p is simulated as the centre slice with the object moved by −p.
Pixels that every template shows alike add one constant to every likelihood and are dropped, and the likelihood
is evaluated once per distinct (pixel, template value) pair (exact; values grouped to 1e-9).
The reading is fixed in ``benchmarks/results/spio/decision_rule_session39.md``.

Usage:
    .venv/bin/python benchmarks/spio_plane_identifiability.py
    # → benchmarks/results/spio/spio_plane_identifiability.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from spio_ideal_observer import (  # benchmarks/ is on the path when this runs as a script
    CENTRES_MM,
    LEVEL_RATIOS,
    LEVELS_UG_PER_MM3,
    RADII_MM,
    TRUTHS,
    agar_scene,
    ellipsoid_occupancy,
    image,
    rician_loglik,
)

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.viewline import add_noise, offresonance_tesla

SNRS_DB = (8.0, 15.0, 25.0)
EXTENT_RATIOS = (0.5, 0.63, 0.8, 1.0, 2 / np.sqrt(3), 1.25, 1.6, 2.0, 3.0)  # s = h / seen
OFFSET_RATIOS = (0.0, 0.25, 0.5, 0.75)  # t = y0 / h
TRUE_SHAPE = {"centred": (1.0, 0.0), "off-centre": (2 / np.sqrt(3), 0.5)}  # (s, t) of the sphere itself
OBSERVERS = ("P1 offset known", "P1", "P3")


def plane_view(semi_axes: tuple[float, float], y_centre: float, plane: float, centre: tuple[float, float],
               distance2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Field at level 1 and in-plane iron map (x, z) of the ellipsoid (R, h) centred at y_centre, seen at y = plane."""
    radius, h = semi_axes
    field = offresonance_tesla(ellipsoid_occupancy(radius, h, centre, y_centre - plane))
    cut2 = radius**2 * (1.0 - ((plane - y_centre) / h) ** 2)  # squared radius of the section (≤ 0: none)
    return field, (distance2 <= cut2).float() if cut2 > 0 else torch.zeros_like(distance2)


def compress(templates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (pixel, value) pairs of templates (T, P) in the pixels where they differ: values (U,), pixels (U,)
    and each template's index (T, P') into them."""
    q = np.round(templates.astype(np.float64), 9)
    pixels = np.nonzero(q.max(0) > q.min(0))[0]
    order = np.argsort(q[:, pixels], axis=0, kind="stable")
    ordered = np.take_along_axis(q[:, pixels], order, 0)
    new = np.ones_like(ordered, dtype=bool)
    new[1:] = ordered[1:] != ordered[:-1]
    ids = (np.cumsum(new.T.ravel()) - 1).reshape(new.shape[1], -1).T.astype(np.int32)  # numbered pixel by pixel
    index = np.empty_like(ids)
    np.put_along_axis(index, order, ids, 0)
    return ordered.T[new.T], pixels[np.nonzero(new.T)[0]], index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realisations", type=int, default=20)
    parser.add_argument("--spacing_mm", type=float, default=2.5)
    parser.add_argument("--quick", action="store_true", help="one radius (1.5 mm) and one level (3.49): a speed check")
    parser.add_argument("--output", default="benchmarks/results/spio/spio_plane_identifiability.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng, rho, signal, x, z = agar_scene()
    planes = (0.0, -args.spacing_mm, args.spacing_mm)  # P1 sees the first
    radii, levels = ((1.5,), (3.49,)) if args.quick else (RADII_MM, LEVELS_UG_PER_MM3)
    errors, ties, started = {}, dict.fromkeys(OBSERVERS, 0), time.perf_counter()
    for radius in radii:
        for centre in CENTRES_MM:
            distance2 = (x[:, 0, :] - centre[0]) ** 2 + (z[:, 0, :] - centre[1]) ** 2
            near = distance2 <= (4 * radius + 6.0) ** 2
            for truth in TRUTHS:
                y_truth = 0.0 if truth == "centred" else radius / 2
                seen = float(np.sqrt(radius**2 - y_truth**2))  # radius of the disk the plane y = 0 shows
                shapes = [((seen / np.sqrt(1 - t**2), seen * s), seen * s * t)
                          for s in EXTENT_RATIOS for t in OFFSET_RATIOS]
                own = EXTENT_RATIOS.index(TRUE_SHAPE[truth][0]) * len(OFFSET_RATIOS) + OFFSET_RATIOS.index(
                    TRUE_SHAPE[truth][1])
                views = [[plane_view(*shape, plane, centre, distance2) for shape in shapes] for plane in planes]
                truth_views = [plane_view((radius, radius), y_truth, plane, centre, distance2) for plane in planes]
                for level in levels:
                    compressed = [compress(np.stack([image(field, in_plane, level * r, rho)[:, near].flatten().numpy()
                                                     for r in LEVEL_RATIOS for field, in_plane in plane_views]))
                                  for plane_views in views]  # per plane; templates ordered (level, shape)
                    clean = [image(field, in_plane, level, rho) for field, in_plane in truth_views]
                    for snr in SNRS_DB:
                        sigma = signal / 10 ** (snr / 20)
                        found = errors.setdefault((truth, radius, level, snr), {name: [] for name in OBSERVERS})
                        for _ in range(args.realisations):
                            loglik = []
                            for (values, pixels, index), plane_clean in zip(compressed, clean):
                                noisy = add_noise(plane_clean, snr_db=snr, signal=signal, generator=rng)
                                measured = noisy[:, near].flatten().double().numpy()[pixels]
                                # rician_loglik over a length-1 pixel axis: one term per distinct (pixel, value)
                                terms = rician_loglik(measured[:, None], values[:, None], sigma)
                                loglik.append(terms[0][index].sum(1).reshape(len(LEVEL_RATIOS), len(shapes)))
                            for name, ll in zip(OBSERVERS, (loglik[0][:, own], loglik[0], sum(loglik))):
                                best = np.nonzero(ll == ll.max())[0]  # level indices of the maximum (first: ĉ)
                                ties[name] += len(set(best.tolist())) > 1
                                found[name].append(abs(LEVEL_RATIOS[best[0]] - 1.0))
                    print(f"{truth} a={radius} mm centre={centre} c={level}, known / P1 / P3: "
                          + ", ".join(f"{snr:g} dB " + " / ".join(f"{np.mean(v[-args.realisations:]):.3f}" for v in
                                                                errors[truth, radius, level, snr].values())
                                      for snr in SNRS_DB) + f" ({time.perf_counter() - started:.0f} s)", flush=True)
    command = " ".join([".venv/bin/python", *sys.argv])
    write_text_atomic(report(errors, command, args, ties), Path(args.output))
    print(f"wrote {args.output} ({time.perf_counter() - started:.0f} s)")


def report(errors: dict, command: str, args: argparse.Namespace, ties: dict) -> str:
    mean = {key: {name: np.mean(v) for name, v in found.items()} for key, found in errors.items()}
    lines = [
        "# SPIO: the level of an off-plane object from one plane and from three (issue 24, session 39)", "",
        f"`{command}` (one CPU thread; rule: `decision_rule_session39.md`).", "",
        "A sphere of radius a in the agar disk (r = 20 mm), centred on the plane y = 0 or a/2 off it, at level c; "
        "Rician noise. The observer knows the spin density, the noise level, the in-plane centre and the disk the "
        "plane y = 0 shows (radius `seen`). It does not know the level (61 steps, 0.4–2.5 × c), the extent along y "
        f"(h = seen·s, s ∈ {{{', '.join(f'{s:.3g}' for s in EXTENT_RATIOS)}}}) or the offset from the plane "
        f"(y0 = h·t, t ∈ {{{', '.join(f'{t:g}' for t in OFFSET_RATIOS)}}}; only the side the truth is on: by symmetry "
        "one plane cannot tell the sides apart, three could); each template is an ellipsoid whose section with y = 0 "
        "is that disk (in-plane semi-axis seen/√(1 − t²)), so the truth is one of the 36 shapes (centred: s = 1, "
        "t = 0; off-centre: s = 2/√3, t = 0.5). P1: the plane y = 0 only (the contract). P3: planes at "
        f"y = −{args.spacing_mm:g}, 0, +{args.spacing_mm:g} mm, independent noise, log-likelihoods summed (a contract "
        "change). P1 offset known: P1 told s and t (only the level unknown). ĉ: the level of the joint "
        "maximum-likelihood template, in pixels within 4a + 6 mm of the centre, both channels. "
        f"{args.realisations} noise realisations × {len(CENTRES_MM)} in-plane positions per row. Mean |ĉ/c − 1| "
        "[median]. Realisations whose maximum is shared by templates of different levels (the first, lowest level, "
        "is taken): " + ", ".join(f"{name} {n}" for name, n in ties.items()) + ".", "",
        "| truth | a (mm) | c (µg Fe/mm³) | SNR (dB) | P1 offset known | P1 | P3 |", "|---|---|---|---|---|---|---|"]
    for (truth, radius, level, snr), found in errors.items():
        lines.append(f"| {truth} | {radius} | {level} | {snr:g} | "
                     + " | ".join(f"{np.mean(v):.3f} [{np.median(v):.3f}]" for v in found.values()) + " |")
    lines += ["", "Mean over sizes, levels and positions:", "",
              "| SNR (dB) | truth | P1 offset known | P1 | P3 |", "|---|---|---|---|---|"]
    summary = {}
    for snr in SNRS_DB:
        for truth in (*TRUTHS, "both"):
            sel = [m for key, m in mean.items() if key[3] == snr and truth in (key[0], "both")]
            summary[snr, truth] = {name: np.mean([m[name] for m in sel]) for name in OBSERVERS}
            lines.append(f"| {snr:g} | {truth} | " + " | ".join(f"{v:.3f}" for v in summary[snr, truth].values())
                         + " |")
    p1 = {snr: summary[snr, "both"]["P1"] for snr in SNRS_DB}
    p3 = {snr: summary[snr, "both"]["P3"] for snr in SNRS_DB}
    numbers = f"P1 {p1[15.0]:.3f} at 15 dB and {p1[8.0]:.3f} at 8 dB (P3 {p3[15.0]:.3f} and {p3[8.0]:.3f})"
    if p1[15.0] <= 0.05 and p1[8.0] <= 0.10:
        reading = ("one plane holds the level even with the offset unknown: the gap to NMAE 0.25 is the estimator's "
                   "(learning)")
    elif p1[15.0] >= 0.10:
        reading = ("one plane is ambiguous for off-plane objects at ordinary SNR: the acceptance target is capped by "
                   f"the acquisition; three planes (the contract change) would give P3's {p3[15.0]:.3f} at 15 dB and "
                   f"{p3[8.0]:.3f} at 8 dB")
    else:
        reading = "in between: partial ambiguity"
    lines += ["", f"**Reading (decision_rule_session39.md), both truths:** {numbers} → {reading}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

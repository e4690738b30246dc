"""How alike are an air bubble and a deposit of iron in a View Line image? (issue 24, session 40, report only)

Training's generator puts an air bubble (no signal, χ_air − χ_tissue) beside the iron in one sample in five
(``lightning_modules.spio.data.P_AIR_BUBBLE``) and its truth there is 0 µg Fe/mm³. Session 39 found the shipped
bundle reading a small iron sphere at 0.87 µg Fe/mm³ at 0.3 × its level. This simulates, noise-free, a sphere of
radius r centred on the plane in the agar disk as a bubble and as iron at several levels, and reports how far the
iron's image is from the bubble's: max |difference| / tissue signal, and Σ|difference| / Σ|bubble − empty agar|
(the bubble's own effect on the image). Iron at χ_air−tissue / χ_SPIO = 0.47 µg Fe/mm³ has the bubble's field, and
its signal in the plane is ρ·exp(−TE·R2*) ≤ 0.1 % of tissue's, so the two differ by far less than any noise: there
the plane cannot tell iron from air, and an estimator can only weigh the generator's prior for each.

Usage:
    .venv/bin/python benchmarks/spio_bubble_lookalike.py   # → benchmarks/results/spio/spio_bubble_lookalike.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from lightning_modules.io import write_text_atomic
from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.phantoms import agar_disk, sphere
from lightning_modules.spio.viewline import simulate_viewline, tissue_signal

RADII_MM = (1.5, 3.0, 4.0)
BUBBLE_LEVEL = acq.AIR_MINUS_TISSUE_CHI_SI / acq.SPIO_CHI_SI_PER_UG_FE_PER_MM3  # µg Fe/mm³ with the bubble's χ
LEVELS_UG_PER_MM3 = (0.22, BUBBLE_LEVEL, 0.87, 1.75, 3.49)


def bubble_and_iron(radius_mm: float, levels: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Noise-free images (2, x, z) of the empty agar disk, of a bubble of ``radius_mm`` and of iron at each level."""
    rho = agar_disk(radius_mm=20.0)
    ball = sphere((0.0, 0.0, 0.0), radius_mm)
    nothing = torch.zeros(ball.shape)
    empty, _ = simulate_viewline(rho, nothing)
    airless = torch.where(ball[:, ball.shape[1] // 2, :], torch.zeros(()), rho)
    bubble, _ = simulate_viewline(airless, nothing, extra_chi_si_3d=ball.float() * acq.AIR_MINUS_TISSUE_CHI_SI)
    return empty, bubble, [simulate_viewline(rho, ball.float() * level)[0] for level in levels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="benchmarks/results/spio/spio_bubble_lookalike.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    signal = tissue_signal(agar_disk(radius_mm=20.0))
    lines = ["# SPIO: an air bubble against iron in the View Line image (issue 24, session 40)", "",
             f"`{' '.join(['.venv/bin/python', *sys.argv])}` (noise-free; the agar disk, r = 20 mm; a sphere centred "
             f"on the plane). Iron at {BUBBLE_LEVEL:.3f} µg Fe/mm³ has the bubble's susceptibility "
             f"(χ_air − χ_tissue = {acq.AIR_MINUS_TISSUE_CHI_SI:g} SI). Noise at 25 / 15 / 8 dB has a standard "
             f"deviation of {10 ** (-25 / 20):.3f} / {10 ** (-15 / 20):.3f} / {10 ** (-8 / 20):.3f} of the tissue "
             "signal.", "",
             "| r (mm) | iron (µg Fe/mm³) | max \\|iron − bubble\\| / tissue signal "
             "| Σ\\|iron − bubble\\| / Σ\\|bubble − agar\\| |",
             "|---|---|---|---|"]
    for radius in RADII_MM:
        empty, bubble, irons = bubble_and_iron(radius, LEVELS_UG_PER_MM3)
        effect = float((bubble - empty).abs().sum())
        for level, iron in zip(LEVELS_UG_PER_MM3, irons, strict=True):
            difference = (iron - bubble).abs()
            lines.append(f"| {radius:g} | {level:.3g} | {float(difference.max()) / signal:.4f} | "
                         f"{float(difference.sum()) / effect:.4f} |")
    write_text_atomic("\n".join(lines) + "\n", Path(args.output))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

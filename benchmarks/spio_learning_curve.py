"""The SPIO recipe's learning curve: NMAE against optimiser steps, with two extrapolations (issue 24, session 29).

Reads the tables ``spio_paired_bins.py`` wrote when it ran the recipe's saved networks on one fresh set (the "all"
column of the set as drawn and of its noise-free copy), pairs each network with its optimiser steps from scratch
(``--steps NAME=STEPS``) and fits, as written in ``decision_rule_session29.md`` before the numbers were seen:

- a saturating power law ``NMAE(s) = a + b · (s / 1 000)^(−c)`` (least squares, ``a ≥ 0``, ``c > 0``), whose
  asymptote ``a`` says whether the recipe can reach a target at all;
- the straight line through the last three points in ``log s``, i.e. "each doubling of steps buys the same".

Both are extrapolations from a handful of points; they give an order of magnitude, not a recipe.

Usage:
    .venv/bin/python benchmarks/spio_learning_curve.py \\
        --table benchmarks/results/spio/spio_paired_bins_session29_curve.md \\
        --steps F2=6000 --steps G=16000 --steps G2=19000 --steps G3n=23000 --steps G4h=27000 --steps G5h=31000 \\
        [--target 0.25 --seconds_per_step 0.366 --out benchmarks/results/spio/spio_learning_curve_session29.png]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import matplotlib
import numpy as np
from scipy.optimize import curve_fit

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SECTIONS = {"as drawn": "as it is", "noise-free": "without noise"}


def read_means(text: str, marker: str) -> dict[str, float]:
    """``{network: mean NMAE}`` from the first table after the heading containing ``marker``: the reference's mean,
    and for every other network the reference's mean plus its paired difference (four decimals where the means
    have three, so the differences between networks keep their precision)."""
    section = text.split(marker, 1)[1].split("\n### ", 1)[0]
    means, differences = {}, {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.match(r"^[+-]?\d", cells[1]):
            continue
        paired = re.match(r"^(\S+) − (\S+) \(paired", cells[0])
        if paired:
            differences[paired.group(1)] = (paired.group(2), float(cells[1].split("±")[0]))
        else:
            means[cells[0]] = float(cells[1])
    return means | {name: means[reference] + difference for name, (reference, difference) in differences.items()}


def power_law(steps_k: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a + b * steps_k ** (-c)


def fits(steps: np.ndarray, nmae: np.ndarray, target: float) -> dict[str, float]:
    """Both extrapolations of ``nmae`` over ``steps``; steps to ``target`` (``inf``: never)."""
    steps_k = steps / 1000.0
    (a, b, c), _ = curve_fit(power_law, steps_k, nmae, p0=(0.3, 1.0, 1.0), bounds=([0, 0, 1e-3], [1, 100, 10]))
    power_steps = np.inf if a >= target else 1000.0 * ((target - a) / b) ** (-1.0 / c)
    slope, intercept = np.polyfit(np.log(steps[-3:]), nmae[-3:], 1)
    log_steps = np.exp((target - intercept) / slope) if slope < 0 else np.inf
    return {"a": a, "b": b, "c": c, "power_steps": power_steps, "per_doubling": slope * np.log(2),
            "slope": slope, "intercept": intercept, "log_steps": log_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, required=True, help="spio_paired_bins.py's output for the networks")
    parser.add_argument("--steps", action="append", required=True, help="NAME=optimiser steps from scratch (repeat)")
    parser.add_argument("--target", type=float, default=0.25, help="the NMAE to extrapolate to")
    parser.add_argument("--seconds_per_step", type=float, default=0.366, help="one step's wall time on one core")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/spio/spio_learning_curve_session29.png"))
    args = parser.parse_args()

    if args.out.with_suffix(".md").resolve() == args.table.resolve():
        parser.error(f"--out {args.out} would overwrite --table with its summary; name the figure differently")
    steps_of = {name: float(value) for name, value in (item.split("=", 1) for item in args.steps)}
    names = sorted(steps_of, key=steps_of.get)
    text = args.table.read_text()
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    options = "".join(f" --{name} {getattr(args, name)}" for name in ("target", "seconds_per_step", "out")
                      if getattr(args, name) != parser.get_default(name))  # the command as run, not its defaults
    lines = [f"Command: `.venv/bin/python benchmarks/spio_learning_curve.py --table {args.table} "
             + " ".join(f"--steps {n}={int(steps_of[n])}" for n in names) + f"{options}`", "",
             "| set | " + " | ".join(f"{n} ({int(steps_of[n])})" for n in names)
             + f" | power law a + b·(s/1000)^−c | steps to {args.target} (power law) | per doubling (last three)"
             + f" | steps to {args.target} (log-linear; single-core hours) |",
             "|" + "---|" * (len(names) + 5)]
    for (label, marker), colour in zip(SECTIONS.items(), ("C0", "C1"), strict=True):
        means = read_means(text, marker)
        steps = np.array([steps_of[n] for n in names])
        nmae = np.array([means[n] for n in names])
        fit = fits(steps, nmae, args.target)
        grid = np.geomspace(steps[0], max(steps[-1] * 100, fit["log_steps"] if np.isfinite(fit["log_steps"]) else 0))
        axis.semilogx(steps, nmae, "o", color=colour, label=f"{label} (measured)")
        axis.semilogx(grid, power_law(grid / 1000.0, fit["a"], fit["b"], fit["c"]), "-", color=colour, lw=1,
                      label=f"{label}: power law, asymptote {fit['a']:.3f}")
        axis.semilogx(grid[grid >= steps[-3]], fit["intercept"] + fit["slope"] * np.log(grid[grid >= steps[-3]]),
                      "--", color=colour, lw=1, label=f"{label}: log-linear through the last three")
        never = "never" if not np.isfinite(fit["power_steps"]) else f"{fit['power_steps']:.3g}"
        hours = fit["log_steps"] * args.seconds_per_step / 3600.0
        lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in nmae)
                     + f" | a = {fit['a']:.3f}, b = {fit['b']:.2f}, c = {fit['c']:.2f} | {never}"
                     + f" | {fit['per_doubling']:+.4f} | {fit['log_steps']:.3g} ({hours:.3g} h) |")
    axis.axhline(args.target, color="k", lw=0.8, ls=":")
    axis.text(steps_of[names[0]], args.target + 0.004, f"target {args.target}", fontsize=8)
    axis.set_xlabel("optimiser steps from scratch (batch 16)")
    axis.set_ylabel("mean NMAE, 400 fresh images (as shipped)")
    axis.set_title("SPIO recipe: learning curve and two extrapolations", fontsize=10)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(args.out, dpi=120)
    summary = args.out.with_suffix(".md")
    summary.write_text("# SPIO recipe's learning curve (issue 24, session 29)\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

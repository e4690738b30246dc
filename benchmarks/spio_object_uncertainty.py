"""Issue 24, session 44: how far each object's level can be trusted — simulated objects binned by the passes' spread.

Every object of 0.14.0's final map (the bundle's objects) has e = |log best scale| (the L1-optimal scale of the
object against the truth, :func:`spio_error_budget.best_scale`) or no true iron at all. Binned by the relative spread
of the six test-time passes over it (:func:`~lightning_modules.spio.object_report.relative_spread`; deciles of the
development objects), each bin gives the fraction without iron and the 50 % / 80 % quantiles of e over the objects
with iron, as ×/÷ factors: ``lightning_modules/spio/object_report.py``'s :data:`SPREAD_BIN_EDGES` and
:data:`SPREAD_BIN_TABLE`, which this script prints. Checked on fresh sets: per bin, the fraction without iron and the
coverage of the shipped factors (nominal 0.5 / 0.8), and overall.

Usage (one thread; the sets' maps are cached by ``spio_spread_levels.py --cache``; ``blobs<SNR>`` sets are
``spio_blob_accuracy.py``'s metaballs in real heads at that SNR):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_object_uncertainty.py --cache /tmp/spio44 \\
        --development training:1:16800:300 --development training:1:17100:300 \\
        --check training=training:1:17700:300 --check real=real:120:0:150 --check variant=variant:122:0:150 \\
        --check variant3=variant3:124:0:150 --check "blobs ∞=blobsinf:151:0:100" \\
        --check "blobs 19 dB=blobs19:151:0:100" --check "blobs 11 dB=blobs11:151:0:100" \\
        --check "blobs 5 dB=blobs5:151:0:100" \\
        --out benchmarks/results/spio/spio_object_uncertainty_session44.md
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import numpy as np
from spio_error_budget import best_scale  # benchmarks/ is on sys.path
from spio_spread_levels import collect

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.object_report import SPREAD_BIN_EDGES, SPREAD_BIN_TABLE, relative_spread
from lightning_modules.spio.transforms import object_components


def object_errors(s: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Relative spread and e (NaN for an object without true iron) of every object of a set's final maps."""
    spreads, es = [], []
    for t, m, spread in zip(s["truth"], s["map"], s["spread"], strict=True):
        labels, n = object_components(m)
        for j in range(1, n + 1):
            k = labels == j
            scale = best_scale(t[k], m[k])
            spreads.append(relative_spread(m[k], spread[k]))
            es.append(abs(np.log(scale)) if scale > 0 else np.nan)
    return np.asarray(spreads), np.asarray(es)


def fit_bins(spreads: np.ndarray, e: np.ndarray, n_bins: int = 10):
    """Interior edges (quantiles of ``spreads``) and per bin (fraction without iron, F50, F80)."""
    edges = tuple(float(v) for v in np.quantile(spreads, np.linspace(0, 1, n_bins + 1)[1:-1]))
    bins = np.searchsorted(edges, spreads, side="right")
    table = []
    for b in range(n_bins):
        eb = e[bins == b]
        with_iron = eb[np.isfinite(eb)]
        table.append((float(np.mean(~np.isfinite(eb))), float(np.exp(np.quantile(with_iron, 0.5))),
                      float(np.exp(np.quantile(with_iron, 0.8)))))
    return edges, tuple(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--development", action="append", required=True, help="GENERATOR:SEED:START:N (repeat)")
    parser.add_argument("--check", action="append", default=[], help="NAME=GENERATOR:SEED:START:N (repeat)")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    parts = [object_errors(collect(spec, args.cache)) for spec in args.development]
    spreads, e = (np.concatenate(v) for v in zip(*parts, strict=True))
    edges, table = fit_bins(spreads, e)
    same = (len(edges) == len(SPREAD_BIN_EDGES) and np.allclose(edges, SPREAD_BIN_EDGES, rtol=1e-3, atol=1e-4)
            and np.allclose(table, SPREAD_BIN_TABLE, rtol=1e-3, atol=1e-3))
    lines = ["# Session 44: how far each object's level can be trusted, from the passes' spread", "",
             f"Fitted on {len(e)} objects of `{' + '.join(args.development)}` (0.14.0's final maps); "
             f"`object_report.py` holds {'these' if same else 'OTHER'} values.", "",
             "| relative spread | p_no_iron | level factor 50 % | level factor 80 % |", "|---|---|---|---|"]
    bounds = (0.0, *edges, float("inf"))
    for b, (p, f50, f80) in enumerate(table):
        lines.append(f"| {bounds[b]:.3f}–{bounds[b + 1]:.3f} | {p:.2f} | {f50:.2f} | {f80:.2f} |")
    lines += ["", "```python", f"SPREAD_BIN_EDGES = {tuple(round(v, 4) for v in edges)}",
              f"SPREAD_BIN_TABLE = {tuple(tuple(round(v, 3) for v in row) for row in table)}", "```", "",
              "## Fresh sets with the shipped table: per bin, fraction without iron (table's) and coverage of F50 / "
              "F80 (nominal 0.50 / 0.80) over the objects with iron", "",
              "| set | objects | without iron: observed (table's mean) | coverage F50 | coverage F80 | "
              "coverage F80 per bin (low → high spread) |", "|---|---|---|---|---|---|"]
    for check in args.check:
        name, spec = check.split("=", 1)
        sc, ec = object_errors(collect(spec, args.cache))
        rows = np.array([SPREAD_BIN_TABLE[int(np.searchsorted(SPREAD_BIN_EDGES, v, side="right"))] for v in sc])
        bins = np.searchsorted(SPREAD_BIN_EDGES, sc, side="right")
        iron = np.isfinite(ec)
        per_bin = " / ".join(f"{np.mean(ec[(bins == b) & iron] <= np.log(rows[(bins == b) & iron, 2])):.2f}"
                             if ((bins == b) & iron).sum() else "—" for b in range(len(SPREAD_BIN_TABLE)))
        cover_50, cover_80 = (np.mean(ec[iron] <= np.log(rows[iron, c])) for c in (1, 2))
        lines.append(f"| {name} (`{spec}`) | {len(ec)} | {np.mean(~iron):.3f} ({rows[:, 0].mean():.3f}) | "
                     f"{cover_50:.3f} | {cover_80:.3f} | {per_bin} |")
    lines += ["", "```bash", "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_object_uncertainty.py --cache DIR"
              + "".join(f" --development {d}" for d in args.development)
              + "".join(f" --check {shlex.quote(c)}" for c in args.check) + f" --out {args.out}", "```", ""]
    write_text_atomic("\n".join(lines), args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

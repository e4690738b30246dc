"""IVIM in ONE study that mixes SNRs: the bundle's default fit mode vs our least squares vs dipy, scored per SNR.

Bi-exponential study (default): OSIPI TF2.4's 27 body tissues (``generic_one.json``: D, f, D* incl. the f = 0 and
f = 1 edge cases) at SNR 10, 30, 50, 100 and 200, ``--draws`` noisy copies of each (300: 27 × 5 × 300 = 40,500
voxels), OSIPI's 18 b-values (0 … 1000 s/mm²), all in one 30 × 30 × 45 volume with the voxels at random places —
as a real scan mixes bright and dark tissue. The noise σ (in image units) varies smoothly over the volume (a
coil-/g-factor-like map, 0.6–1.4 × its mean) and each voxel's S0 = SNR × the local σ, so S0 varies in space and
per tissue while each voxel's SNR is exactly its nominal one. Gaussian noise as IVIM-NET's simulations
(``--rician``: Rician).

Tri-exponential study (``--model triexp``): 27 "tissues" drawn uniformly from the tri-exponential pre-training
ranges (``PRETRAIN_RANGES``, seed ``--seed``), otherwise the same layout; dipy has no tri-exponential fit.

Methods: the bundle's fit mode exactly as the command line runs it (``lightning_modules.ivim.workflow.fit_study``:
the bundle's transforms' functions and inferers; options overridable with ``--app KEY=VALUE``), timed including its
training; ``--method lsq``; dipy ``IvimModel(fit_method="trr")`` on the first ``--n_dipy`` draws of every tissue and
SNR (bi-exponential only). NRMSE = RMSE / mean(truth) over the voxels of one SNR (IVIM-NET's definition), scoring
each parameter where the signal determines it, as OSIPI's rules do: D where f < 0.8 (not in blood, f = 1), D* (D1*,
D2*) where f (f1, f2) > 0.03 (not where there is no perfusion), f everywhere.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ivim_mixed_snr.py``  (≈ 2 min on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ivim_accuracy import fit_dipy  # benchmarks/ is on sys.path when a benchmark runs as a script
from scipy import ndimage

from lightning_modules.ivim.lsq import IvimLsq
from lightning_modules.ivim.signal import PARAMETER_NAMES, model_signal
from lightning_modules.ivim.simulate import OSIPI_B_VALUES, PRETRAIN_RANGES
from lightning_modules.ivim.workflow import IvimOptions, fit_study

REPO = Path(__file__).resolve().parents[1]
SNRS = (10, 30, 50, 100, 200)
SHAPE = (30, 30, 45)
#: Mean noise σ in image units (S0 is SNR × the local σ).
NOISE_SIGMA = 10.0


def tissues(model: str, seed: int) -> np.ndarray:
    """``(27, n_params)`` true parameters (S0 = 1): OSIPI's body tissues (biexp) or uniform draws (triexp)."""
    if model == "biexp":
        folder = Path(os.environ.get("QSM_SLICER_REFERENCE_DATA") or REPO.parent / "shared" / "data") / "osipi_ivim"
        path = folder / "generic_one.json"
        if not path.is_file():
            sys.exit(f"OSIPI data not found at {path}; set QSM_SLICER_REFERENCE_DATA or place ../shared/data")
        data = json.loads(path.read_text(encoding="utf-8"))
        data.pop("config")
        return np.array([[v["D"], v["f"], v["Dp"], 1.0] for v in data.values()])
    rng = np.random.default_rng(seed)
    names = PARAMETER_NAMES[model]
    out = np.ones((27, len(names)))
    for k, name in enumerate(names[:-1]):
        out[:, k] = rng.uniform(*PRETRAIN_RANGES[model][name], 27)
    return out


def mixed_study(model: str, *, draws: int, seed: int, rician: bool) -> dict:
    """The study: DWI ``(*SHAPE, n_b)``, mask, per-voxel truth, SNR and (tissue, draw) labels, in volume order."""
    rng = np.random.default_rng(seed)
    b = np.asarray(OSIPI_B_VALUES)
    truth_t = tissues(model, seed)
    n_t = truth_t.shape[0]
    snr = np.repeat(np.asarray(SNRS, dtype=np.float64), n_t * draws)
    tissue = np.tile(np.repeat(np.arange(n_t), draws), len(SNRS))
    draw = np.tile(np.arange(draws), n_t * len(SNRS))
    n = snr.size
    if n > np.prod(SHAPE):
        sys.exit(f"{n} voxels do not fit the {SHAPE} volume; use --draws ≤ 300")
    place = rng.permutation(np.prod(SHAPE))[:n]
    field = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 6.0, mode="wrap")
    field = 1.0 + 0.4 * field / np.abs(field).max()  # 0.6–1.4
    sigma = NOISE_SIGMA * field.ravel()[place]
    params = truth_t[tissue].copy()
    params[:, -1] = snr * sigma
    clean = model_signal(model, b, params)
    noisy = clean + sigma[:, None] * rng.standard_normal(clean.shape)
    if rician:
        noisy = np.hypot(noisy, sigma[:, None] * rng.standard_normal(clean.shape))
    mask = np.zeros(np.prod(SHAPE), dtype=bool)
    mask[place] = True
    dwi = np.zeros((np.prod(SHAPE), b.size))
    dwi[place] = noisy
    order = np.argsort(place)  # the app reads voxels in volume (C) order
    return {"b": b, "dwi": dwi.reshape(*SHAPE, b.size), "mask": mask.reshape(SHAPE), "truth": params[order],
            "snr": snr[order], "tissue": tissue[order], "draw": draw[order]}


def nrmse(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((estimate - truth) ** 2)) / np.mean(truth))


def scored(model: str, truth: np.ndarray) -> np.ndarray:
    """``(n, n_params − 1)`` booleans: where each parameter is determined (OSIPI's rules, see the docstring)."""
    names = PARAMETER_NAMES[model][:-1]
    out = np.ones((truth.shape[0], len(names)), dtype=bool)
    fractions = [k for k, name in enumerate(names) if name.startswith("f")]
    for k, name in enumerate(names):
        if name == "D":
            out[:, k] = truth[:, fractions].sum(axis=1) < 0.8
        elif name.startswith("Dstar"):
            out[:, k] = truth[:, names.index("f" + name[5:])] > 0.03
    return out


def parse_app_options(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = json.loads(value) if value[:1] in "0123456789-[{tfn" and value not in ("", "-") else value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("biexp", "triexp"), default="biexp")
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--n_dipy", type=int, default=20, help="draws per tissue and SNR fitted by dipy")
    parser.add_argument("--seed", type=int, default=0, help="seed of the study (not of the fit)")
    parser.add_argument("--rician", action="store_true")
    parser.add_argument("--app", nargs="*", default=[], metavar="KEY=VALUE",
                        help="options of the bundle for the net, e.g. seed=1 posterior_mean=false")
    parser.add_argument("--label", default="default", help="name of the net's column")
    parser.add_argument("--save_estimates", default=None, help="also save truth, SNR and every estimate (.npz)")
    parser.add_argument("--output", default=None, help="Markdown table (default benchmarks/results/ivim/"
                                                       "ivim_mixed_snr[_triexp][_LABEL].md)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    study = mixed_study(args.model, draws=args.draws, seed=args.seed, rician=args.rician)
    b, mask, truth, snr = study["b"], study["mask"], study["truth"], study["snr"]
    signals = study["dwi"][mask]
    names = PARAMETER_NAMES[args.model][:-1]
    app_options = {"model": args.model, "num_threads": 1, **parse_app_options(args.app)}
    options = IvimOptions.parse(**app_options)
    torch.set_num_threads(options.num_threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    net = fit_study(study["dwi"], b, mask, options, bundle_root=REPO / "monai_bundles" / "ivim_mapping")
    net_s, net_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    load = os.getloadavg()[0]
    start = time.perf_counter()
    lsq = IvimLsq(b, model=args.model).fit(signals).params
    lsq_s = time.perf_counter() - start
    results = {args.label: net, "least squares (ours)": lsq}
    seconds = {args.label: net_s, "least squares (ours)": lsq_s}
    dipy_pick = study["draw"] < args.n_dipy
    if args.model == "biexp" and args.n_dipy > 0:
        dipy, dipy_s = fit_dipy(signals[dipy_pick], b)
        results["dipy trr"], seconds["dipy trr"] = dipy, dipy_s
    if args.save_estimates:
        np.savez_compressed(args.save_estimates, truth=truth, snr=snr, dipy_pick=dipy_pick,
                            **{k.replace(" ", "_"): v for k, v in results.items()})
    rows = []
    for method, params in results.items():
        pick = dipy_pick if method == "dipy trr" else np.ones(len(truth), dtype=bool)
        for level in SNRS:
            sel = snr[pick] == level
            est, ref = params[sel], truth[pick][sel]
            finite = np.all(np.isfinite(est[:, : len(names)]), axis=1)
            use = scored(args.model, ref) & finite[:, None]
            rows.append({"method": method, "snr": level, "n": int(sel.sum()), "failed": float(1 - finite.mean()),
                         **{name: nrmse(est[use[:, k], k], ref[use[:, k], k]) for k, name in enumerate(names)}})
    n_vox = len(truth)
    lines = [f"# IVIM ({args.model}) in one study mixing SNR 10–200", "",
             f"Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ivim_mixed_snr.py {' '.join(sys.argv[1:])}` "
             f"({n_vox} voxels, {'Rician' if args.rician else 'Gaussian'} noise, study seed {args.seed}, "
             f"app options {app_options}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).", "",
             "NRMSE = RMSE / mean(truth) per SNR, D where f < 0.8, D* where f > 0.03 (OSIPI's rules). dipy: the first "
             f"{args.n_dipy} draws of every tissue and SNR.", "",
             "| method | SNR | " + " | ".join(f"NRMSE {n}" for n in names) + " | failed |",
             "|---|---|" + "---|" * len(names) + "---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['snr']} | " + " | ".join(f"{r[n]:.3f}" for n in names)
                     + f" | {100 * r['failed']:.1f} % |")
    lines += ["", f"{args.label}: {net_s:.1f} s wall, {net_cpu_s:.1f} s CPU (torch 1 thread; machine load average "
              f"{load:.1f} on {os.cpu_count()} cores when it finished).", "",
              "| method | voxels | wall s (net: training + inference) | ms/voxel |", "|---|---|---|---|"]
    for method, s in seconds.items():
        count = int(dipy_pick.sum()) if method == "dipy trr" else n_vox
        lines.append(f"| {method} | {count} | {s:.1f} | {1e3 * s / count:.3f} |")
    if args.model == "biexp":
        lines += ["", f"Acceptance (SNR ≥ 50): {args.label} NRMSE ≤ 1.1 × least squares:"]
        for level in (50, 100, 200):
            ours = next(r for r in rows if r["method"] == args.label and r["snr"] == level)
            ref = next(r for r in rows if r["method"] == "least squares (ours)" and r["snr"] == level)
            lines.append(f"- SNR {level}: " + ", ".join(
                f"{n} {ours[n] / ref[n]:.2f}× {'ok' if ours[n] <= 1.1 * ref[n] else 'NOT met'}" for n in names))
    text = "\n".join(lines) + "\n"
    suffix = ("_triexp" if args.model == "triexp" else "") + ("" if args.label == "default" else f"_{args.label}")
    out = Path(args.output or REPO / "benchmarks" / "results" / "ivim" / f"ivim_mixed_snr{suffix}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

"""Accuracy and speed of the shipped SPIO network and DeepSPIO side by side, against a no-learning baseline.

All networks named in ``--networks`` run in the same process on the same images: the shipped DeepSPIO
(``deepspio``, ``models/model.pt``) and candidates with ``--weights NAME=PATH`` (``lightning_modules.spio.
networks.spio_network`` names, e.g. ``refined``).
Experiments (della Maggiora et al., "DeepSPIO", IEEE TPAMI 2020, §5):
  (a) simulated samples like training: the fixed validation set (seed 1, used to pick the weights), a
      held-out test set (seed 2, never seen), and a generator-variant test set (``benchmarks/spio_variant.py``:
      Shepp–Logan and random-ellipse base images, ellipsoids and chains of touching spheres; seed 3), a second
      variant built without rim contrasts (``benchmarks/spio_variant2.py``: vial phantoms with iron-filled vials,
      organs with irregular clusters and boxes; seed 5, session 26), a third (``benchmarks/spio_variant3.py``:
      abdomens and layered gels with hollow shells, curved vessels and bead clumps; seed 7, session 36), and the
      training generator on real subjects' head slices (``benchmarks/spio_real_bases.py``; seed 2, when the
      pyradiomics brains are in ../shared/data), each overall and per SNR bin;
  (b) the noise experiment: a SPIO cylinder (radius 3 mm, along y) in an agar disk (radius 22 mm) at
      0.22 … 27.9 µg Fe/mm³ and SNR 5, 11, 19 dB and ∞, 10 noise repetitions each;
  (c) the air-bubble confounder: an air sphere (radius 3 mm, no signal, χ_air − χ_tissue) 8 mm beside the cylinder.
Metrics: NMAE ``‖Ĉ − C‖₁ / ‖C‖₁`` per image and the relative error of the mean concentration in the cylinder
centre (within 1.5 mm of its axis). Each network runs as ``predict_concentration`` as the bundle runs it (flip
average around the x-shift average, the 0.15 µg Fe/mm³ floor and, since 0.9.0, the simulate-and-compare refiner
``models/refiner.pt``; ``--refiner ''`` leaves it out, ``--unrefined`` adds each network without it); (a) also
gives each network alone (one pass, no refiner). Baseline: the
training-mean predictor (a constant map; the all-zero map has NMAE 1). Runs on one CPU thread. Writes Markdown, CSV
and a PNG to ``benchmarks/results/spio/``.

Usage:
    .venv/bin/python benchmarks/spio_accuracy.py [--n_test 100] [--repetitions 10] [--out benchmarks/results/spio]
        [--networks deepspio,refined --weights refined=refined.pt]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from spio_design_comparison import SNR_BINS, sample_arrays, snr_bin
from spio_real_bases import REAL_BRAINS, real_brain_slice
from spio_variant import variant_sample
from spio_variant2 import variant2_sample
from spio_variant3 import variant3_sample

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import reference_data_dir, write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.baseline import TrainingMeanBaseline
from lightning_modules.spio.data import random_sample
from lightning_modules.spio.networks import WEIGHTS, spio_network
from lightning_modules.spio.phantoms import agar_disk, cylinder, grid_3d_mm, sphere
from lightning_modules.spio.simulation_refiner import load_refiner
from lightning_modules.spio.viewline import acquire, add_noise, offresonance_tesla, tissue_signal

CONCENTRATIONS = (0.22, 0.44, 0.87, 1.75, 3.49, 6.98, 13.95, 27.9)
SNRS_DB = (5.0, 11.0, 19.0, math.inf)
CYLINDER_RADIUS_MM = 3.0
CENTRE_RADIUS_MM = 1.5


def centre_mask() -> np.ndarray:
    """Pixels (x, z) within 1.5 mm of the cylinder axis (the 'cylinder centre' of the paper's Table 1)."""
    x, _, z = grid_3d_mm()
    return ((x[:, 0, :] ** 2 + z[:, 0, :] ** 2) <= CENTRE_RADIUS_MM**2).numpy()


def cylinder_phantom(concentration: float, *, air_offset_mm: float | None = None, wall_mm: float = 0.0):
    """Noise-free image (2, x, z), truth (x, z), tissue signal and spin density of the cylinder (optionally + air
    sphere; ``wall_mm`` > 0: inside a dark tube wall that thick, session 38)."""
    rho = agar_disk(radius_mm=22.0)
    axis = np.array([0.0, 1.0, 0.0])
    spio = cylinder((0.0, 0.0, 0.0), CYLINDER_RADIUS_MM, axis)
    conc3d = concentration * spio.float()
    if wall_mm > 0:
        middle = spio.shape[1] // 2
        wall = cylinder((0.0, 0.0, 0.0), CYLINDER_RADIUS_MM + wall_mm, axis) & ~spio
        rho = torch.where(wall[:, middle, :], 0.0, rho)
    extra = None
    if air_offset_mm is not None:
        air = sphere((air_offset_mm, 0.0, 0.0), 3.0) & ~spio
        extra = air.float() * acq.AIR_MINUS_TISSUE_CHI_SI
        rho = torch.where(air[:, air.shape[1] // 2, :], 0.0, rho)
    plane = conc3d[:, conc3d.shape[1] // 2, :]
    image = acquire(rho, plane, offresonance_tesla(conc3d, extra_chi_si_3d=extra))
    return image, plane.numpy(), tissue_signal(agar_disk(radius_mm=22.0)), rho


def labelled_sets(*, n_val: int, n_test: int):
    """The sets of (a): name → list of (image (2, x, z), truth (x, z), SNR dB)."""
    sets = {"validation (seed 1)": sample_arrays(1, range(n_val)),
            "held-out test (seed 2)": sample_arrays(2, range(n_test)),
            "generator variant (seed 3)": [variant_sample(3, i) for i in range(n_test)],
            "generator variant 2 (seed 5)": [variant2_sample(5, i) for i in range(n_test)],
            "generator variant 3 (seed 7)": [variant3_sample(7, i) for i in range(n_test)]}
    if all(reference_data_dir(name).is_file() for name in REAL_BRAINS):
        sets["real subjects' slices (seed 2)"] = sample_arrays(2, range(n_test), base=real_brain_slice)
    else:
        print(f"real brain MR not found at {reference_data_dir('pyradiomics')}: the real-subjects set is left out")
    return sets


def experiment_a(networks: dict, baseline, sets: dict):
    """NMAE per image of each network (as shipped and alone) and the baseline, per set and SNR bin."""
    rows, examples = [], []
    for set_name, samples in sets.items():
        scores = {name: {"all": [], "alone": []} for name in networks}
        base = []
        for image, truth, snr in samples:
            if not truth.any():
                continue
            for name, network in networks.items():
                prediction = network.predict(image)
                value = nmae(prediction, truth)
                scores[name]["all"].append(value)
                scores[name].setdefault(snr_bin(snr), []).append(value)
                alone = predict_concentration(network.network, image, flip_average=False, shifts_px=(0,),
                                              floor_ug_per_mm3=0.0, object_shrinkage=0.0)
                scores[name]["alone"].append(nmae(alone, truth))
                label = {"generator": "variant", "real": "real head"}.get(set_name.split()[0])
                if label and sum(title.startswith(label) for title, *_ in examples) < 2 * len(networks):
                    examples.append((f"{label}, {name}", image, prediction, truth))
            base.append(nmae(baseline.predict(image), truth))
        rows.append((set_name, scores, base))
    return rows, examples


def experiment_b(networks: dict, baseline, *, repetitions: int):
    """Cylinder centre error and NMAE per concentration, SNR and network (mean over noise repetitions)."""
    centre = centre_mask()
    rows, examples = [], []
    for c in CONCENTRATIONS:
        clean, truth, signal, _ = cylinder_phantom(c)
        for snr in SNRS_DB:
            generator = torch.Generator().manual_seed(int(1000 * c) + int(0 if math.isinf(snr) else snr))
            images = [add_noise(clean, snr_db=snr, signal=signal, generator=generator).numpy()
                      for _ in range(repetitions)]
            base_error = 100 * abs(baseline.mean_ug_per_mm3 - c) / c
            for name, network in networks.items():
                errors, nmaes = [], []
                for image in images:
                    prediction = network.predict(image)
                    errors.append(100 * abs(prediction[centre].mean() - c) / c)
                    nmaes.append(nmae(prediction, truth))
                rows.append((name, c, snr, np.mean(errors), np.std(errors), np.mean(nmaes), base_error))
                if snr == 11.0 and c in (0.87, 27.9) and name == next(iter(networks)):
                    examples.append((f"cylinder {c} SNR 11 dB", images[-1], prediction, truth))
    return rows, examples


def experiment_c(networks: dict, *, repetitions: int):
    """Air sphere 8 mm beside a cylinder: centre error, NMAE and the concentration reported inside the air."""
    centre = centre_mask()
    rows = []
    for c in (1.75, 6.98, 27.9):
        for air in (None, 8.0):
            clean, truth, signal, rho = cylinder_phantom(c, air_offset_mm=air)
            air_region = (rho == 0).numpy() & (agar_disk(radius_mm=22.0) > 0).numpy()
            for snr in (math.inf, 19.0):
                generator = torch.Generator().manual_seed(7 + int(1000 * c))
                images = [add_noise(clean, snr_db=snr, signal=signal, generator=generator).numpy()
                          for _ in range(repetitions)]
                for name, network in networks.items():
                    errors, nmaes, in_air = [], [], []
                    for image in images:
                        prediction = network.predict(image)
                        errors.append(100 * abs(prediction[centre].mean() - c) / c)
                        nmaes.append(nmae(prediction, truth))
                        in_air.append(float(prediction[air_region].mean()) if air_region.any() else float("nan"))
                    rows.append((name, c, "yes" if air else "no", snr, np.mean(errors), np.mean(nmaes),
                                 np.mean(in_air)))
    return rows


class Runner:
    """A network as the bundle runs it: ``predict_concentration`` with the shipped refiner (0.9.0) or without."""

    def __init__(self, network, refiner=None, other_network=None, other_refiner=None) -> None:
        self.network, self.refiner = network, refiner
        self.other_network, self.other_refiner = other_network, other_refiner  # 0.11.0's noise-robust companion

    def predict(self, image: np.ndarray) -> np.ndarray:
        return predict_concentration(self.network, image, refiner=self.refiner, other_network=self.other_network,
                                     other_refiner=self.other_refiner)


def timings(networks: dict) -> tuple[float, dict[str, float]]:
    """Median simulator time per 128 × 128 sample (ms) and each network's time per image (s), one thread."""
    sim, net = [], {name: [] for name in networks}
    for i in range(20):
        start = time.perf_counter()
        image, _ = random_sample(5, i)
        sim.append(time.perf_counter() - start)
        for name, network in networks.items():
            start = time.perf_counter()
            network.predict(image.numpy())
            net[name].append(time.perf_counter() - start)
    return 1e3 * float(np.median(sim)), {name: float(np.median(t)) for name, t in net.items()}


def figure(examples, path: Path) -> None:
    """Rows: channel-summed input lines, prediction, truth (shared colour scale per example)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(examples), figsize=(3.2 * len(examples), 9.6))
    for j, (title, image, prediction, truth) in enumerate(examples):
        vmax = max(float(truth.max()), 1e-3)
        axes[0, j].imshow(image.sum(0).T, origin="lower", cmap="gray")
        axes[0, j].set_title(title, fontsize=9)
        im = axes[1, j].imshow(prediction.T, origin="lower", cmap="inferno", vmin=0, vmax=vmax)
        axes[2, j].imshow(truth.T, origin="lower", cmap="inferno", vmin=0, vmax=vmax)
        fig.colorbar(im, ax=axes[1:, j], shrink=0.6, label="µg Fe/mm³")
    for i, label in enumerate(("View Line (even + odd)", "prediction", "truth")):
        axes[i, 0].set_ylabel(label)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_val", type=int, default=64)
    parser.add_argument("--n_test", type=int, default=100)
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--n_baseline", type=int, default=100, help="training samples for the training mean")
    parser.add_argument("--out", default="benchmarks/results/spio")
    parser.add_argument("--networks", default="deepspio",
                        help="comma-separated --network names, each with its shipped weights")
    parser.add_argument("--weights", action="append", default=[],
                        help="NAME=PATH: weights for network NAME other than the shipped file (a candidate)")
    parser.add_argument("--refiner", default=None,
                        help="refiner weights run after every network (default: the bundle's models/refiner.pt; "
                             "'' for none, 0.8.x)")
    parser.add_argument("--no_noise_adaptive", action="store_true",
                        help="leave out the noise-robust companion the bundle uses for non-Rician images (0.11.0; "
                             "used by default for the shipped deepspio weights)")
    parser.add_argument("--unrefined", action="store_true",
                        help="also run each network without the refiner, as NAME_unrefined (0.8.x's bundle)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = Path(bundle_root("spio_quantification")) / "models"
    weights = {name: models / file for name, file in WEIGHTS.items()} | dict(w.split("=", 1) for w in args.weights)
    refiner = load_refiner(str(models / "refiner.pt") if args.refiner is None else args.refiner)
    networks = {}
    for name in args.networks.split(","):
        network = load_network(spio_network(name), weights[name])
        robust = robust_refiner = None
        if name == "deepspio" and Path(weights[name]) == models / WEIGHTS[name] and not args.no_noise_adaptive:
            robust = load_network(spio_network(name), models / "model_noise_robust.pt")
            robust_refiner = None if refiner is None else load_refiner(str(models / "refiner_noise_robust.pt"))
        networks[name] = Runner(network, refiner, robust, robust_refiner)
        if args.unrefined:
            networks[f"{name}_unrefined"] = Runner(network)
    baseline = TrainingMeanBaseline().fit(np.stack([random_sample(0, i)[1].numpy() for i in range(args.n_baseline)]))
    sets = labelled_sets(n_val=args.n_val, n_test=args.n_test)
    rows_a, ex_a = experiment_a(networks, baseline, sets)
    rows_b, ex_b = experiment_b(networks, baseline, repetitions=args.repetitions)
    rows_c = experiment_c(networks, repetitions=args.repetitions)
    sim_ms, net_s = timings(networks)
    names = list(networks)

    def snr_name(snr: float) -> str:
        return "∞" if math.isinf(snr) else f"{snr:g} dB"

    def mean_sd(values) -> str:
        return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "—"

    lines = ["# SPIO accuracy on simulated View Line data: " + " vs ".join(names), "",
             f"Command: `.venv/bin/python benchmarks/spio_accuracy.py --n_test {args.n_test} "
             f"--repetitions {args.repetitions} --networks {args.networks}"
             + (f" --refiner '{args.refiner}'" if args.refiner is not None else "")
             + (" --unrefined" if args.unrefined else "") + (" --no_noise_adaptive" if args.no_noise_adaptive else "")
             + "".join(f" --weights {w}" for w in args.weights) + f" --out {args.out}"
             + "` (one CPU thread; all networks in this one run, on the same "
             f"images). Baseline: training-mean predictor ({baseline.mean_ug_per_mm3:.3f} µg Fe/mm³ everywhere, "
             f"from {args.n_baseline} training samples); the all-zero map has NMAE 1. Images without iron in the "
             "imaged plane are left out (their NMAE is undefined).", "",
             "## (a) NMAE per image (mean ± sd), as shipped (flip and shift averages, floor) and network alone", "",
             "| set | n | " + " | ".join(f"{n} | {n} median | {n} alone" for n in names) + " | baseline |",
             "|---|---" + "|---" * (3 * len(names) + 1) + "|"]
    for set_name, scores, base in rows_a:
        lines.append(f"| {set_name} | {len(base)} | " + " | ".join(
            f"{mean_sd(scores[n]['all'])} | {np.median(scores[n]['all']):.3f} | {mean_sd(scores[n]['alone'])}"
            for n in names) + f" | {np.mean(base):.2f} ± {np.std(base):.2f} |")
    bins = [b for b, _, _ in SNR_BINS]
    lines += ["", "### (a) per SNR bin: NMAE mean ± sd (n) [median]", "",
              "| set | network | " + " | ".join(bins) + " |", "|---|---" + "|---" * len(bins) + "|"]
    for set_name, scores, _ in rows_a:
        for n in names:
            lines.append(f"| {set_name} | {n} | " + " | ".join(
                f"{mean_sd(scores[n].get(b, []))} ({len(scores[n].get(b, []))}) [{np.median(scores[n][b]):.3f}]"
                if scores[n].get(b) else "—" for b in bins) + " |")
    lines += ["", f"## (b) Cylinder (r = 3 mm) in agar: error of the mean centre concentration, % "
              f"(mean ± sd over {args.repetitions} noise repetitions); NMAE of the whole map in brackets", "",
              "| c (µg Fe/mm³) | network | " + " | ".join(f"SNR {snr_name(s)}" for s in SNRS_DB) + " | baseline |",
              "|---|---" + "|---" * (len(SNRS_DB) + 1) + "|"]
    for c in CONCENTRATIONS:
        for n in names:
            cells = [f"{e:.1f} ± {sd:.1f} ({nm:.2f})" for nn, cc, _, e, sd, nm, _ in rows_b if cc == c and nn == n]
            base = next(b for nn, cc, _, _, _, _, b in rows_b if cc == c and nn == n)
            lines.append(f"| {c} | {n} | " + " | ".join(cells) + f" | {base:.0f} |")
    lines += ["", "## (c) Air-bubble confounder (air sphere r = 3 mm, 8 mm beside the cylinder)", "",
              "| c (µg Fe/mm³) | air bubble | SNR | network | centre error % | NMAE | mean prediction in the air "
              "(µg Fe/mm³) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {c} | {a} | {snr_name(s)} | {n} | {e:.1f} | {nm:.3f} | "
              f"{'—' if math.isnan(air) else f'{air:.3f}'} |" for n, c, a, s, e, nm, air in rows_c]
    lines += ["", "## Speed (one CPU thread, median of 20)", "",
              f"- simulator: {sim_ms:.0f} ms per 128 × 128 sample (phantom + 3-D dipole field + acquisition + noise)"]
    lines += [f"- {n} inference (flip × shift average: six network passes"
              f"{'; then the refiner: a simulation and two U-Net passes' if networks[n].refiner else ''}): "
              f"{t:.3f} s per image" for n, t in net_s.items()]
    lines.append("")
    out = Path(args.out)
    write_text_atomic("\n".join(lines), out / "spio_accuracy.md")
    csv = ["experiment,network,concentration,snr_db,air,centre_error_pct,nmae,baseline"]
    csv += [f"b,{n},{c},{s},no,{e:.3f},{nm:.4f},{b:.3f}" for n, c, s, e, _, nm, b in rows_b]
    csv += [f"c,{n},{c},{s},{a},{e:.3f},{nm:.4f}," for n, c, a, s, e, nm, _ in rows_c]
    csv += [f"a:{set_name}:{b},{n},,,,,{np.mean(scores[n][b]):.4f},{np.mean(base):.4f}"
            for set_name, scores, base in rows_a for n in names for b in ["all", *bins] if scores[n].get(b)]
    write_text_atomic("\n".join(csv) + "\n", out / "spio_accuracy.csv")
    figure(ex_a + ex_b, out / "spio_accuracy.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

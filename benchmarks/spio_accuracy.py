"""Accuracy and speed of the shipped DeepSPIO weights against a no-learning baseline on simulated View Line data.

Experiments (della Maggiora et al., "DeepSPIO", IEEE TPAMI 2020, §5):
  (a) simulated samples like training: the fixed validation set (seed 1, used to pick the weights) and a
      held-out test set (seed 2, never seen);
  (b) the noise experiment: a SPIO cylinder (radius 3 mm, along y) in an agar disk (radius 22 mm) at
      0.22 … 27.9 µg Fe/mm³ and SNR 5, 11, 19 dB and ∞, 10 noise repetitions each;
  (c) the air-bubble confounder: an air sphere (radius 3 mm, no signal, χ_air − χ_tissue) 8 mm beside the cylinder.
Metrics: NMAE ``‖Ĉ − C‖₁ / ‖C‖₁`` per image and the relative error of the mean concentration in the cylinder
centre (within 1.5 mm of its axis). DeepSPIO = ``predict_concentration`` as the bundle runs it (flip average and
0.1 µg Fe/mm³ floor); (a) also gives the network alone. Baseline: the training-mean predictor (a constant map;
the all-zero map has NMAE 1). Runs on one CPU thread. Writes Markdown, CSV and a PNG to ``benchmarks/results/spio/``.

Usage:
    .venv/bin/python benchmarks/spio_accuracy.py [--n_test 100] [--repetitions 10] [--out benchmarks/results/spio]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.baseline import TrainingMeanBaseline
from lightning_modules.spio.data import random_sample, simulate_pool
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.phantoms import agar_disk, cylinder, grid_3d_mm, sphere
from lightning_modules.spio.viewline import acquire, add_noise, offresonance_tesla, tissue_signal

CONCENTRATIONS = (0.22, 0.44, 0.87, 1.75, 3.49, 6.98, 13.95, 27.9)
SNRS_DB = (5.0, 11.0, 19.0, math.inf)
CYLINDER_RADIUS_MM = 3.0
CENTRE_RADIUS_MM = 1.5


def centre_mask() -> np.ndarray:
    """Pixels (x, z) within 1.5 mm of the cylinder axis (the 'cylinder centre' of the paper's Table 1)."""
    x, _, z = grid_3d_mm()
    return ((x[:, 0, :] ** 2 + z[:, 0, :] ** 2) <= CENTRE_RADIUS_MM**2).numpy()


def cylinder_phantom(concentration: float, *, air_offset_mm: float | None = None):
    """Noise-free image (2, x, z), truth (x, z) and tissue signal of the cylinder (optionally + air sphere)."""
    rho = agar_disk(radius_mm=22.0)
    spio = cylinder((0.0, 0.0, 0.0), CYLINDER_RADIUS_MM, np.array([0.0, 1.0, 0.0]))
    conc3d = concentration * spio.float()
    extra = None
    if air_offset_mm is not None:
        air = sphere((air_offset_mm, 0.0, 0.0), 3.0) & ~spio
        extra = air.float() * acq.AIR_MINUS_TISSUE_CHI_SI
        rho = torch.where(air[:, air.shape[1] // 2, :], 0.0, rho)
    plane = conc3d[:, conc3d.shape[1] // 2, :]
    image = acquire(rho, plane, offresonance_tesla(conc3d, extra_chi_si_3d=extra))
    return image, plane.numpy(), tissue_signal(agar_disk(radius_mm=22.0)), rho


def experiment_a(network, baseline, *, n_val: int, n_test: int, cache_dir: str | None):
    """NMAE (mean ± sd over images) of network and baseline on the validation and held-out test sets."""
    rows, examples = [], []
    for name, seed, n in (("validation (seed 1)", 1, n_val), ("held-out test (seed 2)", 2, n_test)):
        images, truths = simulate_pool(seed, n, cache_dir=(cache_dir or None) if seed == 1 else None, log_every=0)
        net, raw, base = [], [], []
        for image, truth in zip(images.float().numpy(), truths.float().numpy(), strict=True):
            prediction = predict_concentration(network, image)
            net.append(nmae(prediction, truth[0]))
            alone = predict_concentration(network, image, flip_average=False, floor_ug_per_mm3=0.0)
            raw.append(nmae(alone, truth[0]))
            base.append(nmae(baseline.predict(image), truth[0]))
            if len(examples) < 2 and seed == 2:
                examples.append((f"test sample {len(examples)}", image, prediction, truth[0]))
        rows.append((name, n, np.mean(net), np.std(net), np.median(net), np.mean(raw), np.std(raw), np.mean(base),
                     np.std(base)))
    return rows, examples


def experiment_b(network, baseline, *, repetitions: int):
    """Cylinder centre error and NMAE per concentration and SNR (mean over noise repetitions)."""
    centre = centre_mask()
    rows, examples = [], []
    for c in CONCENTRATIONS:
        clean, truth, signal, _ = cylinder_phantom(c)
        for snr in SNRS_DB:
            generator = torch.Generator().manual_seed(int(1000 * c) + int(0 if math.isinf(snr) else snr))
            errors, nmaes = [], []
            for _ in range(repetitions):
                image = add_noise(clean, snr_db=snr, signal=signal, generator=generator).numpy()
                prediction = predict_concentration(network, image)
                errors.append(100 * abs(prediction[centre].mean() - c) / c)
                nmaes.append(nmae(prediction, truth))
            base_error = 100 * abs(baseline.mean_ug_per_mm3 - c) / c
            rows.append((c, snr, np.mean(errors), np.std(errors), np.mean(nmaes), base_error))
            if snr == 11.0 and c in (0.87, 6.98, 27.9):
                examples.append((f"cylinder {c} SNR 11 dB", image, prediction, truth))
    return rows, examples


def experiment_c(network, *, repetitions: int):
    """Air sphere 8 mm beside a cylinder: centre error, NMAE and the concentration reported inside the air."""
    centre = centre_mask()
    rows, examples = [], []
    for c in (1.75, 6.98, 27.9):
        for air in (None, 8.0):
            clean, truth, signal, rho = cylinder_phantom(c, air_offset_mm=air)
            air_region = (rho == 0).numpy() & (agar_disk(radius_mm=22.0) > 0).numpy()
            for snr in (math.inf, 19.0):
                generator = torch.Generator().manual_seed(7 + int(1000 * c))
                errors, nmaes, in_air = [], [], []
                for _ in range(repetitions):
                    image = add_noise(clean, snr_db=snr, signal=signal, generator=generator).numpy()
                    prediction = predict_concentration(network, image)
                    errors.append(100 * abs(prediction[centre].mean() - c) / c)
                    nmaes.append(nmae(prediction, truth))
                    in_air.append(float(prediction[air_region].mean()) if air_region.any() else float("nan"))
                rows.append((c, "yes" if air else "no", snr, np.mean(errors), np.mean(nmaes), np.mean(in_air)))
                if air and snr == 19.0 and c == 6.98:
                    examples.append((f"cylinder {c} + air bubble, 19 dB", image, prediction, truth))
    return rows, examples


def timings(network) -> tuple[float, float]:
    """Median simulator time per 128 × 128 sample (ms) and network time per image (s), one thread."""
    sim, net = [], []
    for i in range(20):
        start = time.perf_counter()
        image, _ = random_sample(5, i)
        sim.append(time.perf_counter() - start)
        start = time.perf_counter()
        predict_concentration(network, image.numpy())
        net.append(time.perf_counter() - start)
    return 1e3 * float(np.median(sim)), float(np.median(net))


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
    for i, label in enumerate(("View Line (even + odd)", "DeepSPIO", "truth")):
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
    parser.add_argument("--model_path", default=str(Path(bundle_root("spio_quantification")) / "models" / "model.pt"))
    parser.add_argument("--cache_dir", default=str(Path("~/.cache/qsm_slicer_extension/spio/pools").expanduser()))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    network = load_network(DeepSpio(), args.model_path)
    baseline = TrainingMeanBaseline().fit(np.stack([random_sample(0, i)[1].numpy() for i in range(args.n_baseline)]))
    rows_a, ex_a = experiment_a(network, baseline, n_val=args.n_val, n_test=args.n_test, cache_dir=args.cache_dir)
    rows_b, ex_b = experiment_b(network, baseline, repetitions=args.repetitions)
    rows_c, ex_c = experiment_c(network, repetitions=args.repetitions)
    sim_ms, net_s = timings(network)

    def snr_name(snr: float) -> str:
        return "∞" if math.isinf(snr) else f"{snr:g} dB"

    lines = ["# DeepSPIO accuracy on simulated View Line data", "",
             f"Command: `.venv/bin/python benchmarks/spio_accuracy.py --n_test {args.n_test} "
             f"--repetitions {args.repetitions}` (one CPU thread). Baseline: training-mean predictor "
             f"({baseline.mean_ug_per_mm3:.3f} µg Fe/mm³ everywhere, from {args.n_baseline} training samples); "
             "the all-zero map has NMAE 1.", "",
             "## (a) Samples like training: NMAE per image", "",
             "| set | n | DeepSPIO NMAE mean ± sd | median | network alone (no flip average, no floor) "
             "| baseline NMAE mean ± sd |", "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {k} | {m:.3f} ± {s:.3f} | {med:.3f} | {rm:.3f} ± {rs:.3f} | {bm:.2f} ± {bs:.2f} |"
              for n, k, m, s, med, rm, rs, bm, bs in rows_a]
    lines += ["", f"## (b) Cylinder (r = 3 mm) in agar: error of the mean centre concentration, % "
              f"(mean ± sd over {args.repetitions} noise repetitions); NMAE of the whole map in brackets", "",
              "| c (µg Fe/mm³) | " + " | ".join(f"SNR {snr_name(s)}" for s in SNRS_DB) + " | baseline |",
              "|---" * (len(SNRS_DB) + 2) + "|"]
    for c in CONCENTRATIONS:
        cells = [f"{e:.1f} ± {s:.1f} ({n:.2f})" for cc, _, e, s, n, _ in rows_b if cc == c]
        base = next(b for cc, _, _, _, _, b in rows_b if cc == c)
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {base:.0f} |")
    lines += ["", "## (c) Air-bubble confounder (air sphere r = 3 mm, 8 mm beside the cylinder)", "",
              "| c (µg Fe/mm³) | air bubble | SNR | centre error % | NMAE | mean prediction in the air (µg Fe/mm³) |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {c} | {a} | {snr_name(s)} | {e:.1f} | {n:.3f} | {'—' if math.isnan(air) else f'{air:.3f}'} |"
              for c, a, s, e, n, air in rows_c]
    lines += ["", "## Speed (one CPU thread, median of 20)", "",
              f"- simulator: {sim_ms:.0f} ms per 128 × 128 sample (phantom + 3-D dipole field + acquisition + noise)",
              f"- DeepSPIO inference: {net_s * 1e3:.0f} ms per image", ""]
    out = Path(args.out)
    write_text_atomic("\n".join(lines), out / "spio_accuracy.md")
    csv = ["experiment,concentration,snr_db,air,centre_error_pct,nmae,baseline"]
    csv += [f"b,{c},{s},no,{e:.3f},{n:.4f},{b:.3f}" for c, s, e, _, n, b in rows_b]
    csv += [f"c,{c},{s},{a},{e:.3f},{n:.4f}," for c, a, s, e, n, _ in rows_c]
    csv += [f"a:{name},,,,,{m:.4f},{bm:.4f}" for name, _, m, _, _, _, _, bm, _ in rows_a]
    write_text_atomic("\n".join(csv) + "\n", out / "spio_accuracy.csv")
    figure(ex_a + ex_b + ex_c, out / "spio_accuracy.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

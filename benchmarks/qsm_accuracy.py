"""Learned vs classical QSM dipole inversion on held-out qsm-forward phantoms, side by side in one run.

qsm-forward (PyPI, GPLv3, an independent generator we never train on) makes the phantoms and the fields with its
own forward model; every method inverts them with the bundle's exact kernel (true voxel size, B0 direction).
Cases: its cylinder phantom (1 mm and 1×1×2 mm, z-anisotropic, where its kernel is exact), its random sources
phantom (B0 along z and tilted 20°), all with field noise of a phase SNR of 100 at 7 T, TE 20 ms. These fields
are complete (the whole volume, mask = all voxels). A fifth case is a *local* field as in vivo: the sources
phantom inside a spherical "brain" (radius 40 % of the side), its field cut to 0 outside that mask (a
perfect background-field removal), the mask given to every method and the metrics taken inside it. Reports NRMSE,
HFEN, XSIM and seconds per method, a timing on a 160³ volume, and a PNG with the same slice of each method.
Methods: TKD, NDI, learned NDI and QSMGAN (QSMGAN resamples each case to its 1 mm, B0-along-k training grid and
back, inside the timed call); a learned method whose weights are not in the bundle is left out with a note.

Run:  .venv/bin/python benchmarks/qsm_accuracy.py --threads 1   (writes benchmarks/results/qsm/accuracy.{md,png})
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import qsm_forward as qf
import torch
from qsm_forward.qsm_forward import simulate_susceptibility_sources

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import InputError
from lightning_modules.metrics import hfen, nrmse, xsim
from lightning_modules.physics import ppm_per_rad
from lightning_modules.qsm.methods import AVAILABLE_METHODS, build_network, invert_field

NOISE_PPM = ppm_per_rad(7.0, 20.0) / 100.0


def cases(n: int) -> dict[str, tuple[np.ndarray, np.ndarray, tuple, tuple, np.ndarray, np.ndarray]]:
    """name → (χ truth, field, voxel size, B0 direction, evaluation region, mask given to the methods)."""
    rng = np.random.default_rng(2)
    cylinders = qf.generate_susceptibility_phantom(
        resolution=[n, n, n], background=0, large_cylinder_val=0.01,
        small_cylinder_radii=[4, 4, 4, 7], small_cylinder_vals=[0.05, 0.1, 0.2, 0.4])
    sources = simulate_susceptibility_sources(simulation_dim=n, rectangles_total=30, spheres_total=30,
                                              sus_std=0.08, seed=11)
    tilt = np.radians(20.0)
    oblique = (0.0, float(np.sin(tilt)), float(np.cos(tilt)))
    out = {}
    for name, chi, voxel, b0 in (("cylinders 1 mm", cylinders, (1.0, 1.0, 1.0), (0, 0, 1)),
                                 ("cylinders 1×1×2 mm", cylinders, (1.0, 1.0, 2.0), (0, 0, 1)),
                                 ("sources 1 mm", sources, (1.0, 1.0, 1.0), (0, 0, 1)),
                                 ("sources 1 mm, B0 tilted 20°", sources, (1.0, 1.0, 1.0), oblique)):
        field = qf.generate_field(chi, voxel_size=list(voxel), B0_dir=list(b0))
        field = field - field.mean() + rng.normal(0, NOISE_PPM, field.shape)
        region = chi != 0 if name.startswith("cylinders") else np.ones(chi.shape, bool)
        out[name] = (chi, field, voxel, b0, region, np.ones(chi.shape, bool))
    axes = [np.arange(n) - (n - 1) / 2 for _ in range(3)]
    brain = sum(a**2 for a in np.meshgrid(*axes, indexing="ij")) <= (0.4 * n) ** 2
    local_chi, field = local_field(sources, brain, NOISE_PPM, rng)
    out["sources 1 mm, local field in a brain mask"] = (local_chi, field, (1.0, 1.0, 1.0), (0, 0, 1), brain, brain)
    return out


def local_field(chi: np.ndarray, brain: np.ndarray, noise_ppm: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """χ inside ``brain`` and its 1 mm, B0-along-z qsm-forward field with noise, cut to 0 outside ``brain`` (as
    after a perfect background-field removal)."""
    local_chi = np.where(brain, chi, 0.0)
    field = qf.generate_field(local_chi, voxel_size=[1.0, 1.0, 1.0], B0_dir=[0, 0, 1])
    return local_chi, np.where(brain, field + rng.normal(0, noise_ppm, field.shape), 0.0)


def invert(network: torch.nn.Module, field: np.ndarray, voxel: tuple, b0: tuple,
           mask: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    f = torch.as_tensor(field, dtype=torch.float32)
    m = torch.ones_like(f) if mask is None else torch.as_tensor(mask, dtype=torch.float32)
    start = time.perf_counter()
    chi = invert_field(network, f, m, voxel, b0)
    return chi.numpy(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--timing_size", type=int, default=160)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/qsm"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    root = bundle_root("qsm_dipole_inversion")
    methods = {}
    for m in reversed(AVAILABLE_METHODS):
        try:
            methods[m] = build_network(m, root).eval()
        except InputError as err:
            print(f"left out {m}: {err}", flush=True)
    rows, slices = [], {}
    for case, (chi, field, voxel, b0, region, mask) in cases(args.size).items():
        slices[case] = {"truth": chi}
        for name, network in methods.items():
            estimate, seconds = invert(network, field, voxel, b0, mask)
            rows.append((case, name, 100 * nrmse(estimate, chi, region), 100 * hfen(estimate, chi, region),
                         xsim(estimate, chi, region), seconds))
            slices[case][name] = estimate
            print(rows[-1], flush=True)
    timing = {}
    big = np.random.default_rng(0).normal(0, 0.01, (args.timing_size,) * 3)
    for name, network in methods.items():
        timing[name] = invert(network, big, (1.0, 1.0, 1.0), (0, 0, 1))[1]
    lines = ["| case | method | NRMSE % | HFEN % | XSIM | seconds |", "|---|---|---|---|---|---|"]
    lines += [f"| {c} | {m} | {e:.1f} | {h:.1f} | {x:.3f} | {s:.1f} |" for c, m, e, h, x, s in rows]
    lines += ["", f"Seconds for one {args.timing_size}³ volume ({torch.get_num_threads()} threads): "
              + ", ".join(f"{m} {s:.1f}" for m, s in timing.items())]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.md").write_text(text)

    names = ["truth", *methods]
    fig, axes = plt.subplots(len(slices), len(names), figsize=(2.6 * len(names), 2.6 * len(slices)))
    for r, (case, images) in enumerate(slices.items()):
        k = images["truth"].shape[2] // 2
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.imshow(np.rot90(images[name][:, :, k]), cmap="gray", vmin=-0.15, vmax=0.3)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
            if c == 0:
                ax.set_ylabel(case, fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "accuracy.png", dpi=90)


if __name__ == "__main__":
    main()

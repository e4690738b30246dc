"""Accuracy of the classical QSM solvers (TKD, NDI) on qsm-forward phantoms, and NDI's NRMSE-vs-iterations curve.

qsm-forward (PyPI, GPLv3) is an independent peer: its phantoms and its own forward model make the fields,
our solvers invert them. Isotropic 1 mm voxels, B0 along z (qsm-forward's kernel is only right there).

Run:  .venv/bin/python benchmarks/qsm_classical.py            (writes benchmarks/results/qsm/classical_*.{md,csv,png})
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

from lightning_modules.metrics import hfen, nrmse, xsim
from lightning_modules.physics import ppm_per_rad
from lightning_modules.physics.dipole import dipole_kernel
from lightning_modules.qsm.simulate import head_phantom, simulate_field
from lightning_modules.qsm.solvers import Ndi, Tkd

B0_TESLA, TE_MS = 7.0, 20.0  # qsm-forward's default field strength and its third echo


def cylinder_phantom(n: int) -> np.ndarray:
    return qf.generate_susceptibility_phantom(
        resolution=[n, n, n], background=0, large_cylinder_val=0.005,
        small_cylinder_radii=[4, 4, 4, 7], small_cylinder_vals=[0.05, 0.1, 0.2, 0.5])


def sources_phantom(n: int) -> np.ndarray:
    return simulate_susceptibility_sources(simulation_dim=n, rectangles_total=40, spheres_total=40,
                                              sus_std=0.1, seed=7)


def field_noise_ppm(snr: float) -> float:
    """Field noise (ppm) of a phase image with magnitude SNR ``snr`` (σ_φ = 1/SNR rad) at 7 T, TE 20 ms."""
    return ppm_per_rad(B0_TESLA, TE_MS) / snr


def metrics(chi: np.ndarray, truth: np.ndarray, region: np.ndarray) -> dict[str, float]:
    return {"NRMSE %": 100 * nrmse(chi, truth, region), "HFEN %": 100 * hfen(chi, truth, region),
            "XSIM": xsim(chi, truth, region)}


def run_solver(solver: torch.nn.Module, field: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    f = torch.as_tensor(field, dtype=torch.float32)
    m = torch.as_tensor(mask, dtype=torch.float32)
    start = time.perf_counter()
    kernel = dipole_kernel(f.shape)
    with torch.no_grad():
        chi = solver(f, kernel, m)
    return chi.numpy(), time.perf_counter() - start


def nrmse_curve(field: np.ndarray, mask: np.ndarray, truth: np.ndarray, region: np.ndarray, iterations: int,
                regularization: float) -> list[float]:
    f = torch.as_tensor(field, dtype=torch.float32)
    m = torch.as_tensor(mask, dtype=torch.float32)
    solver = Ndi(iterations=iterations, regularization=regularization)
    return [100 * nrmse((chi * m).numpy(), truth, region) for chi in solver.iterate(f, dipole_kernel(f.shape), m)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/qsm"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    n = args.size
    ndi_default = Ndi()

    cases = {}
    chi = cylinder_phantom(n)
    cases["qsm-forward cylinders"] = (chi, qf.generate_field(chi), np.ones(chi.shape, bool), chi != 0)
    chi = sources_phantom(n)
    cases["qsm-forward sources"] = (chi, qf.generate_field(chi), np.ones(chi.shape, bool), np.ones(chi.shape, bool))
    head, brain = head_phantom((n, n, n), (1.0, 1.0, 1.0), seed=3)
    cases["head phantom (ours)"] = (head, simulate_field(head, brain).field_ppm, brain, brain)

    rows = []
    for snr in (np.inf, 100.0, 50.0):
        for name, (truth, field, mask, region) in cases.items():
            noise = 0.0 if np.isinf(snr) else field_noise_ppm(snr)
            noisy = field + np.random.default_rng(1).normal(0, noise, field.shape) * mask if noise else field
            for label, solver in (("TKD (t=0.19)", Tkd()), (f"NDI ({ndi_default.iterations} it)", ndi_default)):
                chi, seconds = run_solver(solver, noisy, mask)
                rows.append({"phantom": name, "SNR": "inf" if np.isinf(snr) else int(snr), "method": label,
                             **metrics(chi, truth, region), "seconds": seconds})
                print(rows[-1], flush=True)

    lines = ["| phantom | SNR | method | NRMSE % | HFEN % | XSIM | seconds |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['phantom']} | {r['SNR']} | {r['method']} | {r['NRMSE %']:.1f} | {r['HFEN %']:.1f} | "
              f"{r['XSIM']:.3f} | {r['seconds']:.1f} |" for r in rows]
    (args.out / "classical_accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    curve_rows = ["phantom,snr,lambda,iteration,nrmse_percent"]
    for ax, (name, snrs) in zip(axes, (("qsm-forward cylinders", (np.inf, 100.0, 50.0, 20.0)),
                                       ("head phantom (ours)", (np.inf, 100.0, 50.0, 20.0)))):
        truth, field, mask, region = cases[name]
        for snr in snrs:
            noise = 0.0 if np.isinf(snr) else field_noise_ppm(snr)
            noisy = field + np.random.default_rng(1).normal(0, noise, field.shape) * mask if noise else field
            tkd_nrmse = metrics(run_solver(Tkd(), noisy, mask)[0], truth, region)["NRMSE %"]
            curve = nrmse_curve(noisy, mask, truth, region, args.iterations, ndi_default.regularization)
            label = "∞" if np.isinf(snr) else f"{snr:g}"
            line = ax.plot(range(1, len(curve) + 1), curve, label=f"NDI, SNR {label}")[0]
            ax.axhline(tkd_nrmse, color=line.get_color(), ls=":", lw=1)
            curve_rows += [f"{name},{label},{ndi_default.regularization},{i + 1},{v:.3f}" for i, v in enumerate(curve)]
            best = int(np.argmin(curve))
            print(f"{name} SNR {label}: TKD {tkd_nrmse:.1f} %, NDI best {curve[best]:.1f} % at {best + 1} it, "
                  f"at default {ndi_default.iterations} it {curve[ndi_default.iterations - 1]:.1f} %, "
                  f"at {len(curve)} it {curve[-1]:.1f} %", flush=True)
        ax.axvline(ndi_default.iterations, color="k", lw=0.8)
        ax.set(title=f"{name} (dotted: TKD)", xlabel="NDI iterations", ylabel="NRMSE %", xscale="log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "ndi_iterations.png", dpi=110)
    (args.out / "ndi_iterations.csv").write_text("\n".join(curve_rows) + "\n")


if __name__ == "__main__":
    main()

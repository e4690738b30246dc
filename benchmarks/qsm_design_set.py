"""The design set on which learned-method candidates (learned NDI, QSMGAN) are chosen, kept apart from the benchmark.

qsm-forward draws that the benchmark does not use: its cylinder phantom with other radii and values, its random
sources with seeds 5 and 6, voxels of 1.5×1.5×1 mm and 1×1×1.6 mm with B0 tilted 15°, and a local field (sources
in an ellipsoidal brain, field cut to it), each at phase SNR 100 and 30 (7 T, TE 20 ms): 10 cases of 96³.
Prints NRMSE and XSIM of TKD, NDI and the learned methods (default: the shipped weights).

Selection rule, fixed before candidates are evaluated: new weights of a learned method replace the shipped ones
if their mean NRMSE here is lower. The bundle's default becomes the learned method with the lowest mean NRMSE here
among those that beat TKD and NDI on both NRMSE and XSIM in all 10 cases, if it then does so in all 5 cases of
the benchmark (qsm_accuracy.py); otherwise the default stays NDI.

Run:  .venv/bin/python benchmarks/qsm_design_set.py [--weights learned_ndi.pt] [--qsmgan_weights qsmgan.pt]
"""

from __future__ import annotations

import argparse

import numpy as np
import qsm_forward as qf
import torch
from qsm_accuracy import local_field  # benchmarks/ is on the path when this runs as a script
from qsm_forward.qsm_forward import simulate_susceptibility_sources

from lightning_modules.bundle_app import bundle_root, load_network
from lightning_modules.metrics import nrmse, xsim
from lightning_modules.physics import ppm_per_rad
from lightning_modules.qsm.methods import WEIGHTS, invert_field, learned_ndi_network, qsmgan_network
from lightning_modules.qsm.solvers import Ndi, Tkd


def design_cases(n: int, snr: float) -> dict[str, tuple]:
    """name → (χ truth, field, voxel size, B0 direction, evaluation region, mask given to the methods)."""
    rng = np.random.default_rng(77)
    noise = ppm_per_rad(7.0, 20.0) / snr
    cylinders = qf.generate_susceptibility_phantom(resolution=[n] * 3, background=0, large_cylinder_val=-0.02,
                                                   small_cylinder_radii=[3, 5, 6, 8],
                                                   small_cylinder_vals=[0.3, 0.08, -0.05, 0.15])
    src5 = simulate_susceptibility_sources(simulation_dim=n, rectangles_total=25, spheres_total=35, sus_std=0.08,
                                           seed=5)
    src6 = simulate_susceptibility_sources(simulation_dim=n, rectangles_total=40, spheres_total=20, sus_std=0.08,
                                           seed=6)
    tilt = np.radians(15.0)
    oblique = (float(np.sin(tilt)), 0.0, float(np.cos(tilt)))
    whole = np.ones((n,) * 3, bool)
    out = {}
    for name, chi, voxel, b0 in (("cylinders 1 mm", cylinders, (1.0, 1.0, 1.0), (0, 0, 1)),
                                 ("cylinders 1.5×1.5×1 mm, B0 15°", cylinders, (1.5, 1.5, 1.0), oblique),
                                 ("sources seed 5, 1 mm", src5, (1.0, 1.0, 1.0), (0, 0, 1)),
                                 ("sources seed 6, 1×1×1.6 mm, B0 15°", src6, (1.0, 1.0, 1.6), oblique)):
        field = qf.generate_field(chi, voxel_size=list(voxel), B0_dir=list(b0))
        field = field - field.mean() + rng.normal(0, noise, field.shape)
        region = chi != 0 if name.startswith("cylinders") else whole
        out[name] = (chi, field, voxel, b0, region, whole)
    x, y, z = np.meshgrid(*[np.arange(n) - (n - 1) / 2] * 3, indexing="ij")
    brain = (x / (0.42 * n)) ** 2 + (y / (0.36 * n)) ** 2 + (z / (0.33 * n)) ** 2 <= 1
    local, field = local_field(src6, brain, noise, rng)
    out["sources seed 6, local field in a brain mask"] = (local, field, (1.0, 1.0, 1.0), (0, 0, 1), brain, brain)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", default=None, help="learned-NDI state_dict (default: the shipped one)")
    parser.add_argument("--qsmgan_weights", default=None, help="QSMGAN state_dict (default: the shipped one)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = bundle_root("qsm_dipole_inversion")
    methods = {"tkd": Tkd(), "ndi": Ndi(),
               "learned_ndi": load_network(learned_ndi_network(), args.weights or f"{root}/{WEIGHTS['learned_ndi']}"),
               "qsmgan": load_network(qsmgan_network(), args.qsmgan_weights or f"{root}/{WEIGHTS['qsmgan']}")}
    learned = [name for name in methods if name not in ("tkd", "ndi")]
    print("| SNR | case | " + " | ".join(f"{m} NRMSE % | {m} XSIM" for m in methods) + " |")
    print("|---|---|" + "---|---|" * len(methods))
    wins = dict.fromkeys(learned, 0)
    errors = {name: [] for name in methods}
    for snr in (100.0, 30.0):
        for case, (chi, field, voxel, b0, region, mask) in design_cases(96, snr).items():
            f = torch.as_tensor(field, dtype=torch.float32)
            m = torch.as_tensor(mask, dtype=torch.float32)
            scores = {name: (100 * nrmse(est, chi, region), xsim(est, chi, region)) for name, est in (
                (name, invert_field(net, f, m, voxel, b0).numpy()) for name, net in methods.items())}
            for name in methods:
                errors[name].append(scores[name][0])
            for name in learned:
                wins[name] += all(scores[name][0] < scores[c][0] and scores[name][1] > scores[c][1]
                                  for c in ("tkd", "ndi"))
            print(f"| {snr:.0f} | {case} | " + " | ".join(f"{e:.1f} | {x:.3f}" for e, x in scores.values()) + " |",
                  flush=True)
    print("\nmean NRMSE %: " + ", ".join(f"{name} {np.mean(e):.1f}" for name, e in errors.items()))
    for name in learned:
        print(f"{name} beats TKD and NDI on both NRMSE and XSIM in {wins[name]} of 10 cases")


if __name__ == "__main__":
    main()

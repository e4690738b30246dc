"""How much of each method's NRMSE on the benchmark's cases is the mean of χ, which the field does not determine.

For the cylinders (1 mm) and sources (1 mm) cases of ``qsm_accuracy.py`` prints the truth's mean over the
evaluation region, each estimate's, the NRMSE and the NRMSE after removing each map's own mean over the region.
``--learned_ndi_040`` adds learned-NDI weights of bundle 0.4.0 (e.g. ``git show
23d12d1:monai_bundles/qsm_dipole_inversion/models/model.pt > old.pt``), whose CNN could shift the mean.

Run:  .venv/bin/python benchmarks/qsm_mean_check.py [--learned_ndi_040 old.pt]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from qsm_accuracy import cases, invert  # benchmarks/ is on the path when this runs as a script

from lightning_modules.bundle_app import bundle_root, load_network
from lightning_modules.metrics import nrmse
from lightning_modules.qsm.learned_ndi import LearnedNdi
from lightning_modules.qsm.methods import build_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learned_ndi_040", default=None, help="learned-NDI weights of bundle 0.4.0 (optional)")
    args = parser.parse_args()
    root = bundle_root("qsm_dipole_inversion")
    methods = {"tkd": build_network("tkd"), "ndi": build_network("ndi"),
               "learned_ndi": build_network("learned_ndi", root)}
    if args.learned_ndi_040:
        old = LearnedNdi(iterations=32, channels=8, cnn_iterations=2, weighting="mask")
        methods["learned_ndi 0.4.0"] = load_network(old, args.learned_ndi_040)
    all_cases = cases(128)
    print("| case | method | truth mean (ppm) | estimate mean (ppm) | NRMSE % | NRMSE without the means % |")
    print("|---|---|---|---|---|---|")
    for case in ("cylinders 1 mm", "sources 1 mm"):
        chi, field, voxel, b0, region, mask = all_cases[case]
        truth = chi[region]
        for name, network in methods.items():
            estimate = invert(network, field, voxel, b0, mask)[0][region]
            demeaned = np.linalg.norm((estimate - estimate.mean()) - (truth - truth.mean()))
            print(f"| {case} | {name} | {truth.mean():+.4f} | {estimate.mean():+.4f} | "
                  f"{100 * nrmse(estimate, truth, np.ones_like(truth, bool)):.1f} | "
                  f"{100 * demeaned / np.linalg.norm(truth - truth.mean()):.1f} |", flush=True)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()

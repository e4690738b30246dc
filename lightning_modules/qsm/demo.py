"""The README's main job: simulate a head phantom, run the qsm_dipole_inversion bundle on it, show the result.

Writes into ``--output_dir``: the phantom's local field, brain mask and true χ (NIfTI), the bundle's χ maps
for TKD, NDI, TV and learned NDI, the default (``{stem}_chi.nii.gz``, through ``python -m monai.bundle run``
exactly as a user calls it) and ``qsm_demo.png`` (field, χ of each method, truth and error, side by side);
prints NRMSE per method.

Run:  python -m lightning_modules.qsm.demo --output_dir demo_output
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import save_nifti_atomic
from lightning_modules.metrics import hfen, nrmse, xsim
from lightning_modules.physics import ppm_per_rad
from lightning_modules.qsm.simulate import head_phantom, simulate_field

SHAPE, VOXEL_MM = (128, 128, 112), (1.5, 1.5, 1.5)
PHASE_SNR, B0_TESLA, TE_MS = 100.0, 3.0, 20.0


def run_bundle(field: Path, mask: Path, method: str, output_dir: Path) -> Path:
    """Invert with the bundle through its command line; returns the χ file."""
    config = Path(bundle_root("qsm_dipole_inversion")) / "configs" / "inference.json"
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(config), "--field", str(field),
               "--mask", str(mask), "--method", method, "--output_dir", str(output_dir)]
    print("$", " ".join(command), flush=True)
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"the bundle failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}")
    return output_dir / f"{field.name.removesuffix('.nii.gz')}_chi.nii.gz"


def figure(field: np.ndarray, truth: np.ndarray, results: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = truth.shape[2] // 2 + 4
    panels = [("local field (ppm)", field, 0.05), ("truth χ (ppm)", truth, 0.15)]
    for name, chi in results.items():
        panels += [(f"{name} χ (ppm)", chi, 0.15), (f"{name} error (ppm)", chi - truth, 0.15)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.4))
    for ax, (title, image, limit) in zip(axes, panels):
        shown = ax.imshow(np.rot90(image[:, :, k]), cmap="gray", vmin=-limit, vmax=limit)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        fig.colorbar(shown, ax=ax, fraction=0.046, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, default=Path("demo_output"))
    args = parser.parse_args(argv)
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)

    chi, brain = head_phantom(SHAPE, VOXEL_MM, seed=0)
    noise_ppm = ppm_per_rad(B0_TESLA, TE_MS) / PHASE_SNR
    case = simulate_field(chi, brain, VOXEL_MM, noise_std_ppm=noise_ppm, seed=0)
    affine = np.diag([*VOXEL_MM, 1.0])
    affine[:3, 3] = -0.5 * np.asarray(SHAPE) * np.asarray(VOXEL_MM)
    field_path = save_nifti_atomic(case.field_ppm, affine, out / "phantom_field.nii.gz")
    mask_path = save_nifti_atomic(brain, affine, out / "phantom_mask.nii.gz", dtype=np.uint8)
    save_nifti_atomic(chi, affine, out / "phantom_chi_truth.nii.gz")
    print(f"phantom: {SHAPE} voxels of {VOXEL_MM} mm, field noise {noise_ppm:.4f} ppm "
          f"(phase SNR {PHASE_SNR:g} at {B0_TESLA:g} T, TE {TE_MS:g} ms)")

    results = {}
    for method, name in (("tkd", "TKD"), ("ndi", "NDI"), ("tv", "TV"), ("learned_ndi", "learned NDI")):
        chi_path = run_bundle(field_path, mask_path, method, out / method)
        results[name] = np.asarray(nib.load(chi_path).dataobj, dtype=np.float64)
    print(f"{'method':12s} {'NRMSE %':>8s} {'HFEN %':>8s} {'XSIM':>6s}")
    for name, estimate in results.items():
        print(f"{name:12s} {100 * nrmse(estimate, chi, brain):8.1f} {100 * hfen(estimate, chi, brain):8.1f} "
              f"{xsim(estimate, chi, brain):6.3f}")
    figure(case.field_ppm, chi, results, out / "qsm_demo.png")
    print(f"figure: {out / 'qsm_demo.png'}")


if __name__ == "__main__":
    main()

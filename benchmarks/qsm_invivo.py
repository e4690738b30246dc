"""Every QSM method on real brains, side by side in one run: the benchmark that decides the bundle's default.

Data (``../shared/data/qsm_invivo``, see its README; never copied into the repository):
- two 3 T slabs (QSMnet's in-vivo data, 1 mm) scored against their 5-orientation COSMOS χ: demeaned NRMSE,
  HFEN and XSIM over the whole mask and away from the slab's first/last 8 planes of axis 0 ("inner"; the field
  there holds contributions of tissue outside the slab), and the slope of a least-squares fit of the estimate to
  COSMOS (1 = no loss of contrast);
- a haemorrhage patient (0.86×0.86×2 mm) against its msQSM reconstruction (a reference of another method, not
  a truth): correlation, the mean χ in the bleed (reference > 0.3 ppm) and the fraction of bleed voxels with a
  negative χ (sign flips, the streak damage that breaks networks trained on small χ ranges);
- the seconds of each method on each case, and on a 160³ volume (the speed contract: under 30 s on 2 cores).

QSMGAN is trained on the slabs themselves (``configs/train_qsmgan.json``). So that no number comes from data used
for training or selection, each slab is inverted with the model trained without it
(``models/qsmgan_without_<slab>.pt``, 2-fold cross-validation), and the haemorrhage and the 160³ timing with the
shipped ``models/qsmgan.pt`` (trained on both slabs). Every other method saw neither slab.

    .venv/bin/python benchmarks/qsm_invivo.py     # writes benchmarks/results/qsm/invivo.{md,csv,png}
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from lightning_modules.bundle_app import bundle_root, load_network
from lightning_modules.io import reference_data_dir
from lightning_modules.metrics import hfen, xsim
from lightning_modules.physics.dipole import b0_direction_from_affine
from lightning_modules.qsm.invivo_data import load_invivo_subject
from lightning_modules.qsm.methods import METHODS, build_network, invert_field, qsmgan_network

RESULTS = Path(__file__).resolve().parent / "results" / "qsm"
SLABS = ("s1o1", "s2o4")
#: Planes of axis 0 left out of the "inner" scores of a slab.
SLAB_EDGE_PLANES = 8
#: The bleed of the haemorrhage case: reference χ above this (ppm).
BLEED_PPM = 0.3


def demeaned_nrmse(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """NRMSE (%) of the estimate against the reference, both less their mean over the mask."""
    x = estimate[mask] - estimate[mask].mean()
    y = reference[mask] - reference[mask].mean()
    return float(100 * np.linalg.norm(x - y) / np.linalg.norm(y))


def slope(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """Least-squares slope of the (demeaned) estimate against the (demeaned) reference."""
    x = reference[mask] - reference[mask].mean()
    y = estimate[mask] - estimate[mask].mean()
    return float(x @ y / (x @ x))


def network_for(method: str, case: str) -> torch.nn.Module:
    """The module that inverts ``case``: for QSMGAN on a slab, the fold model that never saw that slab."""
    root = bundle_root("qsm_dipole_inversion")
    if method == "qsmgan" and case in SLABS:
        return load_network(qsmgan_network(), Path(root) / "models" / f"qsmgan_without_{case}.pt",
                            hint="train it with configs/train_qsmgan.json --train_subjects (the other slab)")
    return build_network(method, root)


def run(method: str, case: str, field: np.ndarray, mask: np.ndarray, voxel: np.ndarray, b0: np.ndarray
        ) -> tuple[np.ndarray, float]:
    network = network_for(method, case).eval()
    start = time.perf_counter()
    chi = invert_field(network, torch.as_tensor(field, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.float32),
                       [float(v) for v in voxel], [float(b) for b in b0]).numpy()
    return chi, time.perf_counter() - start


def slab_rows(methods: list[str], maps: dict) -> list[dict]:
    rows = []
    for name in SLABS:
        subject = load_invivo_subject(reference_data_dir("qsm_invivo", "qsmnet_slabs"), name)
        mask, cosmos = subject["mask"], subject["chi"]
        inner = mask.copy()
        inner[:SLAB_EDGE_PLANES], inner[-SLAB_EDGE_PLANES:] = False, False
        b0 = b0_direction_from_affine(subject["affine"])
        maps[name] = {"COSMOS": cosmos, "mask": mask}
        for method in methods:
            chi, seconds = run(method, name, subject["field"], mask, subject["voxel_size_mm"], b0)
            maps[name][method] = chi
            rows.append({"case": name, "method": method, "nrmse": demeaned_nrmse(chi, cosmos, mask),
                         "nrmse_inner": demeaned_nrmse(chi, cosmos, inner),
                         "hfen": 100 * hfen(chi - chi[mask].mean(), cosmos - cosmos[mask].mean(), mask),
                         "xsim": xsim(chi, cosmos, mask), "slope": slope(chi, cosmos, mask), "seconds": seconds})
            print(rows[-1], flush=True)
    return rows


def haemorrhage_rows(methods: list[str], maps: dict) -> list[dict]:
    folder = reference_data_dir("qsm_invivo", "hemorrhage")
    image = nib.load(folder / "hemorrhage_field_ppm.nii.gz")
    mask = np.asarray(nib.load(folder / "hemorrhage_mask.nii.gz").dataobj) > 0
    field = np.where(mask, np.asarray(image.dataobj, dtype=np.float32), 0.0)
    reference = np.asarray(nib.load(folder / "hemorrhage_msqsm_reference_ppm.nii.gz").dataobj, dtype=np.float32)
    bleed = mask & (reference > BLEED_PPM)
    voxel = np.asarray(image.header.get_zooms()[:3], dtype=float)
    b0 = b0_direction_from_affine(image.affine)
    maps["haemorrhage"] = {"msQSM": reference, "mask": mask}
    rows = []
    for method in methods:
        chi, seconds = run(method, "haemorrhage", field, mask, voxel, b0)
        maps["haemorrhage"][method] = chi
        rows.append({"case": "haemorrhage", "method": method,
                     "correlation": float(np.corrcoef(chi[mask], reference[mask])[0, 1]),
                     "bleed_mean_ppm": float(chi[bleed].mean()),
                     "reference_bleed_mean_ppm": float(reference[bleed].mean()),
                     "bleed_negative_percent": float(100 * (chi[bleed] < 0).mean()), "seconds": seconds})
        print(rows[-1], flush=True)
    return rows


def speed_rows(methods: list[str]) -> list[dict]:
    """Seconds per method on a 160³ brain-like field (1 mm, B0 along k)."""
    from lightning_modules.qsm.simulate import head_phantom, simulate_field

    chi, brain = head_phantom((160, 160, 160), (1.0, 1.0, 1.0), seed=0)
    field = simulate_field(chi, brain, noise_std_ppm=2e-3).field_ppm.astype(np.float32)
    rows = []
    for method in methods:
        _, seconds = run(method, "speed", field, brain, np.ones(3), np.array([0.0, 0.0, 1.0]))
        rows.append({"method": method, "seconds_160": seconds})
        print(rows[-1], flush=True)
    return rows


def figure(maps: dict, methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(maps)
    columns = [next(k for k in maps[c] if k in ("COSMOS", "msQSM")) for c in cases]
    fig, axes = plt.subplots(len(cases), len(methods) + 1, figsize=(2.2 * (len(methods) + 1), 2.4 * len(cases)),
                             squeeze=False)
    for row, case in enumerate(cases):
        mask = maps[case]["mask"]
        k = int(np.argmax(mask.sum(axis=(0, 1))))  # the axial slice with most brain
        for col, name in enumerate([columns[row], *methods]):
            image = np.where(mask[:, :, k], maps[case][name][:, :, k], 0.0)
            axes[row, col].imshow(np.rot90(image), cmap="gray", vmin=-0.15, vmax=0.15)
            axes[row, col].set_title(f"{case}: {name}", fontsize=8)
            axes[row, col].axis("off")
    fig.suptitle("χ (ppm, window −0.15…0.15), same axial slice per row", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_tables(slabs: list[dict], bleed: list[dict], speed: list[dict], path: Path) -> None:
    seconds = {r["method"]: r["seconds_160"] for r in speed}
    lines = ["# QSM on real brains", "", "`.venv/bin/python benchmarks/qsm_invivo.py` (torch "
             f"{torch.__version__}, {torch.get_num_threads()} threads). QSMGAN on a slab: the model trained without "
             "that slab.", "",
             "| slab | method | NRMSE % | NRMSE % inner | HFEN % | XSIM | slope | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in slabs:
        lines.append(f"| {r['case']} | {r['method']} | {r['nrmse']:.1f} | {r['nrmse_inner']:.1f} | {r['hfen']:.1f} | "
                     f"{r['xsim']:.3f} | {r['slope']:.2f} | {r['seconds']:.1f} |")
    lines += ["", "| haemorrhage | correlation with msQSM | mean χ in the bleed (ppm; msQSM "
              f"{bleed[0]['reference_bleed_mean_ppm']:.3f}) | bleed voxels with χ < 0 (%) | seconds |",
              "|---|---|---|---|---|"]
    for r in bleed:
        lines.append(f"| {r['method']} | {r['correlation']:.3f} | {r['bleed_mean_ppm']:.3f} | "
                     f"{r['bleed_negative_percent']:.1f} | {r['seconds']:.1f} |")
    lines += ["", "| method | mean NRMSE % of the two slabs | seconds for 160³ |", "|---|---|---|"]
    for method in seconds:
        mean = np.mean([r["nrmse"] for r in slabs if r["method"] == method])
        lines.append(f"| {method} | {mean:.1f} | {seconds[method]:.1f} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not reference_data_dir("qsm_invivo").is_dir():
        raise SystemExit(f"in-vivo data not found at {reference_data_dir('qsm_invivo')} (see ../shared/data/README.md)")
    maps: dict = {}
    slabs = slab_rows(args.methods, maps)
    bleed = haemorrhage_rows(args.methods, maps)
    speed = speed_rows(args.methods)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "invivo.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in slabs + bleed for k in r}))
        writer.writeheader()
        writer.writerows(slabs + bleed)
    write_tables(slabs, bleed, speed, RESULTS / "invivo.md")
    figure(maps, args.methods, RESULTS / "invivo.png")


if __name__ == "__main__":
    main()

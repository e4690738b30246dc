"""DeepSPIO on real subjects' anatomy: View Line images whose base is a slice of a real brain MRI (issue 24).

Training draws its base images from the MNI152 template (an average of many brains, smooth) or an agar disk. The
issue's own check used an independent simulator on real-brain base slices the project never used (NMAE 0.46 against
0.40 on our validation set). This benchmark builds that kind of set here: the base is an in-plane crop of one of
the two real brain MR volumes of the pyradiomics test data (``../shared/data/pyradiomics/brain{1,2}_image.nrrd``,
axial, 0.78 mm pixels; never copied into the repository), at a random slice, rotation, flip, centre on tissue and
field of view (40–140 mm, as the MNI slices); everything else (objects, air bubbles, SNR) is training's generator
(``random_sample_with_snr(..., base=...)``). Side by side in one run: the held-out test set (seed 2) and its
MNI-only twin. A diagnostic: nothing is chosen from it.

Usage:
    .venv/bin/python benchmarks/spio_real_bases.py [--n 200] [--sets overview|subjects] [--model_path W.pt]
"""

from __future__ import annotations

import argparse
import functools
import math
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import binary_fill_holes, distance_transform_edt
from spio_design_comparison import SNR_BINS, add_model_path_argument, snr_bin

from lightning_modules.io import reference_data_dir, write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.data import random_sample_with_snr
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.phantoms import mni_slice

#: Real brain MR volumes (pyradiomics test data), as files below the peer reference data.
REAL_BRAINS = ("pyradiomics/brain1_image.nrrd", "pyradiomics/brain2_image.nrrd")
#: A crop's centre lies at least this deep inside the head (skull and scalp are ≈ 10–15 mm thick).
DEPTH_IN_HEAD_MM = 20.0


@functools.lru_cache(maxsize=1)
def _real_volumes() -> tuple[tuple[torch.Tensor, float], ...]:
    """Each real brain as ((slices, 1, rows, cols) float tensor scaled so its 99.5th percentile of tissue is 1,
    in-plane pixel size in mm)."""
    import SimpleITK as sitk  # noqa: N813 (the name SimpleITK documents)

    volumes = []
    for name in REAL_BRAINS:
        path = reference_data_dir(name)
        if not path.is_file():
            raise SystemExit(f"real brain MR not found at {path} (see ../shared/data/README.md)")
        image = sitk.ReadImage(str(path))
        data = sitk.GetArrayFromImage(image).astype(np.float32).clip(min=0)
        scale = float(np.percentile(data[data > 0], 99.5))
        volumes.append((torch.from_numpy(data / scale)[:, None], float(image.GetSpacing()[0])))
    return tuple(volumes)


def real_brain_slice(rng: np.random.Generator, *, brains: tuple[int, ...] = (0, 1),
                     min_tissue_fraction: float = 0.4) -> torch.Tensor:
    """Spin density (x, z): an in-plane crop of a real head slice, random rotation, flip and side (40–140 mm), centred
    at least :data:`DEPTH_IN_HEAD_MM` inside the head (so in the brain, with skull and scalp in the larger crops, as
    real images have), resampled bilinearly onto the 128 × 128 image grid; retried until enough of it is tissue.
    ``brains`` picks among :data:`REAL_BRAINS` (0: brain1, 1: brain2)."""
    volumes = [_real_volumes()[b] for b in brains]
    nx, nz = acq.VIEWLINE_MATRIX
    for _ in range(20):
        volume, pixel_mm = volumes[int(rng.integers(len(volumes)))]
        plane = volume[int(rng.integers(2, volume.shape[0] - 2))]
        head = binary_fill_holes(plane[0].numpy() > 0.1)
        inside = np.argwhere(distance_transform_edt(head) * pixel_mm > DEPTH_IN_HEAD_MM)
        if len(inside) == 0:
            continue
        angle, side_mm = rng.uniform(0, 2 * math.pi), rng.uniform(40.0, 140.0)
        centre = inside[int(rng.integers(len(inside)))] * pixel_mm  # (row, col) in mm
        u = (np.arange(nx) + 0.5) / nx - 0.5
        v = ((np.arange(nz) + 0.5) / nz - 0.5) * (1 if rng.random() < 0.5 else -1)
        axes = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
        points = centre + side_mm * (u[:, None, None] * axes[0] + v[None, :, None] * axes[1])  # (nx, nz, 2) mm
        rows, cols = plane.shape[1:]
        normalised = 2.0 * (points / pixel_mm + 0.5) / np.array([rows, cols]) - 1.0
        grid = torch.from_numpy(normalised[..., ::-1].copy()).float()[None]  # grid_sample wants (col, row)
        rho = torch.nn.functional.grid_sample(plane[None], grid, align_corners=False, padding_mode="zeros")[0, 0]
        if float((rho > 0.2 * rho.max()).float().mean()) >= min_tissue_fraction:
            return rho
    return rho


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--sets", choices=("overview", "subjects"), default="overview",
                        help="overview: the test set, its MNI-only twin and real slices of both subjects (seed 2); "
                             "subjects: R1 = brain1 only (seed 6, session 19's tuning set), R2 = brain2 only (seed 7)")
    parser.add_argument("--out", default="benchmarks/results/spio/spio_real_bases.md")
    add_model_path_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    network = load_network(DeepSpio(), args.model_path)
    sets = {
        "training generator (seed 2, the held-out test set)": lambda i: random_sample_with_snr(2, i),
        "MNI slices only (seed 2)": lambda i: random_sample_with_snr(2, i, base=mni_slice),
        "real subjects' slices (seed 2)": lambda i: random_sample_with_snr(2, i, base=real_brain_slice),
    } if args.sets == "overview" else {
        "R1: brain1's slices (seed 6, tuning)":
            lambda i: random_sample_with_snr(6, i, base=functools.partial(real_brain_slice, brains=(0,))),
        "R2: brain2's slices (seed 7, report only)":
            lambda i: random_sample_with_snr(7, i, base=functools.partial(real_brain_slice, brains=(1,))),
    }
    bins = ["all"] + [name for name, _, _ in SNR_BINS]
    command = (f".venv/bin/python benchmarks/spio_real_bases.py --n {args.n} --sets {args.sets} "
               f"--model_path {args.model_path}")
    lines = ["# DeepSPIO on real subjects' anatomy (as the bundle runs it: flip × shift average, floor)", "",
             f"Command: `{command}` (one CPU thread). NMAE per image, mean [median] (n), images with iron in the "
             "plane only; real bases: pyradiomics brain1/brain2 (real MR, 0.78 mm pixels). The last two columns "
             "split the mean NMAE into the error on pixels with iron and on pixels without.", "",
             "| set | " + " | ".join(bins) + " | all: inside the iron | all: outside (false iron) |",
             "|---" * (len(bins) + 3) + "|"]
    for name, draw in sets.items():
        per_bin: dict[str, list[float]] = {"all": []}
        outside: list[float] = []  # the part of each image's NMAE outside the iron (false iron)
        for i in range(args.n):
            image, truth, snr = draw(i)
            truth = truth.numpy().reshape(image.shape[1:])
            if not truth.any():
                continue
            estimate = predict_concentration(network, image.numpy())
            value = nmae(estimate, truth)
            per_bin["all"].append(value)
            per_bin.setdefault(snr_bin(snr), []).append(value)
            outside.append(float(np.abs(estimate - truth)[truth == 0].sum() / np.abs(truth).sum()))
        lines.append(f"| {name} | " + " | ".join(
            f"{np.mean(per_bin[b]):.3f} [{np.median(per_bin[b]):.3f}] ({len(per_bin[b])})" if per_bin.get(b)
            else "—" for b in bins) + f" | {np.mean(per_bin['all']) - np.mean(outside):.3f} | {np.mean(outside):.3f} |")
        print(lines[-1], flush=True)
    write_text_atomic("\n".join(lines) + "\n", Path(args.out))


if __name__ == "__main__":
    main()

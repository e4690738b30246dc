"""Issue 24, session 24: the View Line simulator's dipole field, before and after the slice-wise field.

A training step with fresh samples waits for its batch when simulating it takes longer than the step's compute
(0.44 s against 0.37 s per batch of 16, one thread each: session 24's profile). The simulator's largest cost is the
field in the imaged plane of the 3-D iron distribution. Session 22's ``forward_field_slice`` took a 3-D FFT of the
zero-padded volume and summed the spectrum along y; session 24's transforms only the (x, z) slices of χ that hold
iron and sums them with a cached mixed-domain kernel (the same field to float32 rounding). Both, and the full 3-D
field, run here on the χ volumes of real training samples (seed 62, head bases and base augmentation 0.5),
interleaved sample by sample so a change in the machine's load falls on all alike; then the whole sample
(``random_sample_with_targets``) with the old and the new field. One CPU thread, medians.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_simulation_speed.py [--n 48] \\
        [--out benchmarks/results/spio/spio_simulation_speed.md]
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

import numpy as np
import torch

from lightning_modules.io import write_text_atomic
from lightning_modules.physics import dipole
from lightning_modules.spio import viewline
from lightning_modules.spio.data import random_sample_with_targets

OPTIONS = {"head_bases": 0.5, "base_augmentation": 0.5}


def slice_by_3d_fft(chi_ppm, voxel_size_mm, b0_direction, *, axis, index, pad_factor=1.5):
    """Session 22's one-slice field (the baseline): 3-D FFT of the padded volume, weighted sum along ``axis``."""
    spectrum, big, shape = dipole._field_spectrum(chi_ppm, voxel_size_mm, b0_direction, pad_factor)
    m = torch.arange(big[axis], dtype=torch.float64)
    weights = (torch.exp(2j * np.pi * m * index / big[axis]) / big[axis]).to(spectrum.dtype)
    plane = torch.movedim(spectrum, axis - 3, -1) @ weights
    other = 1 - axis
    return torch.fft.irfftn(plane, s=(big[other], big[2]), dim=(-2, -1))[..., : shape[other], : shape[2]]


def full_field_slice(chi_ppm, voxel_size_mm, b0_direction, *, axis, index, pad_factor=1.5):
    """The whole 3-D field, then its slice."""
    return dipole.forward_field(chi_ppm, voxel_size_mm, b0_direction, pad_factor=pad_factor).select(axis - 3, index)


FIELDS = {"3-D field, then its slice": full_field_slice,
          "session 22: 3-D FFT, sum along y (baseline)": slice_by_3d_fft,
          "session 24: (x, z) FFT of the slices with iron": dipole.forward_field_slice}


def captured_volumes(n: int) -> list[tuple]:
    """The arguments of the simulator's field call for training samples 0 … n−1 (seed 62)."""
    calls = []
    original = viewline.forward_field_slice

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    with mock.patch.object(viewline, "forward_field_slice", record):
        for i in range(n):
            random_sample_with_targets(62, i, **OPTIONS)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="training samples (χ volumes)")
    parser.add_argument("--out", default="benchmarks/results/spio/spio_simulation_speed.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    calls = captured_volumes(args.n)
    for field in FIELDS.values():                                   # untimed: kernels cached, code warm
        field(*calls[0][0], **calls[0][1])
    seconds = {name: [] for name in FIELDS}
    worst = 0.0
    for call_args, call_kwargs in calls:
        results = {}
        for name, field in FIELDS.items():
            start = time.perf_counter()
            results[name] = field(*call_args, **call_kwargs)
            seconds[name].append(time.perf_counter() - start)
        reference = results["3-D field, then its slice"]
        for result in results.values():
            worst = max(worst, float((result - reference).abs().max() / reference.abs().max()))
    occupied = [float(call_args[0].ne(0).any(-1).any(0).float().mean()) for call_args, _ in calls]
    baseline = float(np.median(seconds["session 22: 3-D FFT, sum along y (baseline)"]))

    sample_seconds = {"session 22's field": [], "session 24's field": []}
    for i in range(args.n):                                          # whole samples, interleaved
        with mock.patch.object(viewline, "forward_field_slice", slice_by_3d_fft):
            start = time.perf_counter()
            random_sample_with_targets(62, 1000 + i, **OPTIONS)
            sample_seconds["session 22's field"].append(time.perf_counter() - start)
        start = time.perf_counter()
        random_sample_with_targets(62, 1000 + i, **OPTIONS)
        sample_seconds["session 24's field"].append(time.perf_counter() - start)
    sample_baseline = float(np.median(sample_seconds["session 22's field"]))

    lines = ["# View Line simulator: the field in the imaged plane, old and new (issue 24, session 24)", "",
             f"Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_simulation_speed.py --n {args.n}`", "",
             f"{args.n} training samples (seed 62, head bases and base augmentation 0.5), one CPU thread, medians; "
             f"χ grid {tuple(calls[0][0][0].shape)}, padded 1.5×; y slices holding iron: median "
             f"{np.median(occupied):.0%} (range {min(occupied):.0%}–{max(occupied):.0%}). Largest difference from "
             f"the full 3-D field, relative to its maximum, over all samples and methods: {worst:.1e}.", "",
             "| field in the plane | ms per sample | × baseline |", "|---|---|---|"]
    for name, values in seconds.items():
        median = float(np.median(values))
        lines.append(f"| {name} | {1e3 * median:.2f} | {median / baseline:.2f} |")
    lines += ["", "| whole training sample (`random_sample_with_targets`) | ms per sample | s per batch of 16 "
              "| × baseline |", "|---|---|---|---|"]
    for name, values in sample_seconds.items():
        median = float(np.median(values))
        lines.append(f"| {name} | {1e3 * median:.1f} | {16 * median:.2f} | {median / sample_baseline:.2f} |")
    lines.append("")
    write_text_atomic("\n".join(lines), args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

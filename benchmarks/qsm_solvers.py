"""Speed of TKD and NDI against their physical floor, the FFTs they must do, on a 256×256×176 volume.

Per NDI iteration the floor is two real FFT pairs (rfftn + irfftn: one to apply D to χ, one to apply D to the
residual); TKD needs one pair. The script times the solvers and, in the same run, the bare FFT pairs on the
same array, and reports seconds and the ratio solver / floor.

Run:  .venv/bin/python benchmarks/qsm_solvers.py      (writes benchmarks/results/qsm/solver_speed.md)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from lightning_modules.physics.dipole import dipole_kernel
from lightning_modules.qsm.solvers import Ndi, Tkd


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 176))
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/qsm"))
    args = parser.parse_args()
    torch.manual_seed(0)
    shape = tuple(args.shape)
    field = torch.randn(shape) * 0.01
    mask = torch.ones(shape)
    kernel = dipole_kernel(shape)
    dims = (-3, -2, -1)

    def fft_pair() -> None:
        torch.fft.irfftn(torch.fft.rfftn(field, dim=dims).mul_(kernel), s=shape, dim=dims)

    ndi = Ndi(iterations=args.iterations)
    with torch.no_grad():
        t_pair = best_of(fft_pair, 5 * args.repeats)
        t_tkd = best_of(lambda: Tkd()(field, kernel, mask), args.repeats)
        t_ndi = best_of(lambda: ndi(field, kernel, mask), args.repeats)
        t_kernel = best_of(lambda: dipole_kernel(shape), args.repeats)
    floor_ndi = 2 * args.iterations * t_pair
    rows = [
        ("FFT pair (rfftn · D → irfftn)", t_pair, t_pair, 1.0),
        ("dipole kernel", t_kernel, float("nan"), float("nan")),
        ("TKD", t_tkd, t_pair, t_tkd / t_pair),
        (f"NDI, {args.iterations} iterations", t_ndi, floor_ndi, t_ndi / floor_ndi),
    ]
    lines = [f"Volume {shape}, float32, torch {torch.__version__}, {torch.get_num_threads()} threads; best of "
             f"{args.repeats}.", "", "| step | seconds | FFT floor (s) | ratio to floor |", "|---|---|---|---|"]
    lines += [f"| {name} | {t:.3f} | {floor:.3f} | {ratio:.2f} |" for name, t, floor, ratio in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "solver_speed.md").write_text(text)


if __name__ == "__main__":
    main()

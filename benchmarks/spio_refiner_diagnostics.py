"""Issue 24, session 31: two diagnostics of a simulate-and-compare refiner on the validation shard (report only).

- **iterated passes**: the validation NMAE after applying the same refiner 1, 2, … times (each pass simulates the
  previous map; floor 0.15 between passes, as the bundle floors), to see whether re-applying it helps;
- **in-pool against unseen** (session 32, with ``--pool``): m₁ → m₂ on the first ``--pool_n`` samples of a shard the
  refiner was trained on, beside the same on the validation shard — a stage-2 refiner trained on in-pool maps learns
  too small a correction if stage 1 fits its pool much better than unseen images;
- **where the error is**: the share of the mean NMAE that comes from the planes with the least iron (the lightest
  5 / 10 / 20 % by total iron in the plane), and the mean without them.

The shard is :func:`~lightning_modules.spio.refiner_module.make_pool` of seed 301, samples 0–199 (the refiners'
checkpoint set; the bundle's DeepSPIO map as m₁), made here unless ``--val`` names one.

Usage (one CPU thread, ≈ 1 min):
    .venv/bin/python benchmarks/spio_refiner_diagnostics.py \\
        --refiner benchmarks/results/spio/session30_weights/S1kL2.pt --passes 3 \\
        --out benchmarks/results/spio/spio_refiner_diagnostics_session31.md
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.refiner_module import load_pools, make_pool
from lightning_modules.spio.simulation_refiner import load_refiner, refine_floored


def passes_nmae(refiner, val: dict[str, torch.Tensor], passes: int, shifts_px: tuple[int, ...] = (0,),
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image NMAE (images with iron) after each of ``passes`` refinements (rows), each image's iron total, and
    the first pass's NMAE split into false iron (pixels without iron) and the error on iron, (2, images)."""
    keep = [i for i in range(len(val["truth"])) if val["truth"][i].sum() > 0]
    scores, split = np.zeros((passes, len(keep))), np.zeros((2, len(keep)))
    for j, i in enumerate(keep):
        image, truth = val["image"][i][None].float(), val["truth"][i].numpy()
        m = val["prior"][i][None, None].float()
        for k in range(passes):
            refined = refine_floored(refiner, image, m, shifts_px=shifts_px)[0, 0].numpy()
            scores[k, j] = nmae(refined, truth)
            if k == 0:
                split[:, j] = (np.abs(refined[truth == 0]).sum() / truth.sum(),
                               np.abs(refined - truth)[truth > 0].sum() / truth.sum())
            m = torch.from_numpy(refined)[None, None]
    return scores, np.array([float(val["truth"][i].sum()) for i in keep]), split


def prior_nmae(shard: dict[str, torch.Tensor]) -> float:
    """Mean NMAE of a shard's DeepSPIO maps m₁ over its images with iron."""
    return float(np.mean([nmae(p.numpy(), t.numpy()) for p, t in zip(shard["prior"], shard["truth"], strict=True)
                          if t.sum() > 0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refiner", required=True, help="refiner weights (lifts and widths read from them)")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--val", help="a validation shard from `refiner_module pool --seed 301 --n 200` (else made)")
    parser.add_argument("--shifts", type=int, nargs="+", default=[0],
                        help="the refiner's shift average along x, pixels (session 32; default: none)")
    parser.add_argument("--pool", help="a shard the refiner was trained on (in-pool against unseen gain)")
    parser.add_argument("--pool_n", type=int, default=400, help="how many of --pool's samples (from its first)")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.val or str(Path(tmp) / "val.pt")
        if not args.val:
            make_pool(path, seed=301, start=0, n=200)
        val = load_pools([path])
    refiner = load_refiner(args.refiner)
    scores, iron, split = passes_nmae(refiner, val, args.passes, tuple(args.shifts))
    m1 = prior_nmae(val)
    lines = [f"# Refiner diagnostics on the validation shard (seed 301, 0–199; {scores.shape[1]} images with iron)", "",
             f"Command: `.venv/bin/python benchmarks/spio_refiner_diagnostics.py --refiner {args.refiner} "
             f"--passes {args.passes}{' --shifts ' + ' '.join(map(str, args.shifts)) if args.shifts != [0] else ''}"
             f"{' --pool ' + args.pool + ' --pool_n ' + str(args.pool_n) if args.pool else ''}` "
             "(one CPU thread).", "",
             "## Iterated passes", "", "| passes | validation NMAE |", "|---|---|",
             f"| 0 (DeepSPIO's map m₁) | {m1:.4f} |"]
    lines += [f"| {k + 1} | {scores[k].mean():.4f} |" for k in range(args.passes)]
    if args.pool:
        shard = load_pools([args.pool])
        shard = {k: v[:args.pool_n] for k, v in shard.items()}
        in_pool, _, _ = passes_nmae(refiner, shard, 1)
        p1 = prior_nmae(shard)
        lines += ["", "## In-pool against unseen (one pass)", "",
                  "| set | images | m₁ | m₂ | m₂ / m₁ |", "|---|---|---|---|---|",
                  f"| the refiner's training pool ({Path(args.pool).name}, first {args.pool_n}) | "
                  f"{in_pool.shape[1]} | {p1:.4f} | {in_pool[0].mean():.4f} | {in_pool[0].mean() / p1:.3f} |",
                  f"| validation shard | {scores.shape[1]} | {m1:.4f} | {scores[0].mean():.4f} | "
                  f"{scores[0].mean() / m1:.3f} |"]
    one = scores[0]
    order = np.argsort(iron)
    lines += ["", "## Where the error is (one pass)", "",
              f"Mean {one.mean():.4f}, median {np.median(one):.4f}; false iron on pixels without iron "
              f"{split[0].mean():.3f}, error on pixels with iron {split[1].mean():.3f} (both relative to the true "
              "total, as `spio_variant_outliers.py` splits them).", "",
              "| lightest planes | iron in the plane ≤ (µg Fe) | their mean NMAE | share of the mean "
              "| mean without them |",
              "|---|---|---|---|---|"]
    for q in (0.05, 0.1, 0.2):
        k = int(q * len(one))
        light, rest = order[:k], order[k:]
        lines.append(f"| {q:.0%} ({k}) | {iron[order[k - 1]]:.1f} | {one[light].mean():.3f} | "
                     f"{one[light].sum() / one.sum():.1%} | {one[rest].mean():.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text_atomic(text, args.out)


if __name__ == "__main__":
    main()

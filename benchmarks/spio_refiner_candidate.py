"""Issue 24, session 41 (addendum 1): a candidate refiner against the shipped one, both as the bundle runs them.

Rule: ``benchmarks/results/spio/decision_rule_session41.md``, addendum 1. Every map is the shipped DeepSPIO map
(six passes, floor), refined by a refiner (flip-averaged, floored again) and put through the one-level-per-object
step — ``predict_concentration`` with ``refiner=`` — once with the bundle's ``models/refiner.pt`` (the reference,
0.14.0) and once with ``--candidate``. DeepSPIO's map is computed once per image and shared (``--cache DIR`` keeps
it). Paired mean NMAE differences (images with iron) per set and pooled per generator and SNR bin.

Sets: ``--set NAME=GENERATOR:SEED:START:N`` as in ``spio_object_shrinkage.py``.

Usage (one CPU thread):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_refiner_candidate.py --candidate RS.pt \\
        --set training1=training:1:17700:300 --out benchmarks/results/spio/spio_refiner_rs_session41.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from spio_design_comparison import SNR_BINS, sample_arrays  # benchmarks/ is on sys.path
from spio_object_shrinkage import cell, pooled_cells
from spio_paired_bins import _other_set

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.simulation_refiner import load_refiner, refine_map
from lightning_modules.spio.transforms import floor_concentration, shrink_object_levels

MODELS = Path(bundle_root("spio_quantification")) / "models"


def deepspio_maps(generator: str, seed: int, start: int, n: int, cache: Path | None):
    """(images, truths, SNRs dB, DeepSPIO's floored maps) of one set's images with iron."""
    path = cache / f"prior_{generator}_{seed}_{start}_{n}.npz" if cache else None
    if path is not None and path.is_file():
        d = np.load(path)
        return d["image"], d["truth"], d["snr"], d["prior"]
    network = load_network(DeepSpio(), str(MODELS / "model.pt"))
    indices = range(start, start + n)
    data = sample_arrays(seed, indices) if generator == "training" else _other_set(generator, indices, seed)
    data = [(image, truth, snr) for image, truth, snr in data if truth.any()]
    images = np.stack([image for image, _, _ in data]).astype(np.float32)
    truths = np.stack([truth for _, truth, _ in data]).astype(np.float32)
    snrs = np.array([snr for _, _, snr in data], float)
    priors = np.stack([predict_concentration(network, image, object_shrinkage=0.0) for image in images])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, image=images, truth=truths, snr=snrs, prior=priors.astype(np.float32))
    return images, truths, snrs, priors.astype(np.float32)


def bundle_maps(refiner, images: np.ndarray, priors: np.ndarray, batch: int = 16) -> np.ndarray:
    """The bundle's maps from DeepSPIO's floored maps: ``refiner`` (flip average, floor), then the step — what
    ``predict_concentration(..., refiner=refiner)`` does after DeepSPIO. A list of refiners (session 42) is their
    ensemble: the mean of their flip-averaged maps, then the floor and the step."""
    members = refiner if isinstance(refiner, list) else [refiner]
    out = []
    for i in range(0, len(images), batch):
        image, prior = torch.as_tensor(images[i:i + batch]), torch.as_tensor(priors[i:i + batch])[:, None]
        refined = floor_concentration(sum(refine_map(r, image, prior) for r in members) / len(members))
        out += [shrink_object_levels(m) for m in refined[:, 0].numpy()]
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", type=Path, action="append", required=True,
                        help="the candidate refiner's weights; repeated: the ensemble of these refiners (session 42)")
    parser.add_argument("--set", action="append", required=True, help="NAME=GENERATOR:SEED:START:N (repeat)")
    parser.add_argument("--cache", type=Path, default=None, help="folder for the sets' DeepSPIO maps (npz)")
    parser.add_argument("--out", type=Path, required=True, help="markdown report")
    args = parser.parse_args()
    reference, candidate = load_refiner(str(MODELS / "refiner.pt")), [load_refiner(str(p)) for p in args.candidate]
    name = " + ".join(p.name for p in args.candidate)

    lines = [f"# SPIO: refiner {name} against the bundle's, 0.14.0 (issue 24; sessions 41-42)", "",
             "Both with the bundle's DeepSPIO map before and the one-level-per-object step after; paired NMAE "
             "difference candidate − 0.14.0, ± s.e. (mean + 2 s.e.); images with iron.", "",
             "| set (n) | 0.14.0 | candidate − 0.14.0 |", "|---|---|---|"]
    pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for spec in args.set:
        name, rest = spec.split("=", 1)
        generator, seed, start, n = rest.split(":")
        images, truths, snrs, priors = deepspio_maps(generator, int(seed), int(start), int(n), args.cache)
        base = np.array([nmae(m, t) for m, t in zip(bundle_maps(reference, images, priors), truths, strict=True)])
        cand = np.array([nmae(m, t) for m, t in zip(bundle_maps(candidate, images, priors), truths, strict=True)])
        lines.append(f"| {name} ({len(base)}) | {base.mean():.4f} | {cell(cand, base)} |")
        pooled.setdefault(generator, []).append((cand - base, snrs))
        print(lines[-1], flush=True)
    bins = ["all"] + [b for b, _, _ in SNR_BINS]
    lines += ["", "### Pooled per generator: paired difference ± s.e. (mean + 2 s.e.; n = images)", "",
              "| generator | " + " | ".join(bins) + " |", "|---" * (len(bins) + 1) + "|"]
    for generator, parts in pooled.items():
        lines.append(f"| {generator} | " + " | ".join(pooled_cells(parts, bins)) + " |")
    write_text_atomic("\n".join(lines) + "\n", args.out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

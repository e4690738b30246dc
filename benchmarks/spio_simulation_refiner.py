"""Issue 24, session 30: candidate S, the simulate-and-compare refiner on top of the shipped DeepSPIO map.

Three steps (rule: ``benchmarks/results/spio/decision_rule_session30.md``):

- ``pool``: simulate samples, run the bundle's map m₁ (``predict_concentration``: six passes, floor 0.15) and the
  simulation of m₁'s ball-like 3-D lift (:func:`~lightning_modules.spio.simulation_refiner.simulate_hypothesis`);
  saved as one ``.pt`` shard (float16 image / hypothesis, float32 maps);
- ``train``: the plain PyTorch loop that trained candidates S and S1k (the shipped refiner is trained by Lightning:
  ``python -m lightning_modules.spio.refiner_module train``, ``make train-spio-refiner``):
  :class:`~lightning_modules.spio.simulation_refiner.SimulationRefiner` on the pool shards (x flips),
  loss ‖m₂ − C‖₁ / (‖C‖₁ + 1) per image, AdamW, one-cycle; the state with the lowest NMAE on the validation shard
  (as the bundle would report it: floor 0.15) is saved;
- ``evaluate``: paired per-image NMAE on fresh samples of a generator: the candidate refiner − the DeepSPIO map
  (0.8.0), and, with ``--baseline`` (e.g. 0.9.0's ``models/refiner.pt``), the candidate − that refiner (session 31).

Usage (one CPU thread each):
    .venv/bin/python benchmarks/spio_simulation_refiner.py pool --seed 300 --start 0 --n 4000 --last_stage \\
        --out /tmp/s30/pool_a.pt
    .venv/bin/python benchmarks/spio_simulation_refiner.py train --pool /tmp/s30/pool_a.pt /tmp/s30/pool_b.pt \\
        --val /tmp/s30/val.pt --steps 3000 --out S.pt
    .venv/bin/python benchmarks/spio_simulation_refiner.py evaluate --weights S.pt --generator train --seed 1 \\
        --start 7200 --n 400 --out benchmarks/results/spio/spio_simulation_refiner_T.md
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lightning_modules.bundle_app import bundle_root
from lightning_modules.io import write_text_atomic
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import apply_floor, load_network, predict_concentration
from lightning_modules.spio.data import random_sample_with_snr
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.refiner_module import load_pools, make_pool
from lightning_modules.spio.simulation_refiner import LIFTS, SimulationRefiner, load_refiner, refine_floored
from lightning_modules.spio.transforms import CONCENTRATION_FLOOR_UG_PER_MM3
from lightning_modules.spio.viewline import EVALUATION_NOISE_MODELS, NOISE_MODELS

MODEL = Path(bundle_root("spio_quantification")) / "models" / "model.pt"


def sample(generator: str, seed: int, index: int, noise_model: str | None = None,
           ) -> tuple[np.ndarray, np.ndarray, float]:
    """(image (2, x, z), truth (x, z), SNR dB) of one sample of ``generator``: ``train`` (training's generator; with
    ``noise_model``, the same sample under that noise model, session 33), ``variant``, ``variant2`` or ``real``."""
    if noise_model is not None and generator != "train":
        raise ValueError("--noise_model needs --generator train")
    if generator == "train":
        image, conc, snr = random_sample_with_snr(seed, index, noise_model=noise_model)
        return image.numpy(), conc[0].numpy(), snr
    sys.path.insert(0, str(Path(__file__).parent))
    from spio_paired_bins import _other_set

    image, truth, snr = _other_set(generator, range(index, index + 1), seed)[0]
    return np.asarray(image), np.asarray(truth), snr


def refine(refiners: list[SimulationRefiner], image: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """The refined map of one image as the bundle writes it, from its DeepSPIO map ``prior``: each refiner of the
    chain in turn (session 32: a second stage), each followed by the floor 0.15."""
    x, m = torch.as_tensor(image, dtype=torch.float32)[None], torch.as_tensor(prior, dtype=torch.float32)[None, None]
    for refiner in refiners:
        m = refine_floored(refiner, x, m)
    return m[0, 0].numpy()


def cmd_pool(args: argparse.Namespace) -> None:
    make_pool(args.out, seed=args.seed, start=args.start, n=args.n, last_stage=args.last_stage)


def validation_nmae(refiner: SimulationRefiner, val: dict[str, torch.Tensor]) -> float:
    refiner.eval()
    scores = []
    with torch.no_grad():
        for i in range(0, len(val["truth"]), 16):
            m2 = refiner(val["image"][i:i + 16].float(), val["hypothesis"][i:i + 16].float(),
                         val["prior"][i:i + 16, None])[:, 0].numpy()
            for m, t in zip(m2, val["truth"][i:i + 16].numpy(), strict=True):
                if t.sum() > 0:  # NMAE is undefined without iron in the plane (as in spio_accuracy.py)
                    scores.append(nmae(apply_floor(m, CONCENTRATION_FLOOR_UG_PER_MM3), t))
    refiner.train()
    return float(np.mean(scores))


def cmd_train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    pool, val = load_pools(args.pool), load_pools([args.val])
    n = len(pool["truth"])
    refiner = SimulationRefiner(widths=tuple(args.widths), lifts=tuple(args.lifts))
    optimiser = torch.optim.AdamW(refiner.parameters(), lr=args.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=args.learning_rate, total_steps=args.steps)
    base = float(np.mean([nmae(p, t) for p, t in zip(val["prior"].numpy(), val["truth"].numpy(), strict=True)
                          if t.sum() > 0]))
    best = validation_nmae(refiner, val)
    print(f"validation NMAE: shipped map {base:.4f}, refiner at start {best:.4f}", flush=True)
    torch.save(refiner.state_dict(), args.out)
    generator = torch.Generator().manual_seed(args.seed)
    t0, running = time.time(), []
    for step in range(1, args.steps + 1):
        pick = torch.randint(n, (args.batch_size,), generator=generator)
        image, hyp = pool["image"][pick].float(), pool["hypothesis"][pick].float()
        prior, truth = pool["prior"][pick, None], pool["truth"][pick, None]
        flip = torch.rand(args.batch_size, generator=generator) < 0.5  # x flips: an exact symmetry of all inputs
        image[flip], hyp[flip] = image[flip].flip(-2), hyp[flip].flip(-2)
        prior[flip], truth[flip] = prior[flip].flip(-2), truth[flip].flip(-2)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            m2 = refiner(image, hyp, prior)
        error = (m2.float() - truth).abs().flatten(1).sum(1) / (truth.flatten(1).sum(1) + 1.0)
        loss = error.mean()
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(refiner.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        running.append(float(loss.detach()))
        if step % args.val_every == 0 or step == args.steps:
            score = validation_nmae(refiner, val)
            mark = ""
            if score < best:
                best, mark = score, " (saved)"
                tmp = Path(str(args.out) + ".tmp")
                torch.save(refiner.state_dict(), tmp)
                tmp.replace(args.out)
            print(f"step {step}: training loss {np.mean(running):.4f}, validation NMAE {score:.4f}{mark}, "
                  f"{(time.time() - t0) / step:.3f} s per step", flush=True)
            running = []


def cmd_evaluate(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    network = load_network(DeepSpio(), str(args.model_path or MODEL))
    baseline_model = args.baseline_model_path or MODEL
    baseline_network = (network if Path(baseline_model).resolve() == Path(args.model_path or MODEL).resolve()
                        else load_network(DeepSpio(), str(baseline_model)))
    # widths (and the baseline's lifts) from the weights; several files = the stages of a chain, in order
    refiner = [load_refiner(w, lifts=tuple(args.lifts)) for w in args.weights]
    baseline = [load_refiner(w) for w in args.baseline] if args.baseline else None
    rows = []
    t_base = t_ref = 0.0
    for i in range(args.start, args.start + args.n):
        image, truth, snr = sample(args.generator, args.seed, i, args.noise_model)
        if truth.sum() <= 0:
            continue
        t0 = time.perf_counter()
        prior = predict_concentration(network, image)
        t1 = time.perf_counter()
        m2 = refine(refiner, image, prior)
        t_base, t_ref = t_base + t1 - t0, t_ref + time.perf_counter() - t1
        baseline_prior = prior if baseline_network is network else predict_concentration(baseline_network, image)
        reference = (nmae(refine(baseline, image, baseline_prior), truth) if baseline is not None
                     else nmae(baseline_prior, truth))
        rows.append((snr, reference, nmae(m2, truth), i, float(truth.sum())))
    r = np.array(rows, dtype=float)
    d = r[:, 2] - r[:, 1]
    ref_name = (args.baseline_name or "+".join(Path(w).stem for w in args.baseline)) if baseline else "0.8.0"
    label = "+".join(Path(w).stem for w in args.weights)
    lines = [f"# Refiner {label} − {ref_name}, paired: {args.generator}"
             f"{' (' + args.noise_model + ' noise)' if args.noise_model else ''}, seed {args.seed}, "
             f"samples {args.start}–{args.start + args.n - 1}", "",
             f"Command: `.venv/bin/python benchmarks/spio_simulation_refiner.py evaluate --weights "
             f"{' '.join(Path(w).name for w in args.weights)} --lifts {' '.join(args.lifts)}"
             f"{' --baseline ' + ' '.join(Path(w).name for w in args.baseline) if args.baseline else ''}"
             f"{' --baseline_name ' + args.baseline_name if args.baseline_name else ''}"
             f"{' --model_path ' + Path(args.model_path).name if args.model_path else ''} --generator {args.generator}"
             f"{' --noise_model ' + args.noise_model if args.noise_model else ''}"
             f" --seed {args.seed} --start {args.start} --n {args.n}` (one CPU thread).", "",
             f"| set | images | {ref_name} | {label} | {label} − {ref_name} (± s.e.) |", "|---|---|---|---|---|"]

    def row(name: str, pick: np.ndarray) -> str:
        if pick.sum() < 2:
            return f"| {name} | {int(pick.sum())} | — | — | — |"
        dd = d[pick]
        return (f"| {name} | {int(pick.sum())} | {r[pick, 1].mean():.4f} | {r[pick, 2].mean():.4f} | "
                f"{dd.mean():+.4f} ± {dd.std(ddof=1) / math.sqrt(len(dd)):.4f} |")

    lines.append(row("as drawn", np.ones(len(r), bool)))
    for name, lo, hi in (("∞", math.inf, math.inf), ("19–30 dB", 19, 30), ("11–19 dB", 11, 19), ("5–11 dB", 5, 11)):
        pick = np.isinf(r[:, 0]) if math.isinf(lo) else (r[:, 0] >= lo) & (r[:, 0] < hi)
        lines.append(row(name, pick))
    lines += ["", f"Time per image (one thread): shipped map {t_base / len(r):.3f} s, refinement "
              f"{t_ref / len(r):.3f} s (simulation + U-Net), total {(t_base + t_ref) / len(r):.3f} s.", ""]
    if args.worst:
        lines += [f"The {args.worst} images with the largest |difference|:", "",
                  f"| sample | SNR dB | iron in the plane (µg Fe) | {ref_name} | {label} | difference |",
                  "|---|---|---|---|---|---|"]
        for k in np.argsort(-np.abs(d))[:args.worst]:
            lines.append(f"| {int(r[k, 3])} | {r[k, 0]:.1f} | {r[k, 4]:.1f} | {r[k, 1]:.3f} | {r[k, 2]:.3f} "
                         f"| {d[k]:+.3f} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        write_text_atomic(text, args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pool")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--last_stage", action="store_true", help="training's generator with the last stage's options")
    p.add_argument("--out", required=True)
    t = sub.add_parser("train")
    t.add_argument("--pool", nargs="+", required=True)
    t.add_argument("--val", required=True)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch_size", type=int, default=16)
    t.add_argument("--learning_rate", type=float, default=1e-3)
    t.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 96])
    t.add_argument("--lifts", nargs="+", default=["ball"], choices=LIFTS)
    t.add_argument("--val_every", type=int, default=250)
    t.add_argument("--bf16", action="store_true")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--out", required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("--weights", nargs="+", required=True, help="the refiner, or the stages of a chain in order")
    e.add_argument("--lifts", nargs="+", default=["ball"], choices=LIFTS)
    e.add_argument("--baseline", nargs="+", help="a refiner (or chain) to compare with, e.g. the bundle's "
                   "models/refiner.pt (its lifts and widths are read from the weights)")
    e.add_argument("--model_path", help="DeepSPIO's weights under --weights (default: the bundle's model.pt)")
    e.add_argument("--baseline_model_path", help="DeepSPIO's weights under --baseline (default: the bundle's)")
    e.add_argument("--baseline_name", help="the baseline's name in the table (default: its file name), e.g. 0.10.0")
    e.add_argument("--generator", default="train")
    e.add_argument("--noise_model", choices=NOISE_MODELS + EVALUATION_NOISE_MODELS,
                        help="training's generator under this noise model")
    e.add_argument("--seed", type=int, required=True)
    e.add_argument("--start", type=int, default=0)
    e.add_argument("--n", type=int, required=True)
    e.add_argument("--worst", type=int, default=0, help="also list the K images with the largest |difference|")
    e.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"pool": cmd_pool, "train": cmd_train, "evaluate": cmd_evaluate}[args.command](args)


if __name__ == "__main__":
    main()

"""Lightning training of the simulate-and-compare refiner (issue 24, session 30) on a pool of pre-computed samples.

Each pool sample holds the View Line image, the shipped DeepSPIO map m₁ as the bundle writes it, the simulation of
m₁'s ball-like 3-D lift (:func:`~lightning_modules.spio.simulation_refiner.simulate_hypothesis`) and the true map;
:func:`make_pool` writes them (``python -m lightning_modules.spio.refiner_module pool``). DeepSPIO is not trained
here: its map is an input.

Loss per image ``‖m₂ − C‖₁ / (‖C‖₁ + 1 µg Fe/mm³·pixel)`` (the issue's NMAE, damped only for near-empty planes);
AdamW, one-cycle schedule over ``max_steps``, gradient norm clipped at 1; random x flips (an exact symmetry of every
input). Validation reports the NMAE of m₂ after the bundle's floor (``val_nmae``), over samples with iron in the
plane.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_modules.bundle_app import bundle_root, load_network, report_progress
from lightning_modules.spio.app import predict_concentration
from lightning_modules.spio.data import random_sample_with_snr
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.simulation_refiner import (
    LIFTS,
    SimulationRefiner,
    load_refiner,
    refine_floored,
    simulate_hypothesis,
)
from lightning_modules.spio.transforms import (
    CONCENTRATION_FLOOR_UG_PER_MM3,
    OBJECT_CORE_FRACTION,
    OBJECT_LEVEL_SHRINKAGE,
    floor_concentration,
    object_cores,
)

#: Pool keys, each a tensor with the samples along axis 0.
POOL_KEYS = ("image", "hypothesis", "prior", "truth")


def load_pools(paths: list[str | Path]) -> dict[str, torch.Tensor]:
    """The pool shards at ``paths`` concatenated (float16 images and hypotheses, float32 maps)."""
    parts = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    return {k: torch.cat([p[k] for p in parts]) for k in POOL_KEYS}


class PoolDataset(Dataset):
    """(image (2, X, Z), hypothesis (3, X, Z), prior (1, X, Z), truth (1, X, Z)) float32, mirrored along x with
    probability ½ when ``flip`` (from the sampler's own generator, so a seeded run repeats)."""

    def __init__(self, pool: dict[str, torch.Tensor], *, flip: bool, seed: int = 0) -> None:
        self.pool, self.flip = pool, flip
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.pool["truth"])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        items = (self.pool["image"][i].float(), self.pool["hypothesis"][i].float(),
                 self.pool["prior"][i][None].float(), self.pool["truth"][i][None].float())
        if self.flip and bool(torch.rand((), generator=self.generator) < 0.5):
            items = tuple(t.flip(-2) for t in items)
        return items


def object_step(maps: torch.Tensor, *, core_fraction: float = OBJECT_CORE_FRACTION,
                strength: float = OBJECT_LEVEL_SHRINKAGE) -> torch.Tensor:
    """:func:`~lightning_modules.spio.transforms.shrink_object_levels` on a batch (B, 1, X, Z) with a gradient
    (session 41, ``--object_step``): the cores are the step's own (:func:`~lightning_modules.spio.transforms.
    object_cores` of the detached values), each core's median (``torch.quantile``, numpy's median) and the pull are
    differentiable."""
    out = []
    for m in maps[:, 0]:
        pulled = m
        for core in object_cores(m.detach().float().cpu().numpy(), core_fraction=core_fraction):
            core = torch.as_tensor(core, device=m.device)
            median = torch.quantile(m[core].float(), 0.5).to(m.dtype)
            pulled = torch.where(core, (1 - strength) * m + strength * median, pulled)
        out.append(pulled)
    return torch.stack(out)[:, None]


def damped_nmae(predicted: torch.Tensor, truth: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Batch mean of ``‖p − t‖₁ / (‖t‖₁ + eps)`` per sample."""
    return ((predicted - truth).abs().flatten(1).sum(1) / (truth.flatten(1).sum(1) + eps)).mean()


class SimulationRefinerModule(pl.LightningModule):
    """Trains :class:`SimulationRefiner`; ``self.network`` is what the bundle saves (``refiner.pt``)."""

    def __init__(self, *, widths: tuple[int, ...] = (16, 32, 64, 96), learning_rate: float = 1e-3,
                 weight_decay: float = 1e-4, max_steps: int = 1000, lifts: tuple[str, ...] = ("ball",),
                 residual: bool = False, channels_last: bool = False, object_step: bool = False,
                 object_pool: bool = False) -> None:
        super().__init__()
        self.network = SimulationRefiner(widths=tuple(widths), lifts=tuple(lifts), residual=residual,
                                         object_pool=object_pool)
        self.object_step = object_step  # session 41: train and validate through the bundle's last step
        self.learning_rate, self.weight_decay, self.max_steps = learning_rate, weight_decay, max_steps
        # session 32: NHWC weights and inputs (oneDNN's faster layout on CPU; the saved state_dict is layout-free)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.to(memory_format=self.memory_format)

    def forward(self, image: torch.Tensor, hypothesis: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        image, hypothesis, prior = (t.contiguous(memory_format=self.memory_format) for t in (image, hypothesis, prior))
        return self.network(image, hypothesis, prior)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        image, hypothesis, prior, truth = batch
        refined = self(image, hypothesis, prior).float()
        loss = damped_nmae(object_step(refined) if self.object_step else refined, truth)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        image, hypothesis, prior, truth = batch
        with torch.autocast(self.device.type, enabled=False):
            refined = floor_concentration(self(image, hypothesis, prior).float(), CONCENTRATION_FLOOR_UG_PER_MM3)
            if self.object_step:
                refined = object_step(refined)
        norm = truth.flatten(1).sum(1)
        has_iron = norm > 0
        if bool(has_iron.any()):
            error = (refined - truth).abs().flatten(1).sum(1)[has_iron] / norm[has_iron]
            self.log("val_nmae", error.mean(), batch_size=int(has_iron.sum()), prog_bar=True)

    def configure_optimizers(self):
        optimiser = torch.optim.AdamW(self.network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=self.learning_rate, total_steps=self.max_steps)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def train_refiner(pool_paths: list[str], val_path: str, out: str | Path, *, max_steps: int = 1000,
                  val_every: int = 250, batch_size: int = 16, learning_rate: float = 1e-3, seed: int = 0,
                  precision: str = "bf16-mixed", widths: tuple[int, ...] = (16, 32, 64, 96),
                  accelerator: str = "cpu", devices: int = 1, lifts: tuple[str, ...] = ("ball",),
                  residual: bool = False, channels_last: bool = False, object_step: bool = False,
                  object_pool: bool = False) -> float:
    """Train on the pool shards, keep the state with the lowest ``val_nmae`` and write the refiner's
    ``state_dict`` to ``out`` atomically; returns that NMAE. Scales by ``accelerator`` / ``devices``."""
    pl.seed_everything(seed, workers=True)
    train_set = PoolDataset(load_pools(pool_paths), flip=True, seed=seed)
    val_set = PoolDataset(load_pools([val_path]), flip=False)
    sampler = torch.utils.data.RandomSampler(train_set, replacement=True, num_samples=max_steps * batch_size,
                                             generator=torch.Generator().manual_seed(seed))
    train = DataLoader(train_set, batch_size=batch_size, sampler=sampler)
    val = DataLoader(val_set, batch_size=16)
    module = SimulationRefinerModule(widths=widths, learning_rate=learning_rate, max_steps=max_steps, lifts=lifts,
                                     residual=residual, channels_last=channels_last, object_step=object_step,
                                     object_pool=object_pool)
    checkpoint = pl.callbacks.ModelCheckpoint(monitor="val_nmae", mode="min", save_top_k=1,
                                              dirpath=Path(out).parent / f".{Path(out).stem}_checkpoints")
    trainer = pl.Trainer(max_steps=max_steps, val_check_interval=val_every, check_val_every_n_epoch=None,
                         precision=precision, accelerator=accelerator, devices=devices, callbacks=[checkpoint],
                         gradient_clip_val=1.0,
                         logger=False, enable_progress_bar=True, num_sanity_val_steps=0, deterministic=False)
    trainer.fit(module, train, val)
    best = SimulationRefinerModule.load_from_checkpoint(checkpoint.best_model_path, map_location="cpu",
                                                       widths=widths, learning_rate=learning_rate,
                                                       max_steps=max_steps, lifts=lifts, residual=residual,
                                                       channels_last=channels_last, object_step=object_step,
                                                       object_pool=object_pool)
    tmp = Path(str(out) + ".tmp")
    state = best.network.state_dict()
    if channels_last:  # stored in the default layout, as every other refiner
        for k, v in state.items():
            state[k] = v.contiguous()
    torch.save(state, tmp)
    tmp.replace(out)
    return float(np.asarray(checkpoint.best_model_score.cpu()))


#: The options of ``make train-spio``'s last DeepSPIO stage: the generator the shipped network was last trained on.
LAST_STAGE = {"head_bases": 0.5, "base_augmentation": 0.5, "rim_bases": 0.125, "noise_free_fraction": 0.25}
#: The generator options a pool may change (``make train-spio-refiner`` since 0.10.0, session 31: the refiner's pool
#: has rim bases in half its samples and five shape families in half, ``--rim_bases 0.5 --shape_variety 0.5``).
POOL_OPTIONS = ("head_bases", "base_augmentation", "rim_bases", "shape_variety", "other_families", "tube_phantoms",
                "extent_family", "noise_free_fraction", "noise_models")


def make_pool(out: str | Path, *, seed: int, start: int, n: int, last_stage: bool = False,
              model_path: str | Path | None = None, lifts: tuple[str, ...] = ("ball",), **options: float) -> None:
    """Simulate samples ``start … start + n − 1`` of ``seed`` (training's generator; ``last_stage``: with the options
    of ``make train-spio``'s last stage; ``options``: generator options of :data:`POOL_OPTIONS` on top), run the
    bundle's DeepSPIO map m₁ on each (six passes, floor 0.15) and simulate m₁'s ``lifts``;
    write the pool shard to ``out`` atomically, with ``[progress]`` lines."""
    model_path = model_path or Path(bundle_root("spio_quantification")) / "models" / "model.pt"
    network = load_network(DeepSpio(), str(model_path))
    unknown = set(options) - set(POOL_OPTIONS)
    if unknown:
        raise ValueError(f"unknown generator option(s) {', '.join(sorted(unknown))}; "
                         f"expected {', '.join(POOL_OPTIONS)}")
    options = {**(LAST_STAGE if last_stage else {}), **options}
    pool: dict[str, list[torch.Tensor]] = {k: [] for k in POOL_KEYS}
    t0 = time.time()
    for k, i in enumerate(range(start, start + n)):
        image, concentration, _ = random_sample_with_snr(seed, i, **options)
        prior = predict_concentration(network, image.numpy())
        pool["image"].append(image.half())
        pool["hypothesis"].append(simulate_hypothesis(prior, lifts).half())
        pool["prior"].append(torch.tensor(prior, dtype=torch.float32))
        pool["truth"].append(concentration[0].clone().float())  # a copy: the plane is a view of the 3-D volume
        if (k + 1) % 250 == 0 or k + 1 == n:
            report_progress((k + 1) / n, f"{k + 1}/{n} samples, {time.time() - t0:.0f} s")
    tmp = Path(str(out) + ".tmp")
    torch.save({k: torch.stack(v) for k, v in pool.items()}, tmp)
    tmp.replace(out)


def chain_pool(pool_paths: list[str | Path], refiner_path: str | Path, out: str | Path, *,
               lifts: tuple[str, ...] = ("ball",), batch_size: int = 16) -> None:
    """The pool of the refiner's next stage (session 32): every sample of the shards at ``pool_paths`` with its map
    replaced by the refiner at ``refiner_path`` applied as the bundle applies it (flip average, floor 0.15) and the
    simulation of that map's ``lifts``; image and truth unchanged. Written to ``out`` atomically."""
    pool = load_pools(pool_paths)
    refiner = load_refiner(str(refiner_path))
    n = len(pool["truth"])
    priors, hypotheses = [], []
    t0 = time.time()
    for i in range(0, n, batch_size):
        refined = refine_floored(refiner, pool["image"][i:i + batch_size].float(),
                                 pool["prior"][i:i + batch_size, None])[:, 0]
        priors.append(refined)
        hypotheses += [simulate_hypothesis(m.numpy(), lifts).half() for m in refined]
        done = min(i + batch_size, n)
        if done % 256 == 0 or done == n:
            report_progress(done / n, f"{done}/{n} samples, {time.time() - t0:.0f} s")
    chained = {"image": pool["image"], "hypothesis": torch.stack(hypotheses), "prior": torch.cat(priors),
               "truth": pool["truth"]}
    tmp = Path(str(out) + ".tmp")
    torch.save(chained, tmp)
    tmp.replace(out)


def main(argv: list[str] | None = None) -> None:
    """``python -m lightning_modules.spio.refiner_module pool …`` / ``train …`` (``make train-spio``'s last stage)."""
    parser = argparse.ArgumentParser(description="The SPIO simulate-and-compare refiner: its pool and its training.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pool", help="simulate a pool shard with the bundle's DeepSPIO maps")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--last_stage", action="store_true", help="the generator options of the last DeepSPIO stage")
    p.add_argument("--lifts", nargs="+", default=["ball"], choices=LIFTS, help="the 3-D lifts simulated")
    p.add_argument("--model_path", help="DeepSPIO's weights for m₁ (default: the bundle's models/model.pt)")
    for option in POOL_OPTIONS:
        p.add_argument(f"--{option}", type=float, help=f"the generator's {option} (default: the last stage's, or 0)")
    p.add_argument("--out", required=True)
    c = sub.add_parser("chain", help="the pool of a next stage: a trained refiner's maps in place of the pool's")
    c.add_argument("--pool", nargs="+", required=True)
    c.add_argument("--refiner", required=True, help="the previous stage's weights (its lifts are read from them)")
    c.add_argument("--lifts", nargs="+", default=["ball"], choices=LIFTS, help="the lifts the next stage reads")
    c.add_argument("--out", required=True)
    t = sub.add_parser("train", help="train the refiner on pool shards (Lightning)")
    t.add_argument("--pool", nargs="+", required=True)
    t.add_argument("--val", required=True)
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--val_every", type=int, default=250)
    t.add_argument("--batch_size", type=int, default=16)
    t.add_argument("--learning_rate", type=float, default=1e-3)
    t.add_argument("--precision", default="bf16-mixed")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--accelerator", default="cpu")
    t.add_argument("--devices", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--lifts", nargs="+", default=["ball"], choices=LIFTS, help="the lifts the pools hold")
    t.add_argument("--residual", action="store_true",
                   help="the refiner also reads the measured − simulated line phases and amplitudes (session 32)")
    t.add_argument("--channels_last", action="store_true", help="train in the NHWC memory layout (session 32)")
    t.add_argument("--object_step", action="store_true",
                   help="train and validate through the bundle's one-level-per-object step (session 41)")
    t.add_argument("--object_pool", action="store_true",
                   help="the refiner's head also reads each object's mean features (session 42)")
    t.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.command == "pool":
        torch.set_num_threads(1)
        options = {k: getattr(args, k) for k in POOL_OPTIONS if getattr(args, k) is not None}
        make_pool(args.out, seed=args.seed, start=args.start, n=args.n, last_stage=args.last_stage,
                  model_path=args.model_path, lifts=tuple(args.lifts), **options)
        return
    if args.command == "chain":
        torch.set_num_threads(1)
        chain_pool(args.pool, args.refiner, args.out, lifts=tuple(args.lifts))
        return
    torch.set_num_threads(args.threads)
    best = train_refiner(args.pool, args.val, args.out, max_steps=args.steps, val_every=args.val_every,
                         batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                         precision=args.precision, accelerator=args.accelerator, devices=args.devices,
                         lifts=tuple(args.lifts), residual=args.residual, channels_last=args.channels_last,
                         object_step=args.object_step, object_pool=args.object_pool)
    print(f"best val_nmae {best:.4f} → {args.out}")


if __name__ == "__main__":
    main()

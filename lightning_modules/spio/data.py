"""Simulated View Line training data: random samples, a cached sample pool, and the Lightning DataModule.

Each sample is a random phantom (MNI T1 slice or agar disk, 1–5 SPIO metaballs / tori / cylinders of
0.22–27.9 µg Fe/mm³, sometimes an air bubble as a confounder) run through the View Line simulator at a random
SNR (della Maggiora et al., "DeepSPIO", IEEE TPAMI 2020, §3.2). Sample ``i`` of a seed is reproducible on its
own (its random generator is seeded by ``(seed, i)``). On one CPU core simulating a batch costs about a quarter
of a training step, every epoch, so CPU training draws from a fixed pool of simulated samples (cached on disk,
not in git) with a random x flip (the acquisition is symmetric under x → −x); ``pool_size=0`` simulates every
batch afresh instead.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.auxiliary import auxiliary_targets
from lightning_modules.spio.families import ellipsoids_of_random_extent, other_family_sample, tube_phantom_sample
from lightning_modules.spio.phantoms import (
    augment_base,
    head_anatomy,
    random_base,
    random_concentration,
    rim_contrast,
    sphere,
    varied_concentration,
)
from lightning_modules.spio.viewline import NOISE_MODELS, simulate_viewline_with_field

#: Training SNR range in dB (uniform), and the probability of a noise-free sample.
SNR_RANGE_DB = (5.0, 30.0)
#: The noise models a sample may get instead of the complex one (``noise_models``, session 33).
OTHER_NOISE_MODELS = tuple(model for model in NOISE_MODELS if model != "complex")
P_NOISE_FREE = 0.1
#: Probability that a sample holds an air bubble (ρ = 0, χ_air − χ_tissue) next to the SPIO.
P_AIR_BUBBLE = 0.2


def random_sample(seed: int, index: int, *, base_augmentation: float = 0.0, head_bases: float = 0.0,
                  rim_bases: float = 0.0, shape_variety: float = 0.0, other_families: float = 0.0,
                  tube_phantoms: float = 0.0, extent_family: float = 0.0,
                  noise_free_fraction: float = P_NOISE_FREE,
                  noise_models: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulated sample ``index`` of ``seed``: View Line image (2, 128, 128) and concentration (1, 128, 128).

    The image is in the units of the spin density (tissue ≈ 1); concentration in µg Fe/mm³.
    """
    image, concentration, _ = random_sample_with_snr(seed, index, base_augmentation=base_augmentation,
                                                     head_bases=head_bases, rim_bases=rim_bases,
                                                     shape_variety=shape_variety, other_families=other_families,
                                                     tube_phantoms=tube_phantoms, extent_family=extent_family,
                                                     noise_free_fraction=noise_free_fraction,
                                                     noise_models=noise_models)
    return image, concentration


def random_sample_with_snr(seed: int, index: int, *, base_augmentation: float = 0.0, head_bases: float = 0.0,
                           rim_bases: float = 0.0, shape_variety: float = 0.0, other_families: float = 0.0,
                           tube_phantoms: float = 0.0, extent_family: float = 0.0,
                           base: Callable[[np.random.Generator], torch.Tensor] = random_base,
                           noise_free_fraction: float = P_NOISE_FREE, snr_db: float | None = None,
                           noise_models: float = 0.0, noise_model: str | None = None,
                           object_families: tuple[str, ...] | None = None,
                           ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """:func:`random_sample` plus the sample's SNR in dB (``math.inf`` for a noise-free sample).

    Args:
        base_augmentation: probability that the base image's intensity is changed
            (:func:`~lightning_modules.spio.phantoms.augment_base`, from a random stream of its own, so 0 gives
            exactly the plain samples).
        head_bases: probability that the base image gets a real head's anatomy (skull and scalp layers, vessels,
            texture: :func:`~lightning_modules.spio.phantoms.head_anatomy`), from a random stream of its own (0
            gives exactly the plain samples).
        rim_bases: probability that the base image gets a bright thin rim and a dim interior
            (:func:`~lightning_modules.spio.phantoms.rim_contrast`), from a random stream of its own (0 gives
            exactly the plain samples).
        shape_variety: probability that the sample's objects come from five shape families instead of three
            (:func:`~lightning_modules.spio.phantoms.varied_concentration`: capsules and multi-level metaballs
            besides metaballs, tori and cylinders), from a random stream of its own (0 gives exactly the plain
            samples; the base, air bubble and noise of a changed sample stay those of the plain one).
        other_families: probability that the sample's base and objects come instead from the generator variants'
            families (:func:`~lightning_modules.spio.families.other_family_sample`: Shepp–Logan and ellipse bases
            with ellipsoids and touching chains, vial phantoms and organs with vials, clusters and boxes; issue 24,
            session 36), from a random stream of its own (0 gives exactly the plain samples; the air bubble and
            noise are drawn as for the plain one).
        tube_phantoms: probability that the sample's base and objects come instead from a bench phantom of tubes
            along y (:func:`~lightning_modules.spio.families.tube_phantom_sample`; session 37, the ``tubes`` shape
            prior's training family), from a random stream of its own (0 gives exactly the plain samples; drawn
            after ``other_families``, so it wins when both apply).
        extent_family: probability that the sample's objects are instead ellipsoids whose extent along y varies
            independently of their section in the plane
            (:func:`~lightning_modules.spio.families.ellipsoids_of_random_extent`; issue 24, session 40), from a
            random stream of its own (0 gives exactly the plain samples; the base, air bubble and noise of a changed
            sample are drawn as for the plain one; drawn after ``shape_variety``, before the families above).
        base: draws the spin density (x, z) from the sample's random generator; the default is training's
            (an MNI slice or an agar disk); benchmarks pass others (e.g. real subjects' slices).
        noise_free_fraction: probability of a noise-free sample (else the SNR is uniform in ``SNR_RANGE_DB``). It
            thresholds the same random draw, so the default gives exactly the samples every earlier run saw, and
            a larger value turns some noisy samples noise-free while leaving every other part of them unchanged.
        snr_db: if given, the sample's SNR (dB; ``math.inf`` for none) instead of the drawn one, everything else
            unchanged: the same images at a fixed SNR, for paired comparisons per SNR (benchmarks).
        noise_models: probability that a noisy sample's noise is another model than training's complex (Rician)
            noise, drawn uniformly from ``magnitude`` and ``sos4`` (:data:`~lightning_modules.spio.viewline.
            NOISE_MODELS`; session 33), from a random stream of its own (0 gives exactly the plain samples; the
            ``magnitude`` model draws the same numbers as the complex one).
        noise_model: if given, every noisy sample's noise model (benchmarks: the same samples under another model).
        object_families: if given, the shape families the sample's objects are drawn from instead of training's
            (:data:`~lightning_modules.spio.phantoms.SHAPES`; benchmarks: e.g. ``("metaball",)``, blobs only).
    """
    image, concentration, snr_db, _ = _simulate(seed, index, base_augmentation=base_augmentation,
                                                head_bases=head_bases, rim_bases=rim_bases,
                                                shape_variety=shape_variety, other_families=other_families,
                                                tube_phantoms=tube_phantoms, extent_family=extent_family, base=base,
                                                noise_free_fraction=noise_free_fraction, fixed_snr_db=snr_db,
                                                noise_models=noise_models, noise_model=noise_model,
                                                object_families=object_families)
    return image, concentration, snr_db


def random_sample_with_targets(seed: int, index: int, *, base_augmentation: float = 0.0, head_bases: float = 0.0,
                               rim_bases: float = 0.0, shape_variety: float = 0.0, other_families: float = 0.0,
                               tube_phantoms: float = 0.0, extent_family: float = 0.0,
                               noise_free_fraction: float = P_NOISE_FREE, noise_models: float = 0.0,
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`random_sample` plus the auxiliary targets of the same sample (2, 64, 64): the plane's field and the
    iron's extent along y (:func:`~lightning_modules.spio.auxiliary.auxiliary_targets`)."""
    image, concentration, _, targets = _simulate(seed, index, base_augmentation=base_augmentation,
                                                 head_bases=head_bases, rim_bases=rim_bases,
                                                 shape_variety=shape_variety, other_families=other_families,
                                                 tube_phantoms=tube_phantoms, extent_family=extent_family,
                                                 base=random_base, with_targets=True,
                                                 noise_free_fraction=noise_free_fraction, noise_models=noise_models)
    return image, concentration, targets


def _simulate(seed: int, index: int, *, base_augmentation: float, head_bases: float, rim_bases: float,
              shape_variety: float, other_families: float, base: Callable[[np.random.Generator], torch.Tensor],
              tube_phantoms: float = 0.0, extent_family: float = 0.0,
              with_targets: bool = False,
              noise_free_fraction: float = P_NOISE_FREE, fixed_snr_db: float | None = None,
              noise_models: float = 0.0, noise_model: str | None = None,
              object_families: tuple[str, ...] | None = None,
              ) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor | None]:
    """Sample ``index`` of ``seed``: image, plane concentration, SNR and (``with_targets``) auxiliary targets."""
    rng = np.random.default_rng([int(seed), int(index)])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rho = base(rng) * float(rng.uniform(0.5, 2.0))
    # each base-image change draws from a random stream of its own, so probability 0 leaves the plain sample
    for probability, stream, change in ((base_augmentation, 31, augment_base), (rim_bases, 53, rim_contrast),
                                        (head_bases, 47, head_anatomy)):
        if probability > 0:
            change_rng = np.random.default_rng([int(seed), int(index), stream])
            if change_rng.random() < probability:
                rho = change(rho, change_rng)
    # drawn always, so later draws match the plain sample
    concentration = (random_concentration(rng, rho) if object_families is None
                     else random_concentration(rng, rho, families=object_families))
    if shape_variety > 0:
        shape_rng = np.random.default_rng([int(seed), int(index), 59])
        if shape_rng.random() < shape_variety:
            concentration = varied_concentration(shape_rng, rho)
    if extent_family > 0:
        extent_rng = np.random.default_rng([int(seed), int(index), 89])
        if extent_rng.random() < extent_family:
            concentration = ellipsoids_of_random_extent(extent_rng, rho)
    # other families replace base and objects, each on a random stream of its own (tube phantoms win when both apply)
    for probability, stream, family in ((other_families, 67, other_family_sample),
                                        (tube_phantoms, 71, tube_phantom_sample)):
        if probability > 0:
            family_rng = np.random.default_rng([int(seed), int(index), stream])
            if family_rng.random() < probability:
                rho, concentration = family(family_rng)
    extra_chi = None
    if rng.random() < P_AIR_BUBBLE:
        tissue = torch.nonzero(rho > 0.2 * rho.max())
        i, k = tissue[rng.integers(len(tissue))].tolist()
        nx, nz = acq.VIEWLINE_MATRIX
        fov_x, fov_z = acq.VIEWLINE_FOV_MM
        centre = ((i + 0.5 - nx / 2) * fov_x / nx, 0.0, (k + 0.5 - nz / 2) * fov_z / nz)
        bubble = sphere(centre, float(rng.uniform(1.5, 4.0))) & (concentration == 0)
        extra_chi = bubble.float() * acq.AIR_MINUS_TISSUE_CHI_SI
        rho = torch.where(bubble[:, bubble.shape[1] // 2, :], torch.zeros(()), rho)
    snr_db = math.inf if rng.random() < noise_free_fraction else float(rng.uniform(*SNR_RANGE_DB))
    if fixed_snr_db is not None:
        snr_db = float(fixed_snr_db)
    if noise_model is None:
        noise_model = "complex"
        if noise_models > 0:
            noise_rng = np.random.default_rng([int(seed), int(index), 61])
            if noise_rng.random() < noise_models:
                noise_model = OTHER_NOISE_MODELS[int(noise_rng.integers(len(OTHER_NOISE_MODELS)))]
    image, plane, delta_b = simulate_viewline_with_field(rho, concentration, snr_db=snr_db,
                                                         extra_chi_si_3d=extra_chi, generator=generator,
                                                         noise_model=noise_model)
    targets = auxiliary_targets(delta_b, concentration) if with_targets else None
    return image.float(), plane[None].float(), snr_db, targets


def simulate_pool(seed: int, n_samples: int, *, cache_dir: str | os.PathLike | None = None,
                  log_every: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``0 … n_samples−1`` of ``seed`` stacked as float16 tensors, cached in ``cache_dir`` if given.

    A cached smaller pool of the same seed is reused and extended (sample ``i`` does not depend on the pool size).
    """
    path = Path(cache_dir) / f"spio_pool_seed{seed}_n{n_samples}.pt" if cache_dir else None
    if path is not None and path.is_file():
        pool = torch.load(path, weights_only=True)
        return pool["images"], pool["concentrations"]
    images = torch.empty(n_samples, 2, *acq.VIEWLINE_MATRIX, dtype=torch.float16)
    concentrations = torch.empty(n_samples, 1, *acq.VIEWLINE_MATRIX, dtype=torch.float16)
    start = 0
    smaller = _largest_cached_pool(cache_dir, seed, n_samples)
    if smaller is not None:
        pool = torch.load(smaller, weights_only=True)
        start = len(pool["images"])
        images[:start], concentrations[:start] = pool["images"], pool["concentrations"]
    for i in range(start, n_samples):
        images[i], concentrations[i] = random_sample(seed, i)
        if log_every and (i + 1) % log_every == 0:
            print(f"simulated {i + 1}/{n_samples} View Line samples (seed {seed})", flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"images": images, "concentrations": concentrations}, tmp)
        os.replace(tmp, path)
    return images, concentrations


def _largest_cached_pool(cache_dir: str | os.PathLike | None, seed: int, below: int) -> Path | None:
    """The cached pool of ``seed`` with the most samples, fewer than ``below``, or None."""
    if not cache_dir or not Path(cache_dir).is_dir():
        return None
    sizes = {}
    for candidate in Path(cache_dir).glob(f"spio_pool_seed{seed}_n*.pt"):
        n = candidate.stem.rsplit("_n", 1)[1]
        if n.isdigit() and int(n) < below:
            sizes[int(n)] = candidate
    return sizes[max(sizes)] if sizes else None


class PoolDataset(Dataset):
    """A fixed set of simulated samples, optionally with a random x flip (training augmentation)."""

    def __init__(self, images: torch.Tensor, concentrations: torch.Tensor, *, flip: bool = False) -> None:
        self.images, self.concentrations, self.flip = images, concentrations, flip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, concentration = self.images[i].float(), self.concentrations[i].float()
        if self.flip and torch.rand(()) < 0.5:
            image, concentration = image.flip(-2), concentration.flip(-2)
        return image, concentration


class OnTheFlyDataset(IterableDataset):
    """Fresh samples of ``seed`` every epoch (for GPU runs with data-loader workers), split across ranks and workers.

    Each epoch draws the next block of sample indices; the block is cut into equal runs, one per rank and worker,
    of a whole number of batches: no sample recurs, no two ranks or workers draw the same sample, and every rank
    sees the same number of full batches (its length). The epoch counts the calls of :meth:`__iter__` on this
    copy, so with workers the data loader must keep them alive between epochs (``persistent_workers=True``, as
    :class:`ViewLineDataModule` does); fresh worker copies would restart at epoch 0.

    Args:
        seed: seed of the samples (:func:`random_sample`).
        samples_per_epoch: samples per epoch over all ranks (rounded up to whole batches per rank and worker).
        batch_size, n_workers: the data loader's batch size and workers (0 counts as 1).
        rank, world_size: this process's global rank and the number of processes (``Trainer.global_rank``,
            ``Trainer.world_size``; Lightning's own launcher does not export ``RANK``).
        base_augmentation: probability of an intensity-augmented base image (:func:`random_sample`).
        head_bases: probability of a base image with a real head's anatomy (:func:`random_sample`).
        rim_bases: probability of a base image with a bright thin rim and a dim interior (:func:`random_sample`).
        shape_variety: probability of objects from five shape families instead of three (:func:`random_sample`).
        other_families: probability of a base and objects from the generator variants' families (:func:`random_sample`).
        tube_phantoms: probability of a bench phantom of tubes along y (:func:`random_sample`).
        extent_family: probability of ellipsoids of random extent along y as the objects (:func:`random_sample`).
        with_targets: yield ``(image, concentration, auxiliary targets)``
            (:func:`random_sample_with_targets`) instead of pairs; the image and map are the same.
        noise_free_fraction: probability of a noise-free sample (:func:`random_sample_with_snr`).
        noise_models: probability of another noise model than the complex one (:func:`random_sample_with_snr`).
    """

    def __init__(self, seed: int, *, samples_per_epoch: int, batch_size: int = 1, n_workers: int = 1,
                 rank: int = 0, world_size: int = 1, base_augmentation: float = 0.0, head_bases: float = 0.0,
                 rim_bases: float = 0.0, shape_variety: float = 0.0, other_families: float = 0.0,
                 tube_phantoms: float = 0.0, extent_family: float = 0.0,
                 with_targets: bool = False,
                 noise_free_fraction: float = P_NOISE_FREE, noise_models: float = 0.0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0 … {world_size - 1}")
        self.seed, self.rank, self.world_size, self.n_workers = seed, rank, world_size, max(n_workers, 1)
        self.base_augmentation, self.head_bases, self.with_targets = base_augmentation, head_bases, with_targets
        self.noise_free_fraction, self.rim_bases, self.shape_variety = noise_free_fraction, rim_bases, shape_variety
        self.noise_models, self.other_families, self.tube_phantoms = noise_models, other_families, tube_phantoms
        self.extent_family = extent_family
        runs = world_size * self.n_workers
        self.per_worker = math.ceil(samples_per_epoch / (runs * batch_size)) * batch_size
        self.epoch = 0

    def __len__(self) -> int:
        """Samples this rank draws per epoch."""
        return self.per_worker * self.n_workers

    def indices(self, epoch: int, worker: int = 0) -> range:
        """The sample indices that worker ``worker`` of this rank draws in ``epoch``."""
        run = (epoch * self.world_size + self.rank) * self.n_workers + worker
        return range(run * self.per_worker, (run + 1) * self.per_worker)

    def __iter__(self):
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        if n_workers != self.n_workers:
            raise RuntimeError(f"OnTheFlyDataset was built for {self.n_workers} loader worker(s) but runs in "
                               f"{n_workers}")
        epoch, self.epoch = self.epoch, self.epoch + 1
        sample = random_sample_with_targets if self.with_targets else random_sample
        for index in self.indices(epoch, worker):
            yield sample(self.seed, index, base_augmentation=self.base_augmentation, head_bases=self.head_bases,
                         rim_bases=self.rim_bases, shape_variety=self.shape_variety,
                         other_families=self.other_families, tube_phantoms=self.tube_phantoms,
                         extent_family=self.extent_family, noise_free_fraction=self.noise_free_fraction,
                         noise_models=self.noise_models)


class ViewLineDataModule(pl.LightningDataModule):
    """Training data for DeepSPIO: simulated samples (pool or on the fly) and a fixed validation set.

    Args:
        seed: seed of the training samples; validation uses ``seed + 1`` so the two never coincide.
        pool_size: training samples simulated once (and cached); 0 → fresh samples every epoch.
        samples_per_epoch: samples per epoch when ``pool_size`` is 0 (over all ranks; rounded up to whole batches
            per rank and worker).
        n_val: validation samples.
        batch_size: batch size.
        num_workers: data-loader workers.
        cache_dir: folder for the cached pools (None: no cache).
        base_augmentation: probability of an intensity-augmented base image in the fresh training samples
            (``pool_size`` 0 only; validation always uses the plain generator).
        head_bases: probability of a base image with a real head's anatomy in the fresh training samples
            (:func:`random_sample`; ``pool_size`` 0 only).
        rim_bases: probability of a base image with a bright thin rim and a dim interior in the fresh training
            samples (:func:`random_sample`; ``pool_size`` 0 only).
        shape_variety: probability of objects from five shape families instead of three in the fresh training
            samples (:func:`random_sample`; ``pool_size`` 0 only).
        other_families: probability of a base and objects from the generator variants' families in the fresh
            training samples (:func:`random_sample`; ``pool_size`` 0 only; validation stays training's generator).
        tube_phantoms: probability of a bench phantom of tubes along y in the fresh training samples
            (:func:`random_sample`; ``pool_size`` 0 only; validation stays training's generator).
        extent_family: probability of ellipsoids of random extent along y as the objects of a fresh training sample
            (:func:`random_sample`; ``pool_size`` 0 only; validation stays training's generator).
        auxiliary_targets: training batches also carry the auxiliary targets (field, extent along y;
            ``pool_size`` 0 only); validation batches stay ``(image, concentration)``.
        noise_free_fraction: probability of a noise-free sample in the fresh training samples (``pool_size`` 0
            only; validation keeps :data:`P_NOISE_FREE`, so validation NMAE means the same in every run).
        noise_models: probability that a fresh training sample's noise is another model than the complex one
            (:func:`random_sample_with_snr`, session 33; ``pool_size`` 0 only; validation stays complex).
    """

    def __init__(self, *, seed: int = 0, pool_size: int = 6000, samples_per_epoch: int = 4000, n_val: int = 64,
                 batch_size: int = 16, num_workers: int = 0, cache_dir: str | None = None,
                 base_augmentation: float = 0.0, head_bases: float = 0.0, auxiliary_targets: bool = False,
                 noise_free_fraction: float = P_NOISE_FREE, rim_bases: float = 0.0,
                 shape_variety: float = 0.0, other_families: float = 0.0,
                 tube_phantoms: float = 0.0, noise_models: float = 0.0, extent_family: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= noise_free_fraction <= 1.0:
            raise ValueError(f"noise_free_fraction must be in [0, 1], got {noise_free_fraction}")
        plain = (not (base_augmentation or head_bases or rim_bases or shape_variety or other_families or tube_phantoms
                      or extent_family or auxiliary_targets or noise_models) and noise_free_fraction == P_NOISE_FREE)
        if not plain and pool_size > 0:
            raise ValueError("base_augmentation, head_bases, rim_bases, shape_variety, other_families, tube_phantoms, "
                             "extent_family, auxiliary_targets, noise_free_fraction and noise_models need fresh "
                             "samples (pool_size 0); the cached pools are plain")
        self.base_augmentation, self.head_bases, self.rim_bases = base_augmentation, head_bases, rim_bases
        self.shape_variety, self.noise_models, self.other_families = shape_variety, noise_models, other_families
        self.tube_phantoms, self.extent_family = tube_phantoms, extent_family
        self.auxiliary_targets, self.noise_free_fraction = bool(auxiliary_targets), noise_free_fraction
        self.seed, self.pool_size, self.samples_per_epoch = seed, pool_size, samples_per_epoch
        self.n_val, self.batch_size, self.num_workers, self.cache_dir = n_val, batch_size, num_workers, cache_dir
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.val_set is None:
            self.val_set = PoolDataset(*simulate_pool(self.seed + 1, self.n_val, cache_dir=self.cache_dir))
        if self.train_set is None:
            if self.pool_size > 0:
                self.train_set = PoolDataset(*simulate_pool(self.seed, self.pool_size, cache_dir=self.cache_dir),
                                             flip=True)
            else:
                rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
                self.train_set = OnTheFlyDataset(self.seed, samples_per_epoch=self.samples_per_epoch,
                                                 batch_size=self.batch_size, n_workers=self.num_workers, rank=rank,
                                                 world_size=world_size, base_augmentation=self.base_augmentation,
                                                 head_bases=self.head_bases, rim_bases=self.rim_bases,
                                                 shape_variety=self.shape_variety, other_families=self.other_families,
                                                 tube_phantoms=self.tube_phantoms, extent_family=self.extent_family,
                                                 with_targets=self.auxiliary_targets,
                                                 noise_free_fraction=self.noise_free_fraction,
                                                 noise_models=self.noise_models)

    def train_dataloader(self) -> DataLoader:
        shuffle = isinstance(self.train_set, PoolDataset)
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=shuffle, generator=generator,
                          num_workers=self.num_workers, drop_last=shuffle,
                          persistent_workers=not shuffle and self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)

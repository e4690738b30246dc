"""Simulated training data for learned dipole inversion, as a map-style Dataset and a LightningDataModule.

Every sample is drawn from its own seed ``(seed, index)``, so a run is reproducible and workers need no shared
state. A sample is a dict of float32 tensors: ``field`` (ppm), ``chi`` (ppm), ``mask`` (0/1) on an (n, n, n)
grid, and ``kernel``, the half-spectrum dipole kernel of that sample's voxel size and B0 direction.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_modules.bundle_app import parse_flag
from lightning_modules.physics.dipole import dipole_kernel
from lightning_modules.qsm.simulate import random_training_case


class SimulatedQsmDataset(Dataset):
    """``n_samples`` random brain-like cases of ``patch_size``³ voxels (see ``random_training_case``); a given
    ``voxel_size_mm`` / ``b0_direction`` fixes that part of the geometry (else it is random per sample);
    ``min_noise_ppm``, ``enclosed``, ``large_shapes``, ``phantom_fraction`` and ``sources_fraction`` are passed on to
    ``random_training_case``."""

    def __init__(
        self, *, n_samples: int, patch_size: int = 32, seed: int = 0, voxel_size_mm: list[float] | None = None,
        b0_direction: list[float] | None = None, min_noise_ppm: float = 0.0, enclosed: bool = False,
        large_shapes: bool = False, phantom_fraction: float = 0.0, sources_fraction: float = 0.0,
    ) -> None:
        self.phantom_fraction, self.sources_fraction = float(phantom_fraction), float(sources_fraction)
        if self.phantom_fraction < 0 or self.sources_fraction < 0 or self.phantom_fraction + self.sources_fraction > 1:
            raise ValueError("phantom_fraction and sources_fraction must be ≥ 0 with a sum ≤ 1; "
                             f"got {phantom_fraction} and {sources_fraction}")
        self.n_samples, self.patch_size, self.seed = int(n_samples), int(patch_size), int(seed)
        self.voxel_size_mm, self.b0_direction = voxel_size_mm, b0_direction
        self.min_noise_ppm = float(min_noise_ppm)
        self.enclosed, self.large_shapes = _flag("enclosed", enclosed), _flag("large_shapes", large_shapes)

    def __len__(self) -> int:
        return self.n_samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        shape = (self.patch_size,) * 3
        case = random_training_case(shape, rng, voxel_size_mm=self.voxel_size_mm, b0_direction=self.b0_direction,
                                    min_noise_ppm=self.min_noise_ppm, enclosed=self.enclosed,
                                    large_shapes=self.large_shapes, phantom_fraction=self.phantom_fraction,
                                    sources_fraction=self.sources_fraction)
        return {
            "field": torch.as_tensor(case.field_ppm, dtype=torch.float32),
            "chi": torch.as_tensor(case.chi_ppm, dtype=torch.float32),
            "mask": torch.as_tensor(case.mask, dtype=torch.float32),
            "kernel": dipole_kernel(shape, case.voxel_size_mm, case.b0_direction),
        }


def _flag(name: str, value: object) -> bool:
    flag = parse_flag(value)
    if not isinstance(flag, bool):
        raise ValueError(f"{name} must be true or false; got {value!r}")
    return flag


class SimulatedQsmDataModule(pl.LightningDataModule):
    """Training samples drawn afresh (a new seed range per run, ``train_samples`` of them) and a fixed
    validation set (``val_samples``, seed ``seed + 1``)."""

    def __init__(
        self, *, train_samples: int = 20000, val_samples: int = 16, patch_size: int = 32, batch_size: int = 4,
        num_workers: int = 0, seed: int = 0, voxel_size_mm: list[float] | None = None,
        b0_direction: list[float] | None = None, min_noise_ppm: float = 0.0, enclosed: bool = False,
        large_shapes: bool = False, phantom_fraction: float = 0.0, sources_fraction: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        geometry = {"patch_size": patch_size, "voxel_size_mm": voxel_size_mm, "b0_direction": b0_direction,
                    "min_noise_ppm": min_noise_ppm, "enclosed": enclosed, "large_shapes": large_shapes,
                    "phantom_fraction": phantom_fraction, "sources_fraction": sources_fraction}
        self.train_set = SimulatedQsmDataset(n_samples=train_samples, seed=seed, **geometry)
        self.val_set = SimulatedQsmDataset(n_samples=val_samples, seed=seed + 1, **geometry)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.hparams.seed))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size, num_workers=0)

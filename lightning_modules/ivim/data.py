"""Lightning DataModule of IVIM-NET: a study's voxels × b-values matrix, or simulated signals for pre-training.

As the IVIM-NET authors recommend (Kaandorp et al. 2021), all voxels of a study form one 2-D matrix; an epoch is
a fixed number of random batches (IVIM-NET_optim's 500), so early-stopping patience means the same amount of
training whatever the study size, and a held-out random fraction is the validation split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from lightning_modules.ivim.simulate import simulate_ivim


class IvimDataModule(pl.LightningDataModule):
    """Normalised signals for self-supervised IVIM-NET training.

    Args:
        signals: ``(n_voxels, n_b)`` signals divided by S(b_min) (the fit-to-study mode); None to simulate.
        b_values_s_per_mm2: b-values, needed to simulate.
        model: model of the simulated signals.
        n_simulated: number of simulated signals.
        snr_range: (low, high) SNR of the simulated signals.
        batch_size: voxels per batch (IVIM-NET: 128; 256 halves the per-step overhead on CPU).
        batches_per_epoch: random batches per training epoch (250 × 256 = IVIM-NET_optim's 500 × 128 voxels).
        val_fraction: fraction of voxels held out for validation.
        max_val_voxels: cap on the validation set size (keeps validation quick on large studies).
        seed: random seed of the split, the sampling and the simulation.
    """

    def __init__(
        self, signals: np.ndarray | None = None, *, b_values_s_per_mm2: Sequence[float] | None = None,
        model: str = "biexp", n_simulated: int = 200_000, snr_range: tuple[float, float] = (10.0, 100.0),
        batch_size: int = 256, batches_per_epoch: int = 250, val_fraction: float = 0.1,
        max_val_voxels: int = 20_000, seed: int = 0,
    ) -> None:
        super().__init__()
        self.signals = signals
        self.b_values = b_values_s_per_mm2
        self.model = model
        self.n_simulated = int(n_simulated)
        self.snr_range = tuple(snr_range)
        self.batch_size = int(batch_size)
        self.batches_per_epoch = int(batches_per_epoch)
        self.val_fraction = float(val_fraction)
        self.max_val_voxels = int(max_val_voxels)
        self.seed = int(seed)

    def setup(self, stage: str | None = None) -> None:
        signals = self.signals
        if signals is None:
            signals, _ = simulate_ivim(self.b_values, self.n_simulated, model=self.model, snr=self.snr_range,
                                       seed=self.seed)
        signals = torch.as_tensor(np.asarray(signals), dtype=torch.float32)
        order = torch.randperm(signals.shape[0], generator=torch.Generator().manual_seed(self.seed))
        n_val = min(max(1, int(self.val_fraction * signals.shape[0])), self.max_val_voxels)
        self.val_set = TensorDataset(signals[order[:n_val]])
        self.train_set = TensorDataset(signals[order[n_val:]])

    def train_dataloader(self) -> DataLoader:
        sampler = RandomSampler(self.train_set, replacement=True,
                                num_samples=self.batches_per_epoch * self.batch_size,
                                generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=4096)

"""LightningModule that trains a learned dipole inversion network (e.g. learned NDI) on simulated cases."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn


class LearnedInversionModule(pl.LightningModule):
    """Supervised training of ``network(field, kernel, mask) -> χ`` on the error inside the mask.

    Args:
        network: the inversion network (the bundle's ``network_def``), e.g.
            :class:`lightning_modules.qsm.learned_ndi.LearnedNdi`.
        learning_rate: Adam learning rate.
        l2_weight: weight of an additional L2 term (0: pure L1).
        loss: ``"l1"`` (mean absolute error in ppm, plus the L2 term) or ``"nrmse"`` (the batch mean of each
            case's NRMSE, the metric the benchmarks report; every case counts alike whatever its χ range).
        init_weights: a network ``state_dict`` file to start from (fine-tuning), or None.
    """

    def __init__(
        self, network: nn.Module, *, learning_rate: float = 1e-3, l2_weight: float = 0.0, loss: str = "l1",
        init_weights: str | None = None,
    ) -> None:
        super().__init__()
        if loss not in ("l1", "nrmse"):
            raise ValueError(f"loss must be 'l1' or 'nrmse'; got {loss!r}")
        if init_weights:
            network.load_state_dict(torch.load(init_weights, map_location="cpu", weights_only=True))
        self.network = network
        self.learning_rate = float(learning_rate)
        self.l2_weight = float(l2_weight)
        self.loss = loss

    def forward(self, field: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.network(field, kernel, mask)

    def _errors(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        chi = self(batch["field"], batch["kernel"], batch["mask"])
        error = (chi - batch["chi"]) * batch["mask"]
        voxels = batch["mask"].sum().clamp_min(1.0)
        dims = (-3, -2, -1)
        nrmse = error.pow(2).sum(dims).sqrt() / (batch["chi"] * batch["mask"]).pow(2).sum(dims).sqrt().clamp_min(1e-9)
        if self.loss == "nrmse":
            return nrmse.mean(), nrmse.mean()
        loss = error.abs().sum() / voxels + self.l2_weight * error.pow(2).sum() / voxels
        return loss, nrmse.mean()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, nrmse = self._errors(batch)
        self.log("train_loss", loss, prog_bar=True)
        self.log("train_nrmse", nrmse)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, nrmse = self._errors(batch)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)
        self.log("val_nrmse", nrmse, prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)

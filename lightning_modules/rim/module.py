"""LightningModule training QSMRim-Net on cached lesions, and the callback that ships the best weights.

Loss: binary cross-entropy on the rim+ logit of every lesion of the batch plus the rim+ samples DeepSMOTE
interpolates in feature space (Dablain et al. 2022; Zhang et al., NeuroImage: Clinical 2022). Validation
reports lesion-level ROC AUC, partial AUC (FPR < 0.1) and PR AUC; the operating threshold (F1-optimal on the
validation lesions) is written into the network's ``threshold`` buffer when the weights are saved.
"""

from __future__ import annotations

import os

import numpy as np
import pytorch_lightning as pl
import torch
from torch.nn import functional as F

from lightning_modules.rim.data import augment_patches
from lightning_modules.rim.networks import QsmRimNet
from lightning_modules.rim.scores import best_f1_threshold, pr_auc, roc_auc
from lightning_modules.rim.scores import partial_roc_auc as pauc
from lightning_modules.training import SaveBestNetwork, gather_ranks, save_state_dict


class RimNetModule(pl.LightningModule):
    """Trains :class:`QsmRimNet` (the bundle's ``network_def``).

    Args:
        network: the network.
        learning_rate: AdamW learning rate (cosine decay over the run).
        weight_decay: AdamW weight decay.
        augment: random flips / axial 90° turns of the training patches.
        init_weights: a network ``state_dict`` file to start from (fine-tuning), or None.
        flair_jitter: the FLAIR channel of each training patch is multiplied by a factor drawn uniformly in
            ``1 ± flair_jitter`` (0: off), so that the network does not lean on the simulator's FLAIR scale.
    """

    def __init__(self, *, network: QsmRimNet, learning_rate: float = 1e-3, weight_decay: float = 1e-3,
                 augment: bool = True, init_weights: str | None = None, flair_jitter: float = 0.0) -> None:
        super().__init__()
        if init_weights:
            network.load_state_dict(torch.load(init_weights, map_location="cpu", weights_only=True))
        self.network = network
        self.learning_rate, self.weight_decay, self.augment = learning_rate, weight_decay, augment
        self.flair_jitter = float(flair_jitter)
        self._val_scores: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []
        self.val_probabilities: np.ndarray | None = None
        self.val_labels: np.ndarray | None = None

    def forward(self, patches: torch.Tensor, radiomics: torch.Tensor) -> torch.Tensor:
        return self.network(patches, radiomics)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        patches, radiomics, labels = batch
        if self.augment:
            patches = augment_patches(patches)
        if self.flair_jitter > 0:
            factor = 1 + self.flair_jitter * (2 * torch.rand(len(patches), device=patches.device) - 1)
            patches = torch.cat([patches[:, :1], patches[:, 1:2] * factor[:, None, None, None, None],
                                 patches[:, 2:]], dim=1)
        logits, targets = self.network(patches, radiomics, labels)
        loss = F.binary_cross_entropy_with_logits(logits, targets)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train_samples", float(len(targets)), on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        patches, radiomics, labels = batch
        self._val_scores.append(torch.sigmoid(self.network(patches, radiomics)).detach().cpu())
        self._val_labels.append(labels.cpu())

    def on_validation_epoch_end(self) -> None:
        # the whole validation set, also under DDP
        scores, labels = (gather_ranks(self, torch.cat(parts)).flatten().numpy()
                          for parts in (self._val_scores, self._val_labels))
        self._val_scores.clear()
        self._val_labels.clear()
        self.val_probabilities, self.val_labels = scores, labels
        if labels.min() == labels.max():
            return
        self.log("val_roc_auc", roc_auc(labels, scores), prog_bar=True)
        self.log("val_pauc", pauc(labels, scores))
        self.log("val_pr_auc", pr_auc(labels, scores), prog_bar=True)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(self.trainer.max_epochs, 1))
        return {"optimizer": optimizer, "lr_scheduler": schedule}


class SaveBestRimNet(SaveBestNetwork):
    """Writes the network's ``state_dict`` (with the F1-optimal validation threshold) whenever ``monitor`` improves.

    Ties of ``monitor`` (e.g. several epochs at PR AUC 1.0) are broken by the validation ROC AUC; higher is better.
    """

    def __init__(self, path: str | os.PathLike, *, monitor: str = "val_pr_auc") -> None:
        super().__init__(path, monitor=monitor)
        self.best: tuple[float, float] = (-np.inf, -np.inf)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if trainer.sanity_checking or self.monitor not in metrics or not trainer.is_global_zero:
            return
        value = (float(metrics[self.monitor]), float(metrics.get("val_roc_auc", 0.0)))
        if value <= self.best:
            return
        self.best = value
        threshold, f1 = best_f1_threshold(pl_module.val_labels, pl_module.val_probabilities)
        pl_module.network.threshold.fill_(threshold)
        self.best_state = {k: v.detach().cpu().clone() for k, v in pl_module.network.state_dict().items()}
        save_state_dict(self.best_state, self.path)
        print(f"epoch {trainer.current_epoch}: {self.monitor} {value[0]:.4f} (ROC AUC {value[1]:.4f}), "
              f"threshold {threshold:.3f} (F1 {f1:.3f}), wrote {self.path}", flush=True)

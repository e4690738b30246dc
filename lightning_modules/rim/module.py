"""LightningModule training QSMRim-Net on cached lesions.

Loss: binary cross-entropy on the rim+ logit of every lesion of the batch plus the rim+ samples DeepSMOTE
interpolates in feature space (Dablain et al. 2022; Zhang et al., NeuroImage: Clinical 2022). Validation
reports lesion-level ROC AUC, partial AUC (FPR < 0.1) and PR AUC, and writes the operating threshold (F1-optimal
on the validation lesions) into the network's ``threshold`` buffer, so that the checkpoint of each validated epoch
carries its own threshold; ``train.json``'s ``ModelCheckpoint`` keeps the epoch with the best ``val_selection``.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.nn import functional as F

from lightning_modules.rim.data import augment_patches
from lightning_modules.rim.networks import QsmRimNet
from lightning_modules.rim.scores import best_f1_threshold, pr_auc, roc_auc
from lightning_modules.rim.scores import partial_roc_auc as pauc
from lightning_modules.training import gather_ranks


def selection_score(pr_auc: float, roc_auc: float) -> torch.Tensor:
    """The validation score that chooses the shipped epoch: PR AUC, ties (e.g. several epochs at PR AUC 1.0) broken
    by ROC AUC; higher is better.

    ``pr_auc + 2⁻²⁰ · roc_auc`` in float64 (Lightning keeps a float64 tensor's precision), so that ROC AUC only
    decides between PR AUCs closer than 10⁻⁶.
    """
    return torch.tensor(pr_auc, dtype=torch.float64) + torch.tensor(roc_auc, dtype=torch.float64) * 2.0**-20


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
        if labels.min() == labels.max():  # AUCs undefined: no epoch of this validation set can be chosen
            self.log("val_selection", float("nan"))
            return
        roc, pr = roc_auc(labels, scores), pr_auc(labels, scores)
        self.log("val_roc_auc", roc, prog_bar=True)
        self.log("val_pauc", pauc(labels, scores))
        self.log("val_pr_auc", pr, prog_bar=True)
        self.log("val_selection", selection_score(pr, roc))
        threshold, f1 = best_f1_threshold(labels, scores)
        self.network.threshold.fill_(threshold)
        self.log("val_threshold", threshold)
        self.log("val_f1", f1)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(self.trainer.max_epochs, 1))
        return {"optimizer": optimizer, "lr_scheduler": schedule}

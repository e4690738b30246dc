"""LightningModule training the SPIO networks (DeepSPIO and the issue-24 candidates) on simulated View Line samples.

Loss (della Maggiora et al., "DeepSPIO", IEEE TPAMI 2020, §4): per-sample normalised L1 (relative deviation)
on each db4 wavelet sub-band, summed over the four sub-bands and averaged over the batch; weight decay via
AdamW. The first ``l2_warmup_epochs`` use the squared (L2) version instead, to escape the all-zero minimum of
L1 on sparse maps. A network without sub-bands (:class:`~lightning_modules.spio.line_unet.LineUNet`) is
trained on the map itself: the damped NMAE (:func:`relative_l1_image`) plus ``l2_weight`` times its squared
counterpart (:func:`relative_l2_image`), after ``l2_warmup_epochs`` of the squared one alone. Validation reports
the NMAE ``‖Ĉ − C‖₁ / ‖C‖₁`` of the concentration map (``val_nmae``), averaged over the samples with iron in
the plane (as the benchmarks do; a sample without any has no NMAE, and would otherwise count its false iron over
a zero norm). With ``auxiliary_weight`` > 0 a training-only
decoder on DeepSPIO's bottleneck also learns dense physics targets of each sample, the field and the iron's extent
along y (:mod:`lightning_modules.spio.auxiliary`; issue 24, session 21: ≈ 1.5× faster learning from scratch).

Speed on CPU (issue 24, session 22): ``channels_last`` stores the network's weights and activations as NHWC, the
layout oneDNN's convolutions prefer; with the trainer's ``precision="bf16-mixed"`` (autocast to bfloat16 on CPUs
with AVX-512 BF16, fp32 master weights) a DeepSPIO step is ≈ 2× faster (``benchmarks/spio_training_speed.py``).
Validation always runs in float32, as inference does.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from lightning_modules.spio.auxiliary import AUXILIARY_CHANNELS, auxiliary_decoder, relative_l1_channels
from lightning_modules.spio.line_inputs import FIRST_CONV, DeepSpioLineInputs, from_deepspio
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.wavelets import SUBBANDS, Dwt2
from lightning_modules.spio.widen import widen_state_dict


def relative_l1_per_subband(predicted: torch.Tensor, target: torch.Tensor, *, eps: float = 20.0) -> torch.Tensor:
    """Per sub-band loss ``mean_batch(‖ŵ_b − w_b‖₁ / (‖w_A‖₁ + eps))``, shape (n_subbands,).

    Every sub-band's L1 error is normalised per sample by the L1 norm of the sample's approximation band
    ``w_A`` (channel 0), i.e. the relative deviation with respect to the sample's amount of iron. Normalising
    each detail band by its own, often tiny, norm made training unstable (loss spikes from samples with small
    objects) in our first run.

    Args:
        predicted: predicted sub-bands (B, 4, h, w), µg Fe/mm³.
        target: true sub-bands, same shape.
        eps: guard against samples with very little iron dominating the batch, in µg Fe/mm³ summed over pixels
            (20: e.g. 10 pixels at 2 µg Fe/mm³).
    """
    error = (predicted - target).abs().flatten(2).sum(-1)
    norm = target[:, :1].abs().flatten(2).sum(-1)
    return (error / (norm + eps)).mean(0)


def relative_l2_per_subband(predicted: torch.Tensor, target: torch.Tensor, *, eps: float = 100.0) -> torch.Tensor:
    """Squared counterpart of :func:`relative_l1_per_subband`: ``mean_batch(‖ŵ_b − w_b‖₂² / (‖w_A‖₂² + eps))``.

    Used for the first epochs only: with L1 on sparse maps, the all-zero map is a strong early minimum (every
    background pixel pulls down as hard as an object pixel pulls up); L2 weights errors by their size, so the
    network first learns where the iron is.
    """
    error = (predicted - target).pow(2).flatten(2).sum(-1)
    norm = target[:, :1].pow(2).flatten(2).sum(-1)
    return (error / (norm + eps)).mean(0)


def relative_l1_image(predicted: torch.Tensor, target: torch.Tensor, *, eps: float = 20.0) -> torch.Tensor:
    """Batch mean of the damped per-sample NMAE of the concentration map, ``‖Ĉ − C‖₁ / (‖C‖₁ + eps)``.

    The evaluation metric itself (the wavelet-band loss weights errors by band, not by pixel); ``eps`` as in
    :func:`relative_l1_per_subband`, in µg Fe/mm³ summed over pixels.
    """
    return sample_nmae(predicted, target, eps=eps).mean()


def relative_l2_image(predicted: torch.Tensor, target: torch.Tensor, *, eps: float = 100.0) -> torch.Tensor:
    """Batch mean of ``‖Ĉ − C‖₂² / (‖C‖₂² + eps)``: weights errors by size, so high concentrations count early."""
    error = (predicted - target).pow(2).flatten(1).sum(-1)
    return (error / (target.pow(2).flatten(1).sum(-1) + eps)).mean()


def sample_nmae(predicted: torch.Tensor, target: torch.Tensor, *, eps: float = 0.0) -> torch.Tensor:
    """NMAE ``‖Ĉ − C‖₁ / (‖C‖₁ + eps)`` of each sample, shape (B,); ``eps`` 0 is the plain NMAE."""
    norm = target.abs().flatten(1).sum(-1) + eps
    return (predicted - target).abs().flatten(1).sum(-1) / norm.clamp_min(1e-6)


def initial_state(path: str, network: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The ``state_dict`` in ``path`` for ``network``; a narrower DeepSPIO's weights are widened (Net2WiderNet),
    plain DeepSPIO weights given to :class:`~lightning_modules.spio.line_inputs.DeepSpioLineInputs` get zero weights
    for its extra input channels."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = network.state_dict()
    if isinstance(network, DeepSpioLineInputs) and state[FIRST_CONV].shape[1] != own[FIRST_CONV].shape[1]:
        return from_deepspio(state)
    if isinstance(network, DeepSpio) and set(state) == set(own) and any(state[k].shape != own[k].shape for k in own):
        state = widen_state_dict(state, network)
    return state


class DeepSpioModule(pl.LightningModule):
    """Trains a SPIO network (the same ``nn.Module`` the bundle's ``network_def`` builds).

    Args:
        network: the network (default: ``DeepSpio()``); one with a ``subbands`` method is trained on the db4
            sub-bands (DeepSPIO's loss), any other on the map.
        learning_rate: peak learning rate of the one-cycle schedule.
        weight_decay: AdamW weight decay.
        l2_warmup_epochs: epochs trained with :func:`relative_l2_per_subband` (:func:`relative_l2_image` for a
            network without sub-bands) before switching to the L1 loss.
        init_weights: a network ``state_dict`` file to start from (fine-tuning), or None; the weights of a
            narrower DeepSPIO of the same depth are widened first (:func:`initial_state`).
        image_loss_weight: weight of :func:`relative_l1_image` (the map's NMAE) added to the sub-band loss after
            the warm-up; 0 gives the paper's loss alone.
        l2_weight: weight of :func:`relative_l2_image` in the map loss of networks without sub-bands (None: 0.5);
            a network trained on sub-bands has no such term, so giving it one is an error, not a silent no-op.
        auxiliary_weight: weight of the auxiliary loss (:func:`~lightning_modules.spio.auxiliary.relative_l1_channels`
            of a training-only :func:`~lightning_modules.spio.auxiliary.auxiliary_decoder` on DeepSPIO's
            bottleneck against the field and extent targets; training batches must then carry them); 0: none.
        channels_last: train with the weights and activations in the NHWC memory layout (faster convolutions on
            CPU and on GPU tensor cores; the numbers are the same, the saved ``state_dict`` loads anywhere).
    """

    def __init__(self, *, network: torch.nn.Module | None = None, learning_rate: float = 1e-3,
                 weight_decay: float = 1e-4, l2_warmup_epochs: int = 0, init_weights: str | None = None,
                 image_loss_weight: float = 0.0, l2_weight: float | None = None, auxiliary_weight: float = 0.0,
                 channels_last: bool = False) -> None:
        super().__init__()
        self.network = network if network is not None else DeepSpio()
        if init_weights:
            self.network.load_state_dict(initial_state(init_weights, self.network))
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.l2_warmup_epochs = l2_warmup_epochs
        self.uses_subbands = hasattr(self.network, "subbands")
        if self.uses_subbands and l2_weight is not None:
            raise ValueError(f"l2_weight weights the map loss of networks without sub-bands; "
                             f"{type(self.network).__name__} is trained on its db4 sub-bands (and image_loss_weight)")
        self.image_loss_weight, self.l2_weight = image_loss_weight, 0.5 if l2_weight is None else float(l2_weight)
        self.dwt = Dwt2()
        self.auxiliary_weight = float(auxiliary_weight)
        self.auxiliary_decoder = None
        if self.auxiliary_weight:
            if not isinstance(self.network, DeepSpio):
                raise ValueError("auxiliary targets need a DeepSPIO network (its bottleneck features)")
            self.auxiliary_decoder = auxiliary_decoder(self.network.feature_channels)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:  # the default layout needs no conversion
            self.to(memory_format=self.memory_format)

    def _layout(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` in the module's memory layout (a no-op for the default, contiguous NCHW)."""
        return image.contiguous(memory_format=self.memory_format)

    def _float32(self) -> torch.autocast:
        """A context in which mixed precision's autocast is off (float32 losses, targets and validation)."""
        return torch.autocast(self.device.type, enabled=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.network(image)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        image, concentration = self._layout(batch[0]), batch[1]
        warming_up = self.current_epoch < self.l2_warmup_epochs
        if not self.uses_subbands:
            predicted = self.network(image).float()
            l1 = relative_l1_image(predicted, concentration)
            l2 = relative_l2_image(predicted, concentration)
            loss = l2 if warming_up else l1 + self.l2_weight * l2
            self.log("train_image_nmae", l1, on_step=False, on_epoch=True, sync_dist=True)
            self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
            return loss
        loss_fn = relative_l2_per_subband if warming_up else relative_l1_per_subband
        features = self.network.features(image)
        subbands = self.network.decode(features).float()  # the losses in float32 under mixed precision
        with self._float32():
            per_band = loss_fn(subbands, self.dwt(concentration.float()))
        loss = per_band.sum()
        if self.auxiliary_decoder is not None:
            if len(batch) != 3:
                raise ValueError("auxiliary_weight > 0 needs training batches with auxiliary targets "
                                 "(the data module's auxiliary_targets=True)")
            per_target = relative_l1_channels(self.auxiliary_decoder(features).float(), batch[2].float())
            loss = loss + self.auxiliary_weight * per_target.mean()
            for name, value in zip(AUXILIARY_CHANNELS, per_target, strict=True):
                self.log(f"train_aux_{name}", value, on_step=False, on_epoch=True, sync_dist=True)
        if self.image_loss_weight and not warming_up:
            with self._float32():
                image_loss = relative_l1_image(self.network.inverse_dwt(subbands), concentration)
            self.log("train_image_nmae", image_loss, on_step=False, on_epoch=True, sync_dist=True)
            loss = loss + self.image_loss_weight * image_loss
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        for name, value in zip(SUBBANDS, per_band, strict=True):
            self.log(f"train_{name}", value, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        image, concentration = self._layout(batch[0].float()), batch[1].float()
        with self._float32():  # judged in float32, as inference runs
            if self.uses_subbands:
                subbands = self.network.subbands(image)
                loss = relative_l1_per_subband(subbands, self.dwt(concentration)).sum()
                predicted = self.network.inverse_dwt(subbands).clamp_min(0.0)
            else:
                predicted = self.network(image)
                loss = relative_l1_image(predicted, concentration)
                predicted = predicted.clamp_min(0.0)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)
        with_iron = concentration.flatten(1).sum(-1) > 0
        if with_iron.any():  # the epoch's value is the mean over every sample with iron (weighted by their count)
            self.log("val_nmae", sample_nmae(predicted[with_iron], concentration[with_iron]).mean(), prog_bar=True,
                     sync_dist=True, batch_size=int(with_iron.sum()))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.learning_rate, total_steps=int(self.trainer.estimated_stepping_batches),
            pct_start=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

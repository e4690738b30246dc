"""LightningModule that trains QSMGAN: L1 on χ first, then L1 plus a small WGAN-GP adversarial term.

Chen et al. (NeuroImage 2020) pre-train the generator with an L1 loss and refine it adversarially with a
Wasserstein critic and gradient penalty λ_GP = 10 (Gulrajani et al. 2017). Two optimisers, so the module uses
manual optimisation: in the adversarial phase every batch gives ``n_critic`` critic steps on the batch's true
and (detached) generated χ, then one generator step on ``L1 + adversarial_weight · (−critic(G(φ)))``.
Reusing the generated χ for the critic steps saves ``n_critic − 1`` generator passes per batch, which is what
makes the adversarial phase affordable on a CPU.

Batches are those of :class:`lightning_modules.qsm.data.SimulatedQsmDataModule` with 64³ patches on the
generator's fixed training geometry; losses and metrics use the 48³ centre that the generator returns. Only
the generator is trained; the NDI parts of a physics-informed network keep their fixed parameters.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn

from lightning_modules.qsm.qsmgan import CHI_SCALE, QsmganCritic, generator_input, gradient_penalty
from lightning_modules.qsm.qsmgan_inference import QsmganInversion


def centre(volume: torch.Tensor, margin: int) -> torch.Tensor:
    """The centre of (..., i, j, k) without ``margin`` voxels on each side."""
    return volume[..., margin:-margin, margin:-margin, margin:-margin] if margin else volume


class QsmganModule(pl.LightningModule):
    """QSMGAN training.

    Args:
        network: the whole-volume inversion whose ``generator`` is trained (the bundle's ``network_def``);
            its ``state_dict`` is what ships.
        critic: the WGAN critic (default: :class:`QsmganCritic` of width 8).
        learning_rate: Adam learning rate of the generator.
        critic_learning_rate: Adam learning rate of the critic.
        adversarial_start_epoch: epochs of pure L1 training before the critic joins.
        adversarial_weight: weight of the generator's adversarial loss (small: L1 keeps χ quantitative).
        gradient_penalty_weight: λ_GP.
        n_critic: critic steps per generator step.
        gradient_clip_norm: clip the generator's gradient norm (manual optimisation bypasses the Trainer's).
    """

    def __init__(
        self, network: QsmganInversion, critic: nn.Module | None = None, *, learning_rate: float = 1e-3,
        critic_learning_rate: float = 1e-4, adversarial_start_epoch: int = 20, adversarial_weight: float = 1e-3,
        gradient_penalty_weight: float = 10.0, n_critic: int = 3, gradient_clip_norm: float = 1.0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.network = network
        self.critic = critic if critic is not None else QsmganCritic()
        self.learning_rate, self.critic_learning_rate = float(learning_rate), float(critic_learning_rate)
        self.adversarial_start_epoch = int(adversarial_start_epoch)
        self.adversarial_weight = float(adversarial_weight)
        self.gradient_penalty_weight = float(gradient_penalty_weight)
        self.n_critic = int(n_critic)
        self.gradient_clip_norm = float(gradient_clip_norm)

    @property
    def margin(self) -> int:
        return self.network.generator.crop_voxels

    @property
    def adversarial(self) -> bool:
        """True in the second phase (critic and adversarial loss active)."""
        return self.current_epoch >= self.adversarial_start_epoch

    def generate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Generated χ in network units, (batch, 1, centre³) (for a physics-informed network: prior, generator
        correction and data-consistency iterations, see :meth:`QsmganInversion.refine_patch`)."""
        return self.network.refine_patch(batch["field"], batch["mask"], batch.get("kernel"),
                                         batch.get("prior"))[:, None] * CHI_SCALE

    def targets(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """True χ (network units), mask and field condition (network units) on the centre, (batch, 1, ...)."""
        mask = centre(batch["mask"], self.margin)[:, None]
        chi = centre(batch["chi"], self.margin)[:, None] * CHI_SCALE * mask
        condition = centre(generator_input(batch["field"], batch["mask"])[:, :1], self.margin)
        return chi, mask, condition

    def l1_loss(self, fake: torch.Tensor, chi: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean absolute χ error inside the mask (network units)."""
        return ((fake - chi) * mask).abs().sum() / mask.sum().clamp_min(1.0)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        generator_optimiser, critic_optimiser = self.optimizers()
        chi, mask, condition = self.targets(batch)
        fake = self.generate(batch) * mask
        if self.adversarial:
            for _ in range(self.n_critic):
                wasserstein = self.critic(chi, condition).mean() - self.critic(fake.detach(), condition).mean()
                penalty = gradient_penalty(self.critic, chi, fake, condition)
                critic_loss = -wasserstein + self.gradient_penalty_weight * penalty
                critic_optimiser.zero_grad()
                self.manual_backward(critic_loss)
                critic_optimiser.step()
            self.log_dict({"critic_loss": critic_loss, "wasserstein": wasserstein, "gradient_penalty": penalty})
        l1 = self.l1_loss(fake, chi, mask)
        loss = l1
        if self.adversarial:
            adversarial = -self.critic(fake, condition).mean()
            loss = l1 + self.adversarial_weight * adversarial
            self.log("adversarial_loss", adversarial)
        generator_optimiser.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(generator_optimiser, gradient_clip_val=self.gradient_clip_norm,
                            gradient_clip_algorithm="norm")
        generator_optimiser.step()
        self.log("train_l1", l1, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        chi, mask, _ = self.targets(batch)
        fake = self.generate(batch) * mask
        dims = (-3, -2, -1)
        nrmse = (fake - chi).pow(2).sum(dims).sqrt() / chi.pow(2).sum(dims).sqrt().clamp_min(1e-9)
        self.log("val_l1", self.l1_loss(fake, chi, mask), prog_bar=True, sync_dist=True)
        self.log("val_nrmse", nrmse.mean(), prog_bar=True, sync_dist=True)
        # the best-checkpoint metric of the adversarial phase; NaN before it: ModelCheckpoint never picks those epochs
        adversarial_nrmse = nrmse.mean() if self.adversarial else torch.full_like(nrmse.mean(), float("nan"))
        self.log("val_nrmse_adversarial", adversarial_nrmse, sync_dist=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.network.generator.parameters(), lr=self.learning_rate),
                torch.optim.Adam(self.critic.parameters(), lr=self.critic_learning_rate, betas=(0.5, 0.9))]

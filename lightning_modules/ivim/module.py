"""LightningModule of IVIM-NET, and the fit-to-a-study routine used by the bundle and the benchmark.

Self-supervised training (Barbieri et al. 2020; Kaandorp et al. 2021): the loss is the mean squared error between
the input signal and the signal the network's parameters predict through the IVIM model. The weights of the
epoch with the lowest validation loss are restored at the end of training, as IVIM-NET does.
"""

from __future__ import annotations

import copy

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim import swa_utils

from lightning_modules.ivim.data import IvimDataModule
from lightning_modules.ivim.ensemble import IvimNetEnsemble, ensemble_members
from lightning_modules.ivim.networks import IvimNet
from lightning_modules.ivim.signal import PARAMETER_NAMES
from lightning_modules.training import gather_ranks

#: Epochs without validation improvement before stopping. One epoch is 64,000 voxels (IVIM-NET_optim's 500 batches
#: of 128), so 10 epochs are 640,000 voxels — about the ~90 epochs of 56 batches that FIELD_NOTES found necessary,
#: not the 10 × 56 batches of the published code that stops too early on study-sized data.
DEFAULT_PATIENCE_EPOCHS = 10
#: Adam weight decay (IVIM-NET's published code uses 1e-4; off here: see the bundle docs for the measured effect).
DEFAULT_WEIGHT_DECAY = 0.0
#: Decay of the moving average of the weights (0 disables it).
DEFAULT_EMA_DECAY = 0.0
#: Fit mode's optional second stage retrains only the D* network(s) with Adam weight decay = strength × the first
#: stage's best validation loss. Off by default (IVIM-NET's single stage): it lowers D*'s NRMSE on uniformly drawn
#: parameters at SNR ≤ 20 but raises it on OSIPI's tissues and at SNR 50 (bundle docs).
DEFAULT_REFINE_STRENGTH = 0.0
#: The strength measured in the bundle docs: 1e-3 / 0.00182, i.e. a weight decay of 1e-3 (chosen among 1e-4…1e-2 on a
#: separate simulated draw, seed 99) for IVIM-NET's example-2 data at SNR 20, whose validation loss is 0.00182.
LOW_SNR_REFINE_STRENGTH = 0.55
#: Learning rate of that second stage.
DEFAULT_REFINE_LEARNING_RATE = 1e-3


class IvimNetModule(pl.LightningModule):
    """Self-supervised IVIM-NET training.

    Args:
        network: the :class:`IvimNet` to train (the bundle's ``network_def``).
        learning_rate: Adam learning rate.
        weight_decay: Adam's L2 weight decay (IVIM-NET's code: 1e-4).
        decayed_parameters: names (of :data:`~lightning_modules.ivim.signal.PARAMETER_NAMES`) whose networks get
            the weight decay; None: all of them.
        ema_decay: decay of an exponential moving average of the weights (0: off); validation, early stopping
            and the returned network then use the averaged weights.
        trained_parameters: names whose networks are trained; the others stay frozen (weights and batch-norm
            statistics), e.g. to refine the D* network of an already trained IVIM-NET. None: all.
    """

    def __init__(self, network: IvimNet, *, learning_rate: float = 1e-3,
                 weight_decay: float = DEFAULT_WEIGHT_DECAY, ema_decay: float = DEFAULT_EMA_DECAY,
                 decayed_parameters: tuple[str, ...] | None = None,
                 trained_parameters: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.network = network
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        names = PARAMETER_NAMES[network.model]
        unknown = (set(decayed_parameters or ()) | set(trained_parameters or ())) - set(names)
        if unknown:
            raise ValueError(f"unknown IVIM parameters {sorted(unknown)}; use some of {', '.join(names)}")
        self.decayed = [decayed_parameters is None or name in decayed_parameters for name in names]
        self.trained = [trained_parameters is None or name in trained_parameters for name in names]
        for net, trained in zip(network.parameter_nets, self.trained, strict=True):
            net.requires_grad_(trained)
        self.averaged = None
        if ema_decay > 0:
            self.averaged = swa_utils.AveragedModel(network, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(ema_decay),
                                                    use_buffers=True)
        self.best_val_loss = float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self._val_sums = torch.zeros(2, dtype=torch.float64)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return self.network(signal)

    @property
    def evaluated_network(self) -> IvimNet:
        """The weights validated and returned: the moving average if there is one, else the trained network."""
        return self.averaged.module if self.averaged is not None else self.network

    @staticmethod
    def _loss(network: IvimNet, signal: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(network.decode(network(signal)), signal)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        for net, trained in zip(self.network.parameter_nets, self.trained, strict=True):
            if not trained:
                net.eval()  # frozen: keep its batch-norm statistics and switch its dropout off

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(self.network, batch[0])
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.averaged is not None:
            self.averaged.update_parameters(self.network)

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        loss = self._loss(self.evaluated_network, batch[0])
        self._val_sums += torch.tensor([float(loss) * batch[0].shape[0], batch[0].shape[0]], dtype=torch.float64)
        self.log("val_loss", loss, prog_bar=True, batch_size=batch[0].shape[0], sync_dist=True)

    def on_validation_epoch_start(self) -> None:
        self._val_sums.zero_()

    def on_validation_epoch_end(self) -> None:
        sums = gather_ranks(self, self._val_sums).sum(dim=0)  # the whole validation set, also under DDP
        val_loss = float(sums[0] / sums[1].clamp_min(1))
        if not self.trainer.sanity_checking and val_loss < self.best_val_loss:
            self.best_val_loss = val_loss
            self.best_state = copy.deepcopy(self.evaluated_network.state_dict())

    def on_fit_end(self) -> None:
        if self.best_state is not None:
            self.network.load_state_dict(self.best_state)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        nets = [(net, decay) for net, decay, trained in zip(self.network.parameter_nets, self.decayed, self.trained,
                                                             strict=True) if trained]
        groups = [{"params": [p for net, decay in nets if decay == flag for p in net.parameters()],
                   "weight_decay": self.weight_decay if flag else 0.0} for flag in (True, False)]
        return torch.optim.Adam([g for g in groups if g["params"]], lr=self.learning_rate)


class ProgressLines(pl.Callback):
    """Print ``[progress]`` lines (see :func:`lightning_modules.bundle_app.report_progress`) once per epoch."""

    def __init__(self, *, start: float = 0.0, end: float = 1.0, message: str = "IVIM-NET training") -> None:
        self.start, self.end, self.message = start, end, message

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from lightning_modules.bundle_app import report_progress

        fraction = (trainer.current_epoch + 1) / max(trainer.max_epochs or 1, 1)
        report_progress(self.start + (self.end - self.start) * fraction,
                        f"{self.message}: epoch {trainer.current_epoch + 1}")


def train_ivim_net(datamodule: IvimDataModule, network: IvimNet, **options) -> IvimNet:
    """Train ``network`` on ``datamodule`` with early stopping on the validation loss; returns the best network.

    ``options`` are those of :func:`train_ivim_net_with_loss`.
    """
    return train_ivim_net_with_loss(datamodule, network, **options)[0]


def train_ivim_net_with_loss(
    datamodule: IvimDataModule, network: IvimNet, *, max_epochs: int = 100,
    patience_epochs: int = DEFAULT_PATIENCE_EPOCHS, learning_rate: float = 1e-3,
    weight_decay: float = DEFAULT_WEIGHT_DECAY, ema_decay: float = DEFAULT_EMA_DECAY,
    decayed_parameters: tuple[str, ...] | None = None, trained_parameters: tuple[str, ...] | None = None,
    seed: int = 0,
    progress_bar: bool = True, callbacks: list[pl.Callback] | None = None,
) -> tuple[IvimNet, float]:
    """Train ``network`` on ``datamodule`` with early stopping on the validation loss (the epoch with the lowest
    one is kept); returns the network in eval mode and that loss (mean squared signal error)."""
    pl.seed_everything(seed, workers=True, verbose=False)
    trainer = pl.Trainer(
        max_epochs=max_epochs, accelerator="cpu" if not torch.cuda.is_available() else "auto", devices=1,
        callbacks=[pl.callbacks.EarlyStopping("val_loss", patience=patience_epochs), *(callbacks or [])],
        enable_progress_bar=progress_bar, enable_checkpointing=False, logger=False, enable_model_summary=False,
        deterministic=True,
    )
    module = IvimNetModule(network, learning_rate=learning_rate, weight_decay=weight_decay, ema_decay=ema_decay,
                           decayed_parameters=decayed_parameters, trained_parameters=trained_parameters)
    trainer.fit(module, datamodule=datamodule)
    return network.eval(), module.best_val_loss


def fit_ivim_net(
    datamodule: IvimDataModule, network: IvimNet, *, max_epochs: int = 100,
    patience_epochs: int = DEFAULT_PATIENCE_EPOCHS, learning_rate: float = 1e-3,
    refine_strength: float = DEFAULT_REFINE_STRENGTH,
    refine_learning_rate: float = DEFAULT_REFINE_LEARNING_RATE, n_ensemble: int = 1, seed: int = 0,
    progress_bar: bool = True, progress: tuple[float, float] | None = None,
) -> IvimNet | IvimNetEnsemble:
    """IVIM-NET's self-supervised fit to a study, in one or two stages; returns the trained network (eval mode).

    (The bundle's default estimator is :func:`lightning_modules.ivim.posterior.posterior_mean_fit`; this is
    ``--posterior_mean false``.)

    1. All parameter networks, as IVIM-NET (:func:`train_ivim_net`).
    2. If ``refine_strength`` > 0: only the D* network(s), with Adam weight decay ``refine_strength`` × the first
       stage's best validation loss, the others frozen. At clinical SNR D* is barely determined by the signal;
       the weight decay shrinks its estimates towards typical values (lower error). Scaling it by the validation
       loss — the noise variance plus misfit — makes the shrinkage strong where the data say little (low SNR)
       and weak where they say more, like the prior term of a MAP estimate. Because f and D are frozen they
       cannot absorb the change, which is what happens when weight decay is applied during the joint training
       (f gets worse).

    ``n_ensemble`` > 1: trains ``network`` and n_ensemble − 1 re-initialised copies alike, one after the other
    (:func:`~lightning_modules.ivim.ensemble.ensemble_members`), and returns their
    :class:`~lightning_modules.ivim.ensemble.IvimNetEnsemble` (per-voxel mean of the estimates): n_ensemble times
    the training time.

    ``progress``: fractions of the ``[progress]`` lines printed for the whole training (None: none).
    """
    if n_ensemble != 1:
        share = None if progress is None else (progress[1] - progress[0]) / n_ensemble
        return IvimNetEnsemble([
            fit_ivim_net(datamodule, member, max_epochs=max_epochs, patience_epochs=patience_epochs,
                         learning_rate=learning_rate, refine_strength=refine_strength,
                         refine_learning_rate=refine_learning_rate, seed=member_seed,
                         progress_bar=progress_bar,
                         progress=None if share is None else (progress[0] + k * share, progress[0] + (k + 1) * share))
            for k, (member, member_seed) in enumerate(ensemble_members(network, n_ensemble, seed=seed))
        ]).eval()

    def lines(start: float, end: float, message: str) -> list[pl.Callback]:
        if progress is None:
            return []
        span = progress[1] - progress[0]
        return [ProgressLines(start=progress[0] + span * start, end=progress[0] + span * end, message=message)]

    refine = refine_strength > 0
    ends = np.cumsum([1.0, 0.7 * refine])  # progress share of each stage
    ends /= ends[-1]
    network, val_loss = train_ivim_net_with_loss(
        datamodule, network, max_epochs=max_epochs, patience_epochs=patience_epochs, learning_rate=learning_rate,
        seed=seed, progress_bar=progress_bar, callbacks=lines(0.0, ends[0], "IVIM-NET training"))
    if refine and np.isfinite(val_loss):
        dstar = tuple(name for name in PARAMETER_NAMES[network.model] if name.startswith("Dstar"))
        network = train_ivim_net(datamodule, network, max_epochs=max_epochs, patience_epochs=patience_epochs,
                                 learning_rate=refine_learning_rate, weight_decay=refine_strength * val_loss,
                                 trained_parameters=dstar, seed=seed + 1, progress_bar=progress_bar,
                                 callbacks=lines(ends[0], ends[1], "IVIM-NET D* refinement"))
    return network

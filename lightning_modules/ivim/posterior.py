"""Fit mode's optional empirical-Bayes stage: turn a trained IVIM-NET into the study's posterior-mean estimator.

Self-supervised IVIM-NET minimises the signal misfit, which on its own would give the noisy least-squares
estimates; only the network's limited capacity and early stopping regularise it, by an amount nobody chose. The
estimator with the lowest RMSE is the posterior mean E[θ | signal], which needs a prior and the noise level. Both
can be read from the study itself (empirical Bayes):

1. noise σ from IVIM-NET's residuals (:func:`noise_sigma`);
2. the prior from IVIM-NET's estimates over the study, corrected per parameter and quantile until least squares
   fits signals simulated from it the way it fits the study (:func:`deconvolved_prior`, a quantile-matching
   deconvolution: the estimates themselves are too narrow in f and too wide in D*);
3. signals simulated from that prior with Gaussian noise σ, normalised as the study (:func:`simulate_from_prior`);
4. the same network, started from IVIM-NET's weights, trained supervised on those simulations: the mean squared
   parameter error (each parameter scaled by its output range) is minimised by the posterior mean
   (:class:`PosteriorMeanModule`).

No ground truth of the study is used. Measured effect in the bundle's docs/README.md.
"""

from __future__ import annotations

import copy

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_modules.ivim.lsq import IvimLsq
from lightning_modules.ivim.networks import IvimNet, predict_ivim_net
from lightning_modules.ivim.signal import model_signal, normalise_signal

#: Simulated signals the posterior-mean stage trains on.
DEFAULT_N_SIMULATED = 1_000_000
#: Passes over them (one-cycle learning rate over all passes).
DEFAULT_POSTERIOR_EPOCHS = 5
#: Peak learning rate of the one-cycle schedule, and the batch size.
POSTERIOR_LEARNING_RATE = 3e-3
POSTERIOR_BATCH_SIZE = 512
#: Fixed-point iterations of the prior's deconvolution, and the signals simulated and fitted for each.
PRIOR_ITERATIONS = 4
PRIOR_SAMPLES = 50_000


def noise_sigma(network: IvimNet, signals: np.ndarray) -> float:
    """Noise σ of normalised ``signals`` from the network's residuals, corrected for the fitted parameters."""
    params = predict_ivim_net(network, signals)
    with torch.no_grad():
        fitted = network.decode(torch.as_tensor(params, device=network.b_values.device)).cpu().numpy()
    n_b, n_params = signals.shape[1], params.shape[1]
    return float(np.sqrt(np.mean((signals - fitted) ** 2) * n_b / max(n_b - n_params, 1)))


def simulate_from_prior(network: IvimNet, prior: np.ndarray, sigma: float, n: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` parameter rows drawn from ``prior`` (rows of parameters) and their noisy signals, normalised as a study
    (divided by S(b_min)); returns ``(signals (n, n_b), params (n, n_params))``."""
    b = network.b_values.cpu().numpy().astype(np.float64)
    params = prior[rng.integers(0, prior.shape[0], n)]
    clean = model_signal(network.model, b, params)
    signals = normalise_signal(clean + sigma * rng.standard_normal(clean.shape), b)[0]
    return signals, params


def deconvolved_prior(network: IvimNet, signals: np.ndarray, sigma: float, rng: np.random.Generator, *,
                      bounds: str = "body", iterations: int = PRIOR_ITERATIONS,
                      n_samples: int = PRIOR_SAMPLES) -> np.ndarray:
    """A sample of the study's parameter distribution, deconvolved from the estimation noise.

    Starts from the network's estimates of ``signals`` and corrects each parameter by quantile: signals are
    simulated from the current sample (noise ``sigma``), fitted by least squares, and every value is shifted by the
    difference between the least-squares quantiles of the study and of the simulation at its own quantile level.
    At the fixed point, least squares sees the simulated and the real study alike. Least squares, not the
    network, is the yardstick because the network compresses the spread of its estimates (its f spread barely
    changes with the prior's), which would leave the correction undetermined.

    Returns ``(n_voxels, n_params)`` parameter rows within the network's output range.
    """
    lower, upper = network.lower.cpu().numpy(), network.upper.cpu().numpy()
    lsq = IvimLsq(network.b_values.cpu().numpy().astype(np.float64), model=network.model, bounds=bounds)
    subset = signals[rng.permutation(signals.shape[0])[:n_samples]]
    levels = np.linspace(0.005, 0.995, 199)
    target = np.quantile(lsq.fit(subset).params, levels, axis=0)
    prior = predict_ivim_net(network, signals).astype(np.float64)
    for _ in range(iterations):
        simulated, _ = simulate_from_prior(network, prior, sigma, subset.shape[0], rng)
        shift = target - np.quantile(lsq.fit(simulated).params, levels, axis=0)
        rank = np.argsort(np.argsort(prior, axis=0), axis=0) / max(prior.shape[0] - 1, 1)
        for k in range(prior.shape[1] - 1):  # S0 (last) is not corrected: least squares fits it like the network
            prior[:, k] += np.interp(rank[:, k], levels, shift[:, k])
        prior = np.clip(prior, lower, upper)
    return prior


class PosteriorMeanModule(pl.LightningModule):
    """Supervised training of an :class:`IvimNet` on simulated (signal, parameters) pairs: mean squared error of
    each parameter divided by its output range (so D, f, D*, S0 weigh alike), Adam with a one-cycle schedule."""

    def __init__(self, network: IvimNet, *, learning_rate: float = POSTERIOR_LEARNING_RATE) -> None:
        super().__init__()
        self.network = network
        self.learning_rate = float(learning_rate)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        signals, params = batch
        scale = self.network.upper - self.network.lower
        loss = (((self.network(signals) - params) / scale) ** 2).mean()
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        optimiser = torch.optim.Adam(self.network.parameters(), lr=self.learning_rate / 10)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, self.learning_rate,
                                                       total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def posterior_mean_stage(
    network: IvimNet, signals: np.ndarray, *, n_simulated: int = DEFAULT_N_SIMULATED,
    epochs: int = DEFAULT_POSTERIOR_EPOCHS, bounds: str = "body", seed: int = 0, progress_bar: bool = True,
    callbacks: list[pl.Callback] | None = None,
) -> IvimNet:
    """Steps 1–4 of the module docstring for a trained ``network`` and the study's normalised ``signals``
    ``(n_voxels, n_b)``; ``bounds`` is the least-squares preset of step 2. Returns a new network (eval mode);
    ``network`` is left unchanged."""
    if signals.ndim != 2 or signals.shape[0] == 0:
        raise ValueError("the posterior-mean stage needs the study's signals as a non-empty (voxels, b-values) matrix")
    rng = np.random.default_rng(seed)
    sigma = noise_sigma(network, signals)
    prior = deconvolved_prior(network, signals, sigma, rng, bounds=bounds)
    simulated, params = simulate_from_prior(network, prior, sigma, int(n_simulated), rng)
    data = DataLoader(TensorDataset(torch.as_tensor(simulated, dtype=torch.float32),
                                    torch.as_tensor(params, dtype=torch.float32)),
                      batch_size=min(POSTERIOR_BATCH_SIZE, len(simulated)), shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed))
    student = copy.deepcopy(network).train()
    pl.seed_everything(seed, workers=True, verbose=False)
    trainer = pl.Trainer(max_epochs=int(epochs), accelerator="cpu" if not torch.cuda.is_available() else "auto",
                         devices=1, callbacks=callbacks or [], enable_progress_bar=progress_bar,
                         enable_checkpointing=False, logger=False, enable_model_summary=False, deterministic=True)
    trainer.fit(PosteriorMeanModule(student), train_dataloaders=data)
    return student.eval()


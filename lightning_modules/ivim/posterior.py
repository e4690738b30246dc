"""Fit mode's default estimator: the study's SNR-aware empirical-Bayes posterior mean, trusting least squares where
the data determine a parameter.

The estimator with the lowest RMSE is the posterior mean E[θ | signal, σ], which needs a prior and each voxel's
noise level σ. Both are read from the study itself (empirical Bayes); a real study mixes SNRs (bright and dark
tissue, coil sensitivity), so σ is per voxel, never one number for the study:

1. least squares (:class:`~lightning_modules.ivim.lsq.IvimLsq`) on every voxel;
2. each voxel's noise σ from the least-squares residuals: the residual variance in image units (× n_b / (n_b − p)
   for the p fitted parameters), averaged over a box of neighbouring voxels in the mask (the noise of an image
   varies slowly in space even where S0 jumps), divided by the voxel's S(b_min) (:func:`local_noise_sigma`);
3. the prior: the least-squares estimates corrected per parameter and quantile until least squares fits signals
   simulated from them (with the study's noise levels) the way it fits the study (:func:`deconvolved_prior`, a
   quantile-matching deconvolution of the estimation noise);
4. signals simulated from that prior, each with a σ drawn from the study's (:func:`simulate_from_prior`), and an
   :class:`~lightning_modules.ivim.networks.IvimNet` that is also told σ (``noise_input``) and sees the log signal
   (``log_signal_input``) trained supervised on them: the mean squared parameter error (each parameter scaled by
   its output range) is minimised by the posterior mean (:class:`PosteriorMeanModule`); steps 3–4 run twice
   (:data:`PRIOR_PASSES`): the second prior starts from the first network's estimates of the study, whose joint
   structure is far closer to the tissue's than that of the noisy least-squares estimates, and the same network
   trains on, simulated from it;
5. where a parameter is determined by the data — its Cramér–Rao standard deviation at the least-squares estimate is
   below 0.1 of the prior's spread, where the Gaussian posterior mean lies within 1 % of the way from the
   least-squares estimate to the prior mean — least squares is kept, and the network's estimate is used from 0.3
   (9 % of the way), linearly in between
   (:func:`least_squares_weight`). This removes the network's approximation error at high SNR, where the
   posterior mean and the maximum-likelihood estimate coincide.

No ground truth of the study is used. Measured effect in the bundle's docs/README.md.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from scipy import ndimage
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from lightning_modules.ivim.lsq import IvimLsq, bounds_array
from lightning_modules.ivim.networks import IvimNet, predict_ivim_net
from lightning_modules.ivim.signal import model_signal, normalise_signal, signal_and_jacobian

#: Simulated signals the posterior-mean network trains on, and the passes over them (one-cycle learning rate).
DEFAULT_N_SIMULATED = 300_000
DEFAULT_POSTERIOR_EPOCHS = 4
#: Peak learning rate of the one-cycle schedule, the batch size, and the network's hidden width.
POSTERIOR_LEARNING_RATE = 3e-3
POSTERIOR_BATCH_SIZE = 1024
POSTERIOR_WIDTH = 32
#: Dropout of the posterior-mean network (0.1 as IVIM-NET; measured better than none at high SNR).
POSTERIOR_DROPOUT = 0.1
#: Fixed-point iterations of the prior's deconvolution, and the study voxels simulated and fitted for each.
PRIOR_ITERATIONS = 4
PRIOR_SAMPLES = 10_000
#: Passes of prior and training: the second deconvolves from the first network's estimates (the posterior means of
#: the study, whose joint structure is far closer to the tissue's than that of the noisy least-squares estimates)
#: and continues training the same network on simulations from it.
PRIOR_PASSES = 2
#: Side (voxels) of the box over which the residual variance is averaged into a local noise level.
NOISE_BOX_VOXELS = 5
#: Cramér–Rao SD / prior SD at and below which least squares is kept, and at and above which the network is used.
LSQ_TRUST_RATIOS = (0.1, 0.3)


def residual_variance(lsq_params: np.ndarray, signals: np.ndarray, b_values_s_per_mm2: np.ndarray, *,
                      model: str) -> np.ndarray:
    """Per-voxel noise variance of normalised ``signals`` ``(n, n_b)`` from a fit's residuals, corrected for its
    p fitted parameters (× n_b / (n_b − p)); returns ``(n,)``."""
    fitted = model_signal(model, np.asarray(b_values_s_per_mm2, dtype=np.float64), lsq_params)
    n_b, n_params = signals.shape[1], lsq_params.shape[1]
    return np.sum((signals - fitted) ** 2, axis=1) / max(n_b - n_params, 1)


def local_noise_sigma(variance: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None, *,
                      box_voxels: int = NOISE_BOX_VOXELS) -> np.ndarray:
    """Each voxel's noise σ of its normalised signal, from per-voxel residual variances.

    Args:
        variance: ``(n,)`` residual variance of the normalised signals (:func:`residual_variance`).
        reference: ``(n,)`` S(b_min) of each voxel (image units) the signals were divided by.
        mask: 3-D boolean mask whose True voxels, in C order, are the n voxels; None: no neighbours (each voxel's
            own residual variance).
        box_voxels: side of the averaging box.

    Returns:
        ``(n,)`` σ = √(local mean of variance × reference²) / reference.
    """
    image_variance = variance * reference**2
    if mask is not None and box_voxels > 1:
        volume = np.zeros(mask.shape)
        volume[mask] = image_variance
        weight = ndimage.uniform_filter(mask.astype(np.float64), box_voxels, mode="constant")
        image_variance = ndimage.uniform_filter(volume, box_voxels, mode="constant")[mask] / weight[mask]
    return np.sqrt(image_variance) / np.maximum(reference, 1e-12)


def simulate_from_prior(model: str, b_values_s_per_mm2: np.ndarray, prior: np.ndarray, sigma: np.ndarray | float,
                        n: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy signals of rows of ``prior``, normalised as a study (divided by S(b_min)).

    Args:
        prior: ``(m, n_params)`` parameter rows (e.g. one per voxel of the study).
        sigma: the study's noise levels (any number of them), each signal's σ drawn from them independently of its
            parameters (tissue and SNR independent, the model of the empirical prior); or one σ for all.
        n: rows drawn with replacement; None: every row once, in order.

    Returns:
        ``(signals (n, n_b), params (n, n_params), sigma (n,))``.
    """
    b = np.asarray(b_values_s_per_mm2, dtype=np.float64)
    rows = np.arange(prior.shape[0]) if n is None else rng.integers(0, prior.shape[0], n)
    levels = np.atleast_1d(np.asarray(sigma, dtype=np.float64))
    sigma_rows = levels[rng.integers(0, levels.size, rows.size)]
    params = prior[rows]
    clean = model_signal(model, b, params)
    signals = normalise_signal(clean + sigma_rows[:, None] * rng.standard_normal(clean.shape), b)[0]
    return signals, params, sigma_rows


def deconvolved_prior(lsq: IvimLsq, estimates: np.ndarray, sigma: np.ndarray, rng: np.random.Generator, *,
                      limits: np.ndarray, start: np.ndarray | None = None, iterations: int = PRIOR_ITERATIONS,
                      n_samples: int = PRIOR_SAMPLES) -> np.ndarray:
    """A sample of the study's parameter distribution, deconvolved from the estimation noise.

    Starts from the least-squares ``estimates`` ``(n, n_params)`` of the study and corrects each parameter by
    quantile: a random subset of the voxels is simulated from the current sample, with noise levels drawn from
    the study's ``sigma`` (:func:`simulate_from_prior`), fitted by ``lsq``, and every value is shifted by the
    difference between the least-squares quantiles of the study and of the simulation at its own quantile level.
    At the fixed point least squares sees the simulated and the real study alike. ``limits`` ``(n_params, 2)``
    bound the result. ``start``: another starting sample (e.g. a first network's estimates of the study), still
    corrected towards the least-squares quantiles of ``estimates``.

    Returns ``(n, n_params)`` parameter rows.
    """
    subset = rng.permutation(estimates.shape[0])[:n_samples]
    levels = np.linspace(0.005, 0.995, 199)
    target = np.quantile(estimates[subset], levels, axis=0)
    prior = (estimates if start is None else start).astype(np.float64).copy()
    for _ in range(iterations):
        simulated, _, _ = simulate_from_prior(lsq.model, lsq.b_values, prior[subset], sigma, None, rng)
        shift = target - np.quantile(lsq.fit(simulated).params, levels, axis=0)
        rank = np.argsort(np.argsort(prior, axis=0), axis=0) / max(prior.shape[0] - 1, 1)
        for k in range(prior.shape[1] - 1):  # S0 (last) is not corrected: least squares fits it without bias
            prior[:, k] += np.interp(rank[:, k], levels, shift[:, k])
        prior = np.clip(prior, limits[:, 0], limits[:, 1])
    return prior


def least_squares_weight(lsq_params: np.ndarray, sigma: np.ndarray, prior_sd: np.ndarray, *, model: str,
                         b_values_s_per_mm2: np.ndarray, bounds: np.ndarray,
                         ratios: tuple[float, float] = LSQ_TRUST_RATIOS) -> np.ndarray:
    """Weight ``(n, n_params)`` of the least-squares estimate per voxel and parameter: 1 where its Cramér–Rao SD
    (σ² (JᵀJ)⁻¹ at the estimate) is at most ``ratios[0]`` × the prior's SD, 0 from ``ratios[1]`` ×, linear in
    between. In the Gaussian approximation the posterior mean is the least-squares estimate moved towards the
    prior mean by c² / (c² + τ²) (c the Cramér–Rao SD, τ the prior SD): 1 % of the way at c = 0.1 τ."""
    b = torch.as_tensor(np.asarray(b_values_s_per_mm2, dtype=np.float64))
    width = torch.as_tensor(bounds[:, 1] - bounds[:, 0])
    _, derivatives = signal_and_jacobian(model, b, torch.as_tensor(lsq_params))
    jac = torch.stack(derivatives, dim=2) * width  # in parameters scaled to their bound width: a conditioned JᵀJ
    eye = torch.eye(jac.shape[2], dtype=jac.dtype)
    covariance = torch.linalg.inv(torch.einsum("nbi,nbj->nij", jac, jac) + 1e-10 * eye)
    crlb_sd = torch.diagonal(covariance, dim1=1, dim2=2).clamp_min(0).sqrt().numpy() * width.numpy()
    ratio = crlb_sd * np.asarray(sigma)[:, None] / np.maximum(prior_sd, 1e-12)
    return np.clip((ratios[1] - ratio) / (ratios[1] - ratios[0]), 0.0, 1.0)


class PosteriorMeanModule(pl.LightningModule):
    """Supervised training of an :class:`IvimNet` (with ``noise_input``) on simulated (signal, σ, parameters):
    mean squared error of each parameter divided by its output range (so all weigh alike), Adam, one-cycle."""

    def __init__(self, network: IvimNet, *, learning_rate: float = POSTERIOR_LEARNING_RATE) -> None:
        super().__init__()
        self.network = network
        self.learning_rate = float(learning_rate)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        signals, sigma, params = batch
        scale = self.network.upper - self.network.lower
        loss = (((self.network(signals, sigma) - params) / scale) ** 2).mean()
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        optimiser = torch.optim.Adam(self.network.parameters(), lr=self.learning_rate / 10)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, self.learning_rate,
                                                       total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def train_posterior_network(network: IvimNet, signals: np.ndarray, sigma: np.ndarray, params: np.ndarray, *,
                            epochs: int = DEFAULT_POSTERIOR_EPOCHS, seed: int = 0, progress_bar: bool = True,
                            callbacks: list[pl.Callback] | None = None) -> IvimNet:
    """Train ``network`` (``noise_input``) on simulated ``signals`` ``(n, n_b)``, their ``sigma`` ``(n,)`` and true
    ``params`` ``(n, n_params)``; returns it in eval mode."""
    dataset = TensorDataset(*(torch.as_tensor(x, dtype=torch.float32) for x in (signals, sigma, params)))
    # whole batches by one fancy index (no per-sample fetch and collate: ~2.5× faster steps on CPU)
    batches = BatchSampler(RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)),
                           min(POSTERIOR_BATCH_SIZE, len(signals)), drop_last=True)
    data = DataLoader(dataset, sampler=batches, batch_size=None)
    pl.seed_everything(seed, workers=True, verbose=False)
    trainer = pl.Trainer(max_epochs=int(epochs), accelerator="cpu" if not torch.cuda.is_available() else "auto",
                         devices=1, callbacks=callbacks or [], enable_progress_bar=progress_bar,
                         enable_checkpointing=False, logger=False, enable_model_summary=False, deterministic=True)
    trainer.fit(PosteriorMeanModule(network.train()), train_dataloaders=data)
    return network.eval()


def posterior_mean_fit(
    signals: np.ndarray, b_values_s_per_mm2: np.ndarray, *, model: str = "biexp", bounds: str = "body",
    mask: np.ndarray | None = None, reference: np.ndarray | None = None, n_simulated: int = DEFAULT_N_SIMULATED,
    epochs: int = DEFAULT_POSTERIOR_EPOCHS, seed: int = 0, progress_bar: bool = True,
    callbacks: list[pl.Callback] | None = None,
) -> tuple[np.ndarray, IvimNet]:
    """Steps 1–5 of the module docstring on a study's normalised ``signals`` ``(n_voxels, n_b)``.

    Args:
        mask: 3-D mask whose True voxels (C order) are the rows of ``signals``: neighbours for the local noise
            level; None: each voxel's own residuals.
        reference: ``(n_voxels,)`` S(b_min) the signals were divided by (image units); None: all alike.
        n_simulated, epochs: simulated training signals and passes over them.
        seed: seeds the simulations, the initial weights and the batches (same inputs → same output).

    Returns:
        ``(parameters (n_voxels, n_params) within the bounds, the trained network)``.
    """
    if signals.ndim != 2 or signals.shape[0] == 0:
        raise ValueError("the posterior-mean fit needs the study's signals as a non-empty (voxels, b-values) matrix")
    b = np.asarray(b_values_s_per_mm2, dtype=np.float64)
    rng = np.random.default_rng(seed)
    limits = bounds_array(model, bounds)
    lsq = IvimLsq(b, model=model, bounds=bounds)
    lsq_params = lsq.fit(signals).params
    reference = np.ones(signals.shape[0]) if reference is None else np.asarray(reference, dtype=np.float64)
    sigma = local_noise_sigma(residual_variance(lsq_params, signals, b, model=model), reference,
                              mask if mask is not None and int(mask.sum()) == signals.shape[0] else None)
    torch.manual_seed(seed)
    network = IvimNet(b, model=model, bounds=bounds, noise_input=True, log_signal_input=True, width=POSTERIOR_WIDTH,
                      dropout=POSTERIOR_DROPOUT)
    net_params = None
    for _ in range(PRIOR_PASSES):
        prior = deconvolved_prior(lsq, lsq_params, sigma, rng, limits=limits, start=net_params)
        simulated, params, sigma_rows = simulate_from_prior(model, b, prior, sigma, int(n_simulated), rng)
        network = train_posterior_network(network, simulated, sigma_rows, params, epochs=epochs, seed=seed,
                                          progress_bar=progress_bar, callbacks=callbacks)
        net_params = np.clip(predict_ivim_net(network, signals, noise_sigma=sigma), limits[:, 0], limits[:, 1])
    weight = least_squares_weight(lsq_params, sigma, prior.std(axis=0), model=model, b_values_s_per_mm2=b,
                                  bounds=limits)
    return weight * lsq_params + (1 - weight) * net_params, network

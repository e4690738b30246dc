"""Fit mode's default estimator: the SNR-aware empirical-Bayes posterior mean (lightning_modules/ivim/posterior.py)."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest
import torch

from lightning_modules.io import InputError
from lightning_modules.ivim.lsq import IvimLsq, bounds_array
from lightning_modules.ivim.networks import IvimNet
from lightning_modules.ivim.posterior import (
    PosteriorMeanModule,
    deconvolved_prior,
    least_squares_weight,
    local_noise_sigma,
    posterior_mean_fit,
    residual_variance,
    simulate_from_prior,
)
from lightning_modules.ivim.signal import model_signal, normalise_signal
from lightning_modules.ivim.simulate import IVIMNET_B_VALUES, simulate_ivim
from lightning_modules.ivim.workflow import IvimOptions

B = np.array(IVIMNET_B_VALUES)


def test_simulated_signals_carry_the_noise_level_drawn_for_each_from_the_study() -> None:
    prior = simulate_ivim(B, 2000, snr=20, seed=1)[1]
    clean, params, sigma = simulate_from_prior("biexp", B, prior, 0.0, 5000, np.random.default_rng(0))
    assert params.shape == (5000, 4) and sigma.shape == (5000,)
    assert {tuple(row) for row in params} <= {tuple(row) for row in prior}  # rows are drawn from the prior sample
    npt.assert_allclose(clean, normalise_signal(model_signal("biexp", B, params), B)[0], rtol=1e-12)
    row_sigma = np.where(np.arange(2000) % 2 == 0, 0.01, 0.05)  # two SNRs in one study
    noisy, params, sigma = simulate_from_prior("biexp", B, prior, row_sigma, 40000, np.random.default_rng(1))
    exact = model_signal("biexp", B, params)
    # (S + n) / (1 + n0) − S ≈ n − S n0 to first order: the high-b residual has about the row's σ
    for level in (0.01, 0.05):
        rows = sigma == level
        npt.assert_allclose((noisy - exact)[rows, -1].std(), level * np.sqrt(1 + np.mean(exact[rows, -1] ** 2)),
                            rtol=0.05)
    assert 0.45 < np.mean(sigma == 0.01) < 0.55
    once, params, _ = simulate_from_prior("biexp", B, prior, row_sigma, None, np.random.default_rng(2))
    assert once.shape == (2000, B.size)
    npt.assert_array_equal(params, prior)  # every row once, in order


def test_local_noise_sigma_recovers_a_smooth_noise_map_under_jumping_s0() -> None:
    rng = np.random.default_rng(3)
    shape = (12, 12, 8)
    mask = np.ones(shape, dtype=bool)
    mask[:2] = False
    n = int(mask.sum())
    noise = (5.0 + 0.1 * np.arange(shape[0]))[:, None, None] * np.ones(shape)  # slowly varying, image units
    s0 = rng.choice([50.0, 1000.0], n)  # dark and bright tissue side by side
    params = simulate_ivim(B, n, snr=50, seed=3)[1]
    dwi = s0[:, None] * model_signal("biexp", B, params) + noise[mask][:, None] * rng.standard_normal((n, B.size))
    signals, ref, _ = normalise_signal(dwi, B)
    fitted = IvimLsq(B).fit(signals).params
    sigma = local_noise_sigma(residual_variance(fitted, signals, B, model="biexp"), ref, mask)
    npt.assert_allclose(np.median(sigma * ref / noise[mask]), 1.0, atol=0.1)
    assert np.percentile(np.abs(sigma * ref / noise[mask] - 1), 90) < 0.25
    own = local_noise_sigma(residual_variance(fitted, signals, B, model="biexp"), ref, None)  # no neighbours
    assert np.std(own * ref / noise[mask]) > 2 * np.std(sigma * ref / noise[mask])


def test_deconvolved_prior_shrinks_noisy_least_squares_estimates_back_to_the_true_spread() -> None:
    signals, truth = simulate_ivim(B, 20000, snr=30, seed=4, rician=False)
    lsq = IvimLsq(B)
    estimates = lsq.fit(signals).params
    prior = deconvolved_prior(lsq, estimates, np.full(20000, 1 / 30), np.random.default_rng(0),
                              limits=bounds_array("biexp", "body"), n_samples=10000)
    assert prior.shape == truth.shape
    before = estimates[:, :2].std(axis=0) / truth[:, :2].std(axis=0)
    after = prior[:, :2].std(axis=0) / truth[:, :2].std(axis=0)
    assert np.all(np.abs(after - 1) < 0.12) and np.all(np.abs(after - 1) < np.abs(before - 1)), (before, after)
    npt.assert_allclose(prior[:, :2].mean(axis=0), truth[:, :2].mean(axis=0), rtol=0.05)


def test_least_squares_is_trusted_at_high_snr_and_not_at_low_snr() -> None:
    _, truth = simulate_ivim(B, 500, snr=20, seed=6)
    limits = bounds_array("biexp", "body")
    prior_sd = truth.std(axis=0) + 1e-3 * np.array([0, 0, 0, 1])
    high = least_squares_weight(truth, np.full(500, 1 / 2000), prior_sd, model="biexp", b_values_s_per_mm2=B,
                                bounds=limits)
    low = least_squares_weight(truth, np.full(500, 1 / 5), prior_sd, model="biexp", b_values_s_per_mm2=B,
                               bounds=limits)
    assert high.shape == (500, 4) and np.all((high >= 0) & (high <= 1))
    assert np.all(high[:, :2] == 1.0) and np.all(low[:, :3] == 0.0)
    flat = truth.copy()
    flat[:, 1] = 0.0  # no perfusion: D* is not determined however high the SNR
    assert np.all(least_squares_weight(flat, np.full(500, 1 / 2000), prior_sd, model="biexp",
                                       b_values_s_per_mm2=B, bounds=limits)[:, 2] == 0.0)


def test_supervised_steps_on_signals_and_noise_lower_the_parameter_loss() -> None:
    signals, truth = simulate_ivim(B, 3000, snr=(10, 100), seed=5, rician=False)
    torch.manual_seed(0)
    module = PosteriorMeanModule(IvimNet(B, noise_input=True, width=16))
    x, y = torch.as_tensor(signals, dtype=torch.float32), torch.as_tensor(truth, dtype=torch.float32)
    sigma = torch.full((3000,), 0.03)
    optimiser = torch.optim.Adam(module.network.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = module.training_step([x, sigma, y], 0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="noise_sigma"):
        module.network(x)


def test_posterior_mean_fit_is_reproducible_bounded_and_least_squares_at_high_snr() -> None:
    signals, truth = simulate_ivim(B, 3000, snr=1000, seed=7, rician=False)
    first, network = posterior_mean_fit(signals, B, n_simulated=4096, epochs=1, seed=3, progress_bar=False)
    again, _ = posterior_mean_fit(signals, B, n_simulated=4096, epochs=1, seed=3, progress_bar=False)
    npt.assert_array_equal(first, again)
    assert network.noise_input
    limits = bounds_array("biexp", "body")
    assert np.all((first >= limits[:, 0]) & (first <= limits[:, 1]))
    # one pass over 4,096 simulations teaches the network little, but at SNR 1000 D and f come from least squares
    # (except where the fit is degenerate, e.g. D* ≈ D)
    same = np.isclose(first[:, :2], IvimLsq(B).fit(signals).params[:, :2], rtol=1e-6, atol=1e-9)
    assert same.mean(axis=0).min() > 0.99, same.mean(axis=0)


def test_posterior_mean_is_a_true_or_false_flag_and_excludes_ivim_net_only_options() -> None:
    with pytest.raises(InputError, match="--posterior_mean must be true or false"):
        IvimOptions.parse(posterior_mean="maybe")
    assert IvimOptions.parse(posterior_mean="true").posterior_mean is True
    assert IvimOptions.parse(posterior_mean="false").posterior_mean is False
    assert IvimOptions.parse().posterior_mean is True  # the capability's default
    with pytest.raises(InputError, match="posterior_mean false"):
        IvimOptions.parse(n_ensemble=3)
    assert IvimOptions.parse(n_ensemble=3, posterior_mean="false").estimator == "ivim_net"

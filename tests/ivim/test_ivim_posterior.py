"""Fit mode's empirical-Bayes posterior-mean stage (lightning_modules/ivim/posterior.py)."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest
import torch

from lightning_modules.io import InputError
from lightning_modules.ivim.app import IvimMappingApp
from lightning_modules.ivim.data import IvimDataModule
from lightning_modules.ivim.module import fit_ivim_net
from lightning_modules.ivim.networks import IvimNet
from lightning_modules.ivim.posterior import (
    PosteriorMeanModule,
    deconvolved_prior,
    noise_sigma,
    posterior_mean_stage,
    simulate_from_prior,
)
from lightning_modules.ivim.signal import model_signal, normalise_signal
from lightning_modules.ivim.simulate import IVIMNET_B_VALUES, simulate_ivim

B = np.array(IVIMNET_B_VALUES)


class FixedEstimates(IvimNet):
    """An IvimNet that returns given estimates for the study's signals (tests the stage without training)."""

    def __init__(self, estimates: np.ndarray) -> None:
        super().__init__(B)
        self.estimates = torch.as_tensor(estimates, dtype=torch.float32)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        assert signal.shape[0] == self.estimates.shape[0]
        return self.estimates


def test_simulated_signals_are_the_model_normalised_plus_noise_of_the_given_sigma() -> None:
    prior = simulate_ivim(B, 2000, snr=20, seed=1)[1]
    rng = np.random.default_rng(0)
    clean, params = simulate_from_prior(IvimNet(B), prior, 0.0, 5000, np.random.default_rng(0))
    assert params.shape == (5000, 4)
    assert {tuple(row) for row in params} <= {tuple(row) for row in prior}  # rows are drawn from the prior sample
    npt.assert_allclose(clean, normalise_signal(model_signal("biexp", B, params), B)[0], rtol=1e-12)
    noisy, params = simulate_from_prior(IvimNet(B), prior, 0.03, 20000, rng)
    exact = model_signal("biexp", B, params)
    npt.assert_allclose(noisy[:, 0], 1.0)  # divided by the noisy S(b=0)
    # (S + n) / (1 + n0) − S ≈ n − S n0 to first order (S0 = 1 in the prior): variance σ² (1 + S²) per b-value
    expected = 0.03 * np.sqrt(1 + np.mean(exact[:, 1:] ** 2, axis=0))
    npt.assert_allclose((noisy - exact)[:, 1:].std(axis=0), expected, rtol=0.05)


def test_noise_sigma_of_exact_estimates_is_the_noise_level_corrected_for_four_fitted_parameters() -> None:
    rng = np.random.default_rng(2)
    params = simulate_ivim(B, 20000, snr=20, seed=2)[1]
    signals = model_signal("biexp", B, params) + 0.04 * rng.standard_normal((20000, B.size))
    sigma = noise_sigma(FixedEstimates(params), signals)
    npt.assert_allclose(sigma, 0.04 * np.sqrt(B.size / (B.size - 4)), rtol=0.02)


def test_deconvolved_prior_recovers_the_spread_that_shrunken_estimates_lost() -> None:
    signals, truth = simulate_ivim(B, 20000, snr=30, seed=4, rician=False)
    shrunk = truth.mean(axis=0) + 0.5 * (truth - truth.mean(axis=0))  # a compressive estimator
    prior = deconvolved_prior(FixedEstimates(shrunk), signals, 1 / 30, np.random.default_rng(0), n_samples=20000)
    assert prior.shape == truth.shape
    ratio = prior[:, :3].std(axis=0) / truth[:, :3].std(axis=0)
    assert np.all(np.abs(ratio[:2] - 1) < 0.12), ratio  # D and f: from half the spread back to the truth's
    assert abs(ratio[2] - 1) < 0.3, ratio  # D* is weakly determined at these b-values
    npt.assert_allclose(prior[:, :2].mean(axis=0), truth[:, :2].mean(axis=0), rtol=0.05)


def test_supervised_steps_lower_the_parameter_loss_and_the_stage_returns_a_new_bounded_network() -> None:
    signals, truth = simulate_ivim(B, 3000, snr=20, seed=5, rician=False)
    torch.manual_seed(0)
    network = IvimNet(B).eval()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    module = PosteriorMeanModule(IvimNet(B))
    x, y = torch.as_tensor(signals, dtype=torch.float32), torch.as_tensor(truth, dtype=torch.float32)
    optimiser = torch.optim.Adam(module.network.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = module.training_step([x, y], 0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    student = posterior_mean_stage(network, signals, n_simulated=4096, epochs=1, progress_bar=False)
    assert type(student) is IvimNet and student is not network
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())  # the input network is unchanged
    with torch.no_grad():
        out = student(x)
    assert torch.isfinite(out).all() and bool((out >= student.lower).all()) and bool((out <= student.upper).all())


def test_posterior_mean_needs_the_studys_signals_and_a_true_or_false_flag() -> None:
    simulated = IvimDataModule(None, b_values_s_per_mm2=B, n_simulated=1000)
    with pytest.raises(ValueError, match="posterior_mean needs"):
        fit_ivim_net(simulated, IvimNet(B), posterior_mean=True, max_epochs=1, progress_bar=False)
    with pytest.raises(InputError, match="--posterior_mean must be true or false"):
        IvimMappingApp(dwi="x.nii.gz", posterior_mean="maybe")._check_options()
    app = IvimMappingApp(dwi="x.nii.gz", posterior_mean="true")
    app._check_options()
    assert app.posterior_mean is True
    assert IvimMappingApp(dwi="x.nii.gz", posterior_mean="false").posterior_mean is False  # parsed on construction

"""Fit mode's ensemble: K networks from different initial weights, estimates combined per voxel."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest
import torch

from lightning_modules.io import InputError
from lightning_modules.ivim.data import IvimDataModule
from lightning_modules.ivim.ensemble import IvimNetEnsemble, ensemble_members
from lightning_modules.ivim.module import fit_ivim_net
from lightning_modules.ivim.networks import IvimNet, predict_ivim_net
from lightning_modules.ivim.simulate import IVIMNET_B_VALUES, simulate_ivim
from lightning_modules.ivim.workflow import IvimOptions

B = np.array(IVIMNET_B_VALUES)


def test_members_are_the_network_itself_and_reproducibly_reinitialised_copies() -> None:
    network = IvimNet(B)
    members = ensemble_members(network, 3, seed=7)
    assert members[0][0] is network and [seed for _, seed in members] == [7, 107, 207]
    weights = [m.parameter_nets[2][0].weight for m, _ in members]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])
    again = ensemble_members(IvimNet(B), 2, seed=7)[1][0]
    assert torch.equal(again.parameter_nets[2][0].weight, weights[1])
    with pytest.raises(ValueError, match="n_ensemble"):
        ensemble_members(network, 0)


def test_ensemble_estimate_is_the_per_voxel_mean_or_median_of_its_members() -> None:
    signals, _ = simulate_ivim(B, 500, snr=20, seed=3)
    members = [member.eval() for member, _ in ensemble_members(IvimNet(B), 3, seed=0)]
    each = np.stack([predict_ivim_net(member, signals) for member in members])
    npt.assert_allclose(predict_ivim_net(IvimNetEnsemble(members), signals), each.mean(axis=0), rtol=1e-5)
    npt.assert_allclose(predict_ivim_net(IvimNetEnsemble(members, combine="median"), signals),
                        np.median(each, axis=0), rtol=1e-6)
    npt.assert_array_equal(predict_ivim_net(IvimNetEnsemble(members[:1]), signals), each[0])
    with pytest.raises(ValueError, match="combine"):
        IvimNetEnsemble(members, combine="mode")


def test_fit_mode_ensemble_averages_members_whose_first_is_the_single_network_fit() -> None:
    signals, _ = simulate_ivim(B, 4_000, snr=20, seed=16)

    def fit(n_ensemble: int):
        data = IvimDataModule(signals, b_values_s_per_mm2=B, batch_size=256, batches_per_epoch=10, seed=0)
        torch.manual_seed(0)  # the same initial weights of the first network in both fits
        return fit_ivim_net(data, IvimNet(B), max_epochs=2, patience_epochs=2, learning_rate=3e-3,
                            n_ensemble=n_ensemble, progress_bar=False)

    single, ensemble = fit(1), fit(3)
    assert isinstance(single, IvimNet) and isinstance(ensemble, IvimNetEnsemble) and len(ensemble.members) == 3
    each = np.stack([predict_ivim_net(member, signals) for member in ensemble.members])
    npt.assert_allclose(each[0], predict_ivim_net(single, signals), rtol=1e-5, atol=1e-8)
    assert np.abs(each[1] - each[0]).max() > 1e-4 and np.abs(each[2] - each[1]).max() > 1e-4
    npt.assert_allclose(predict_ivim_net(ensemble, signals), each.mean(axis=0), rtol=1e-5, atol=1e-8)


def test_bundle_refuses_an_ensemble_of_no_networks() -> None:
    with pytest.raises(InputError, match="--n_ensemble must be at least 1"):
        IvimOptions.parse(n_ensemble=0, posterior_mean=False)

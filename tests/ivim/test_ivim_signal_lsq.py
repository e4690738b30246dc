"""Signal models, normalisation and the least-squares fits on known truth and on OSIPI's generic.json."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest
import torch

from lightning_modules.ivim.lsq import IvimLsq, bounds_array
from lightning_modules.ivim.signal import (
    average_repeats,
    biexp_signal,
    model_signal,
    normalise_signal,
    signal_and_jacobian,
    triexp_signal,
)
from lightning_modules.ivim.simulate import IVIMNET_B_VALUES, simulate_ivim
from tests.ivim.conftest import load_osipi

B = np.array(IVIMNET_B_VALUES)


def test_biexp_signal_matches_the_equation() -> None:
    s = biexp_signal(B, d_mm2_per_s=1e-3, f=0.2, d_star_mm2_per_s=0.05, s0=2.0)
    npt.assert_allclose(s, 2.0 * (0.2 * np.exp(-B * 0.05) + 0.8 * np.exp(-B * 1e-3)))
    t = triexp_signal(B, d_mm2_per_s=1e-3, f1=0.2, d_star1_mm2_per_s=0.05, f2=0.0, d_star2_mm2_per_s=0.3, s0=2.0)
    npt.assert_allclose(t, s)


@pytest.mark.parametrize("model", ["biexp", "triexp"])
def test_jacobian_matches_autograd(model: str) -> None:
    params = torch.as_tensor(bounds_array(model, "body").mean(axis=1)[None]).requires_grad_(True)
    b = torch.as_tensor(B)
    _, analytic = signal_and_jacobian(model, b, params.detach())
    auto = torch.autograd.functional.jacobian(lambda p: model_signal(model, b, p)[0], params)[:, 0, :]
    npt.assert_allclose(torch.cat(analytic, dim=0).numpy(), auto.T.numpy(), rtol=1e-10, atol=1e-12)


def test_normalisation_uses_every_lowest_b_volume_wherever_it_is() -> None:
    b = np.array([500.0, 0.0, 100.0, 0.0])
    signal = np.array([[30.0, 100.0, 60.0, 120.0], [0.0, 0.0, 0.0, 0.0]])
    normalised, ref, valid = normalise_signal(signal, b)
    npt.assert_allclose(ref, [110.0, 0.0])
    npt.assert_array_equal(valid, [True, False])
    npt.assert_allclose(normalised[0], signal[0] / 110.0)
    npt.assert_array_equal(normalised[1], 0.0)
    unique, averaged = average_repeats(signal[:1], b)
    npt.assert_array_equal(unique, [0.0, 100.0, 500.0])
    npt.assert_allclose(averaged, [[110.0, 60.0, 30.0]])


def test_lsq_recovers_noiseless_truth_in_shuffled_order_with_repeats_and_scale() -> None:
    _, truth = simulate_ivim(B, 300, snr=1e9, seed=3)
    order = np.r_[np.arange(B.size)[::-1], 0, 7]  # b = 0 last, two repeated b-values
    b = B[order]
    signal = 250.0 * model_signal("biexp", b, truth)
    fit = IvimLsq(b).fit(signal.reshape(10, 30, -1))
    assert fit.params.shape == (10, 30, 4)
    maps = fit.maps
    npt.assert_allclose(maps["D"].ravel(), truth[:, 0], rtol=1e-3)
    npt.assert_allclose(maps["f"].ravel(), truth[:, 1], rtol=1e-3)
    npt.assert_allclose(maps["Dstar"].ravel(), truth[:, 2], rtol=1e-2)
    npt.assert_allclose(maps["S0"].ravel(), 250.0, rtol=1e-4)


def test_lsq_gives_zero_for_zero_signal_and_stays_in_bounds_on_noise() -> None:
    signal, _ = simulate_ivim(B, 500, snr=5, seed=4)
    signal[:7] = 0.0
    params = IvimLsq(B).fit(signal).params
    assert np.all(np.isfinite(params))
    npt.assert_array_equal(params[:7], 0.0)
    limits = bounds_array("biexp", "body")
    assert np.all(params[7:, :3] >= limits[:3, 0]) and np.all(params[7:, :3] <= limits[:3, 1])


def test_full_fit_beats_segmented_fit_on_noisy_data() -> None:
    signal, truth = simulate_ivim(B, 3000, snr=50, seed=5)
    full = IvimLsq(B).fit(signal).params
    seg = IvimLsq(B, segmented_only=True).fit(signal).params
    cost = [np.mean((model_signal("biexp", B, p) - signal) ** 2) for p in (full, seg)]
    assert cost[0] < 0.9 * cost[1]


def test_triexp_lsq_recovers_noiseless_triexp_signal() -> None:
    b = np.array([0, 2, 5, 10, 15, 20, 30, 40, 60, 80, 100, 150, 200, 300, 400, 500, 600, 700.0])
    truth = np.array([[1.2e-3, 0.15, 0.02, 0.1, 0.2, 1.0]])
    fit = IvimLsq(b, model="triexp", iterations=200).fit(model_signal("triexp", b, truth))
    npt.assert_allclose(fit.params[0], truth[0], rtol=0.05)


def test_lsq_passes_osipi_rules_on_every_generic_tissue(osipi_dir) -> None:
    b, names, signals, truth = load_osipi(osipi_dir, "generic.json")
    fit = IvimLsq(b, bounds="body").fit(signals).maps
    for i, name in enumerate(names):  # OSIPI TF2.4 test_ivim_fit: rtol 0.1, atol {f: 0.2, D: 5e-4, Dp: 0.1}
        npt.assert_allclose(fit["f"][i], truth["f"][i], rtol=0.1, atol=0.2, err_msg=name)
        if truth["f"][i] < 0.8:
            npt.assert_allclose(fit["D"][i], truth["D"][i], rtol=0.1, atol=5e-4, err_msg=name)
        if truth["f"][i] > 0.03:
            npt.assert_allclose(fit["Dstar"][i], truth["Dp"][i], rtol=0.1, atol=0.1, err_msg=name)
    # much tighter than OSIPI's rules: a wrong model or normalisation breaks these
    npt.assert_allclose(fit["D"], truth["D"], rtol=0.02)
    npt.assert_allclose(fit["f"], truth["f"], atol=0.01)
    npt.assert_allclose(fit["Dstar"], truth["Dp"], rtol=0.1)


def test_lsq_brain_preset_fits_osipi_brain_tissues(osipi_dir) -> None:
    b, names, signals, truth = load_osipi(osipi_dir, "generic_brain.json")
    fit = IvimLsq(b, bounds="brain").fit(signals).maps
    npt.assert_allclose(fit["D"], truth["D"], rtol=0.1, atol=5e-4)
    npt.assert_allclose(fit["f"], truth["f"], rtol=0.1, atol=0.2)

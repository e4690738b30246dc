"""IVIM-NET: architecture, bounds, self-supervised training on known truth and OSIPI's deep-learning rules."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest
import torch

from lightning_modules.ivim.data import IvimDataModule
from lightning_modules.ivim.lsq import IvimLsq
from lightning_modules.ivim.module import IvimNetModule, train_ivim_net
from lightning_modules.ivim.networks import IvimNet, predict_ivim_net
from lightning_modules.ivim.pretrained import PRETRAINED_SCHEMES, PRETRAINED_WEIGHTS, pretrained_network
from lightning_modules.ivim.signal import normalise_signal
from lightning_modules.ivim.simulate import IVIMNET_B_VALUES, simulate_ivim
from tests.ivim.conftest import load_osipi
from tests.ivim.test_ivim_bundle import BUNDLE

B = np.array(IVIMNET_B_VALUES)


def test_one_mlp_per_parameter_with_batchnorm_elu_dropout_and_widened_bounds() -> None:
    net = IvimNet(B, model="triexp")
    assert len(net.parameter_nets) == 6
    layers = [type(m).__name__ for m in net.parameter_nets[0]]
    assert layers == ["Linear", "BatchNorm1d", "ELU", "Dropout"] * 2 + ["Linear"]
    assert net.parameter_nets[0][0].in_features == net.parameter_nets[0][0].out_features == B.size
    npt.assert_allclose(net.upper[:2].numpy(), [0.005 * 1.3, 1.3], rtol=1e-6)  # D, f1 widened by 30 % of range
    assert float(net.lower[0]) == 0.0 and float(net.lower[1]) < 0.0  # D kept ≥ 0, f widened below 0
    out = net.eval()(torch.rand(7, B.size))
    assert out.shape == (7, 6) and torch.all(out >= net.lower) and torch.all(out <= net.upper)


def test_every_shipped_weight_file_loads_with_weights_only() -> None:
    for (model, scheme), name in PRETRAINED_WEIGHTS.items():
        state = torch.load(BUNDLE / "models" / name, map_location="cpu", weights_only=True)
        npt.assert_allclose(state["b_values"].numpy(), PRETRAINED_SCHEMES[scheme])
        assert pretrained_network(model, np.asarray(PRETRAINED_SCHEMES[scheme])[::-1], BUNDLE) is not None


def test_self_supervised_training_learns_d_and_f_from_the_data_alone() -> None:
    signals, truth = simulate_ivim(B, 20_000, snr=30, seed=11)
    data = IvimDataModule(signals, b_values_s_per_mm2=B, batch_size=512, batches_per_epoch=50, seed=0)
    net = train_ivim_net(data, IvimNet(B), max_epochs=4, learning_rate=3e-3, progress_bar=False)
    est = predict_ivim_net(net, signals)
    # guessing the mean gives ≈ 0.41 (D) and ≈ 0.48 (f); a trained network does far better
    assert np.sqrt(np.mean((est[:, 0] - truth[:, 0]) ** 2)) / truth[:, 0].mean() < 0.35
    assert np.sqrt(np.mean((est[:, 1] - truth[:, 1]) ** 2)) / truth[:, 1].mean() < 0.35


def test_pretrained_net_on_simulated_data_is_close_to_least_squares() -> None:
    signals, truth = simulate_ivim(B, 5000, snr=20, seed=12)
    net_err = predict_ivim_net(pretrained_network("biexp", B, BUNDLE), signals)[:, :3] - truth[:, :3]
    lsq_err = IvimLsq(B).fit(signals).params[:, :3] - truth[:, :3]
    rmse_net, rmse_lsq = np.sqrt((net_err**2).mean(0)), np.sqrt((lsq_err**2).mean(0))
    assert np.all(rmse_net[:2] < rmse_lsq[:2])  # D and f


def test_pretrained_net_passes_osipi_deep_learning_rules_on_generic_dl(osipi_dir) -> None:
    b, names, signals, truth = load_osipi(osipi_dir, "generic_DL.json")
    est = predict_ivim_net(pretrained_network("biexp", b, BUNDLE), normalise_signal(signals, b)[0])
    for i, name in enumerate(names):  # OSIPI TF2.4 deep-learning tolerances over the whole set
        npt.assert_allclose(est[i, 1], truth["f"][i], rtol=0.2, atol=0.2, err_msg=name)
        if truth["f"][i] < 0.8:
            npt.assert_allclose(est[i, 0], truth["D"][i], rtol=0.3, atol=8e-4, err_msg=name)
        if truth["f"][i] > 0.03:
            npt.assert_allclose(est[i, 2], truth["Dp"][i], rtol=0.4, atol=8e-2, err_msg=name)


def test_weight_decay_and_weight_average_options_still_learn_d_and_f() -> None:
    signals, truth = simulate_ivim(B, 20_000, snr=30, seed=13)
    data = IvimDataModule(signals, b_values_s_per_mm2=B, batch_size=512, batches_per_epoch=50, seed=0)
    net = train_ivim_net(data, IvimNet(B), max_epochs=4, learning_rate=3e-3, weight_decay=1e-4, ema_decay=0.9,
                         progress_bar=False)
    assert not net.training
    est = predict_ivim_net(net, signals)
    assert np.sqrt(np.mean((est[:, 0] - truth[:, 0]) ** 2)) / truth[:, 0].mean() < 0.35
    assert np.sqrt(np.mean((est[:, 1] - truth[:, 1]) ** 2)) / truth[:, 1].mean() < 0.35


def test_weight_decay_can_be_limited_to_named_parameter_networks() -> None:
    net = IvimNet(B)
    module = IvimNetModule(net, weight_decay=1e-4, decayed_parameters=("Dstar",))
    decayed, plain = module.configure_optimizers().param_groups
    assert decayed["weight_decay"] == 1e-4 and plain["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(p) for p in net.parameter_nets[2].parameters()}
    assert len(plain["params"]) == 3 * len(decayed["params"])
    with pytest.raises(ValueError, match="unknown IVIM parameters"):
        IvimNetModule(net, decayed_parameters=("Dstar1",))


def test_training_only_named_parameter_networks_leaves_the_others_untouched() -> None:
    signals, _ = simulate_ivim(B, 4_000, snr=30, seed=14)
    data = IvimDataModule(signals, b_values_s_per_mm2=B, batch_size=256, batches_per_epoch=10, seed=0)
    net = IvimNet(B)
    before = [{k: v.clone() for k, v in sub.state_dict().items()} for sub in net.parameter_nets]
    train_ivim_net(data, net, max_epochs=2, patience_epochs=5, weight_decay=1e-3, trained_parameters=("Dstar",),
                   progress_bar=False)
    for k, sub in enumerate(net.parameter_nets):  # D, f, D*, S0: weights and batch-norm statistics
        changed = any(not torch.equal(v, before[k][name]) for name, v in sub.state_dict().items()
                      if not name.endswith("num_batches_tracked"))
        assert changed == (k == 2), k
    with pytest.raises(ValueError, match="unknown IVIM parameters"):
        IvimNetModule(IvimNet(B), trained_parameters=("S1",))


def test_explicit_output_bounds_replace_the_widened_preset() -> None:
    from lightning_modules.ivim.networks import IVIMNET_OPTIM_BOUNDS

    net = IvimNet(B, output_bounds=IVIMNET_OPTIM_BOUNDS)
    npt.assert_allclose(net.lower.numpy(), [b[0] for b in IVIMNET_OPTIM_BOUNDS], rtol=1e-6)
    npt.assert_allclose(net.upper.numpy(), [b[1] for b in IVIMNET_OPTIM_BOUNDS], rtol=1e-6)
    with pytest.raises(ValueError, match="output_bounds"):
        IvimNet(B, output_bounds=IVIMNET_OPTIM_BOUNDS[:3])


def test_fit_mode_refinement_changes_only_dstar_and_shrinks_its_spread() -> None:
    from lightning_modules.ivim.module import fit_ivim_net

    signals, truth = simulate_ivim(B, 6_000, snr=20, seed=15)

    def fit(refine_strength: float) -> np.ndarray:
        data = IvimDataModule(signals, b_values_s_per_mm2=B, batch_size=256, batches_per_epoch=20, seed=0)
        torch.manual_seed(0)  # the same initial weights, so both runs share stage 1
        net = fit_ivim_net(data, IvimNet(B), max_epochs=3, patience_epochs=3, learning_rate=3e-3,
                           refine_strength=refine_strength, progress_bar=False)
        return predict_ivim_net(net, signals)

    plain, refined = fit(0.0), fit(5.0)
    npt.assert_allclose(refined[:, [0, 1, 3]], plain[:, [0, 1, 3]], rtol=1e-5, atol=1e-7)  # D, f, S0 frozen
    assert not np.allclose(refined[:, 2], plain[:, 2])
    assert np.std(refined[:, 2]) < np.std(plain[:, 2])  # weight decay pulls D* towards typical values

"""Learned NDI: it is NDI when nothing is learned, it trains, and the shipped weights beat the classical solvers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_modules.bundle_app import bundle_root
from lightning_modules.metrics import nrmse
from lightning_modules.physics.dipole import dipole_kernel
from lightning_modules.qsm.data import SimulatedQsmDataset
from lightning_modules.qsm.learned_ndi import LearnedNdi
from lightning_modules.qsm.methods import build_network
from lightning_modules.qsm.module import LearnedInversionModule
from lightning_modules.qsm.simulate import head_phantom, simulate_field
from lightning_modules.qsm.solvers import Ndi, Tkd


def test_without_cnn_and_with_fixed_parameters_it_is_ndi():
    chi, brain = head_phantom((24, 24, 20), (2.0, 2.0, 2.5), seed=5)
    case = simulate_field(chi, brain, (2.0, 2.0, 2.5), (0.2, 0.1, 1.0))
    field = torch.as_tensor(case.field_ppm, dtype=torch.float32)
    mask = torch.as_tensor(brain, dtype=torch.float32)
    kernel = dipole_kernel(field.shape, (2.0, 2.0, 2.5), (0.2, 0.1, 1.0))
    learned = LearnedNdi(iterations=7, channels=0, initial_step=2.0, initial_regularization=1e-3)
    with torch.no_grad():
        torch.testing.assert_close(learned(field, kernel, mask), Ndi(iterations=7)(field, kernel, mask),
                                   atol=1e-6, rtol=1e-4)


def test_forward_shapes_batched_and_unbatched():
    net = LearnedNdi(iterations=3, channels=4, cnn_iterations=1)
    kernel = dipole_kernel((12, 10, 8), (1.0, 1.2, 0.8))
    field = torch.randn(2, 12, 10, 8) * 0.01
    assert net(field, kernel, torch.ones_like(field)).shape == (2, 12, 10, 8)
    assert net(field[0], kernel, None).shape == (12, 10, 8)


def test_odd_cnn_makes_the_whole_network_odd_and_keeps_the_parameters():
    """Negating the field negates χ exactly (the forward model is linear); an unconstrained CNN does not."""
    torch.manual_seed(3)
    kernel = dipole_kernel((14, 12, 10), (1.0, 1.0, 1.5), (0.1, 0.0, 1.0))
    field = torch.randn(14, 12, 10) * 0.02
    mask = (torch.rand(14, 12, 10) > 0.2).float()
    odd = LearnedNdi(iterations=4, channels=4, cnn_iterations=2, weighting="mask", odd_cnn=True)
    plain = LearnedNdi(iterations=4, channels=4, cnn_iterations=2, weighting="mask")
    plain.load_state_dict(odd.state_dict())  # the same parameters
    with torch.no_grad():
        odd.gate.fill_(1.0)
        plain.gate.fill_(1.0)
        torch.testing.assert_close(odd(-field, kernel, mask), -odd(field, kernel, mask), atol=1e-7, rtol=1e-5)
        asymmetry = (plain(-field, kernel, mask) + plain(field, kernel, mask)).abs().max()
    assert asymmetry > 1e-4


def test_final_data_iterations_come_after_the_cnn_and_undo_what_the_field_contradicts():
    """The CNN acts in the iterations before the final plain NDI ones (all plain: NDI with learned steps). A zero
    field and a CNN that adds +0.05 ppm in a slab perpendicular to B0 (whose own field, −2/3 · 0.05 ppm, the
    zero field contradicts): without data iterations after it the slab stays at 0.05; with six only the part the
    field cannot determine is left, the volume mean (D(0) = 0): 0.05 · 4 / 24 spread over the slab."""
    shape = (16, 16, 24)
    kernel = dipole_kernel(shape)
    field = torch.zeros(shape)
    slab = torch.zeros(shape)
    slab[..., 10:14] = 1.0

    def network(final_data_iterations: int) -> LearnedNdi:
        net = LearnedNdi(iterations=12, channels=2, cnn_iterations=1, initial_step=3.0,
                         final_data_iterations=final_data_iterations)
        if net.cnn is None:
            return net
        with torch.no_grad():  # a CNN whose update is a constant +0.05 ppm
            for layer in net.cnn.layers:
                if isinstance(layer, torch.nn.Conv3d):
                    layer.weight.zero_()
                    layer.bias.zero_()
            net.cnn.layers[-1].bias.fill_(0.05 * 10.0)  # network units: ppm × CNN_INPUT_SCALE
            net.gate.fill_(1.0)
        return net

    with torch.no_grad():
        assert network(12).cnn_iterations == 0
        assert float(network(12)(field, kernel, slab).abs().max()) == 0.0
        last = network(0)(field, kernel, slab)[slab > 0]
        before_data = network(6)(field, kernel, slab)[slab > 0]
    torch.testing.assert_close(last, torch.full_like(last, 0.05))  # the CNN had the last word
    torch.testing.assert_close(before_data, torch.full_like(before_data, 0.05 * 4 / 24), rtol=0.03, atol=0.0)


def test_zero_mean_cnn_updates_cannot_shift_the_mean_of_chi():
    """With ``zero_mean_cnn`` a CNN update has zero mean over the mask: a constant update vanishes, and any
    update leaves the mean of χ over the mask where the NDI steps put it."""
    chi, brain = head_phantom((24, 24, 20), (1.5, 1.5, 1.5), seed=2)
    case = simulate_field(chi, brain, (1.5, 1.5, 1.5))
    field = torch.as_tensor(case.field_ppm, dtype=torch.float32)
    mask = torch.as_tensor(brain, dtype=torch.float32)
    kernel = dipole_kernel(field.shape, (1.5, 1.5, 1.5))
    torch.manual_seed(0)
    net = LearnedNdi(iterations=6, channels=4, cnn_iterations=1, weighting="mask", zero_mean_cnn=True)
    reference = LearnedNdi(iterations=6, channels=0, weighting="mask")
    with torch.no_grad():
        net.gate.fill_(1.0)
        random_update = net(field, kernel, mask) - reference(field, kernel, mask)
        assert float(random_update.abs().max()) > 1e-4
        assert abs(float(random_update[mask > 0].mean())) < 1e-7
        net.cnn.layers[-1].weight.zero_()
        net.cnn.layers[-1].bias.fill_(0.5)  # a constant update of 0.05 ppm
        torch.testing.assert_close(net(field, kernel, mask), reference(field, kernel, mask))


def test_dataset_is_reproducible_and_carries_the_sample_kernel():
    data = SimulatedQsmDataset(n_samples=3, patch_size=16, seed=3)
    a, b = data[1], data[1]
    for key in ("field", "chi", "mask", "kernel"):
        torch.testing.assert_close(a[key], b[key])
    assert a["field"].shape == (16, 16, 16) and a["kernel"].shape == (16, 16, 9)
    assert torch.all(a["field"][a["mask"] == 0] == 0)
    assert not torch.equal(data[0]["chi"], data[1]["chi"])


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    data = SimulatedQsmDataset(n_samples=4, patch_size=16, seed=0)
    batch = {k: torch.stack([data[i][k] for i in range(4)]) for k in ("field", "chi", "mask", "kernel")}
    module = LearnedInversionModule(LearnedNdi(iterations=4, channels=4, cnn_iterations=1), learning_rate=1e-2)
    optimiser = module.configure_optimizers()
    losses = []
    for _ in range(8):
        optimiser.zero_grad()
        loss, _ = module._errors(batch)
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    assert losses[-1] < 0.9 * losses[0]


def test_shipped_weights_beat_tkd_and_ndi_on_held_out_simulations():
    """Fresh cases of the training simulator (seeds never used in training or validation)."""
    network = build_network("learned_ndi", bundle_root("qsm_dipole_inversion")).eval()
    data = SimulatedQsmDataset(n_samples=6, patch_size=48, seed=12345, enclosed=True, large_shapes=True,
                               min_noise_ppm=1e-4)
    errors = {"learned": [], "tkd": [], "ndi": []}
    with torch.no_grad():
        for i in range(len(data)):
            s = data[i]
            region = s["mask"].numpy() > 0
            for name, solver in (("learned", network), ("tkd", Tkd()), ("ndi", Ndi())):
                errors[name].append(nrmse(solver(s["field"], s["kernel"], s["mask"]).numpy(), s["chi"].numpy(), region))
    mean = {k: float(np.mean(v)) for k, v in errors.items()}
    assert mean["learned"] < 0.9 * mean["tkd"] and mean["learned"] < 0.9 * mean["ndi"], mean


def test_shipped_weights_beat_tkd_and_ndi_on_a_qsm_forward_local_field():
    """qsm-forward's random sources (its generator and forward model, never trained on) inside a spherical brain,
    the field cut to the brain as after background-field removal; NRMSE and XSIM inside the brain."""
    qf = pytest.importorskip("qsm_forward", reason="qsm-forward is a test dependency (pip install -e .[test])")
    from qsm_forward.qsm_forward import simulate_susceptibility_sources

    from lightning_modules.metrics import xsim

    n = 64
    sources = simulate_susceptibility_sources(simulation_dim=n, rectangles_total=15, spheres_total=15, sus_std=0.08,
                                              seed=21)
    axes = np.arange(n) - (n - 1) / 2
    brain = sum(a**2 for a in np.meshgrid(axes, axes, axes, indexing="ij")) <= (0.4 * n) ** 2
    chi = np.where(brain, sources, 0.0)
    field = np.where(brain, qf.generate_field(chi, voxel_size=[1.0, 1.0, 1.0], B0_dir=[0, 0, 1]), 0.0)
    field = torch.as_tensor(field, dtype=torch.float32)
    mask = torch.as_tensor(brain, dtype=torch.float32)
    kernel = dipole_kernel(field.shape)
    network = build_network("learned_ndi", bundle_root("qsm_dipole_inversion")).eval()
    scores = {}
    with torch.no_grad():
        for name, solver in (("learned", network), ("tkd", Tkd()), ("ndi", Ndi())):
            estimate = solver(field, kernel, mask).numpy()
            scores[name] = (nrmse(estimate, chi, brain), xsim(estimate, chi, brain))
    for classical in ("tkd", "ndi"):
        assert scores["learned"][0] < 0.7 * scores[classical][0], scores
        assert scores["learned"][1] > scores[classical][1], scores


def test_shipped_weights_run_on_a_whole_head_phantom():
    network = build_network("learned_ndi", bundle_root("qsm_dipole_inversion")).eval()
    chi, brain = head_phantom((64, 64, 56), (1.0, 1.0, 1.0), seed=11)
    case = simulate_field(chi, brain, (1.0, 1.0, 1.0), noise_std_ppm=1e-3, seed=1)
    field = torch.as_tensor(case.field_ppm, dtype=torch.float32)
    mask = torch.as_tensor(brain, dtype=torch.float32)
    with torch.no_grad():
        estimate = network(field, dipole_kernel(field.shape), mask).numpy()
    assert np.all(estimate[~brain] == 0)
    assert nrmse(estimate, chi, brain) < 0.6


def test_learned_ndi_puts_the_axis_closest_to_b0_last_so_sagittal_storage_is_handled_like_axial():
    """The CNN was trained with B0 near the array's last axis. A head phantom stored with B0 along array axis 0
    (B0 tilted 10° from it) is inverted exactly like the same data stored axially (without the permutation the
    answer would depend on the storage order)."""
    from lightning_modules.qsm.methods import b0_last_order, invert_field

    assert b0_last_order((0.1, 0.2, 0.97)) == (0, 1, 2) and b0_last_order((0.0, -0.9, 0.3)) == (0, 2, 1)
    assert b0_last_order((0.98, 0.0, 0.17)) == (1, 2, 0)
    network = build_network("learned_ndi", bundle_root("qsm_dipole_inversion")).eval()
    chi, brain = head_phantom((48, 48, 40), (1.0, 1.0, 1.2), seed=3)
    tilt = np.radians(10.0)
    b0 = (0.0, float(np.sin(tilt)), float(np.cos(tilt)))
    case = simulate_field(chi, brain, (1.0, 1.0, 1.2), b0, noise_std_ppm=1e-3, seed=2)
    axial = invert_field(network, torch.as_tensor(case.field_ppm, dtype=torch.float32),
                         torch.as_tensor(brain, dtype=torch.float32), (1.0, 1.0, 1.2), b0).numpy()
    stored = (2, 0, 1)  # array axis 0 of the stored volume is the axial volume's axis 2 (B0)
    field_s = torch.as_tensor(np.transpose(case.field_ppm, stored), dtype=torch.float32)
    mask_s = torch.as_tensor(np.transpose(brain, stored), dtype=torch.float32)
    voxel_s, b0_s = [(1.0, 1.0, 1.2)[a] for a in stored], [b0[a] for a in stored]
    sagittal = invert_field(network, field_s, mask_s, voxel_s, b0_s).numpy()
    np.testing.assert_allclose(np.transpose(sagittal, np.argsort(stored)), axial, atol=1e-5)
    with torch.no_grad():
        unpermuted = network(field_s, dipole_kernel(field_s.shape, voxel_s, b0_s), mask_s).numpy()
    assert np.abs(np.transpose(unpermuted, np.argsort(stored)) - axial).max() > 1e-3
    assert nrmse(axial, chi, brain) < 0.3


@pytest.mark.parametrize("method", ["learned_ndi", "qsmgan"])
def test_learned_methods_without_their_weights_say_so(method, tmp_path):
    from lightning_modules.io import InputError

    with pytest.raises(InputError, match="not available"):
        build_network(method)  # no bundle folder
    with pytest.raises(InputError, match="configs/train.json or use --method ndi"):
        build_network(method, str(tmp_path))  # a bundle folder without the weights file


def test_mask_weighting_equals_uniform_on_a_whole_volume_and_fixes_the_cut_local_field_bias():
    """With a whole-volume mask both data weightings are the same; on local fields cut at the brain edge the
    support-constrained, mask-weighted iterations recover χ with a slope near that of the complete field, where
    fitting the cut as a zero field recovers less than half of it (slopes 0.67 and 0.43 against 0.81 here)."""
    from lightning_modules.physics.dipole import forward_field
    from lightning_modules.qsm.simulate import brain_like_chi

    def slope(estimate, chi, region):
        x, y = estimate[region], chi[region]
        return float(x @ y / (y @ y))

    kernel = dipole_kernel((40, 40, 40))
    uniform = LearnedNdi(iterations=60, channels=0, initial_step=3.0)
    local = LearnedNdi(iterations=60, channels=0, initial_step=3.0, weighting="mask")
    slopes = {"uniform": [], "mask": [], "complete field": []}
    for seed in range(3):
        chi, brain = brain_like_chi((40, 40, 40), (1.0, 1.0, 1.0), np.random.default_rng(seed), enclosed=True,
                                    large_shapes=True)
        full = forward_field(torch.as_tensor(chi), (1, 1, 1), (0, 0, 1)).float()
        mask = torch.as_tensor(brain, dtype=torch.float32)
        with torch.no_grad():
            ones = torch.ones_like(mask)
            torch.testing.assert_close(local(full, kernel, ones), uniform(full, kernel, ones))
            slopes["complete field"].append(slope(uniform(full, kernel, ones).numpy(), chi, brain))
            for name, net in (("uniform", uniform), ("mask", local)):
                estimate = net(full * mask, kernel, mask).numpy()
                assert np.all(estimate[~brain] == 0)
                slopes[name].append(slope(estimate, chi, brain))
    mean = {k: float(np.mean(v)) for k, v in slopes.items()}
    assert mean["uniform"] < 0.5 and mean["mask"] > 1.4 * mean["uniform"], mean
    assert mean["mask"] > 0.75 * mean["complete field"], mean
    with pytest.raises(ValueError, match="weighting"):
        LearnedNdi(weighting="magnitude")

"""Physics-derived line features and LineUNet (issue 24): known-truth View Line simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.line_features import (
    DISPLACEMENT_MM_PER_TESLA,
    N_FEATURES,
    LineFeatures,
    offresonance_from_iq,
)
from lightning_modules.spio.line_unet import LineUNet
from lightning_modules.spio.module import DeepSpioModule, relative_l2_image, sample_nmae
from lightning_modules.spio.networks import DeepSpio, spio_network
from lightning_modules.spio.phantoms import agar_disk, cylinder
from lightning_modules.spio.viewline import acquire, offresonance_tesla, pixel_centres_mm

INNER = (slice(40, 88), slice(30, 98))  # well inside the 24 mm disk, away from the low-pass's zero padding


def _field_estimate(delta_b: torch.Tensor) -> torch.Tensor:
    image = acquire(agar_disk(radius_mm=24.0), torch.zeros(128, 128), delta_b)
    features = LineFeatures()
    return offresonance_from_iq(features.demodulate(features.normalise(image[None]))[0, :2])


def test_displacement_constant_follows_the_two_gradients():
    # a spin excited by line k sits at z_k − ΔB/Gz and is read out ΔB/Gr further: u = −ΔB (1/Gz − 1/Gr)
    assert_allclose(DISPLACEMENT_MM_PER_TESLA, -1e3 * (1 / 0.04 - 1 / 0.16))
    assert_allclose(DISPLACEMENT_MM_PER_TESLA * 1e-4, -1.875)


@pytest.mark.parametrize("delta_b_t", [0.0, 2e-5, -5e-5, 9e-5])
def test_uniform_offresonance_is_recovered_from_the_line_displacement(delta_b_t):
    estimate = _field_estimate(torch.full((128, 128), delta_b_t))[INNER]
    # pixel discretisation of the 0.39 mm readout grid limits the accuracy to a few 0.1 mm of displacement
    assert_allclose(float(estimate.mean()), delta_b_t, atol=0.1 * abs(delta_b_t) + 2e-6)
    assert float(estimate.std()) < 2e-6


def test_a_field_gradient_is_recovered_pixel_by_pixel():
    z = pixel_centres_mm(128, 50.0 / 128)
    delta_b = (3e-5 * z / 25.0)[None, :].expand(128, 128).contiguous()
    error = (_field_estimate(delta_b) - delta_b)[INNER]
    assert float(error.abs().max()) < 3e-6  # 10 % of the largest field, ~0.05 mm of displacement


def test_the_field_of_a_weak_cylinder_is_recovered_where_it_does_not_wrap():
    concentration = 0.44 * cylinder((0.0, 0.0, 0.0), 3.0, np.array([0.0, 1.0, 0.0])).float()
    delta_b = offresonance_tesla(concentration)
    x = pixel_centres_mm(128, 50.0 / 128)
    far = (x[:, None] ** 2 + x[None, :] ** 2 > 8.0**2) & (x[:, None] ** 2 + x[None, :] ** 2 < 16.0**2)
    image = acquire(agar_disk(radius_mm=24.0), concentration[:, concentration.shape[1] // 2], delta_b)
    features = LineFeatures()
    estimate = offresonance_from_iq(features.demodulate(features.normalise(image[None]))[0, :2])
    # 8–16 mm from the axis the field (up to ~5e-6 T) varies slowly; the estimate follows it, not 0
    assert float(delta_b[far].abs().max()) > 2e-6
    corr = np.corrcoef(estimate[far].numpy(), delta_b[far].numpy())[0, 1]
    assert corr > 0.9
    assert_allclose(float((estimate[far] - delta_b[far]).abs().mean()), 0.0, atol=6e-7)


def test_features_are_scale_invariant_and_carry_the_nominal_line_phase():
    torch.manual_seed(0)
    image = torch.rand(2, 2, 128, 128)
    features = LineFeatures()
    out = features(image)
    assert out.shape == (2, N_FEATURES, 128, 128)
    assert_allclose(features(13.0 * image).numpy(), out.numpy(), atol=1e-4)
    z = pixel_centres_mm(128, 50.0 / 128)
    omega = 2 * math.pi / (2 * acq.VIEWLINE_LINE_SPACING_MM)
    assert_allclose(out[0, -2, 5].numpy(), torch.cos(omega * z).numpy(), atol=1e-6)
    assert_allclose(out[0, -1, 5].numpy(), torch.sin(omega * z).numpy(), atol=1e-6)


def test_line_unet_shapes_scale_invariance_and_ablation():
    torch.manual_seed(0)
    image = torch.rand(1, 2, 128, 128)
    for physics in (True, False):
        net = LineUNet(physics_features=physics).eval()
        with torch.no_grad():
            out = net(image)
            assert out.shape == (1, 1, 128, 128)
            assert_allclose(net(4.0 * image).numpy(), out.numpy(), atol=1e-4)
    assert LineUNet().down[0][0].in_channels == N_FEATURES
    assert LineUNet(physics_features=False).down[0][0].in_channels == 2


def test_spio_network_selects_by_name():
    from lightning_modules.spio.refined import RefinedDeepSpio

    assert isinstance(spio_network("line_unet"), LineUNet)
    assert isinstance(spio_network("deepspio"), DeepSpio)
    assert isinstance(spio_network("refined"), RefinedDeepSpio)
    with pytest.raises(ValueError, match="deepspio"):
        spio_network("unet")


def test_map_loss_trains_line_unet_on_a_known_map():
    assert_allclose(float(relative_l2_image(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2), eps=0.0)), 1.0)
    torch.manual_seed(0)
    module = DeepSpioModule(network=LineUNet(widths=(4, 8)), l2_weight=0.5)
    assert not module.uses_subbands
    concentration = torch.zeros(2, 1, 128, 128)
    concentration[:, :, 40:60, 30:50] = 5.0
    # the iron darkens the image (R2*), plus a little noise
    image = (1.0 - 0.15 * concentration).expand(2, 2, 128, 128) + 0.05 * torch.rand(2, 2, 128, 128)
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-2)
    before = float(sample_nmae(module(image), concentration).mean())
    for _ in range(60):
        optimiser.zero_grad()
        loss = module.training_step((image, concentration), 0)
        loss.backward()
        optimiser.step()
    assert float(sample_nmae(module(image), concentration).mean()) < 0.5 * before


def test_l2_weight_on_a_subband_network_is_an_error_not_a_silent_no_op():
    tiny = DeepSpio(encoder_widths=(4, 8, 8), bottleneck_channels=8, decoder_widths=(4,))
    with pytest.raises(ValueError, match="l2_weight.*DeepSpio"):
        DeepSpioModule(network=tiny, l2_weight=0.0)
    assert DeepSpioModule(network=tiny).uses_subbands  # the default (None) is fine
    assert DeepSpioModule(network=LineUNet(widths=(4, 8))).l2_weight == 0.5  # map networks keep 0.5 by default


def test_refined_network_starts_at_deepspio_and_trains_only_the_correction(tmp_path):
    from lightning_modules.spio.refined import RefinedDeepSpio

    torch.manual_seed(0)
    base = DeepSpio().eval()
    path = tmp_path / "deepspio.pt"
    torch.save(base.state_dict(), path)
    refined = RefinedDeepSpio(base_weights=str(path)).train()
    assert not refined.base.training and refined.refine.training  # the base keeps its BatchNorm statistics
    image = torch.rand(2, 2, 128, 128)
    with torch.no_grad():
        assert_allclose(refined(image).numpy(), base(image).numpy(), atol=1e-6)  # zero-initialised correction
    loss = refined(image).abs().mean()
    loss.backward()
    assert all(p.grad is None for p in refined.base.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in refined.refine.parameters())
    state = refined.state_dict()
    assert any(k.startswith("base.") for k in state) and any(k.startswith("refine.") for k in state)


def test_deepspio_on_line_features_starts_at_deepspio_and_learns_from_the_new_channels(tmp_path):
    from lightning_modules.spio.line_inputs import FIRST_CONV, DeepSpioLineInputs
    from lightning_modules.spio.module import DeepSpioModule

    torch.manual_seed(0)
    base = DeepSpio().eval()
    path = tmp_path / "deepspio.pt"
    torch.save(base.state_dict(), path)
    network = DeepSpioModule(network=spio_network("deepspio_lines"), init_weights=str(path)).network.eval()
    assert isinstance(network, DeepSpioLineInputs)
    image = torch.rand(2, 2, 128, 128)
    with torch.no_grad():
        assert_allclose(network(image).numpy(), base(image).numpy(), atol=1e-5)  # zero weights on the new inputs
    network(image).abs().mean().backward()
    new_inputs = network.state_dict(keep_vars=True)[FIRST_CONV].grad[:, 2:]
    assert new_inputs.abs().sum() > 0  # the line features get a gradient at once

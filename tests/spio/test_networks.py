"""DeepSPIO network and its LightningModule (della Maggiora et al., "DeepSPIO", IEEE TPAMI 2020, §4)."""

from __future__ import annotations

import torch
from numpy.testing import assert_allclose

from lightning_modules.spio.module import (
    DeepSpioModule,
    relative_l1_image,
    relative_l1_per_subband,
    relative_l2_per_subband,
    sample_nmae,
)
from lightning_modules.spio.networks import DeepSpio, NarrowConv2d, row_quantile
from lightning_modules.spio.wavelets import Dwt2


def test_output_shapes_and_scale_invariance():
    torch.manual_seed(0)
    net = DeepSpio().eval()
    image = torch.rand(1, 2, 128, 128)
    with torch.no_grad():
        assert net.subbands(image).shape == (1, 4, 64, 64)
        out = net(image)
        assert out.shape == (1, 1, 128, 128)
        assert_allclose(net(7.5 * image).numpy(), out.numpy(), atol=1e-4)  # any intensity scale


def test_row_quantile_is_torch_quantile_bit_for_bit():
    generator = torch.Generator().manual_seed(0)
    for shape in ((16, 16384), (3, 7), (2, 1)):
        x = torch.rand(*shape, generator=generator)
        x[:, ::3] = x[:, :1].clone()  # ties
        for q in (0.0, 0.37, 0.5, 0.99, 1.0):
            assert torch.equal(row_quantile(x, q), torch.quantile(x, q, dim=1))
    x = torch.rand(4, 1000, dtype=torch.float64, generator=generator)
    assert torch.equal(row_quantile(x, 0.99), torch.quantile(x, 0.99, dim=1))


def test_narrow_conv_is_a_conv2d_with_the_same_parameters():
    torch.manual_seed(0)
    x = torch.randn(3, 32, 12, 20, dtype=torch.float64)
    for out_channels in (1, 2):
        reference = torch.nn.Conv2d(32, out_channels, 3, padding=1).double()
        narrow = NarrowConv2d(32, out_channels).double()
        narrow.load_state_dict(reference.state_dict())
        assert_allclose(narrow(x).detach().numpy(), reference(x).detach().numpy(), atol=1e-12)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the taps are summed in float32 under mixed precision
        assert narrow.float()(x.float()).dtype == torch.float32
    assert sum(isinstance(m, NarrowConv2d) for m in DeepSpio().modules()) == 4  # one per sub-band decoder


def test_architecture_follows_deepspio():
    net = DeepSpio()
    assert len(net.decoders) == 4
    assert len(net.bottleneck) == 4 and all(hasattr(b, "shortcut") for b in net.bottleneck)
    strides = [m.stride[0] for m in net.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert strides == [1, 2, 2]  # 128² → 32² bottleneck, one ×2 decoder stage to the 64² sub-bands
    assert not any(isinstance(m, torch.nn.MaxPool2d | torch.nn.AvgPool2d) for m in net.modules())
    slopes = {m.negative_slope for m in net.decoders.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.01}


def test_loss_is_relative_per_subband_and_training_reduces_it():
    target = torch.rand(3, 4, 8, 8)
    assert_allclose(relative_l1_per_subband(target, target).numpy(), 0.0)
    per_band = relative_l1_per_subband(torch.zeros_like(target), target, eps=0.0)
    approx_norm = target[:, 0].abs().sum((-2, -1))
    expected = (target.abs().sum((-2, -1)) / approx_norm[:, None]).mean(0)
    assert_allclose(per_band.numpy(), expected.numpy(), rtol=1e-6)
    assert_allclose(float(per_band[0]), 1.0, rtol=1e-6)
    assert_allclose(sample_nmae(2 * target[:, :1], target[:, :1]).numpy(), 1.0, rtol=1e-6)

    torch.manual_seed(0)
    module = DeepSpioModule(network=DeepSpio(encoder_widths=(4, 8, 8), bottleneck_channels=8,
                                             decoder_widths=(4,)))
    image = torch.rand(2, 2, 32, 32)
    concentration = torch.zeros(2, 1, 32, 32)
    concentration[:, :, 10:20, 8:16] = 5.0
    optimiser = torch.optim.Adam(module.parameters(), lr=1e-2)
    dwt = Dwt2()
    losses = []
    for _ in range(10):
        loss = relative_l1_per_subband(module.network.subbands(image), dwt(concentration)).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]


def test_image_loss_is_the_damped_map_nmae_added_after_the_warm_up():
    torch.manual_seed(0)
    target = torch.rand(3, 1, 16, 16)
    predicted = target + 0.3 * torch.randn_like(target)
    assert_allclose(float(relative_l1_image(predicted, target, eps=0.0)),
                    float(sample_nmae(predicted, target).mean()), rtol=1e-6)
    assert_allclose(float(relative_l1_image(torch.zeros_like(target), target, eps=0.0)), 1.0, rtol=1e-6)
    assert float(relative_l1_image(predicted, target, eps=50.0)) < float(relative_l1_image(predicted, target, eps=0.0))

    network = DeepSpio(encoder_widths=(4, 8, 8), bottleneck_channels=8, decoder_widths=(4,))
    image, concentration = torch.rand(2, 2, 32, 32), torch.zeros(2, 1, 32, 32)
    concentration[:, :, 10:20, 8:16] = 5.0
    subbands = network.subbands(image)
    band_only = float(relative_l1_per_subband(subbands, Dwt2()(concentration)).sum())
    map_nmae = float(relative_l1_image(network.inverse_dwt(subbands), concentration))
    warm_up_loss = float(relative_l2_per_subband(subbands, Dwt2()(concentration)).sum())  # map term off
    for weight, warm_up, expected in [(0.0, 0, band_only), (2.0, 0, band_only + 2.0 * map_nmae),
                                      (2.0, 5, warm_up_loss)]:
        module = DeepSpioModule(network=network, image_loss_weight=weight, l2_warmup_epochs=warm_up)
        module.log = lambda *args, **kwargs: None
        assert_allclose(float(module.training_step((image, concentration), 0)), expected, rtol=1e-5)

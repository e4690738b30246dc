"""Widening a trained DeepSPIO (Net2WiderNet) and extending a cached sample pool."""

from __future__ import annotations

import pytest
import torch
from numpy.testing import assert_allclose

from lightning_modules.spio import data
from lightning_modules.spio.module import DeepSpioModule
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.widen import widen_state_dict

NARROW = {"encoder_widths": (4, 6, 8), "bottleneck_channels": 8, "decoder_widths": (4,)}
WIDE = {"encoder_widths": (6, 9, 12), "bottleneck_channels": 13, "decoder_widths": (7,)}


def _trained_narrow() -> DeepSpio:
    torch.manual_seed(0)
    narrow = DeepSpio(**NARROW)
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for m in narrow.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
        narrow.train()
        for _ in range(3):
            narrow(torch.rand(4, 2, 32, 32))
    return narrow.eval()


@pytest.mark.parametrize("train_mode", [False, True])
def test_widened_network_computes_the_same_map(train_mode):
    narrow = _trained_narrow()
    wide = DeepSpio(**WIDE)
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide, noise=0.0))
    image = torch.rand(3, 2, 32, 32)
    narrow.train(train_mode)
    wide.train(train_mode)
    with torch.no_grad():
        expected = narrow(image)
        assert expected.abs().max() > 0.1
        assert_allclose(wide(image).numpy(), expected.numpy(), atol=1e-4 * float(expected.abs().max()))
    assert sum(p.numel() for p in wide.parameters()) > 2 * sum(p.numel() for p in narrow.parameters())


def test_noise_makes_copies_differ_and_keeps_the_map_close():
    narrow = _trained_narrow()
    wide = DeepSpio(**WIDE)
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), wide, noise=0.01))
    first = wide.encoder[0][0].weight
    copies = first[4:]  # the new channels copy some of the first four
    assert not any(torch.allclose(c, first[j]) for c in copies for j in range(4))
    wide.eval()
    image = torch.rand(3, 2, 32, 32)
    with torch.no_grad():
        expected = narrow(image)
        assert float((wide(image) - expected).abs().mean() / expected.abs().mean()) < 0.1


def test_narrower_or_deeper_targets_are_refused():
    narrow = _trained_narrow().state_dict()
    with pytest.raises(ValueError, match="at least as wide"):
        widen_state_dict(narrow, DeepSpio(encoder_widths=(4, 6, 8), bottleneck_channels=6, decoder_widths=(4,)))
    with pytest.raises(ValueError, match="different layers"):
        widen_state_dict(narrow, DeepSpio(**{**NARROW, "n_residual_blocks": 5}))


def test_module_widens_narrower_init_weights(tmp_path):
    narrow = _trained_narrow()
    path = tmp_path / "narrow.pt"
    torch.save(narrow.state_dict(), path)
    module = DeepSpioModule(network=DeepSpio(**WIDE), init_weights=str(path))
    module.network.eval()
    image = torch.rand(2, 2, 32, 32)
    with torch.no_grad():
        expected = narrow(image)
        assert float((module.network(image) - expected).abs().mean() / expected.abs().mean()) < 0.1


def test_pool_extends_a_smaller_cached_pool(tmp_path, monkeypatch):
    def fake_sample(seed, index):
        return torch.full((2, 128, 128), float(index)), torch.full((1, 128, 128), float(seed))

    monkeypatch.setattr(data, "random_sample", fake_sample)
    small_images, _ = data.simulate_pool(5, 3, cache_dir=tmp_path, log_every=0)
    calls = []
    monkeypatch.setattr(data, "random_sample", lambda s, i: calls.append(i) or fake_sample(s, i))
    images, concentrations = data.simulate_pool(5, 5, cache_dir=tmp_path, log_every=0)
    assert calls == [3, 4]  # only the new samples are simulated
    assert torch.equal(images[:3], small_images)
    assert images[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4] and bool((concentrations == 5).all())
    assert (tmp_path / "spio_pool_seed5_n5.pt").is_file()

"""The View Line simulator's noise models (session 33): complex (training's), magnitude and 4-coil SoS, and the
generator's ``noise_models`` / ``noise_model`` options."""

from __future__ import annotations

import math

import pytest
import torch
from numpy.testing import assert_allclose

from lightning_modules.spio.data import random_sample_with_snr
from lightning_modules.spio.viewline import add_noise

SIGMA = 0.1
SNR_DB = 20.0  # signal 1, σ = 0.1


def _noise(image: torch.Tensor, model: str, seed: int = 0) -> torch.Tensor:
    return add_noise(image, snr_db=SNR_DB, signal=1.0, generator=torch.Generator().manual_seed(seed), model=model)


@pytest.mark.parametrize(("model", "background_mean"), [
    ("complex", SIGMA * math.sqrt(math.pi / 2)),                            # Rayleigh
    ("magnitude", SIGMA * math.sqrt(2 / math.pi)),                          # half-normal
    ("sos4", SIGMA * math.sqrt(2) * math.gamma(4.5) / math.gamma(4.0)),     # χ with 8 degrees of freedom
])
def test_each_models_background_has_its_distributions_mean(model, background_mean):
    assert_allclose(float(_noise(torch.zeros(2, 128, 128), model).mean()), background_mean, rtol=0.02)


# (8 and 32 coils at 20 dB: each coil sees too little signal for the high-SNR limit; their backgrounds: test_snr.py)
@pytest.mark.parametrize("model", ["complex", "magnitude", "sos4", "sos2", "signed"])
def test_every_model_has_noise_sigma_and_no_bias_on_bright_tissue(model):
    noisy = _noise(torch.ones(2, 128, 128), model)
    assert_allclose(float(noisy.std()), SIGMA, rtol=0.05)
    assert abs(float(noisy.mean()) - 1.0) < 0.05  # the noise-free image's level (SoS: ≈ 1 + 3.5σ², Rician 1 + σ²/2)


def test_magnitude_noise_is_the_complex_models_real_part():
    image = torch.linspace(0.0, 2.0, 2 * 64 * 64).reshape(2, 64, 64)
    real = image + SIGMA * torch.randn(image.shape, generator=torch.Generator().manual_seed(3))
    assert torch.equal(_noise(image, "magnitude", seed=3), torch.abs(real))


def test_unknown_noise_model_is_refused():
    with pytest.raises(ValueError, match="unknown noise model"):
        _noise(torch.zeros(2, 8, 8), "gaussian")


def test_noise_models_off_gives_the_plain_samples_and_on_changes_only_noisy_ones():
    changed = 0
    for i in range(30):
        plain, truth, snr = random_sample_with_snr(7, i)
        assert torch.equal(random_sample_with_snr(7, i, noise_models=0.0)[0], plain)
        other, other_truth, other_snr = random_sample_with_snr(7, i, noise_models=1.0)
        assert torch.equal(other_truth, truth) and other_snr == snr
        assert torch.equal(other, plain) == math.isinf(snr)  # every noisy sample gets another model
        changed += int(not torch.equal(other, plain))
    assert changed > 20


def test_a_forced_noise_model_is_the_same_sample_under_that_model():
    plain, _, snr = random_sample_with_snr(7, 1)
    assert not math.isinf(snr)
    assert torch.equal(random_sample_with_snr(7, 1, noise_model="complex")[0], plain)
    magnitude = random_sample_with_snr(7, 1, noise_model="magnitude")[0]
    assert not torch.equal(magnitude, plain)
    assert float((magnitude - plain).abs().max()) < 10 * float(plain.max())

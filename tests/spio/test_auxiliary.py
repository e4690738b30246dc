"""Auxiliary targets (issue 24, session 21): the field target is the dipole field of the iron in the units the
docstring names, the extent target the iron's length along y; samples with targets are the plain samples plus the
targets; the training-only decoder learns from them and never enters the bundle's network."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.auxiliary import EXTENT_SCALE_MM, FIELD_SCALE_MM, auxiliary_targets
from lightning_modules.spio.data import ViewLineDataModule, random_sample, random_sample_with_targets
from lightning_modules.spio.line_unet import LineUNet
from lightning_modules.spio.module import DeepSpioModule
from lightning_modules.spio.phantoms import sphere
from lightning_modules.spio.viewline import PIXEL_MM, VOXEL_3D_MM, offresonance_tesla


def test_targets_of_a_sphere_match_its_dipole_field_and_diameter():
    radius_mm, level = 3.0, 10.0
    ball = sphere((0.0, 0.0, 0.0), radius_mm)
    concentration = ball.float() * level
    targets = auxiliary_targets(offresonance_tesla(concentration), concentration)
    assert targets.shape == (2, 64, 64)
    # extent: the column through the centre holds the ball's diameter, to one y voxel
    assert abs(float(targets[1, 32, 32]) * EXTENT_SCALE_MM - 2 * radius_mm) <= VOXEL_3D_MM[1]
    assert float(targets[1, 32, 50]) == 0.0  # no iron beside the ball
    # field on the B0 (z) axis at ≈ 3 radii: χ B0 V / (2π d³) for any compact source (its dipole term)
    m = 43  # pooled pixel m spans image pixels 2m, 2m+1 along z
    d_mm = (2 * m + 1) * PIXEL_MM[1] - acq.VIEWLINE_FOV_MM[1] / 2
    volume_mm3 = float(ball.sum()) * math.prod(VOXEL_3D_MM)
    field_t = level * acq.SPIO_CHI_SI_PER_UG_FE_PER_MM3 * acq.VIEWLINE_B0_TESLA * volume_mm3 / (2 * math.pi * d_mm**3)
    shift_mm = field_t / acq.VIEWLINE_GZ_T_PER_M * 1e3
    measured_shift_mm = math.sinh(float(targets[0, 32, m])) * FIELD_SCALE_MM
    assert measured_shift_mm == pytest.approx(shift_mm, rel=0.05)
    # and negative beside it along x (3 cos²θ − 1 = −1)
    assert float(targets[0, 32 + (m - 32), 32]) < 0


def test_samples_with_targets_are_the_plain_samples_plus_targets():
    for index in range(2):
        image, concentration = random_sample(9, index)
        image_t, concentration_t, targets = random_sample_with_targets(9, index)
        assert torch.equal(image, image_t) and torch.equal(concentration, concentration_t)
        assert targets.shape == (2, 64, 64) and torch.isfinite(targets).all()
        in_plane = torch.nn.functional.avg_pool2d(concentration[None], 2)[0, 0] > 0
        assert bool((targets[1][in_plane] > 0).all())  # iron in the plane has an extent along y


def test_auxiliary_loss_trains_its_decoder_and_stays_out_of_the_network():
    torch.manual_seed(0)
    samples = [random_sample_with_targets(9, i) for i in range(2)]
    batch = tuple(torch.stack([s[j] for s in samples]) for j in range(3))
    module = DeepSpioModule(auxiliary_weight=1.0)
    module.log = lambda *args, **kwargs: None
    with_aux = module.training_step(batch, 0)
    with_aux.backward()
    assert module.auxiliary_decoder[-1].weight.grad.abs().sum() > 0
    assert not any("auxiliary" in key for key in module.network.state_dict())
    plain = DeepSpioModule(auxiliary_weight=0.0)
    plain.load_state_dict(module.state_dict(), strict=False)
    plain.log = module.log
    assert float(with_aux.detach()) > float(plain.training_step(batch[:2], 0).detach())  # the auxiliary loss is added
    with pytest.raises(ValueError, match="auxiliary targets"):
        module.training_step(batch[:2], 0)


def test_auxiliary_targets_are_refused_where_they_cannot_apply():
    with pytest.raises(ValueError, match="DeepSPIO network"):
        DeepSpioModule(network=LineUNet(), auxiliary_weight=1.0)
    with pytest.raises(ValueError, match="fresh samples"):
        ViewLineDataModule(pool_size=100, auxiliary_targets=True)

"""QSMGAN networks: a 3-D U-Net generator (field → χ) and a WGAN-GP critic, with the gradient penalty.

Chen et al., "QSMGAN: Improved Quantitative Susceptibility Mapping using 3D Generative Adversarial Networks
with increased receptive field", NeuroImage 2020: a U-Net of Conv3d–BatchNorm–LeakyReLU blocks maps a 64³
local-field patch to χ, of which only the 48³ centre is kept (the outer 8 voxels lack the dipole field's
far-reaching context); it is trained with L1 first and then refined with a Wasserstein critic and gradient
penalty (Gulrajani et al., NeurIPS 2017). Sized here for CPU inference (default width 8, three levels).

Tensors are (batch, channel, i, j, k) in *network units*: :func:`generator_input` scales the field (ppm) by
:data:`FIELD_SCALE` and adds the mask as a second channel (and, for the physics-informed generator of
:mod:`lightning_modules.qsm.qsmgan_inference`, a prior χ estimate scaled by :data:`CHI_SCALE` as a third); the
generator's output divided by :data:`CHI_SCALE` is χ in ppm (or, with a prior, a correction to it).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: The field (ppm, typically ±0.05) is multiplied by this before the generator.
FIELD_SCALE = 10.0
#: The generator's output divided by this is χ in ppm (χ of brain tissue is typically −0.1…+0.4 ppm).
CHI_SCALE = 10.0


def generator_input(
    field_ppm: torch.Tensor, mask: torch.Tensor, prior_ppm: torch.Tensor | None = None
) -> torch.Tensor:
    """Stack ``field_ppm · FIELD_SCALE · mask``, ``mask`` and, if given, ``prior_ppm · CHI_SCALE · mask`` (each
    (batch, i, j, k)) into (batch, 2 or 3, i, j, k)."""
    mask = mask.to(field_ppm.dtype)
    channels = [field_ppm * mask * FIELD_SCALE, mask]
    if prior_ppm is not None:
        channels.append(prior_ppm * mask * CHI_SCALE)
    return torch.stack(channels, dim=1)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two Conv3d(3×3×3)–BatchNorm–LeakyReLU(0.2) layers."""
    layers = []
    for c_in in (in_channels, out_channels):
        layers += [nn.Conv3d(c_in, out_channels, 3, padding=1, bias=False), nn.BatchNorm3d(out_channels),
                   nn.LeakyReLU(0.2, inplace=True)]
    return nn.Sequential(*layers)


class QsmganGenerator(nn.Module):
    """3-D U-Net: ``levels`` resolutions (widths ``channels · 2^l``), max-pool down, transposed-conv up, skips.

    Args:
        channels: width of the finest level.
        levels: number of resolutions; input sizes must be multiples of ``2^(levels − 1)``.
        crop_voxels: voxels cut from each side of the output (8: a 64³ patch gives a 48³ centre).
        in_channels: input channels (field and mask, plus the prior for a physics-informed generator; see
            :func:`generator_input`).

    Input (batch, in_channels, n_i, n_j, n_k); output (batch, 1, n_i − 2c, n_j − 2c, n_k − 2c), c = crop_voxels.
    """

    def __init__(self, *, channels: int = 8, levels: int = 3, crop_voxels: int = 8, in_channels: int = 2) -> None:
        super().__init__()
        self.crop_voxels = int(crop_voxels)
        widths = [channels * 2**level for level in range(levels)]
        self.encoders = nn.ModuleList(
            _conv_block(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths)
        )
        self.upsamplers = nn.ModuleList(
            nn.ConvTranspose3d(widths[level + 1], widths[level], 2, stride=2) for level in range(levels - 1)
        )
        self.decoders = nn.ModuleList(_conv_block(2 * widths[level], widths[level]) for level in range(levels - 1))
        self.head = nn.Conv3d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level:
                x = F.max_pool3d(x, 2)
            x = encoder(x)
            skips.append(x)
        for level in reversed(range(len(self.decoders))):
            x = self.decoders[level](torch.cat([self.upsamplers[level](x), skips[level]], dim=1))
        x = self.head(x)
        c = self.crop_voxels
        return x[..., c:-c, c:-c, c:-c] if c else x


class QsmganCritic(nn.Module):
    """WGAN-GP critic: four blocks of stride-2 Conv3d + LeakyReLU (no batch norm, which would break the
    per-sample gradient penalty), global average, linear → one unbounded score per sample.

    The critic is conditional: it sees χ together with the field it was computed from (2 channels), so it
    judges whether χ fits the measurement, not only whether it looks like tissue.

    Args:
        channels: width of the first block (doubles per block).
        in_channels: χ and field.
    """

    def __init__(self, *, channels: int = 8, in_channels: int = 2) -> None:
        super().__init__()
        widths = [channels * 2**b for b in range(4)]
        layers: list[nn.Module] = []
        for c_in, c_out in zip([in_channels, *widths[:-1]], widths):
            layers += [nn.Conv3d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.score = nn.Linear(widths[-1], 1)

    def forward(self, chi: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Scores (batch,) of χ (batch, 1, i, j, k) given the field ``condition`` of the same shape."""
        return self.score(self.features(torch.cat([chi, condition], dim=1)).mean(dim=(-3, -2, -1)))[:, 0]


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor | None = None
) -> torch.Tensor:
    """WGAN-GP penalty ``E[(‖∇_x̂ critic(x̂)‖₂ − 1)²]`` at random points x̂ on lines between real and fake samples
    (Gulrajani et al. 2017, eq. 3); the gradient is taken with respect to χ only, per sample.

    Args:
        critic: called as ``critic(x̂)`` or, with a ``condition``, ``critic(x̂, condition)``.
        real, fake: samples of the same shape (batch, ...).
        condition: extra critic input, held fixed.

    Returns:
        Scalar penalty, differentiable with respect to the critic's parameters.
    """
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), dtype=real.dtype, device=real.device)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed) if condition is None else critic(mixed, condition)
    (gradient,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (gradient.flatten(1).norm(dim=1) - 1).pow(2).mean()

"""LineUNet: View Line image → SPIO concentration through physics-derived inputs and a small U-Net.

Replaces DeepSPIO's (della Maggiora et al., IEEE TPAMI 2020) "discover the physics from scratch" with inputs
that carry it (:class:`~lightning_modules.spio.line_features.LineFeatures`: the nominal line positions, the
demodulated line displacement, a wrapped field map sampled at the lines, and the signal envelope, which falls
with R2*) and with skip connections (Ronneberger et al., "U-Net", MICCAI 2015), so the map stays sharp to the
pixel while the bottleneck (1/8 resolution, 20 mm receptive field and more) sees the dipole pattern around
each object. Sized to train on one CPU core.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.spio.line_features import N_FEATURES, LineFeatures


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3×3 Conv-BN-ReLU layers."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def unet_levels(in_channels: int, widths: tuple[int, ...]) -> tuple[nn.ModuleList, nn.ModuleList, nn.ModuleList, int]:
    """A U-Net's ``down`` blocks (one :func:`double_conv` per width), its ``up`` transposed convolutions and ``merge``
    blocks (one per skip), and the channels of its last level, for :func:`unet_pass`."""
    down, up, merge = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
    for width in widths:
        down.append(double_conv(in_channels, width))
        in_channels = width
    for skip in reversed(widths[:-1]):
        up.append(nn.ConvTranspose2d(in_channels, skip, 2, stride=2))
        merge.append(double_conv(2 * skip, skip))
        in_channels = skip
    return down, up, merge, in_channels


def he_init(module: nn.Module) -> None:
    """He (Kaiming normal, ReLU) initialisation of every (transposed) convolution of ``module``, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def unet_pass(x: torch.Tensor, down: nn.ModuleList, up: nn.ModuleList, merge: nn.ModuleList) -> torch.Tensor:
    """A U-Net's features: ``down`` blocks with 2 × 2 max pooling between levels, then per level back up the
    ``up`` upsampling, concatenated with that level's skip and ``merge``d (the head is the caller's)."""
    skips = []
    for i, block in enumerate(down):
        if i:
            x = nn.functional.max_pool2d(x, 2)
        x = block(x)
        skips.append(x)
    for upsample, combine, skip in zip(up, merge, reversed(skips[:-1]), strict=True):
        x = combine(torch.cat([upsample(x), skip], dim=1))
    return x


class LineUNet(nn.Module):
    """U-Net on View Line line features.

    Input: View Line magnitude image (B, 2, X, Z) — channel 0 even lines, channel 1 odd lines; X, Z divisible
    by ``2 ** (len(widths) − 1)``; any intensity scale. Output: SPIO concentration (B, 1, X, Z), µg Fe/mm³.

    Args:
        widths: channels per resolution level (full, 1/2, 1/4, …); each level halves the resolution (max
            pooling) and its decoder twin upsamples (transposed conv) and concatenates the skip.
        physics_features: feed :class:`LineFeatures` (11 channels); False feeds the normalised image only (the
            ablation).
        prior_channels: further input maps passed to :meth:`forward` as ``prior`` (e.g. another network's
            concentration estimate, µg Fe/mm³, divided by ``output_scale_ug_per_mm3``).
        output_scale_ug_per_mm3: scale of the raw network output.
        head_init_scale: scale of the initial output layer's weights (0: the network starts at the all-zero map).

    >>> LineUNet()(torch.rand(1, 2, 128, 128)).shape
    torch.Size([1, 1, 128, 128])
    """

    def __init__(self, *, widths: tuple[int, ...] = (16, 32, 64, 96), physics_features: bool = True,
                 prior_channels: int = 0, output_scale_ug_per_mm3: float = 10.0, head_init_scale: float = 0.01,
                 ) -> None:
        super().__init__()
        self.features = LineFeatures()
        self.physics_features = bool(physics_features)
        in_channels = (N_FEATURES if self.physics_features else 2) + prior_channels
        self.down, self.up, self.merge, out_channels = unet_levels(in_channels, widths)
        self.head = nn.Conv2d(out_channels, 1, 1)
        self.output_scale = float(output_scale_ug_per_mm3)
        he_init(self)
        self.head.weight.data.mul_(head_init_scale)  # start near the all-zero map

    def forward(self, image: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        x = self.features(image) if self.physics_features else self.features.normalise(image)
        if prior is not None:
            x = torch.cat([x, prior / self.output_scale], dim=1)
        return self.output_scale * self.head(unet_pass(x, self.down, self.up, self.merge))

"""DeepSPIO: View Line image (even / odd line channels) → SPIO concentration map via db4 wavelet sub-bands.

After della Maggiora et al., "DeepSPIO: Super Paramagnetic Iron Oxide Particle Quantification Using Deep
Learning in Magnetic Resonance Imaging", IEEE TPAMI 2020, §4: an encoder of Conv-BN-ReLU blocks that
downsamples with stride-2 convolutions (no pooling), a bottleneck of 4 residual blocks with 1×1 projection
shortcuts, and four parallel decoders (transposed convolutions, BatchNorm, Leaky ReLU 0.01), each predicting
one sub-band of a one-level db4 wavelet transform of the concentration; no U-Net skip connections; He
initialisation. A differentiable inverse DWT turns the sub-bands into the map. Sized to train on one CPU core.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.spio.wavelets import InverseDwt2


def row_quantile(x: torch.Tensor, q: float) -> torch.Tensor:
    """``torch.quantile(x, q, dim=1)`` (linear interpolation) of a 2-D ``x`` with finite values, from the
    ``topk`` above the quantile instead of a full sort: the same elements and the same ``lerp``, so the same
    bits: 1.2 ms instead of 18 ms for DeepSPIO's 99th percentile of a batch of 16 × 16 384 pixels on one CPU core
    (issue 24, session 25)."""
    n = x.shape[1]
    rank = torch.tensor(q, dtype=x.dtype) * (n - 1)
    below = int(rank.floor())
    above = min(below + 1, n - 1)
    top = x.topk(n - below, dim=1).values  # descending: top[:, n - 1 - i] is the i-th smallest
    return torch.lerp(top[:, n - 1 - below], top[:, n - 1 - above], rank - below)


def normalise_intensity(image: torch.Tensor) -> torch.Tensor:
    """Divide each sample (B, C, X, Z) by the 99th percentile of its channel-summed intensity."""
    scale = row_quantile(image.sum(dim=1).flatten(1), 0.99).clamp_min(1e-8)
    return image / scale[:, None, None, None]


def conv_bn_relu(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Sequential:
    """3×3 convolution (stride 1 or 2), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two 3×3 Conv-BN layers plus a 1×1 projection shortcut (Conv-BN), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.body(x) + self.shortcut(x))


class NarrowConv2d(nn.Conv2d):
    """A 3×3, stride-1, zero-padded convolution to a few output channels, computed as one 1×1 convolution to the
    nine taps per output channel and a float32 sum of the taps shifted into place.

    The same parameters (``weight``, ``bias``) and the same map as :class:`torch.nn.Conv2d` (to rounding; the taps
    are summed in float32 even under bfloat16 autocast). Why not ``nn.Conv2d``: oneDNN's CPU kernel for one or two
    output channels runs at ≈ 4 GFLOP/s, so DeepSPIO's five 32 → 1–2 output layers cost ≈ 10 ms of every
    batch-16 training step more than this (issue 24, session 25; ``benchmarks/spio_training_speed.py``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1,
                 bias: bool = True) -> None:
        if kernel_size != 3 or padding != 1:
            raise ValueError("NarrowConv2d is a 3×3 convolution with padding 1")
        super().__init__(in_channels, out_channels, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_out, n_in = self.weight.shape[:2]
        height, width = x.shape[-2:]
        taps_weight = self.weight.permute(0, 2, 3, 1).reshape(n_out * 9, n_in, 1, 1)  # (out, ky, kx) per tap
        taps = nn.functional.conv2d(x, taps_weight)
        dtype = torch.promote_types(taps.dtype, torch.float32)  # float32 sums under bfloat16 autocast
        taps = nn.functional.pad(taps.to(dtype), (1, 1, 1, 1))
        taps = taps.reshape(x.shape[0], n_out, 9, height + 2, width + 2)
        out = sum(taps[:, :, 3 * ky + kx, ky:ky + height, kx:kx + width] for ky in range(3) for kx in range(3))
        return out if self.bias is None else out + self.bias.to(dtype)[None, :, None, None]


def decoder(in_channels: int, widths: tuple[int, ...], *, out_channels: int = 1) -> nn.Sequential:
    """Transposed-convolution decoder (×2 per stage, BN, Leaky ReLU 0.01) ending in a 3×3 conv to
    ``out_channels`` (:class:`NarrowConv2d` for one or two)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for width in widths:
        layers += [nn.ConvTranspose2d(channels, width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                   nn.LeakyReLU(0.01, inplace=True)]
        channels = width
    layers.append(NarrowConv2d(channels, out_channels) if out_channels <= 2 else
                  nn.Conv2d(channels, out_channels, 3, padding=1))
    return nn.Sequential(*layers)


class DeepSpio(nn.Module):
    """DeepSPIO network (della Maggiora et al., IEEE TPAMI 2020).

    Input: View Line magnitude image (B, 2, X, Z) — channel 0 even lines, channel 1 odd lines; X, Z divisible
    by ``2 ** n_down``; any intensity scale (each sample is divided by its 99th intensity percentile).
    Output: SPIO concentration (B, 1, X, Z) in µg Fe/mm³. :meth:`subbands` gives the four db4 sub-bands
    (B, 4, X/2, Z/2) in µg Fe/mm³ (the training target).

    Args:
        in_channels: image channels (2: even and odd lines).
        encoder_widths: channels of the encoder stages; all but the first downsample by 2 (stride-2 conv).
        bottleneck_channels: channels of the 4 residual blocks.
        n_residual_blocks: residual blocks in the bottleneck.
        decoder_widths: channels of each decoder's transposed-conv stages (the last one reaches X/2 × Z/2).
        output_scale_ug_per_mm3: scale of the raw network output (keeps activations of order 1).
        wavelet: PyWavelets name of the wavelet.

    >>> DeepSpio()(torch.rand(1, 2, 128, 128)).shape
    torch.Size([1, 1, 128, 128])
    """

    def __init__(
        self, *, in_channels: int = 2, encoder_widths: tuple[int, ...] = (16, 32, 64),
        bottleneck_channels: int = 64, n_residual_blocks: int = 4, decoder_widths: tuple[int, ...] = (32,),
        output_scale_ug_per_mm3: float = 10.0, wavelet: str = "db4",
    ) -> None:
        super().__init__()
        stages = [conv_bn_relu(in_channels, encoder_widths[0])]
        for c_in, c_out in zip(encoder_widths[:-1], encoder_widths[1:], strict=True):
            stages.append(conv_bn_relu(c_in, c_out, stride=2))
        self.encoder = nn.Sequential(*stages)
        blocks, channels = [], encoder_widths[-1]
        for _ in range(n_residual_blocks):
            blocks.append(ResidualBlock(channels, bottleneck_channels))
            channels = bottleneck_channels
        self.bottleneck = nn.Sequential(*blocks)
        self.feature_channels = channels  # what :meth:`features` gives per pixel
        self.decoders = nn.ModuleList(decoder(channels, tuple(decoder_widths)) for _ in range(4))
        self.output_scale = float(output_scale_ug_per_mm3)
        self.inverse_dwt = InverseDwt2(wavelet)
        self._he_init()

    def _he_init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                leaky = any(isinstance(d, nn.Module) and m in d.modules() for d in self.decoders)
                nonlinearity = "leaky_relu" if leaky else "relu"
                nn.init.kaiming_normal_(m.weight, a=0.01 if leaky else 0.0, nonlinearity=nonlinearity)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for d in self.decoders:  # start near the all-zero map instead of outputs of ~10 µg Fe/mm³ everywhere
            d[-1].weight.data.mul_(0.1)

    normalise = staticmethod(normalise_intensity)

    def inputs(self, image: torch.Tensor) -> torch.Tensor:
        """What the encoder reads: the normalised image (subclasses may add derived channels)."""
        return self.normalise(image)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """The bottleneck's features (B, bottleneck_channels, X/4, Z/4) that the sub-band decoders read."""
        return self.bottleneck(self.encoder(self.inputs(image)))

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Sub-bands from :meth:`features`, (B, 4, X/2, Z/2), µg Fe/mm³."""
        return self.output_scale * torch.cat([d(features) for d in self.decoders], dim=1)

    def subbands(self, image: torch.Tensor) -> torch.Tensor:
        """Predicted db4 sub-bands (cA, cH, cV, cD) of the concentration, (B, 4, X/2, Z/2), µg Fe/mm³."""
        return self.decode(self.features(image))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.inverse_dwt(self.subbands(image))


#: The SPIO networks with weights in the bundle's ``models/`` folder, and the file of each.
WEIGHTS = {"deepspio": "model.pt"}


def spio_network(name: str = "deepspio", *, base_weights: str | None = None) -> nn.Module:
    """The SPIO network ``name`` (``train.json``'s ``--network``).

    ``"deepspio"``: :class:`DeepSpio` (shipped); the candidates of issue 24, trainable but without shipped
    weights: ``"line_unet"``: :class:`~lightning_modules.spio.line_unet.LineUNet` (line features + U-Net, from
    scratch); ``"refined"``: :class:`~lightning_modules.spio.refined.RefinedDeepSpio` (frozen DeepSPIO, whose
    weights ``base_weights`` loads, corrected by a LineUNet); ``"deepspio_lines"``:
    :class:`~lightning_modules.spio.line_inputs.DeepSpioLineInputs` (DeepSPIO on the line features).

    Raises:
        ValueError: an unknown name.
    """
    if name == "deepspio":
        return DeepSpio()
    if name == "line_unet":
        from lightning_modules.spio.line_unet import LineUNet

        return LineUNet()
    if name == "deepspio_lines":
        from lightning_modules.spio.line_inputs import DeepSpioLineInputs

        return DeepSpioLineInputs()
    if name == "refined":
        from lightning_modules.spio.refined import RefinedDeepSpio

        return RefinedDeepSpio(base_weights=base_weights)
    raise ValueError(f"unknown SPIO network {name!r}; choose one of deepspio, deepspio_lines, line_unet, "
                     "refined")

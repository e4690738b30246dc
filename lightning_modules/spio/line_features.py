"""Physics-derived inputs for View Line networks: where each line should be and how far it moved.

In a View Line image (DESIGN.md, "View Line (SPIO)"; della Maggiora et al., "DeepSPIO", IEEE TPAMI 2020, §3.1)
line k is excited where ``z + ΔB/Gz = z_k`` and read out at ``z + ΔB/Gr``, so it appears displaced along z by

    u = −ΔB · (1/Gz − 1/Gr)        (ΔB in T, G in T/m; −18.75 mm per 1e-3 T at Gz 40, Gr 160 mT/m)

from its nominal position z_k = (k − 12) · 2 mm. Even lines (channel 0) sit at multiples of 4 mm, odd lines
(channel 1) half a period later, so ``even − odd`` is a line pattern of period 4 mm along z whose local phase is
the displacement: complex demodulation at ω = 2π / 4 mm followed by a Gaussian low-pass along z gives
``A · exp(−i ω u)`` with A the local line amplitude (spin density times the R2* signal loss). The phase is a
field map sampled at the lines and wrapped at |u| = 2 mm (|ΔB| ≈ 1.07e-4 T); the amplitude is the signal loss.
The sum of both channels (period 2 mm) gives the same displacement wrapped at 1 mm, twice as finely.

Image axes: (x, z) with z the readout axis (B0); tensors (B, 2, X, Z), channel 0 even, channel 1 odd lines.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.networks import normalise_intensity
from lightning_modules.spio.viewline import PIXEL_MM, pixel_centres_mm

#: Line displacement along z (mm) per tesla of off-resonance: u = MM_PER_TESLA · ΔB.
DISPLACEMENT_MM_PER_TESLA = -1e3 * (1.0 / acq.VIEWLINE_GZ_T_PER_M - 1.0 / acq.VIEWLINE_GR_T_PER_M)
#: Period (mm) of the even − odd line pattern along z.
LINE_PERIOD_MM = 2.0 * acq.VIEWLINE_LINE_SPACING_MM
#: Number of channels :class:`LineFeatures` returns.
N_FEATURES = 11


def gaussian_kernel_1d(sigma_px: float) -> torch.Tensor:
    """Normalised Gaussian kernel of standard deviation ``sigma_px`` pixels, length 2·⌈3σ⌉ + 1."""
    half = max(1, math.ceil(3 * sigma_px))
    t = torch.arange(-half, half + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (t / sigma_px) ** 2)
    return kernel / kernel.sum()


class LineFeatures(nn.Module):
    """Fixed (untrained) layer: View Line image → normalised channels plus demodulated line displacement.

    Output channels (B, 11, X, Z): even and odd images divided by the image's 99th channel-summed intensity
    percentile; for the 4 mm pattern (even − odd) and the 2 mm pattern (even + odd), the cosine and sine of the
    local phase −ω·u and the local amplitude; the low-passed total intensity (the signal envelope, which falls
    with R2*); cos and sin of the nominal line phase ω·z (the absolute position of the lines, which a
    convolution cannot know otherwise).

    Args:
        sigma_z_px: standard deviation of the Gaussian low-pass along z after demodulation, pixels.
        sigma_x_px: the same along x (phase-encode axis), pixels.
        matrix_z: number of pixels along z (the nominal line positions depend on it).

    >>> LineFeatures()(torch.rand(1, 2, 128, 128)).shape
    torch.Size([1, 11, 128, 128])
    """

    def __init__(self, *, sigma_z_px: float = 4.0, sigma_x_px: float = 1.0,
                 matrix_z: int = acq.VIEWLINE_MATRIX[1]) -> None:
        super().__init__()
        z_mm = pixel_centres_mm(matrix_z, PIXEL_MM[1])
        omega = 2 * math.pi / LINE_PERIOD_MM
        carriers = torch.stack([torch.cos(omega * z_mm), -torch.sin(omega * z_mm),
                                torch.cos(2 * omega * z_mm), -torch.sin(2 * omega * z_mm)])
        self.register_buffer("carriers", carriers[:, None, :], persistent=False)  # (4, 1, Z)
        self.register_buffer("kernel_z", gaussian_kernel_1d(sigma_z_px)[None, None, None, :], persistent=False)
        self.register_buffer("kernel_x", gaussian_kernel_1d(sigma_x_px)[None, None, :, None], persistent=False)

    normalise = staticmethod(normalise_intensity)

    def low_pass(self, x: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian low-pass of every channel of (B, C, X, Z), zero padded."""
        b, c, nx, nz = x.shape
        y = x.reshape(b * c, 1, nx, nz)
        y = nn.functional.conv2d(y, self.kernel_z, padding=(0, self.kernel_z.shape[-1] // 2))
        y = nn.functional.conv2d(y, self.kernel_x, padding=(self.kernel_x.shape[-2] // 2, 0))
        return y.reshape(b, c, nx, nz)

    def demodulate(self, image: torch.Tensor) -> torch.Tensor:
        """Low-passed I/Q of the 4 mm (even − odd) and 2 mm (even + odd) patterns, (B, 4, X, Z) = (I4, Q4, I2, Q2).

        ``Q / I = tan(−ω u)`` (``tan(−2ω u)`` for the 2 mm pattern), u the local line displacement along z.
        """
        difference = image[:, :1] - image[:, 1:]
        total = image[:, :1] + image[:, 1:]
        modulated = torch.cat([difference * self.carriers[:2], total * self.carriers[2:]], dim=1)
        return self.low_pass(modulated)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.normalise(image)
        iq = self.demodulate(x)
        features = [x]
        for i in (0, 2):
            amplitude = torch.sqrt(iq[:, i:i + 1] ** 2 + iq[:, i + 1:i + 2] ** 2 + 1e-6)
            features += [iq[:, i:i + 2] / amplitude, amplitude]
        envelope = self.low_pass(x.sum(dim=1, keepdim=True))
        nominal = torch.stack([self.carriers[0], -self.carriers[1]])[None].expand(x.shape[0], 2, x.shape[2], -1)
        features += [envelope, nominal]
        return torch.cat(features, dim=1)


def offresonance_from_iq(iq: torch.Tensor) -> torch.Tensor:
    """Off-resonance ΔB (T) from the 4 mm pattern's I/Q (:meth:`LineFeatures.demodulate`), wrapped at |u| = 2 mm.

    Args:
        iq: (..., 2, X, Z) with I and Q of the 4 mm pattern in the channel axis.

    Returns:
        ΔB in T, (..., X, Z): ``u = −atan2(Q, I) / ω``, ``ΔB = u / DISPLACEMENT_MM_PER_TESLA``.
    """
    omega = 2 * math.pi / LINE_PERIOD_MM
    displacement_mm = -torch.atan2(iq[..., 1, :, :], iq[..., 0, :, :]) / omega
    return displacement_mm / DISPLACEMENT_MM_PER_TESLA

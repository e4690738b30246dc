"""Differentiable one-level 2-D discrete wavelet transform (periodization mode) as strided convolutions.

DeepSPIO predicts the four sub-bands of a one-level Daubechies-4 wavelet transform of the concentration map
and recovers the map with an inverse DWT inside the network (della Maggiora et al., "DeepSPIO", IEEE TPAMI
2020, §4). The filters are PyWavelets' coefficients; the results equal ``pywt.dwt2`` / ``pywt.idwt2`` with
``mode="periodization"``. Sub-bands are stacked as channels in the order (cA, cH, cV, cD) of ``pywt.dwt2``:
cA low-pass on both axes, cH high-pass on axis −2, cV high-pass on axis −1, cD high-pass on both.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

#: Sub-band names in channel order.
SUBBANDS = ("cA", "cH", "cV", "cD")


def _filters(wavelet: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    import pywt

    w = pywt.Wavelet(wavelet)
    return tuple(torch.tensor(f, dtype=torch.float64) for f in (w.dec_lo, w.dec_hi, w.rec_lo, w.rec_hi))


def _analysis_1d(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Low and high band of ``x`` along ``dim`` (−1 or −2); filters are the flipped decomposition filters."""
    length = lo.numel()
    moved = x.movedim(dim, -1)
    shape = moved.shape
    flat = moved.reshape(-1, 1, shape[-1])
    padded = functional.pad(flat, (length // 2 - 1, length // 2), mode="circular")
    kernel = torch.stack([lo, hi])[:, None, :].to(x)
    out = functional.conv1d(padded, kernel, stride=2)
    bands = out.reshape(*shape[:-1], 2, shape[-1] // 2)
    return bands[..., 0, :].movedim(-1, dim), bands[..., 1, :].movedim(-1, dim)


def _synthesis_1d(low: torch.Tensor, high: torch.Tensor, rec_lo: torch.Tensor, rec_hi: torch.Tensor,
                  dim: int) -> torch.Tensor:
    """Inverse of :func:`_analysis_1d` along ``dim``: zero-insertion upsampling and circular convolution."""
    length = rec_lo.numel()
    lo_m, hi_m = low.movedim(dim, -1), high.movedim(dim, -1)
    shape = lo_m.shape
    up = torch.zeros(*shape[:-1], 2, 2 * shape[-1], dtype=low.dtype, device=low.device)
    up[..., 0, 0::2] = lo_m
    up[..., 1, 0::2] = hi_m
    flat = up.reshape(-1, 2, 2 * shape[-1])
    padded = functional.pad(flat, (length // 2, length // 2 - 1), mode="circular")
    kernel = torch.stack([rec_lo.flip(0), rec_hi.flip(0)])[None].to(low)
    out = functional.conv1d(padded, kernel)
    return out.reshape(*shape[:-1], 2 * shape[-1]).movedim(-1, dim)


class Dwt2(nn.Module):
    """One-level 2-D DWT: (B, C, H, W) → (B, 4C, H/2, W/2), sub-bands (cA, cH, cV, cD) per input channel.

    >>> Dwt2()(torch.ones(1, 1, 8, 8)).shape
    torch.Size([1, 4, 4, 4])
    """

    def __init__(self, wavelet: str = "db4") -> None:
        super().__init__()
        dec_lo, dec_hi, _, _ = _filters(wavelet)
        self.register_buffer("lo", dec_lo.flip(0), persistent=False)
        self.register_buffer("hi", dec_hi.flip(0), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        low, high = _analysis_1d(image, self.lo, self.hi, dim=-1)
        ca, ch = _analysis_1d(low, self.lo, self.hi, dim=-2)
        cv, cd = _analysis_1d(high, self.lo, self.hi, dim=-2)
        return torch.cat([ca, ch, cv, cd], dim=1)


class InverseDwt2(nn.Module):
    """Inverse one-level 2-D DWT: (B, 4C, h, w) sub-bands (cA, cH, cV, cD) → (B, C, 2h, 2w). Differentiable.

    >>> x = torch.rand(2, 1, 16, 16)
    >>> bool(torch.allclose(InverseDwt2()(Dwt2()(x)), x, atol=1e-5))
    True
    """

    def __init__(self, wavelet: str = "db4") -> None:
        super().__init__()
        _, _, rec_lo, rec_hi = _filters(wavelet)
        self.register_buffer("rec_lo", rec_lo, persistent=False)
        self.register_buffer("rec_hi", rec_hi, persistent=False)

    def forward(self, subbands: torch.Tensor) -> torch.Tensor:
        ca, ch, cv, cd = torch.chunk(subbands, 4, dim=1)
        low = _synthesis_1d(ca, ch, self.rec_lo, self.rec_hi, dim=-2)
        high = _synthesis_1d(cv, cd, self.rec_lo, self.rec_hi, dim=-2)
        return _synthesis_1d(low, high, self.rec_lo, self.rec_hi, dim=-1)

"""Differentiable one-level 2-D discrete wavelet transform (periodization mode) as two matrix products.

DeepSPIO predicts the four sub-bands of a one-level Daubechies-4 wavelet transform of the concentration map
and recovers the map with an inverse DWT inside the network (della Maggiora et al., "DeepSPIO", IEEE TPAMI
2020, §4). The filters are PyWavelets' coefficients; the results equal ``pywt.dwt2`` / ``pywt.idwt2`` with
``mode="periodization"``. Sub-bands are stacked as channels in the order (cA, cH, cV, cD) of ``pywt.dwt2``:
cA low-pass on both axes, cH high-pass on axis −2, cV high-pass on axis −1, cD high-pass on both.

The 1-D transforms are written as strided circular convolutions (:func:`_analysis_1d`, :func:`_synthesis_1d`);
the modules apply them as matrices, built once per length from those convolutions on the identity in float64
(:func:`analysis_matrix`, :func:`synthesis_matrix`): the same linear maps, but a (…, N) × (N, N) product is one
GEMM where the 8-tap ``conv1d`` over thousands of rows ran at a few GFLOP/s. On one CPU core that cut the DWT of
a training batch's targets plus the inverse DWT with its gradient from 37–52 ms to 5 ms (batch 16 × 128², measured
side by side; issue 24, session 25; the whole step: ``benchmarks/spio_training_speed.py``).
"""

from __future__ import annotations

import functools

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


@functools.lru_cache(maxsize=16)
def analysis_matrix(wavelet: str, length: int) -> torch.Tensor:
    """(length, length) float64 matrix ``A`` of the 1-D analysis: ``x @ A.T`` = [low band, high band] of ``x``."""
    dec_lo, dec_hi, _, _ = _filters(wavelet)
    low, high = _analysis_1d(torch.eye(length, dtype=torch.float64), dec_lo.flip(0), dec_hi.flip(0), dim=-1)
    return torch.cat([low, high], dim=-1).T.contiguous()


@functools.lru_cache(maxsize=16)
def synthesis_matrix(wavelet: str, length: int) -> torch.Tensor:
    """(length, length) float64 matrix ``S`` of the 1-D synthesis: ``[low, high] @ S.T`` = the signal of
    ``length`` samples (for an orthogonal wavelet such as db4, ``S`` = ``A.T``)."""
    _, _, rec_lo, rec_hi = _filters(wavelet)
    half = torch.eye(length, dtype=torch.float64).reshape(length, 2, length // 2)
    return _synthesis_1d(half[:, 0], half[:, 1], rec_lo, rec_hi, dim=-1).T.contiguous()


def _matrix(build, wavelet: str, length: int, like: torch.Tensor) -> torch.Tensor:
    """``build``'s matrix in ``like``'s dtype and on its device (cached: no conversion or copy per call)."""
    if length % 2:
        raise ValueError(f"the DWT needs even image sides, got {length}")
    return _converted(build, wavelet, length, like.dtype, like.device)


@functools.lru_cache(maxsize=32)
def _converted(build, wavelet: str, length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    with torch.inference_mode(False):  # a first call under inference mode must not cache an inference tensor
        return build(wavelet, length).to(device=device, dtype=dtype, copy=True)


class Dwt2(nn.Module):
    """One-level 2-D DWT: (B, C, H, W) → (B, 4C, H/2, W/2), sub-bands (cA, cH, cV, cD) per input channel.

    >>> Dwt2()(torch.ones(1, 1, 8, 8)).shape
    torch.Size([1, 4, 4, 4])
    """

    def __init__(self, wavelet: str = "db4") -> None:
        super().__init__()
        self.wavelet = wavelet

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        rows = _matrix(analysis_matrix, self.wavelet, image.shape[-2], image)
        cols = _matrix(analysis_matrix, self.wavelet, image.shape[-1], image)
        bands = rows @ image @ cols.T  # [[cA, cV], [cH, cD]] blocks: low / high along −2 (rows), −1 (columns)
        h, w = image.shape[-2] // 2, image.shape[-1] // 2
        return torch.cat([bands[..., :h, :w], bands[..., h:, :w], bands[..., :h, w:], bands[..., h:, w:]], dim=1)


class InverseDwt2(nn.Module):
    """Inverse one-level 2-D DWT: (B, 4C, h, w) sub-bands (cA, cH, cV, cD) → (B, C, 2h, 2w). Differentiable.

    >>> x = torch.rand(2, 1, 16, 16)
    >>> bool(torch.allclose(InverseDwt2()(Dwt2()(x)), x, atol=1e-5))
    True
    """

    def __init__(self, wavelet: str = "db4") -> None:
        super().__init__()
        self.wavelet = wavelet

    def forward(self, subbands: torch.Tensor) -> torch.Tensor:
        ca, ch, cv, cd = torch.chunk(subbands, 4, dim=1)
        bands = torch.cat([torch.cat([ca, cv], dim=-1), torch.cat([ch, cd], dim=-1)], dim=-2)
        rows = _matrix(synthesis_matrix, self.wavelet, bands.shape[-2], bands)
        cols = _matrix(synthesis_matrix, self.wavelet, bands.shape[-1], bands)
        return rows @ bands @ cols.T

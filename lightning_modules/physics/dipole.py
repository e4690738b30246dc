"""The magnetic dipole kernel in k-space, B0 direction from a NIfTI affine, and the forward field model.

Convention (DESIGN.md): ``D(k) = 1/3 − (k·b̂)² / |k|²`` with ``k`` from ``fftfreq(n, d=voxel_size)`` on every
array axis (true, possibly anisotropic voxel sizes in mm), ``D(0) = 0``; field (ppm) = ``ifftn(D · fftn(χ))``
with χ in ppm (Salomir et al. 2003; Marques & Bowtell 2005). All arrays are (i, j, k) in voxel order.
Kernels are stored as the half spectrum of ``torch.fft.rfftn`` (the last axis has ``n // 2 + 1`` entries),
which suffices because D is real and even.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from scipy.fft import next_fast_len


def b0_direction_from_affine(affine: np.ndarray) -> np.ndarray:
    """Unit B0 direction in voxel axes, ``b̂ = R⁻¹ [0, 0, 1]`` with R the affine's rotation.

    The scanner's B0 is the world (RAS) z axis; R is the affine's 3×3 part with the voxel sizes divided out.

    >>> b0_direction_from_affine(np.diag([0.5, 0.5, 2.0, 1.0])).tolist()
    [0.0, 0.0, 1.0]
    """
    a = np.asarray(affine, dtype=np.float64)[:3, :3]
    rotation = a / np.linalg.norm(a, axis=0, keepdims=True)
    b = np.linalg.solve(rotation, np.array([0.0, 0.0, 1.0]))
    return b / np.linalg.norm(b)


def normalise_direction(b0_direction: Sequence[float]) -> np.ndarray:
    """A 3-vector scaled to unit length (raises ``ValueError`` for a wrong length or a zero vector)."""
    b = np.asarray(b0_direction, dtype=np.float64).reshape(-1)
    if b.size != 3 or not np.all(np.isfinite(b)) or np.linalg.norm(b) == 0:
        raise ValueError(f"a B0 direction must be three finite numbers, not all zero; got {list(b0_direction)}")
    return b / np.linalg.norm(b)


#: |D(k)| below which k counts as on the magic-angle cone.
CONE_THRESHOLD = 0.05


def field_error_std_ppm(field_ppm: torch.Tensor, mask: torch.Tensor, kernel: torch.Tensor) -> float:
    """RMS (ppm per voxel of the mask) of the part of a field that no susceptibility can produce.

    A dipole field has no energy where the kernel vanishes (the magic-angle cone, D(k) = 0); whatever energy a
    measured field has there is noise or model error (background residue, non-dipolar sources, the cut at the
    mask edge), which white noise of σ spreads evenly over k-space. By Parseval,
    ``σ̂² = mean_{|D(k)|<t} |F(φ)(k)|² / N_mask``: for white noise of σ inside the mask, σ̂ = σ.

    Args:
        field_ppm: (i, j, k) field, ppm, 0 outside the mask.
        mask: (i, j, k) 0/1.
        kernel: the half-spectrum dipole kernel of this grid.
    """
    spectrum = torch.fft.rfftn(field_ppm.to(torch.float64) * mask, dim=(-3, -2, -1))
    cone = kernel.abs() < CONE_THRESHOLD
    cone[0, 0, 0] = False
    voxels = float(mask.sum())
    if not bool(cone.any()) or voxels == 0:
        return 0.0
    return float(spectrum[cone].abs().pow(2).mean().sqrt()) / np.sqrt(voxels)


def dipole_kernel(
    shape: Sequence[int],
    voxel_size_mm: Sequence[float] = (1.0, 1.0, 1.0),
    b0_direction: Sequence[float] = (0.0, 0.0, 1.0),
    *,
    half: bool = True,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Dipole kernel D(k) on the FFT grid of an array of ``shape``.

    Args:
        shape: array shape (n_i, n_j, n_k).
        voxel_size_mm: voxel sizes along the three array axes, mm.
        b0_direction: B0 direction in voxel axes (normalised here).
        half: return the ``rfftn`` half spectrum (last axis ``n_k // 2 + 1``) instead of the full one.
        dtype: real dtype of the kernel.
        device: torch device.

    Returns:
        Real tensor of shape ``(n_i, n_j, n_k // 2 + 1)`` (or ``shape`` if ``half=False``), ``D(0) = 0``.
    """
    b = normalise_direction(b0_direction)
    n = [int(s) for s in shape]
    freqs = [np.fft.fftfreq(n[0], d=voxel_size_mm[0]), np.fft.fftfreq(n[1], d=voxel_size_mm[1])]
    freqs.append(np.fft.rfftfreq(n[2], d=voxel_size_mm[2]) if half else np.fft.fftfreq(n[2], d=voxel_size_mm[2]))
    ks = [torch.as_tensor(f, dtype=torch.float64, device=device) for f in freqs]
    # At an even-length axis' Nyquist index the sign of k is ambiguous; the cross terms of (k·b̂)² are odd in
    # it, so they are averaged over ±k there (i.e. dropped). This keeps D real and even on the discrete grid,
    # as the real-to-real convolution requires, for oblique B0.
    ks_cross = []
    for k, size in zip(ks, n):
        kc = k.clone()
        if size % 2 == 0:
            kc[torch.isclose(k.abs(), k.abs().max())] = 0.0
        ks_cross.append(kc)
    views = ((slice(None), None, None), (None, slice(None), None), (None, None, slice(None)))
    k0, k1, k2 = (k[v] for k, v in zip(ks, views))
    c0, c1, c2 = (k[v] for k, v in zip(ks_cross, views))
    k_sq = k0**2 + k1**2 + k2**2
    k_dot_b_sq = (
        (b[0] * k0) ** 2 + (b[1] * k1) ** 2 + (b[2] * k2) ** 2
        + 2 * (b[0] * b[1] * c0 * c1 + b[0] * b[2] * c0 * c2 + b[1] * b[2] * c1 * c2)
    )
    k_sq[0, 0, 0] = 1.0
    kernel = 1.0 / 3.0 - k_dot_b_sq / k_sq
    kernel[0, 0, 0] = 0.0
    return kernel.to(dtype)


def padded_shape(shape: Sequence[int], pad_factor: float) -> tuple[int, ...]:
    """Shape at least ``pad_factor`` times ``shape`` on each axis, rounded up to fast FFT sizes."""
    return tuple(next_fast_len(int(np.ceil(pad_factor * s)), real=True) for s in shape)


@functools.lru_cache(maxsize=2)
def _cached_kernel(shape: tuple[int, ...], voxel_size_mm: tuple[float, ...], b0_direction: tuple[float, ...],
                   dtype: torch.dtype, device: str) -> torch.Tensor:
    """``dipole_kernel`` (half spectrum) of the last two grids used: simulators call ``forward_field`` on one grid
    thousands of times, and the kernel costs as much as the two FFTs. Read only."""
    return dipole_kernel(shape, voxel_size_mm, b0_direction, dtype=dtype, device=device)


def forward_field(
    chi_ppm: torch.Tensor | np.ndarray,
    voxel_size_mm: Sequence[float] = (1.0, 1.0, 1.0),
    b0_direction: Sequence[float] = (0.0, 0.0, 1.0),
    *,
    pad_factor: float = 1.5,
) -> torch.Tensor:
    """Field perturbation (ppm of B0) of a susceptibility distribution χ (ppm), zero-padded convolution.

    Args:
        chi_ppm: susceptibility, shape (..., n_i, n_j, n_k), ppm.
        voxel_size_mm: voxel sizes along the array axes, mm.
        b0_direction: B0 direction in voxel axes.
        pad_factor: zero padding factor per axis (≥ 1.5 avoids wrap-around of the dipole field).

    Returns:
        Field in ppm, same shape, dtype and device as a tensor version of ``chi_ppm``.
    """
    spectrum, big, shape = _field_spectrum(chi_ppm, voxel_size_mm, b0_direction, pad_factor)
    field = torch.fft.irfftn(spectrum, s=big, dim=(-3, -2, -1))
    return field[..., : shape[0], : shape[1], : shape[2]].contiguous()


def forward_field_slice(
    chi_ppm: torch.Tensor | np.ndarray,
    voxel_size_mm: Sequence[float] = (1.0, 1.0, 1.0),
    b0_direction: Sequence[float] = (0.0, 0.0, 1.0),
    *,
    axis: int,
    index: int,
    pad_factor: float = 1.5,
) -> torch.Tensor:
    """:func:`forward_field` on one slice only, ``forward_field(...).select(axis, index)`` to rounding, faster.

    Along ``axis`` the field at ``index`` is a sum over the source slices ``j`` of 2-D convolutions, each with the
    kernel's inverse DFT along that axis at offset ``index − j`` (cached per grid and index). So only the other two
    axes are Fourier-transformed, only on χ's own slices (not the zero padding along ``axis``) and only where χ is
    non-zero: a View Line sample's field costs ≈ 2× less than :func:`forward_field`'s 3-D FFT (issue 24, session 24;
    the SPIO simulator's largest cost). ``axis`` is 0 or 1 of the last three (the last axis holds the half spectrum).

    Returns:
        Field in ppm, shape (..., two remaining axes).
    """
    if axis not in (0, 1):
        raise ValueError(f"forward_field_slice: axis must be 0 or 1 of (i, j, k), got {axis}")
    chi, shape, big = _padded_grid(chi_ppm, pad_factor)
    if not 0 <= index < shape[axis]:
        raise IndexError(f"forward_field_slice: index {index} outside 0…{shape[axis] - 1} of axis {axis}")
    other = 1 - axis
    slices = torch.movedim(chi, axis - 3, -3)                                    # (..., n_axis, n_other, n_last)
    occupied = torch.nonzero(slices.ne(0).movedim(-3, 0).reshape(shape[axis], -1).any(1)).squeeze(1)
    if occupied.numel() == 0:
        return torch.zeros(*chi.shape[:-3], shape[other], shape[2], dtype=chi.dtype, device=chi.device)
    mixed = _cached_slice_kernel(big, tuple(float(v) for v in voxel_size_mm), tuple(float(b) for b in b0_direction),
                                 chi.dtype, str(chi.device), axis, index, shape[axis])
    spectra = torch.fft.rfft2(slices.index_select(-3, occupied), s=(big[other], big[2]))
    plane = (spectra * mixed.index_select(0, occupied)).sum(-3)
    field = torch.fft.irfft2(plane, s=(big[other], big[2]))
    return field[..., : shape[other], : shape[2]].contiguous()


@functools.lru_cache(maxsize=2)
def _cached_slice_kernel(big: tuple[int, ...], voxel_size_mm: tuple[float, ...], b0_direction: tuple[float, ...],
                         dtype: torch.dtype, device: str, axis: int, index: int, n_axis: int) -> torch.Tensor:
    """Kernel of :func:`forward_field_slice`: for each source slice ``j < n_axis`` the dipole kernel's inverse DFT
    along ``axis`` at offset ``index − j`` (the padded grid's circular offset), shape (n_axis, other, last half)."""
    kernel = torch.movedim(_cached_kernel(big, voxel_size_mm, b0_direction, dtype, device), axis, 0)
    m = torch.arange(big[axis], dtype=torch.float64, device=kernel.device)
    offsets = index - torch.arange(n_axis, dtype=torch.float64, device=kernel.device)
    weights = torch.exp(2j * np.pi * offsets[:, None] * m[None, :] / big[axis]) / big[axis]    # (n_axis, N)
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    return torch.einsum("jm,mab->jab", weights, kernel.to(torch.complex128)).to(complex_dtype)


def _padded_grid(chi_ppm: torch.Tensor | np.ndarray, pad_factor: float,
                 ) -> tuple[torch.Tensor, tuple[int, ...], tuple[int, ...]]:
    """χ as a floating tensor, its own (last three) shape and the zero-padded FFT grid."""
    chi = torch.as_tensor(chi_ppm)
    if not chi.is_floating_point():
        chi = chi.float()
    shape = tuple(chi.shape[-3:])
    return chi, shape, padded_shape(shape, pad_factor) if pad_factor > 1 else shape


def _field_spectrum(chi_ppm: torch.Tensor | np.ndarray, voxel_size_mm: Sequence[float],
                    b0_direction: Sequence[float], pad_factor: float,
                    ) -> tuple[torch.Tensor, tuple[int, ...], tuple[int, ...]]:
    """``D · rfftn(χ)`` on the zero-padded grid, the padded shape and χ's own (last three) shape."""
    chi, shape, big = _padded_grid(chi_ppm, pad_factor)
    kernel = _cached_kernel(big, tuple(float(v) for v in voxel_size_mm), tuple(float(b) for b in b0_direction),
                            chi.dtype, str(chi.device))
    return torch.fft.rfftn(chi, s=big, dim=(-3, -2, -1)) * kernel, big, shape


#: TKD kernel threshold of Shmueli et al. and the QSM challenges.
TKD_THRESHOLD = 0.19


def tkd_inversion(field_ppm: torch.Tensor, kernel: torch.Tensor, *, threshold: float = TKD_THRESHOLD,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Thresholded k-space division (Shmueli et al., MRM 2009; Wharton et al., MRM 2010): the simplest inverse of
    :func:`forward_field`, used by the QSM solvers and by simulators that need "the QSM a user would have".

    ``χ = F⁻¹[F(φ) · D⁻¹_t]`` with ``D⁻¹_t = 1/D`` where ``|D| > t`` and ``sign(D)/t`` elsewhere (0 at k = 0).

    Args:
        field_ppm: local field (ppm), last three axes spatial.
        kernel: half-spectrum dipole kernel (:func:`dipole_kernel`) of the field's grid.
        threshold: kernel threshold t in (0, 2/3).
        mask: χ is set to 0 outside it, if given.
    """
    if not 0 < threshold < 2 / 3:
        raise ValueError(f"TKD threshold must be in (0, 2/3); got {threshold}")
    t = float(threshold)
    inverse = torch.where(kernel.abs() > t, 1.0 / torch.where(kernel == 0, 1.0, kernel), torch.sign(kernel) / t)
    chi = torch.fft.irfftn(torch.fft.rfftn(field_ppm, dim=(-3, -2, -1)) * inverse, s=tuple(field_ppm.shape[-3:]),
                           dim=(-3, -2, -1))
    return chi if mask is None else chi * mask

"""Total-variation dipole inversion by ADMM, with its weight chosen from the field's own noise.

Solves ``min_χ ½‖Dχ − φ‖² + λ‖∇χ‖₁`` (Bilgic et al., MRM 2014, "fast QSM with TV via ADMM"; the closed-form
linear variant of FANSI, Milovic et al., MRM 2018) with the field φ (ppm) taken as a measured zero outside the
mask (uniform data weight; on the real slabs in ``../shared/data/qsm_invivo`` this is 6 points of NRMSE better
than weighting the data by the mask, see the bundle docs). ∇ are forward differences per mm with periodic
boundaries, so every sub-problem is exact: the χ update is a division in k-space, the gradient update a
soft threshold. Units: χ and φ in ppm, λ in ppm·mm.

The weight λ is set from the data (:func:`automatic_regularization`) by what the regulariser has to absorb: the
part of the field that is not dipolar (noise and model error), measured as the field's energy on the magic-angle
cone where every dipole field vanishes, and λ = c·σ̂·h̄ with h̄ the mean voxel edge in mm and c one constant fitted
on simulated brains (noise and resolution varied; never on in-vivo data; ``benchmarks/qsm_tv_weight.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from lightning_modules.physics.dipole import field_error_std_ppm

#: λ = TV_WEIGHT_PER_ERROR · σ̂ · h̄ (σ̂ in ppm, h̄ in mm), fitted by ``benchmarks/qsm_tv_weight.py`` on simulated
#: brains only (several noise levels and voxel sizes); the in-vivo data never entered the fit.
TV_WEIGHT_PER_ERROR = 0.12

def automatic_regularization(
    field_ppm: torch.Tensor, mask: torch.Tensor, kernel: torch.Tensor, voxel_size_mm: Sequence[float],
) -> float:
    """The TV weight λ (ppm·mm) for this field: ``TV_WEIGHT_PER_ERROR · σ̂ · mean voxel edge``, σ̂ the field's
    non-dipolar part (:func:`field_error_std_ppm`), floored at 1e-6 ppm."""
    sigma = max(field_error_std_ppm(field_ppm, mask, kernel), 1e-6)
    return TV_WEIGHT_PER_ERROR * sigma * float(np.mean(voxel_size_mm))


def _gradient(chi: torch.Tensor, voxel_size_mm: Sequence[float]) -> list[torch.Tensor]:
    """Forward differences per mm along the last three axes, periodic."""
    return [(torch.roll(chi, -1, dims=d) - chi) / h for d, h in zip((-3, -2, -1), voxel_size_mm)]


def _divergence_adjoint(fields: Sequence[torch.Tensor], voxel_size_mm: Sequence[float]) -> torch.Tensor:
    """``∇ᴴ`` of three component fields (the adjoint of :func:`_gradient`)."""
    return sum((torch.roll(g, 1, dims=d) - g) / h for g, d, h in zip(fields, (-3, -2, -1), voxel_size_mm))


def _gradient_symbol(shape: Sequence[int], voxel_size_mm: Sequence[float], dtype: torch.dtype,
                     device: torch.device) -> torch.Tensor:
    """``Σ_i |E_i(k)|²`` of the forward differences on the ``rfftn`` half spectrum (4 sin²(πk_i/n_i) / h_i²)."""
    total = torch.zeros((), dtype=dtype, device=device)
    for axis, (n, h) in enumerate(zip(shape, voxel_size_mm)):
        freq = np.fft.rfftfreq(n) if axis == 2 else np.fft.fftfreq(n)
        symbol = torch.as_tensor(4 * np.sin(np.pi * freq) ** 2 / h**2, dtype=dtype, device=device)
        view = [1, 1, 1]
        view[axis] = -1
        total = total + symbol.reshape(view)
    return total


class TotalVariation(nn.Module):
    """TV-regularised dipole inversion (ADMM), ``solver(field_ppm, kernel, mask) -> χ`` like the other solvers.

    Args:
        regularization: λ (ppm·mm), or ``"auto"`` (default) for :func:`automatic_regularization`.
        iterations: ADMM iterations (50 converge to < 1 % NRMSE change on the in-vivo slabs).
        penalty_per_weight: ADMM penalty ρ = this · λ.
        voxel_size_mm: default voxel sizes (mm) of the inputs, for the gradients and the automatic weight;
            ``forward(..., voxel_size_mm=...)`` overrides it per call.
    """

    def __init__(
        self, *, regularization: float | str = "auto", iterations: int = 50, penalty_per_weight: float = 10.0,
        voxel_size_mm: Sequence[float] = (1.0, 1.0, 1.0),
    ) -> None:
        super().__init__()
        if regularization != "auto" and not float(regularization) > 0:
            raise ValueError(f"TV regularization must be 'auto' or a positive number; got {regularization!r}")
        if iterations < 1:
            raise ValueError(f"TV needs at least one iteration; got {iterations}")
        self.regularization = regularization
        self.iterations = int(iterations)
        self.penalty_per_weight = float(penalty_per_weight)
        self.voxel_size_mm = tuple(float(v) for v in voxel_size_mm)

    def weight_for(self, field_ppm: torch.Tensor, mask: torch.Tensor, kernel: torch.Tensor,
                   voxel_size_mm: Sequence[float]) -> float:
        """λ used for this field (ppm·mm)."""
        if self.regularization == "auto":
            return automatic_regularization(field_ppm, mask, kernel, voxel_size_mm)
        return float(self.regularization)

    def forward(
        self, field_ppm: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None = None,
        voxel_size_mm: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """χ (ppm) of a local field (ppm, (i, j, k) or (batch, i, j, k)), 0 outside ``mask``.

        ``kernel``: half-spectrum dipole kernel of the input's grid; ``voxel_size_mm``: that grid's voxel sizes.
        """
        if field_ppm.dim() == 4:
            return torch.stack([self(f, kernel[b] if kernel.dim() == 4 else kernel,
                                     None if mask is None else mask[b], voxel_size_mm)
                                for b, f in enumerate(field_ppm)])
        h = tuple(float(v) for v in (voxel_size_mm or self.voxel_size_mm))
        mask_f = torch.ones_like(field_ppm) if mask is None else mask.to(field_ppm.dtype)
        phase = field_ppm * mask_f
        lam = self.weight_for(phase, mask_f, kernel, h)
        rho = self.penalty_per_weight * lam
        shape = tuple(phase.shape)
        dims = (-3, -2, -1)
        denominator = kernel**2 + rho * _gradient_symbol(shape, h, kernel.dtype, kernel.device)
        denominator[0, 0, 0] = 1.0
        data_term = kernel * torch.fft.rfftn(phase, dim=dims)
        z = [torch.zeros_like(phase) for _ in range(3)]
        u = [torch.zeros_like(phase) for _ in range(3)]
        chi = torch.zeros_like(phase)
        threshold = lam / rho
        for _ in range(self.iterations):
            target = _divergence_adjoint([zi - ui for zi, ui in zip(z, u)], h)
            spectrum = (data_term + rho * torch.fft.rfftn(target, dim=dims)) / denominator
            spectrum[0, 0, 0] = 0.0
            chi = torch.fft.irfftn(spectrum, s=shape, dim=dims)
            for i, g in enumerate(_gradient(chi, h)):
                v = g + u[i]
                z[i] = torch.sign(v) * torch.clamp(v.abs() - threshold, min=0.0)
                u[i] = v - z[i]
        return chi * mask_f

"""Classical dipole inversion: thresholded k-space division (TKD) and nonlinear dipole inversion (NDI).

Both are parameter-free ``nn.Module``s so that the bundle's ``network_def`` and the learned methods (which
unroll NDI) share one interface: ``solver(field_ppm, kernel, mask) -> chi_ppm`` with tensors of shape
(..., n_i, n_j, n_k) and the half-spectrum dipole kernel of :func:`lightning_modules.physics.dipole.dipole_kernel`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from lightning_modules.physics.dipole import TKD_THRESHOLD, field_error_std_ppm, tkd_inversion


def solve(
    solver: nn.Module, field_ppm: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None,
    voxel_size_mm: Sequence[float],
) -> torch.Tensor:
    """``solver(field_ppm, kernel, mask)``, also given the voxel sizes (mm) when its ``forward`` takes
    ``voxel_size_mm`` (TV's gradients and weight need them; the kernel alone does not carry them)."""
    if "voxel_size_mm" in inspect.signature(solver.forward).parameters:
        return solver(field_ppm, kernel, mask, voxel_size_mm=[float(v) for v in voxel_size_mm])
    return solver(field_ppm, kernel, mask)


def _spatial_shape(field: torch.Tensor) -> tuple[int, int, int]:
    return tuple(field.shape[-3:])  # type: ignore[return-value]


class Tkd(nn.Module):
    """Thresholded k-space division (Shmueli et al., MRM 2009; Wharton et al., MRM 2010), as a solver module:
    :func:`lightning_modules.physics.dipole.tkd_inversion`.

    Args:
        threshold: kernel threshold t (0.19 is the value of Shmueli et al. and of the QSM challenges).
    """

    def __init__(self, *, threshold: float = TKD_THRESHOLD) -> None:
        super().__init__()
        if not 0 < threshold < 2 / 3:
            raise ValueError(f"TKD threshold must be in (0, 2/3); got {threshold}")
        self.threshold = float(threshold)

    def forward(
        self, field_ppm: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Invert a local field (ppm) with the half-spectrum dipole kernel; χ (ppm), 0 outside ``mask``."""
        return tkd_inversion(field_ppm, kernel, threshold=self.threshold, mask=mask)


class Ndi(nn.Module):
    """Nonlinear dipole inversion by gradient descent (Polak et al., NMR Biomed 2020).

    Minimises ``‖W (e^{iDχ} − e^{iφ})‖² + λ‖χ‖²`` with the local field φ (ppm) as the phase argument; the
    gradient step is ``χ ← χ − τ (D[W² sin(Dχ − φ)] + λχ)``. The number of iterations acts as a regulariser
    on noisy data (iterating to convergence fits the noise): defaults were chosen from the NRMSE-versus-
    iterations curve in the bundle's docs/README.md.

    Args:
        iterations: number of gradient steps.
        step_size: τ (Polak et al. use 2; gradient descent is stable for τ < 4.5 since max D² = 4/9).
        regularization: λ, weight of the Tikhonov term.
        weighting: ``"uniform"`` (W = 1 everywhere: the field outside the mask is a measured zero, which was
            more accurate on in-vivo data) or ``"mask"`` (W = mask).
        stop_ratio: stop early, by the discrepancy principle, once the RMS data residual sin(Dχ − φ) over the mask
            falls to ``stop_ratio`` · σ̂, with σ̂ the field's non-dipolar part
            (:func:`lightning_modules.physics.dipole.field_error_std_ppm`); None runs all ``iterations``.
    """

    def __init__(
        self, *, iterations: int = 100, step_size: float = 2.0, regularization: float = 1e-3,
        weighting: str = "uniform", stop_ratio: float | None = None,
    ) -> None:
        super().__init__()
        if iterations < 1:
            raise ValueError(f"NDI needs at least one iteration; got {iterations}")
        if weighting not in ("uniform", "mask"):
            raise ValueError(f"NDI weighting must be 'uniform' or 'mask'; got {weighting!r}")
        self.iterations = int(iterations)
        self.step_size = float(step_size)
        self.regularization = float(regularization)
        self.weighting = weighting
        self.stop_ratio = None if stop_ratio is None else float(stop_ratio)
        self.iterations_run = 0

    def forward(
        self, field_ppm: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None = None,
        magnitude: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Invert a local field (ppm); ``magnitude`` (optional, any scale) multiplies the data weight W."""
        chi = torch.zeros_like(field_ppm)
        for chi in self.iterate(field_ppm, kernel, mask, magnitude):  # noqa: B007 (the last iterate is the result)
            pass
        return chi if mask is None else chi * mask

    def iterate(
        self, field_ppm: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None = None,
        magnitude: torch.Tensor | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield χ (ppm, not yet masked) after each of the ``iterations`` steps; the same tensor is updated
        in place, so copy it to keep an iterate."""
        shape = _spatial_shape(field_ppm)
        dims = (-3, -2, -1)
        phase = field_ppm if mask is None else field_ppm * mask
        weight_sq = None
        if self.weighting == "mask" and mask is not None:
            weight_sq = mask.to(field_ppm.dtype)
        if magnitude is not None:
            w = magnitude / magnitude.amax(dim=dims, keepdim=True).clamp_min(1e-12)
            weight_sq = w**2 if weight_sq is None else weight_sq * w**2
        tau = self.step_size
        shrink = 1.0 - tau * self.regularization
        chi = torch.zeros_like(phase)
        stop_at = self._stop_residual(phase, kernel, mask)
        inside = torch.ones_like(phase) if mask is None else mask.to(phase.dtype)
        voxels = float(inside.sum().clamp_min(1.0))
        self.iterations_run = 0
        for _ in range(self.iterations):
            residual = torch.fft.irfftn(torch.fft.rfftn(chi, dim=dims).mul_(kernel), s=shape, dim=dims)
            residual.sub_(phase).sin_()
            if stop_at is not None and float((residual * inside).pow(2).sum()) / voxels <= stop_at**2:
                return
            self.iterations_run += 1
            if weight_sq is not None:
                residual.mul_(weight_sq)
            gradient = torch.fft.irfftn(torch.fft.rfftn(residual, dim=dims).mul_(kernel), s=shape, dim=dims)
            chi.mul_(shrink).add_(gradient, alpha=-tau)
            yield chi

    def _stop_residual(self, phase: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None) -> float | None:
        """RMS residual (ppm) at which the discrepancy principle stops, or None (3-D fields only)."""
        if self.stop_ratio is None or phase.dim() != 3:
            return None
        inside = torch.ones_like(phase) if mask is None else mask.to(phase.dtype)
        return self.stop_ratio * field_error_std_ppm(phase, inside, kernel)

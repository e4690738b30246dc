"""Learned nonlinear dipole inversion: NDI unrolled with learned step sizes, weights and a CNN regulariser.

In the spirit of QSMLearn (Polak et al.: learn the parameters of NDI instead of fixing them, since the number
of iterations and the step act as the regulariser) and of learned proximal / variational networks (Adler &
Öktem, IEEE TMI 2018; Hammernik et al., MRM 2018). Each of K iterations is

    χ ← χ − τ_k (D[W² sin(Dχ − φ)] + λ_k χ)              (the NDI gradient step, Polak et al. 2020)
    χ ← χ + γ_k · CNN([χ, φ]) · mask                        (a small shared 3-D CNN, gated per iteration,
                                                              in the last ``cnn_iterations`` iterations)

with the exact dipole kernel D of the input (any voxel size and B0 direction), so the same weights apply at
any resolution and orientation. The interface is that of :class:`lightning_modules.qsm.solvers.Ndi`.

Data weighting W: ``"uniform"`` (W = 1, the field outside the mask taken as a measured zero, as the classical
NDI) or ``"mask"`` (W = mask and χ kept 0 outside the mask at every iteration: the local-field formulation with
a support constraint). A local field is cut at the brain edge; fitting that cut as a zero field biases χ low
(on brain-like simulations our NDI and TKD recover about 0.45 of χ, NDI with W = mask and support about 0.75,
close to the 0.82 of the complete field), so a network unrolled with W = 1 learns to scale χ up, which is wrong
where the field is complete. With a whole-volume mask both formulations are the same.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: χ and φ are scaled by this before the CNN (ppm values ~0.01–0.5 are small for a network).
CNN_INPUT_SCALE = 10.0


class RegulariserCnn(nn.Module):
    """Three 3×3×3 convolutions with LeakyReLU: 2 channels (χ, φ) in, a χ update out.

    ``odd=True`` makes the update an odd function of its input, ``(f(χ, φ) − f(−χ, −φ)) / 2``: the forward
    model is linear, so the field −φ comes from −χ, and an odd update keeps the whole unrolled network odd
    (negating the field negates χ exactly). It cannot learn a constant offset or favour one sign of χ, as an
    unconstrained CNN does from brain-like training data whose mean χ is positive.
    """

    def __init__(self, *, channels: int = 16, odd: bool = False) -> None:
        super().__init__()
        self.odd = bool(odd)
        self.layers = nn.Sequential(
            nn.Conv3d(2, channels, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv3d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv3d(channels, 1, 3, padding=1),
        )

    def forward(self, chi: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        x = torch.stack([chi, field], dim=1) * CNN_INPUT_SCALE
        if not self.odd:
            return self.layers(x)[:, 0] / CNN_INPUT_SCALE
        positive, negative = self.layers(torch.cat([x, -x])).chunk(2)
        return (positive - negative)[:, 0] / (2 * CNN_INPUT_SCALE)


class LearnedNdi(nn.Module):
    """Unrolled NDI with learned per-iteration step sizes τ_k, Tikhonov weights λ_k and an optional CNN.

    Args:
        iterations: K, number of unrolled iterations.
        channels: width of the CNN regulariser; 0 learns only τ_k and λ_k (the pure QSMLearn idea).
        cnn_iterations: the CNN acts in this many final iterations (3-D convolutions dominate the cost on
            CPU; the early iterations are cheap FFT-only NDI steps).
        initial_step: initial τ_k (4 is about twice NDI's τ = 2 and still stable, τ < 4.5).
        initial_regularization: initial λ_k.
        weighting: ``"uniform"`` or ``"mask"`` (see the module docstring).
        odd_cnn: make the CNN update odd (see :class:`RegulariserCnn`); the parameters are the same either way.
        final_data_iterations: plain NDI iterations after the last CNN update (counted within ``iterations``).
            They undo the part of the CNN's change that the field contradicts, fast where |D| is large, and
            keep what lies near the magic-angle cone (D ≈ 0), which the data cannot determine; without them
            the CNN has the last word everywhere, e.g. it shrinks large uniform low-contrast regions.
        zero_mean_cnn: remove the mean (over the mask) of every CNN update. The mean of χ is the part of χ the
            field does not determine (D(0) = 0 on a complete field; nearly so inside an ellipsoidal brain); an
            unconstrained CNN learns to guess it from the training anatomy (brain-like χ has a positive mean)
            and guesses wrong on phantoms of another make-up.
    """

    def __init__(
        self, *, iterations: int = 24, channels: int = 8, cnn_iterations: int = 2, initial_step: float = 4.0,
        initial_regularization: float = 1e-3, weighting: str = "uniform", odd_cnn: bool = False,
        final_data_iterations: int = 0, zero_mean_cnn: bool = False,
    ) -> None:
        super().__init__()
        if weighting not in ("uniform", "mask"):
            raise ValueError(f"weighting must be 'uniform' or 'mask'; got {weighting!r}")
        self.weighting = weighting
        self.iterations = int(iterations)
        self.raw_step = nn.Parameter(torch.full((iterations,), _softplus_inverse(initial_step)))
        self.raw_regularization = nn.Parameter(torch.full((iterations,), _softplus_inverse(initial_regularization)))
        self.final_data_iterations = int(final_data_iterations)
        self.zero_mean_cnn = bool(zero_mean_cnn)
        if not 0 <= self.final_data_iterations <= self.iterations:
            raise ValueError(f"final_data_iterations must be in 0..{iterations}; got {final_data_iterations}")
        available = self.iterations - self.final_data_iterations
        self.cnn_iterations = min(int(cnn_iterations), available) if channels > 0 else 0
        self.cnn = RegulariserCnn(channels=channels, odd=odd_cnn) if self.cnn_iterations else None
        self.gate = nn.Parameter(torch.full((self.cnn_iterations,), 0.1)) if self.cnn_iterations else None

    @property
    def step_sizes(self) -> torch.Tensor:
        """τ_k (positive)."""
        return F.softplus(self.raw_step)

    @property
    def regularizations(self) -> torch.Tensor:
        """λ_k (positive)."""
        return F.softplus(self.raw_regularization)

    def forward(
        self, field_ppm: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor | None = None,
        initial: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """χ (ppm) from a local field (ppm), shape (n_i, n_j, n_k) or (batch, n_i, n_j, n_k).

        ``kernel``: half-spectrum dipole kernel of the input (broadcastable, e.g. (batch, ..)).
        ``initial``: χ (ppm) to start the iterations from (default 0), e.g. a network's estimate that the
        iterations make consistent with the field.
        """
        unbatched = field_ppm.dim() == 3
        field = field_ppm[None] if unbatched else field_ppm
        mask_b = torch.ones_like(field) if mask is None else (mask[None] if unbatched else mask).to(field.dtype)
        phase = field * mask_b
        shape = tuple(field.shape[-3:])
        dims = (-3, -2, -1)
        local = self.weighting == "mask"
        if initial is None:
            chi = torch.zeros_like(phase)
        else:
            chi = (initial[None] if unbatched else initial) * (mask_b if local else 1.0)
        for k in range(self.iterations):
            residual = torch.sin(torch.fft.irfftn(torch.fft.rfftn(chi, dim=dims) * kernel, s=shape, dim=dims) - phase)
            if local:
                residual = residual * mask_b
            gradient = torch.fft.irfftn(torch.fft.rfftn(residual, dim=dims) * kernel, s=shape, dim=dims)
            chi = chi - self.step_sizes[k] * (gradient + self.regularizations[k] * chi)
            if local:
                chi = chi * mask_b
            j = k - (self.iterations - self.final_data_iterations - self.cnn_iterations)
            if self.cnn is not None and 0 <= j < self.cnn_iterations:
                update = self.cnn(chi, phase) * mask_b
                if self.zero_mean_cnn:
                    update = without_mask_mean(update, mask_b)
                chi = chi + self.gate[j] * update
        chi = chi * mask_b
        return chi[0] if unbatched else chi


def without_mask_mean(volume: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``volume`` (..., i, j, k) less its mean over ``mask`` (0/1, broadcastable), 0 outside the mask."""
    dims = (-3, -2, -1)
    mean = (volume * mask).sum(dims, keepdim=True) / mask.sum(dims, keepdim=True).clamp_min(1.0)
    return (volume - mean) * mask


def _softplus_inverse(value: float) -> float:
    return float(torch.log(torch.expm1(torch.tensor(float(value)))))

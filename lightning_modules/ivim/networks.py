"""IVIM-NET: a physics-informed, self-supervised network for IVIM parameter estimation.

Barbieri et al., MRM 2020 (IVIM-NET); Kaandorp et al., MRM 2021 (IVIM-NET_optim: one fully connected network per
parameter, batch normalisation, dropout, sigmoid-bounded outputs with bounds widened by 30 % of their range so the
estimates sit on the near-linear part of the sigmoid); Troelstra et al., 2022 (tri-exponential variant). We keep
the widened lower bounds of D and D* at 0: a negative D* makes e^(−b D*) explode and destabilises training at
learning rates above IVIM-NET's 3e-5. The decoder is the IVIM signal model itself, so training needs no ground
truth: the loss compares the input signal with the signal the predicted parameters produce.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from lightning_modules.ivim.lsq import bounds_array
from lightning_modules.ivim.signal import PARAMETER_NAMES, model_signal

#: Fraction of each bound's range added on both sides of the sigmoid output (Kaandorp et al. 2021).
BOUND_WIDENING = 0.3
#: The sigmoid bounds of IVIM-NET_optim's published code (D, f, D* in mm²/s, S0), for comparison runs.
IVIMNET_OPTIM_BOUNDS = ((-0.0001, 0.005), (-0.05, 0.7), (-0.05, 0.3), (0.7, 1.3))
#: Floor of the normalised signal, in noise σ, before its log is taken (``log_signal_input``).
LOG_SIGNAL_FLOOR = 2.0


def _parameter_mlp(n_in: int, width: int, *, depth: int, dropout: float, last_dropout: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        keep = last_dropout or i < depth - 1  # an Identity in its place keeps the state-dict layout either way
        layers += [nn.Linear(n_in if i == 0 else width, width), nn.BatchNorm1d(width), nn.ELU(),
                   nn.Dropout(dropout) if keep else nn.Identity()]
    return nn.Sequential(*layers, nn.Linear(width, 1))


class IvimNet(nn.Module):
    """One MLP per IVIM parameter (Linear → BatchNorm1d → ELU → Dropout, width = number of b-values).

    Args:
        b_values_s_per_mm2: the acquisition's b-values (stored as a buffer, so saved with the weights).
        model: ``"biexp"`` or ``"triexp"``.
        bounds: bounds preset of :data:`lightning_modules.ivim.lsq.BOUNDS` before widening.
        depth: hidden layers per parameter network.
        dropout: dropout probability.
        last_dropout: dropout also after the last hidden layer (False: only between hidden layers, as in
            IVIM-NET's published code).
        output_bounds: explicit ``(lower, upper)`` of each output instead of the widened preset, e.g.
            :data:`IVIMNET_OPTIM_BOUNDS`.
        noise_input: the network is also told each voxel's noise level (σ of the normalised signal, given to
            :meth:`forward` as ``noise_sigma``; it enters as log σ, one more input), so one network serves voxels
            of every SNR (fit mode's SNR-aware posterior-mean estimator, :mod:`lightning_modules.ivim.posterior`).
        log_signal_input: the log of the signal is input next to the signal: log S is linear in D at high
            b-values, which a small network then reads precisely at high SNR. The signal is floored at
            :data:`LOG_SIGNAL_FLOOR` noise σ (with ``noise_input``; else at σ = 0.005) first, so that signals lost
            in the noise do not make the log swing.
        width: hidden units per layer (default: the number of b-values, as IVIM-NET).

    Input: ``(n_voxels, n_b)`` signals divided by S(b_min). Output of :meth:`forward`: ``(n_voxels, n_params)``
    parameters in the order of :data:`lightning_modules.ivim.signal.PARAMETER_NAMES` (D, D* in mm²/s).
    """

    def __init__(
        self, b_values_s_per_mm2: Sequence[float], *, model: str = "biexp", bounds: str = "body", depth: int = 2,
        dropout: float = 0.1, last_dropout: bool = True,
        output_bounds: Sequence[tuple[float, float]] | None = None, noise_input: bool = False,
        log_signal_input: bool = False, width: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.noise_input = bool(noise_input)
        self.log_signal_input = bool(log_signal_input)
        b = torch.as_tensor(list(b_values_s_per_mm2), dtype=torch.float32)
        limits = torch.as_tensor(bounds_array(model, bounds), dtype=torch.float32)
        margin = BOUND_WIDENING * (limits[:, 1] - limits[:, 0])
        diffusivity = torch.tensor(["D" in name for name in PARAMETER_NAMES[model]])
        lower = torch.where(diffusivity, (limits[:, 0] - margin).clamp_min(0.0), limits[:, 0] - margin)
        upper = limits[:, 1] + margin
        if output_bounds is not None:
            explicit = torch.as_tensor(output_bounds, dtype=torch.float32)
            if explicit.shape != limits.shape or bool((explicit[:, 0] >= explicit[:, 1]).any()):
                raise ValueError(f"output_bounds must be {len(limits)} (lower, upper) pairs with lower < upper")
            lower, upper = explicit[:, 0], explicit[:, 1]
        self.register_buffer("b_values", b)
        self.register_buffer("lower", lower)
        self.register_buffer("upper", upper)
        self.parameter_nets = nn.ModuleList(
            _parameter_mlp(b.numel() * (1 + self.log_signal_input) + self.noise_input, width or b.numel(),
                           depth=depth, dropout=dropout, last_dropout=last_dropout)
            for _ in PARAMETER_NAMES[model]
        )

    def forward(self, signal: torch.Tensor, noise_sigma: torch.Tensor | None = None) -> torch.Tensor:
        """Parameters ``(n_voxels, n_params)`` of normalised signals ``(n_voxels, n_b)`` (and, for a network with
        ``noise_input``, their noise σ ``(n_voxels,)`` in the same normalised units)."""
        features = [signal]
        if self.noise_input and noise_sigma is None:
            raise ValueError("this IvimNet was built with noise_input=True; pass each voxel's noise_sigma")
        if self.log_signal_input:
            sigma = noise_sigma.reshape(-1, 1) if self.noise_input else torch.full_like(signal[:, :1], 0.005)
            features.append(torch.maximum(signal, LOG_SIGNAL_FLOOR * sigma.clamp_min(1e-4)).log())
        if self.noise_input:
            features.append(noise_sigma.clamp_min(1e-6).log().reshape(-1, 1))
        signal = torch.cat(features, dim=1) if len(features) > 1 else signal
        raw = torch.cat([net(signal) for net in self.parameter_nets], dim=1)
        return self.lower + torch.sigmoid(raw) * (self.upper - self.lower)

    def decode(self, params: torch.Tensor) -> torch.Tensor:
        """The physics decoder: IVIM signal ``(n_voxels, n_b)`` of parameters ``(n_voxels, n_params)``."""
        return model_signal(self.model, self.b_values, params)


def predict_ivim_net(network: nn.Module, signals: np.ndarray, *, noise_sigma: np.ndarray | None = None,
                     batch_size: int = 65536) -> np.ndarray:
    """Parameters ``(n_voxels, n_params)`` of normalised signals ``(n_voxels, n_b)`` by an :class:`IvimNet` or an
    :class:`~lightning_modules.ivim.ensemble.IvimNetEnsemble`, in batches (network in eval mode); ``noise_sigma``
    ``(n_voxels,)``: each voxel's noise σ, for a network with ``noise_input``."""
    network = network.eval()
    device = network.b_values.device
    out = []
    with torch.no_grad():
        for start in range(0, signals.shape[0], batch_size):
            chunk = torch.as_tensor(signals[start : start + batch_size], dtype=torch.float32, device=device)
            if noise_sigma is None:
                out.append(network(chunk).cpu().numpy())
                continue
            sigma = torch.as_tensor(noise_sigma[start : start + batch_size], dtype=torch.float32, device=device)
            out.append(network(chunk, sigma).cpu().numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, len(PARAMETER_NAMES[network.model])))

"""Auxiliary training targets for DeepSPIO: the field the lines show and the iron's extent out of the plane.

The concentration map is a sparse target (most pixels zero), and its level per object depends on the object's
unseen extent along y (docs, sessions 16–17). Two dense, physics-given targets of the same simulated sample give
the network's shared features more to learn from on every pixel (issue 24, "predicting the field first"):

- **field**: the off-resonance ΔB of the imaged plane as the excitation shift ΔB / Gz in mm (what displaces each
  line), compressed by ``asinh(shift / FIELD_SCALE_MM)`` because it spans 0.01–30 mm;
- **extent**: the length of iron along y through each pixel, in units of ``EXTENT_SCALE_MM`` (the out-of-plane
  shape that sets how much field an object of a given in-plane size and level makes).

Both at half resolution (2 × 2 means), where DeepSPIO's decoders work. A training-only decoder
(:func:`auxiliary_decoder`) reads DeepSPIO's bottleneck features; the bundle's network never contains it.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.networks import decoder

#: Scale of the excitation shift in the compressed field target, mm (a quarter of the line spacing).
FIELD_SCALE_MM = 0.5
#: Unit of the extent target, mm.
EXTENT_SCALE_MM = 5.0
#: Names of the auxiliary target channels, in order.
AUXILIARY_CHANNELS = ("field", "extent")


def auxiliary_targets(offresonance_t: torch.Tensor, concentration_3d: torch.Tensor) -> torch.Tensor:
    """The auxiliary targets of one sample, (2, X/2, Z/2): compressed field and extent along y (dimensionless).

    Args:
        offresonance_t: ΔB of the imaged plane (x, z), T.
        concentration_3d: SPIO concentration (x, y, z), µg Fe/mm³, y slices of :data:`acq.VIEWLINE_DY_MM`.
    """
    shift_mm = offresonance_t.float() / acq.VIEWLINE_GZ_T_PER_M * 1e3
    field = torch.asinh(shift_mm / FIELD_SCALE_MM)
    extent = (concentration_3d > 0).sum(dim=1).float() * acq.VIEWLINE_DY_MM / EXTENT_SCALE_MM
    return nn.functional.avg_pool2d(torch.stack([field, extent])[None], 2)[0]


def relative_l1_channels(predicted: torch.Tensor, target: torch.Tensor, *, eps: float = 50.0) -> torch.Tensor:
    """Per channel ``mean_batch(‖p_c − t_c‖₁ / (‖t_c‖₁ + eps))``, shape (C,); the all-zero prediction scores ≈ 1.

    ``eps`` (in target units summed over pixels) keeps samples with almost no field or no iron from dominating.
    """
    error = (predicted - target).abs().flatten(2).sum(-1)
    norm = target.abs().flatten(2).sum(-1)
    return (error / (norm + eps)).mean(0)


def auxiliary_decoder(in_channels: int, widths: tuple[int, ...] = (32,)) -> nn.Sequential:
    """Training-only head: DeepSPIO's bottleneck features (B, C, X/4, Z/4) → auxiliary targets (B, 2, X/2, Z/2),
    shaped like one of DeepSPIO's own sub-band decoders (one transposed-convolution stage), with two outputs."""
    return decoder(in_channels, widths, out_channels=len(AUXILIARY_CHANNELS))

"""The inferers of the ``spio_quantification`` bundle: DeepSPIO's test-time flip and shift averages as MONAI
``Inferer`` s (the bundle runs ``FlipAverageInferer(ShiftAverageInferer(SimpleInferer(), shifts=SHIFT_AVERAGE_PX))``),
and the choice of weights by the image's noise model (:class:`NoiseModelInferer`, around them; 0.11.0).

The View Line acquisition is symmetric under a mirror of the phase-encode axis x (x → −x: the lines, the readout
shift along z and B0 do not change), and training used that flip as augmentation. Averaging the network's map with
the mirrored map of the mirrored image therefore removes the network's residual asymmetry and makes the map
exactly flip-equivariant; on the tuning samples it lowers the NMAE (``benchmarks/spio_postprocessing.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from monai.inferers import Inferer, SimpleInferer
from torch import nn

from lightning_modules.spio.snr import match_coil_noise_floor, rician_like

#: Shifts (pixels along x) of the bundle's test-time shift average (0.5.0; issue 24, session 18: chosen on a
#: development set, then passed the decision rule on the tuning set, NMAE 0.397 → 0.393).
SHIFT_AVERAGE_PX = (-1, 0, 1)


class _SpatialAxisInferer(Inferer):
    """An inferer around ``inferer`` that works along one spatial axis of inputs (B, C, *spatial)."""

    def __init__(self, inferer: Inferer | None, spatial_axis: int) -> None:
        super().__init__()
        if int(spatial_axis) != spatial_axis or spatial_axis < 0:
            raise ValueError(f"spatial_axis must be a spatial axis index ≥ 0, not {spatial_axis!r}")
        self.inferer = SimpleInferer() if inferer is None else inferer
        self.spatial_axis = int(spatial_axis)

    def _dim(self, inputs: torch.Tensor) -> int:
        """The tensor dimension of the spatial axis in ``inputs``."""
        dim = 2 + self.spatial_axis
        if dim >= inputs.ndim:
            raise ValueError(f"spatial_axis {self.spatial_axis} does not exist in inputs of shape "
                             f"{tuple(inputs.shape)} (batch, channel, spatial...)")
        return dim


class FlipAverageInferer(_SpatialAxisInferer):
    """The mean of ``inferer``'s prediction and the mirrored prediction of the input mirrored along one spatial
    axis: ``0.5 · (f(x) + flip(f(flip(x))))``.

    Both passes run as ONE batch of twice the input's size through ``inferer``, so the map does not depend on how
    the batch is split.

    Args:
        inferer: the inner inferer that runs the network (default: MONAI's ``SimpleInferer``).
        spatial_axis: the mirrored spatial axis of inputs (B, C, *spatial) and outputs (B, C', *spatial); 0 is the
            first spatial axis (View Line: x, the phase-encode axis).

    >>> import torch
    >>> double = lambda x: 2 * x
    >>> x = torch.arange(6.0).reshape(1, 1, 3, 2)
    >>> bool(torch.equal(FlipAverageInferer()(x, double), 2 * x))
    True
    """

    def __init__(self, inferer: Inferer | None = None, *, spatial_axis: int = 0) -> None:
        super().__init__(inferer, spatial_axis)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        """Run ``network`` on ``inputs`` (B, C, *spatial) and its mirror; returns the averaged (B, C', *spatial)."""
        dim = self._dim(inputs)
        both = self.inferer(torch.cat([inputs, inputs.flip(dim)]), network, *args, **kwargs)
        n = inputs.shape[0]
        return 0.5 * (both[:n] + both[n:].flip(dim))


class ShiftAverageInferer(_SpatialAxisInferer):
    """The mean over ``shifts`` of ``inferer``'s prediction of the input shifted by that many pixels along one
    spatial axis, each shifted back: ``mean_s shift(f(shift(x, s)), −s)``.

    Along the View Line phase-encode axis x a shift moves the object and the base image together and leaves the
    lines, so it is an exact symmetry of the acquisition; DeepSPIO's stride-2 stages see each shift on another
    sampling phase, so the maps differ and their mean is a test-time ensemble. All shifts run as ONE batch.
    The pixels shifted in are 0 (no signal), not wrapped round: a roll puts the tissue of one edge of the field of
    view next to the other edge, an image unlike any acquisition, where DeepSPIO reports false iron. Each output
    pixel is the mean over the shifts that saw it.

    Args:
        inferer: the inner inferer that runs the network (default: MONAI's ``SimpleInferer``).
        shifts: the shifts in pixels (0 is the input itself).
        spatial_axis: the shifted spatial axis of inputs (B, C, *spatial) and outputs (B, C', *spatial).

    >>> import torch
    >>> x = torch.arange(6.0).reshape(1, 1, 3, 2)
    >>> bool(torch.equal(ShiftAverageInferer(shifts=(0, 1, 2))(x, lambda t: 3 * t), 3 * x))
    True
    """

    def __init__(self, inferer: Inferer | None = None, *, shifts: tuple[int, ...] = (0, 1),
                 spatial_axis: int = 0) -> None:
        super().__init__(inferer, spatial_axis)
        if not shifts or any(int(s) != s for s in shifts):
            raise ValueError(f"shifts must be a non-empty sequence of whole pixels, not {shifts!r}")
        self.shifts = tuple(int(s) for s in shifts)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        """Run ``network`` on every shift of ``inputs`` (B, C, *spatial); returns the averaged (B, C', *spatial)."""
        dim = self._dim(inputs)
        n = inputs.shape[0]
        outputs = self.inferer(torch.cat([shift(inputs, s, dim) for s in self.shifts]), network, *args, **kwargs)
        total = sum(shift(outputs[i * n:(i + 1) * n], -s, dim) for i, s in enumerate(self.shifts))
        size = inputs.shape[dim]
        seen = sum(shift(torch.ones(size, dtype=total.dtype, device=total.device), -s, 0) for s in self.shifts)
        return total / seen.clamp_min(1.0).reshape([size if d == dim else 1 for d in range(total.ndim)])


class NoiseModelInferer(Inferer):
    """``inferer`` run with ``network`` on the images whose noise is what it was trained on, and with
    ``other_network`` on the others (issue 24, session 34).

    The shipped DeepSPIO learned single-channel magnitude images (Rician noise) and is much less accurate when the
    noise has another distribution (several coils combined by root-sum-of-squares, Gaussian noise added to a
    magnitude image); the bundle's noise-robust weights learned those too but are no better on Rician images. The
    check (``expected``, default :func:`~lightning_modules.spio.snr.rician_like`: the gap pixels' median over their
    lower quartile) is made per image, on the image as given (it is scale-free); noise-free images count as
    expected. ``other_network`` None runs ``network`` on everything (``--noise_adaptive false``).

    Args:
        inferer: the inner inferer (the bundle's flip and shift averages).
        other_network: the network for images whose noise fails the check.
        expected: image (C, *spatial) as a NumPy array → whether ``network`` was trained for its noise.
        other_coils: the root-sum-of-squares coil count ``other_network`` learned (session 35; the bundle: 4). An
            image it maps that looks combined from more coils has its noise floor lowered to that count first
            (:func:`~lightning_modules.spio.snr.match_coil_noise_floor`); None passes every image as given.

    >>> import torch
    >>> pick = NoiseModelInferer(other_network=lambda x: -x, expected=lambda image: image.sum() > 0)
    >>> pick(torch.tensor([[[1.0]], [[-2.0]]])[:, None], lambda x: x).flatten().tolist()
    [1.0, 2.0]
    """

    def __init__(self, inferer: Inferer | None = None, *, other_network: nn.Module | Callable | None = None,
                 expected: Callable[[np.ndarray], bool] = rician_like, other_coils: float | None = None) -> None:
        super().__init__()
        self.inferer = SimpleInferer() if inferer is None else inferer
        self.other_network, self.expected, self.other_coils = other_network, expected, other_coils

    def uses_other(self, inputs: torch.Tensor) -> list[bool]:
        """Per image of ``inputs`` (B, C, *spatial): whether ``other_network`` maps it."""
        if self.other_network is None:
            return [False] * inputs.shape[0]
        return [not self.expected(x.detach().float().cpu().numpy()) for x in inputs]

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any,
                 **kwargs: Any) -> torch.Tensor:
        """Map ``inputs`` (B, C, *spatial), each image with the network its noise calls for."""
        other = self.uses_other(inputs)
        if self.other_coils is not None and any(other):
            inputs = torch.stack([self.coil_matched(x) if o else x for x, o in zip(inputs, other)])
        if len(set(other)) == 1:  # the whole batch with one network, as one batch
            return self.inferer(inputs, self.other_network if other[0] else network, *args, **kwargs)
        return torch.cat([self.inferer(x[None], self.other_network if o else network, *args, **kwargs)
                          for x, o in zip(inputs, other)])

    def coil_matched(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` (C, *spatial) with its noise floor lowered to :attr:`other_coils` coils' (unchanged when it
        looks combined from no more)."""
        given = image.detach().cpu().numpy()
        matched = match_coil_noise_floor(given, self.other_coils)
        return image if matched is given else torch.as_tensor(matched, dtype=image.dtype, device=image.device)


def shift(tensor: torch.Tensor, pixels: int, dim: int) -> torch.Tensor:
    """``tensor`` moved by ``pixels`` along ``dim`` (towards higher indices when positive), zeros shifted in.

    >>> shift(torch.tensor([1.0, 2.0, 3.0]), 1, 0).tolist(), shift(torch.tensor([1.0, 2.0, 3.0]), -1, 0).tolist()
    ([0.0, 1.0, 2.0], [2.0, 3.0, 0.0])
    """
    size = tensor.shape[dim]
    out = torch.zeros_like(tensor)
    if abs(pixels) >= size:
        return out
    if pixels >= 0:
        out.narrow(dim, pixels, size - pixels).copy_(tensor.narrow(dim, 0, size - pixels))
    else:
        out.narrow(dim, 0, size + pixels).copy_(tensor.narrow(dim, -pixels, size + pixels))
    return out

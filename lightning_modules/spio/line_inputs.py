"""DeepSPIO reading the line features: the same network, with the physics-derived channels as extra inputs.

:class:`~lightning_modules.spio.networks.DeepSpio` (della Maggiora et al., IEEE TPAMI 2020) sees the two
normalised line channels and must find the line displacement (a sampled field map) itself.
:class:`DeepSpioLineInputs` feeds it the 11 channels of :class:`~lightning_modules.spio.line_features.LineFeatures`
instead, whose first two are exactly DeepSPIO's normalised input. :func:`from_deepspio` turns trained DeepSPIO
weights into this network's by giving the first convolution zero weights for the nine new channels, so it starts
with exactly DeepSPIO's map, and, unlike a zero-initialised correction head, the new weights receive a gradient
from the first step (the gradient of a first-layer weight is the upstream gradient times its input).
"""

from __future__ import annotations

import torch

from lightning_modules.spio.line_features import N_FEATURES, LineFeatures
from lightning_modules.spio.networks import DeepSpio

FIRST_CONV = "encoder.0.0.weight"


class DeepSpioLineInputs(DeepSpio):
    """DeepSPIO on the line features, View Line image (B, 2, X, Z) → concentration (B, 1, X, Z), µg Fe/mm³.

    >>> DeepSpioLineInputs()(torch.rand(1, 2, 128, 128)).shape
    torch.Size([1, 1, 128, 128])
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(in_channels=N_FEATURES, **kwargs)
        self.line_features = LineFeatures()

    def inputs(self, image: torch.Tensor) -> torch.Tensor:
        return self.line_features(image)


def from_deepspio(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A DeepSPIO ``state_dict`` as :class:`DeepSpioLineInputs` weights: zero weights for the new input channels."""
    state = dict(state)
    weight = state[FIRST_CONV]
    extra = torch.zeros(weight.shape[0], N_FEATURES - weight.shape[1], *weight.shape[2:], dtype=weight.dtype)
    state[FIRST_CONV] = torch.cat([weight, extra], dim=1)
    return state

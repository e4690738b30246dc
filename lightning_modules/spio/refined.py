"""DeepSPIO refined by a LineUNet: the map DeepSPIO gives, corrected from the physics-derived line features.

DeepSPIO (della Maggiora et al., IEEE TPAMI 2020; :class:`~lightning_modules.spio.networks.DeepSpio`) finds
the iron and its order of magnitude but blurs edges and misjudges the level inside each object. A
:class:`~lightning_modules.spio.line_unet.LineUNet` reads the line features (the demodulated line displacement,
i.e. a sampled field map, the signal envelope, the nominal line positions) together with DeepSPIO's map and
predicts a correction; its output layer starts at zero, so the refined network starts exactly at DeepSPIO's map
and training only has to learn what DeepSPIO gets wrong. DeepSPIO's weights are frozen (eval mode, no gradient).
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.spio.line_unet import LineUNet
from lightning_modules.spio.networks import DeepSpio


class RefinedDeepSpio(nn.Module):
    """``DeepSpio`` map + ``LineUNet`` correction, View Line image (B, 2, X, Z) → concentration (B, 1, X, Z).

    Args:
        base_weights: DeepSPIO ``state_dict`` file loaded into the frozen base (training); None leaves it to a
            later ``load_state_dict`` of the whole network (the bundle's ``model.pt`` holds both parts).
        widths: channels per level of the correcting U-Net.

    >>> RefinedDeepSpio()(torch.rand(1, 2, 128, 128)).shape
    torch.Size([1, 1, 128, 128])
    """

    def __init__(self, *, base_weights: str | None = None, widths: tuple[int, ...] = (16, 32, 64, 96)) -> None:
        super().__init__()
        self.base = DeepSpio()
        if base_weights:
            self.base.load_state_dict(torch.load(base_weights, map_location="cpu", weights_only=True))
        self.base.requires_grad_(False)
        self.base.eval()
        self.refine = LineUNet(widths=widths, prior_channels=1, head_init_scale=0.0)

    def train(self, mode: bool = True) -> RefinedDeepSpio:
        super().train(mode)
        self.base.eval()  # frozen: BatchNorm keeps DeepSPIO's running statistics
        return self

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            base = self.base(image)
        return base + self.refine(image, prior=base)

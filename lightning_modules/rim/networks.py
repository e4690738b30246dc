"""QSMRim-Net (Zhang et al., NeuroImage: Clinical 2022), sized for CPU, with DeepSMOTE (Dablain et al. 2022).

The image branch reads the lesion patch (QSM in ppm, normalised FLAIR, lesion mask) with a small 3-D ResNet and,
alongside it, the fixed rim profile of :mod:`lightning_modules.rim.profile` (edge-layer contrasts and their
coverage of the edge, which the CNN's coarse grid cannot resolve); a one-layer embedding reads the standardised
radiomic features (a linear read-out generalised better than a two-layer MLP on our synthetic lesions). The
feature vectors are concatenated (fusion), pass the DeepSMOTE layer (oversampling of rim+ lesions in feature
space, training only) and a linear classifier giving the rim+ logit.
The validated operating threshold is a buffer, so it travels with the ``state_dict`` in ``models/model.pt``.
"""

from __future__ import annotations

import re

import torch
from monai.networks.nets.resnet import ResNetBlock
from torch import nn

from lightning_modules.rim.profile import RimProfile
from lightning_modules.rim.smote import DeepSmote

#: Layer names of the hand-written block that the shipped weights (``models/model.pt``) were trained with →
#: the names of MONAI's ``ResNetBlock``, which computes the same.
_OLD_BLOCK_LAYERS = {"body.0": "conv1", "body.1": "bn1", "body.3": "conv2", "body.4": "bn2", "shortcut": "downsample"}
_OLD_BLOCK_KEY = re.compile(r"^(features\.\d+\.)(body\.[0134]|shortcut)\.")


class PatchResNet3d(nn.Module):
    """ResNet-18-like encoder cut to one block per stage: (B, C, n, n, n) patch → (B, widths[-1]) features.

    The blocks are MONAI's ``ResNetBlock`` (two 3×3×3 convolutions with batch norm, identity or 1×1×1 projection
    shortcut). The stem convolution has stride 2 (24³ → 12³), so that training runs on one CPU thread.
    """

    def __init__(self, in_channels: int = 3, *, widths: tuple[int, ...] = (8, 16, 32)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv3d(in_channels, widths[0], 3, stride=2, padding=1, bias=False),
                                   nn.BatchNorm3d(widths[0]), nn.ReLU(inplace=True)]
        previous = widths[0]
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            block = ResNetBlock(previous, width, spatial_dims=3, stride=stride)
            if stride != 1 or previous != width:  # made after the block's convolutions: the same seeded initialisation
                block.downsample = nn.Sequential(nn.Conv3d(previous, width, 1, stride=stride, bias=False),
                                                 nn.BatchNorm3d(width))
            layers.append(block)
            previous = width
        self.features = nn.Sequential(*layers)
        self.out_features = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3, 4))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """Renames the block layers of weights saved with the hand-written block (``_OLD_BLOCK_LAYERS``)."""
        for key in [k for k in state_dict if k.startswith(prefix)]:
            name = _OLD_BLOCK_KEY.sub(lambda m: f"{m[1]}{_OLD_BLOCK_LAYERS[m[2]]}.", key[len(prefix):])
            if prefix + name != key:
                state_dict[prefix + name] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _radiomics_mlp(n_in: int, hidden: tuple[int, ...], out: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(0.2)]
    for width in (*hidden, out):
        layers += [nn.Linear(n_in, width), nn.ReLU(inplace=True)]
        n_in = width
    return nn.Sequential(*layers)


class QsmRimNet(nn.Module):
    """QSMRim-Net: CNN + rim profile + radiomics embedding → fusion → DeepSMOTE → classifier (rim+ logit).

    Args:
        n_radiomics: number of radiomic features (0: CNN only, the ablation).
        in_channels: patch channels (QSM, FLAIR, lesion mask).
        widths: CNN stage widths.
        embed: width of the radiomics embedding and of the fused features' transform.
        smote_k: DeepSMOTE neighbours (0: no oversampling, the ablation).
        qsm_scale_per_ppm: factor applied to the QSM channel so that ~0.05 ppm contrasts are of order 1.
        use_patch: use the image branch (CNN and rim profile; False: radiomics only).
        cnn_dropout: dropout on the CNN features before fusion (keeps the quickly-memorising CNN branch from
            drowning the radiomics branch).
        use_profile: add the rim profile of the patch to the image branch (needs ``use_patch``).
        radiomics_hidden: hidden widths of the radiomics MLP before its ``embed``-wide output (() = one layer).
    """

    def __init__(self, n_radiomics: int = 536, *, in_channels: int = 3, widths: tuple[int, ...] = (8, 16, 32),
                 embed: int = 64, smote_k: int = 3, qsm_scale_per_ppm: float = 20.0, use_patch: bool = True,
                 cnn_dropout: float = 0.0, use_profile: bool = True,
                 radiomics_hidden: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.qsm_scale_per_ppm, self.n_radiomics, self.use_patch = float(qsm_scale_per_ppm), n_radiomics, use_patch
        self.cnn = PatchResNet3d(in_channels, widths=tuple(widths)) if use_patch else None
        self.cnn_dropout = nn.Dropout(cnn_dropout)
        self.profile = RimProfile(qsm_scale_per_ppm=qsm_scale_per_ppm) if use_patch and use_profile else None
        self.profile_norm = nn.BatchNorm1d(RimProfile.n_features) if self.profile is not None else None
        self.mlp = _radiomics_mlp(n_radiomics, tuple(radiomics_hidden), embed) if n_radiomics > 0 else None
        fused = ((self.cnn.out_features if self.cnn is not None else 0) + (embed if self.mlp is not None else 0)
                 + (RimProfile.n_features if self.profile is not None else 0))
        self.smote = DeepSmote(fused, k=smote_k)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(fused, 1))
        self.register_buffer("threshold", torch.tensor(0.5))

    def fuse(self, patches: torch.Tensor, radiomics: torch.Tensor | None) -> torch.Tensor:
        """Image-branch (CNN, rim profile) and radiomics features, concatenated: (B, 3, n, n, n), (B, n_radiomics) →
        (B, fused)."""
        parts = []
        if self.cnn is not None:
            scale = torch.ones(patches.shape[1], device=patches.device, dtype=patches.dtype)
            scale[0] = self.qsm_scale_per_ppm
            parts.append(self.cnn_dropout(self.cnn(patches * scale[None, :, None, None, None])))
        if self.profile is not None:
            parts.append(self.profile_norm(self.profile(patches)))
        if self.mlp is not None:
            parts.append(self.mlp(radiomics))
        return torch.cat(parts, dim=1)

    def forward(self, patches: torch.Tensor, radiomics: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Rim+ logits (B,); in training with ``labels``: ``(logits, labels)`` including DeepSMOTE's samples."""
        features, smote_labels = self.smote(self.fuse(patches, radiomics), labels)
        logits = self.classifier(features)[:, 0]
        return logits if labels is None else (logits, smote_labels)

"""DeepSMOTE in feature space (Dablain et al., IEEE TNNLS 2022), as used by QSMRim-Net (Zhang et al. 2022).

During training only, the fused lesion features pass an MLP transform; then for each minority (rim+) sample
of the batch, ``k`` new samples are interpolated towards its ``k`` nearest minority neighbours (Euclidean
distance in the transformed space), ``x_new = x_i + λ (x_j − x_i)`` with ``λ ~ U(0, 1)``, and labelled rim+.
A batch of N samples with n rim+ (n > k) comes out with N + k·n samples; with n ≤ k each rim+ sample uses its
n − 1 neighbours. In evaluation mode the layer is the transform alone.
"""

from __future__ import annotations

import torch
from torch import nn


def interpolate_minority(features: torch.Tensor, labels: torch.Tensor, *, k: int,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SMOTE on a batch: new minority samples between each rim+ sample and its ``k`` nearest rim+ neighbours.

    Args:
        features: (N, d) features.
        labels: (N,) labels, 1 for the minority class (rim+), 0 otherwise.
        k: neighbours per minority sample.
        generator: random generator for the interpolation weights.

    Returns:
        ``(features, labels)`` with the new samples appended: (N + k'·n, d) and (N + k'·n,), k' = min(k, n − 1).
    """
    minority = features[labels > 0.5]
    n = minority.shape[0]
    k_used = min(k, n - 1)
    if k_used <= 0:
        return features, labels
    distance = torch.cdist(minority.detach(), minority.detach())
    distance.fill_diagonal_(float("inf"))
    neighbours = distance.topk(k_used, largest=False).indices
    weights = torch.rand(n, k_used, 1, generator=generator, device=features.device, dtype=features.dtype)
    new = minority[:, None, :] + weights * (minority[neighbours] - minority[:, None, :])
    new_labels = torch.ones(n * k_used, dtype=labels.dtype, device=labels.device)
    return torch.cat([features, new.reshape(-1, features.shape[1])]), torch.cat([labels, new_labels])


class DeepSmote(nn.Module):
    """MLP transform followed (in training, when labels are given) by minority interpolation.

    Args:
        features: width of the input and output features.
        k: neighbours per rim+ sample (0 disables the oversampling: the ablation without DeepSMOTE).
    """

    def __init__(self, features: int, *, k: int = 3) -> None:
        super().__init__()
        self.k = int(k)
        self.transform = nn.Sequential(nn.Linear(features, features), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, d) features [and (N,) labels] → transformed (and, in training, oversampled) features and labels."""
        x = self.transform(x)
        if self.training and labels is not None and self.k > 0:
            return interpolate_minority(x, labels, k=self.k)
        return x, labels

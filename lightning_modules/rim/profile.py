"""Rim profile of a lesion patch: the QSM contrast of the lesion's edge layers against its core, per direction.

A paramagnetic rim is, by the consensus definition, a hyperintense band at the lesion edge covering at least
2/3 of it (Bagnato et al. / NAIMS). Our CNN sees the patch at 1.33 mm (2.7 mm after its stride-2 stem), too
coarse for 1–2 mm rims, so the image branch of QSMRim-Net also reads this fixed (not learned) descriptor of the
same patch:

- radial profile: mean QSM of the outermost and second voxel layers inside the lesion and of the first and
  second layers outside it, minus the core mean (what is left after two erosions), and the core against the
  second outer layer;
- coverage: the edge band (two outermost layers) is split into direction sectors seen from the lesion's
  centroid (``n_azimuth`` × ``n_elevation``, equal-area in elevation); from the sectors' mean contrasts against
  the core: their 20 %, 1/3 and 50 % quantiles (a rim covering 2/3 of the edge keeps the 1/3 quantile
  positive, a short arc or a vein crossing the lesion does not), the fraction of sectors above 0.01 and 0.02
  ppm, and their mean.

Layers are morphological erosions / dilations with the 3×3×3 cube (one voxel per step), so the descriptor
follows the lesion's own shape. Contrasts are in ppm times ``qsm_scale_per_ppm`` of the network.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

#: Sector contrast thresholds (ppm) of the coverage fractions.
COVERAGE_THRESHOLDS_PPM = (0.01, 0.02)
#: Quantiles of the sector contrasts.
SECTOR_QUANTILES = (0.2, 1.0 / 3.0, 0.5)


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """Dilation by the 3×3×3 cube, as three 1-D max filters (the same result, a ninth of the work)."""
    for kernel, padding in (((3, 1, 1), (1, 0, 0)), ((1, 3, 1), (0, 1, 0)), ((1, 1, 3), (0, 0, 1))):
        mask = F.max_pool3d(mask, kernel, stride=1, padding=padding)
    return mask


def _erode(mask: torch.Tensor) -> torch.Tensor:
    return 1.0 - _dilate(1.0 - mask)


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``values`` over ``weights`` per sample (B, 1, n, n, n) → (B,), and the voxel count (B,)."""
    count = weights.sum(dim=(1, 2, 3, 4))
    return (values * weights).sum(dim=(1, 2, 3, 4)) / count.clamp_min(1.0), count


class RimProfile(nn.Module):
    """(B, C, n, n, n) patches with QSM (ppm) in channel 0 and the lesion mask in channel ``mask_channel``
    → (B, :attr:`n_features`) rim descriptors. No learnable parameters.

    Args:
        n_azimuth: direction sectors around the axial plane.
        n_elevation: sectors in elevation (equal area: uniform in sin(elevation)).
        min_sector_voxels: sectors with fewer edge voxels are left out.
        qsm_scale_per_ppm: factor applied to contrasts (ppm) so that rims of ~0.05 ppm are of order 1.
        mask_channel: channel of the lesion mask.
    """

    n_features = 5 + len(SECTOR_QUANTILES) + len(COVERAGE_THRESHOLDS_PPM) + 1

    def __init__(self, *, n_azimuth: int = 8, n_elevation: int = 4, min_sector_voxels: int = 2,
                 qsm_scale_per_ppm: float = 20.0, mask_channel: int = 2) -> None:
        super().__init__()
        self.n_azimuth, self.n_elevation = int(n_azimuth), int(n_elevation)
        self.min_sector_voxels, self.scale = int(min_sector_voxels), float(qsm_scale_per_ppm)
        self.mask_channel = int(mask_channel)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        qsm = patches[:, :1].float()
        mask = (patches[:, self.mask_channel : self.mask_channel + 1] > 0.5).float()
        eroded1 = _erode(mask)
        eroded2 = _erode(eroded1)
        dilated1 = _dilate(mask)
        dilated2 = _dilate(dilated1)
        # the core: what is left after two erosions, else after one, else the whole (tiny) lesion
        core = torch.where(eroded2.sum(dim=(1, 2, 3, 4), keepdim=True) > 0, eroded2,
                           torch.where(eroded1.sum(dim=(1, 2, 3, 4), keepdim=True) > 0, eroded1, mask))
        core_mean, _ = _masked_mean(qsm, core)
        layers = (mask - eroded1, eroded1 - eroded2, dilated1 - mask, dilated2 - dilated1)
        layer_means = [_masked_mean(qsm, layer) for layer in layers]
        profile = [torch.where(count > 0, mean - core_mean, torch.zeros_like(mean)) for mean, count in layer_means]
        profile.append(core_mean - layer_means[3][0])
        band = mask - eroded2
        sector = self._sectors(mask, patches.shape[2:])
        n_sectors = self.n_azimuth * self.n_elevation
        contrast = (qsm - core_mean[:, None, None, None, None]) * band
        flat_sector = sector.flatten(1)
        sums = torch.zeros(qsm.shape[0], n_sectors, dtype=qsm.dtype, device=qsm.device)
        counts = torch.zeros_like(sums)
        sums.scatter_add_(1, flat_sector, contrast.flatten(1))
        counts.scatter_add_(1, flat_sector, band.flatten(1))
        valid = counts >= self.min_sector_voxels
        sector_means = torch.where(valid, sums / counts.clamp_min(1.0), torch.full_like(sums, float("nan")))
        any_valid = valid.any(dim=1)
        filled = torch.where(any_valid[:, None], sector_means, torch.zeros_like(sector_means))
        quantiles = torch.nanquantile(filled, torch.tensor(SECTOR_QUANTILES, dtype=qsm.dtype, device=qsm.device),
                                      dim=1).T
        n_valid = valid.sum(dim=1).clamp_min(1)
        coverage = [((sector_means > t) & valid).sum(dim=1) / n_valid for t in COVERAGE_THRESHOLDS_PPM]
        mean_contrast = torch.where(valid, sector_means, torch.zeros_like(sums)).sum(dim=1) / n_valid
        contrasts = torch.cat([torch.stack(profile, dim=1), quantiles, mean_contrast[:, None]], dim=1) * self.scale
        return torch.cat([contrasts, torch.stack(coverage, dim=1).to(qsm.dtype)], dim=1)

    def _sectors(self, mask: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """Sector index (B, 1, n, n, n) of every voxel by its direction from the mask centroid."""
        grids = torch.meshgrid(*(torch.arange(s, dtype=mask.dtype, device=mask.device) for s in shape),
                               indexing="ij")
        coords = torch.stack(grids)[None]  # (1, 3, n, n, n)
        total = mask.sum(dim=(2, 3, 4), keepdim=True).clamp_min(1.0)
        centroid = (coords * mask).sum(dim=(2, 3, 4), keepdim=True) / total  # (B, 3, 1, 1, 1)
        x, y, z = (coords[:, axis] - centroid[:, axis] for axis in range(3))
        azimuth = torch.atan2(y, x)
        sin_elevation = z / torch.sqrt(x * x + y * y + z * z).clamp_min(1e-6)
        a = ((azimuth + math.pi) / (2 * math.pi) * self.n_azimuth).long().clamp(0, self.n_azimuth - 1)
        e = ((sin_elevation + 1.0) / 2.0 * self.n_elevation).long().clamp(0, self.n_elevation - 1)
        return (a * self.n_elevation + e)[:, None]

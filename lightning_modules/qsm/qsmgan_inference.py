"""QSMGAN on whole volumes: resample to the training grid, sliding-window inference, resample back.

The generator is trained on one geometry only (isotropic ``training_voxel_mm`` voxels, B0 along the array's
k axis), unlike learned NDI which uses the exact dipole kernel of every input. So an input of any voxel size
and B0 direction is first resampled (trilinear) onto a grid of ``training_voxel_mm`` voxels whose third axis
is B0 — a rotation about the volume centre, the smallest one that takes the k axis to b̂ — inverted there,
and χ is resampled back onto the input grid. The field value (ppm of B0) is a scalar, so it is not changed
by the rotation. When the input already has the training geometry nothing is interpolated.

Sliding windows: the generator is trained on 64³ field patches of which it returns the valid 48³ centre
(8 voxels cut on each side). Being fully convolutional it runs on larger windows with the same 8-voxel
margin, which wastes fewer operations on margins: per axis, the fewest windows of at most
``max_window_size`` voxels whose valid centres tile the axis (a 160³ volume: 2 × 2 × 2 windows of 96³ with
80³ valid, 2.2× fewer operations per valid voxel than 64³ windows). This is what brings a 160³ volume
under 30 s on two CPU cores. The windows are MONAI's :class:`~monai.inferers.SlidingWindowInferer`
(:class:`ValidCentreWindowInferer`, which picks that window size per volume, or takes a fixed ``roi_size``); it
blends the overlapping windows with constant weights restricted to each window's valid centre (see
:meth:`QsmganInversion.predict_on_training_grid`). The bundle's ``inference.json`` builds it as
``window_inferer``; it is not the evaluator's ``inferer``, because the windows run on the training grid, inside
the network, after the whole-volume prior and the resampling, which no window of the input grid can do.

Physics-informed generator (``prior`` and ``data_consistency`` given; the shipped form): Chen et al.'s
generator learns the whole deconvolution from the field, which takes days of GPU training (trained for 45 min
on one CPU thread it shrank χ to a third). Here the generator instead corrects a physics estimate, as learned
proximal networks do: (1) a mask-weighted NDI ``prior`` on the input grid with its exact dipole kernel,
(2) the U-Net, given field, mask and prior on the training grid, returns a correction that is resampled back
and added, (3) a few NDI ``data_consistency`` iterations from that estimate undo what the field contradicts.
The generator's last layer starts at zero, so before training the method is NDI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from torch import nn
from torch.nn import functional as F

from lightning_modules.physics.dipole import dipole_kernel, normalise_direction
from lightning_modules.qsm.learned_ndi import LearnedNdi, without_mask_mean
from lightning_modules.qsm.qsmgan import CHI_SCALE, QsmganGenerator, generator_input
from lightning_modules.qsm.solvers import solve

#: Voxel size (mm, isotropic) of the shipped generator's training data; in vivo data are often ~1.0–1.1 mm.
TRAINING_VOXEL_MM = 1.0


def rotation_z_to(b0_direction: Sequence[float]) -> np.ndarray:
    """The smallest rotation R (3×3) with ``R @ [0, 0, 1] = b̂`` (Rodrigues' formula)."""
    b = normalise_direction(b0_direction)
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(z, b), float(z @ b)
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


class ValidCentreWindowInferer(SlidingWindowInferer):
    """MONAI's ``SlidingWindowInferer`` for a predictor whose output is valid only on each window's centre (the
    window less ``margin`` voxels on every side): the window step is exactly that valid centre, and the windows
    are blended with constant weights (``mode="constant"``).

    The window edge is chosen per volume and axis unless ``roi_size`` is given: the fewest windows of at most
    ``max_roi_size`` voxels whose valid centres tile the axis, each as small as that allows (a multiple of 4, at
    least ``min_roi_size``). The input is the volume already padded by ``margin`` on every side.

    Args:
        margin: voxels cut on each side of a window (None: set by the network that uses it, e.g. QSMGAN's
            generator's ``crop_voxels``).
        roi_size: fixed window edges (None: per volume as above).
        max_roi_size: largest window edge in voxels (a multiple of 4).
        min_roi_size: smallest window edge (QSMGAN: its 64-voxel training patch).
        sw_batch_size: windows evaluated together.
        kwargs: further ``SlidingWindowInferer`` arguments (e.g. ``sw_device``, ``progress``).
    """

    def __init__(self, *, margin: int | None = None, roi_size: Sequence[int] | int | None = None,
                 max_roi_size: int = 128, min_roi_size: int = 64, sw_batch_size: int = 2, **kwargs: object) -> None:
        kwargs.setdefault("mode", "constant")
        super().__init__(roi_size=roi_size if roi_size is not None else max_roi_size, sw_batch_size=sw_batch_size,
                         overlap=0.0, **kwargs)
        self.margin = None if margin is None else int(margin)
        self.fixed_roi_size = roi_size
        self.max_roi_size, self.min_roi_size = int(max_roi_size), int(min_roi_size)

    def window_size(self, length: int) -> int:
        """Window edge for an axis of ``length`` voxels (unpadded): the fewest windows (each at most
        ``max_roi_size``) whose valid centres (window − 2 · margin) cover the axis, each as small as that allows."""
        margin = self.margin or 0
        valid_max = self.max_roi_size - 2 * margin
        count = -(-int(length) // valid_max)
        window = -(-int(length) // count) + 2 * margin
        return max(self.min_roi_size, 4 * -(-window // 4))

    def windows_for(self, padded_shape: Sequence[int]) -> tuple[list[int], list[float]]:
        """Window edges and MONAI overlaps for a volume padded by ``margin``: the step ``int(window · (1 −
        overlap))`` is exactly the valid centre."""
        margin = self.margin or 0
        if self.fixed_roi_size is None:
            windows = [self.window_size(int(n) - 2 * margin) for n in padded_shape]
        else:
            fixed = self.fixed_roi_size
            windows = [int(w) for w in (fixed if isinstance(fixed, Sequence) else [fixed] * len(padded_shape))]
            if min(windows) <= 2 * margin:
                raise ValueError(f"window edges {windows} leave no valid centre with a margin of {margin} voxels")
        return windows, [1.0 - (w - 2 * margin + 0.5) / w for w in windows]

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs):  # type: ignore[override]
        self.roi_size, self.overlap = self.windows_for(inputs.shape[2:])
        return super().__call__(inputs, network, *args, **kwargs)


@dataclass
class TrainingGrid:
    """Index map from the training grid to the input grid: ``input_index = matrix @ grid_index + offset``."""

    matrix: np.ndarray
    offset: np.ndarray
    shape: tuple[int, int, int]
    input_shape: tuple[int, int, int]

    @classmethod
    def for_input(
        cls, shape: Sequence[int], voxel_size_mm: Sequence[float], b0_direction: Sequence[float], *,
        training_voxel_mm: float = TRAINING_VOXEL_MM,
    ) -> TrainingGrid:
        """The grid of ``training_voxel_mm`` voxels with B0 along its k axis that covers the input's extent."""
        shape = tuple(int(s) for s in shape)
        voxel = np.asarray(voxel_size_mm, dtype=np.float64)
        rotation = rotation_z_to(b0_direction)
        half_extent_mm = np.abs(rotation.T) @ ((np.asarray(shape) - 1) / 2 * voxel)
        grid_shape = tuple(int(n) for n in np.ceil(2 * half_extent_mm / training_voxel_mm - 1e-6).astype(int) + 1)
        matrix = np.diag(1.0 / voxel) @ rotation * training_voxel_mm
        offset = (np.asarray(shape) - 1) / 2 - matrix @ ((np.asarray(grid_shape) - 1) / 2)
        return cls(matrix, offset, grid_shape, shape)

    @property
    def is_identity(self) -> bool:
        """True when the input already is on the training grid (no interpolation needed)."""
        return self.shape == self.input_shape and np.allclose(self.matrix, np.eye(3), atol=1e-6)

    def to_grid(self, volume: np.ndarray) -> np.ndarray:
        """Trilinear resampling of an input-grid volume onto the training grid (0 outside the input)."""
        from scipy.ndimage import affine_transform

        if self.is_identity:
            return np.asarray(volume, dtype=np.float32)
        return affine_transform(np.asarray(volume, dtype=np.float32), self.matrix, self.offset,
                                output_shape=self.shape, order=1, cval=0.0)

    def from_grid(self, volume: np.ndarray) -> np.ndarray:
        """Trilinear resampling of a training-grid volume back onto the input grid."""
        from scipy.ndimage import affine_transform

        if self.is_identity:
            return np.asarray(volume, dtype=np.float32)
        inverse = np.linalg.inv(self.matrix)
        return affine_transform(np.asarray(volume, dtype=np.float32), inverse, -inverse @ self.offset,
                                output_shape=self.input_shape, order=1, cval=0.0)


class QsmganInversion(nn.Module):
    """Whole-volume QSMGAN: ``QsmganInversion()(field_ppm, mask, voxel_size_mm, b0_direction) → χ (ppm)``.

    Its ``state_dict`` (the shipped ``models/qsmgan.pt``) is that of the generator, under ``generator.``, and
    of the NDI parts (their fixed step sizes and weights).

    Args:
        generator: the U-Net (default: :class:`QsmganGenerator` of width 8, three levels).
        prior: NDI (no CNN) whose estimate the generator corrects (None: the generator maps the field to χ
            alone, as in Chen et al.); its parameters are fixed. The generator then needs 3 input channels.
        data_consistency: NDI iterations (no CNN) run from the corrected estimate; parameters fixed.
        zero_mean_correction: remove the mean (over the mask) of the generator's correction, so that it
            cannot guess the mean of χ, which the field does not determine (see ``LearnedNdi(zero_mean_cnn)``).
        max_window_size: largest window edge in voxels (a multiple of 4); per axis the window is the
            smallest multiple of 4, at least ``min_window_size``, whose valid centres tile the axis with the
            fewest windows.
        min_window_size: smallest window edge (the training patch, 64).
        windows_per_batch: windows evaluated together.
        training_voxel_mm: isotropic voxel size the generator was trained at.
        window_inferer: the sliding windows (default: :class:`ValidCentreWindowInferer` with the three window
            arguments above); its ``margin``, if unset, becomes the generator's ``crop_voxels``.
    """

    def __init__(
        self, generator: nn.Module | None = None, *, prior: LearnedNdi | None = None,
        data_consistency: LearnedNdi | None = None, max_window_size: int = 128, min_window_size: int = 64,
        windows_per_batch: int = 2, training_voxel_mm: float = TRAINING_VOXEL_MM, zero_mean_correction: bool = False,
        window_inferer: ValidCentreWindowInferer | None = None,
    ) -> None:
        super().__init__()
        self.generator = generator if generator is not None else QsmganGenerator()
        self.zero_mean_correction = bool(zero_mean_correction)
        self.prior, self.data_consistency = prior, data_consistency
        for part in (prior, data_consistency):
            if part is not None:
                if getattr(part, "cnn", None) is not None:
                    raise ValueError("the NDI parts of a physics-informed QSMGAN have no CNN (channels=0)")
                part.requires_grad_(False)
        if prior is not None:
            with torch.no_grad():  # the correction starts at zero: before training the method is NDI
                self.generator.head.weight.zero_()
                self.generator.head.bias.zero_()
        self.max_window_size, self.min_window_size = int(max_window_size), int(min_window_size)
        self.windows_per_batch = int(windows_per_batch)
        self.training_voxel_mm = float(training_voxel_mm)
        if window_inferer is None:
            window_inferer = ValidCentreWindowInferer(max_roi_size=max_window_size, min_roi_size=min_window_size,
                                                      sw_batch_size=windows_per_batch)
        if window_inferer.margin is None:
            window_inferer.margin = int(self.generator.crop_voxels)
        self.window_inferer = window_inferer

    def forward(
        self, field_ppm: torch.Tensor, mask: torch.Tensor | None, voxel_size_mm: Sequence[float],
        b0_direction: Sequence[float],
    ) -> torch.Tensor:
        """χ (ppm) of a 3-D field (ppm) on the input's grid, 0 outside the mask.

        Args:
            field_ppm: (n_i, n_j, n_k) local field, ppm.
            mask: (n_i, n_j, n_k) brain mask (None: everywhere).
            voxel_size_mm: voxel sizes along the array axes, mm.
            b0_direction: B0 direction in voxel axes.
        """
        device = field_ppm.device
        mask = torch.ones_like(field_ppm) if mask is None else mask.to(field_ppm.dtype)
        field_ppm = field_ppm * mask
        physics = self.prior is not None or self.data_consistency is not None
        kernel = dipole_kernel(field_ppm.shape, voxel_size_mm, b0_direction, device=device) if physics else None
        prior = None if self.prior is None else self.prior_estimate(field_ppm, kernel, mask, voxel_size_mm)
        grid = TrainingGrid.for_input(field_ppm.shape, voxel_size_mm, b0_direction,
                                      training_voxel_mm=self.training_voxel_mm)

        def on_grid(volume: torch.Tensor | None, grid_mask: np.ndarray) -> torch.Tensor | None:
            if volume is None:
                return None
            resampled = np.where(grid_mask, grid.to_grid(volume.cpu().numpy()), 0.0).astype(np.float32)
            return torch.as_tensor(resampled, device=device)

        grid_mask = grid.to_grid(mask.cpu().numpy()) > 0.5
        out = self.predict_on_training_grid(on_grid(field_ppm, grid_mask),
                                            torch.as_tensor(grid_mask, dtype=torch.float32, device=device),
                                            on_grid(prior, grid_mask))
        out = grid.from_grid((out * torch.as_tensor(grid_mask, device=device)).cpu().numpy())
        chi = torch.as_tensor(out, dtype=field_ppm.dtype, device=device) * mask
        if prior is not None:
            chi = prior + self._centred(chi, mask)
        if self.data_consistency is not None:
            chi = self.data_consistency(field_ppm, kernel, mask, initial=chi)
        return chi * mask

    def prior_estimate(
        self, field_ppm: torch.Tensor, kernel: torch.Tensor, mask: torch.Tensor, voxel_size_mm: Sequence[float],
    ) -> torch.Tensor:
        """The prior's χ (ppm) of a whole field; a prior that uses the voxel size (TV) is given it."""
        with torch.no_grad():
            return solve(self.prior, field_ppm, kernel, mask, voxel_size_mm)

    def refine_patch(
        self, field_ppm: torch.Tensor, mask: torch.Tensor, kernel: torch.Tensor | None,
        prior_ppm: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training form on whole patches (batch, i, j, k) already on the training grid: χ (ppm) on the valid
        centre (batch, i − 2c, j − 2c, k − 2c). With a prior, the correction is 0 on the patch margin.
        ``prior_ppm``: the prior's estimate cut from the whole volume (in-vivo training); if None the prior runs
        on the patch itself (simulated patches whose field is complete)."""
        margin = self.generator.crop_voxels
        if self.prior is None:
            return self.generator(generator_input(field_ppm, mask))[:, 0] / CHI_SCALE
        if prior_ppm is not None:
            prior = prior_ppm
        else:
            prior = self.prior_estimate(field_ppm, kernel, mask, (self.training_voxel_mm,) * 3)
        correction = self.generator(generator_input(field_ppm, mask, prior))[:, 0] / CHI_SCALE
        chi = prior + self._centred(F.pad(correction, (margin,) * 6) * mask, mask)
        if self.data_consistency is not None:
            chi = self.data_consistency(field_ppm, kernel, mask, initial=chi)
        return chi[..., margin:-margin, margin:-margin, margin:-margin] if margin else chi

    def _centred(self, correction: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The correction (0 outside the mask), less its mean over the mask if ``zero_mean_correction``."""
        return without_mask_mean(correction, mask) if self.zero_mean_correction else correction

    def window_size(self, length: int) -> int:
        """Window edge for an axis of ``length`` voxels (see :meth:`ValidCentreWindowInferer.window_size`)."""
        return self.window_inferer.window_size(length)

    def predict_on_training_grid(
        self, field_ppm: torch.Tensor, mask: torch.Tensor, prior_ppm: torch.Tensor | None = None
    ) -> torch.Tensor:
        """χ (ppm; with a prior, the correction to it) of a field already on the training grid (i, j, k), by
        overlapping windows.

        The volume is zero-padded by the crop margin so that the windows' valid centres cover every voxel.
        The predictor returns two channels on the full window, ``[χ·w, w]`` with w = 1 on the valid centre
        and 0 on the margin; after the blending of :attr:`window_inferer` their ratio is the mean of the valid
        predictions of each voxel, so the unreliable window margins never enter the result.
        """
        margin = self.generator.crop_voxels
        prior = None if prior_ppm is None else prior_ppm[None]
        x = F.pad(generator_input(field_ppm[None], mask[None], prior), (margin,) * 6)

        def predictor(window: torch.Tensor) -> torch.Tensor:
            chi = self.generator(window.contiguous(memory_format=torch.channels_last_3d)).contiguous()
            return F.pad(torch.cat([chi, torch.ones_like(chi)], dim=1), (margin,) * 6)

        blended = self.window_inferer(x, predictor)
        chi = blended[0, 0] / blended[0, 1].clamp_min(1e-6)
        n = field_ppm.shape
        return chi[margin:margin + n[0], margin:margin + n[1], margin:margin + n[2]] / CHI_SCALE

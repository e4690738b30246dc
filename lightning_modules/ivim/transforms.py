"""MONAI dictionary transforms of the ``ivim_mapping`` bundle: b-values in, masked voxel signals out, parameter
maps back on the DWI's grid.

Pre-processing (after :class:`~lightning_modules.bundle_workflow.LoadNiftid` has loaded ``dwi`` and ``mask``):
:class:`LoadBValuesd` reads the FSL b-values, :class:`IvimSignalsd` takes the voxels of the mask whose signal at the
lowest b-value is positive and divides each by that signal: the network input ``image`` ``(n_voxels, n_b)``, with
``reference`` (the divisor, S(b_min)) and ``voxels`` (where on the grid each row belongs). Post-processing:
:class:`ScaleS0d` turns the estimated S0 back into signal units (and refuses non-finite estimates),
MONAI's ``SplitDimd`` splits the parameters, :class:`ScatterVoxelsd` puts each back on the grid (0 elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.transforms import MapTransform

from lightning_modules.bundle_workflow import PATH_SUFFIX
from lightning_modules.io import InputError, check_same_grid
from lightning_modules.ivim.signal import normalise_signal

#: Largest accepted ratio of any signal in the mask to the median signal at the lowest b-value there: diffusion
#: weighting only lowers the signal and tissues differ by a few times at most, so a voxel 1000× brighter is a
#: corrupt value (one such voxel used to turn every fitted map into NaN), refused rather than fitted.
MAX_SIGNAL_TO_MEDIAN = 1000.0


def read_bvals(path: str | os.PathLike, *, n_volumes: int | None = None) -> np.ndarray:
    """b-values (s/mm²) of an FSL-style ``.bval`` file: whitespace-separated numbers, one per volume.

    Raises:
        InputError: unreadable file, non-numbers, negative values or a count different from ``n_volumes``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"b-values file {str(path)!r} cannot be read ({err.strerror}); check the path") from None
    try:
        b = np.array([float(v) for v in text.split()], dtype=np.float64)
    except ValueError:
        raise InputError(f"b-values file {str(path)!r} is not a list of numbers; give FSL-style b-values") from None
    if b.size == 0 or not np.all(np.isfinite(b)):
        raise InputError(f"b-values file {str(path)!r} holds no finite b-values; give one b-value per volume")
    if np.any(b < 0):
        raise InputError(f"b-values file {str(path)!r} has negative b-values; b-values are ≥ 0 s/mm²")
    if n_volumes is not None and b.size != n_volumes:
        raise InputError(f"b-values file {str(path)!r} has {b.size} b-values but the DWI has {n_volumes} volumes; "
                         "give one b-value per volume")
    return b


def check_plausible_signals(signals: np.ndarray, reference: np.ndarray, dwi_path: str) -> None:
    """Refuse signals in the mask beyond :data:`MAX_SIGNAL_TO_MEDIAN` × the median lowest-b signal (``reference``:
    that signal of the voxels with a positive one).

    Raises:
        InputError: naming the DWI and the number of such voxels.
    """
    median = float(np.median(reference))
    limit = MAX_SIGNAL_TO_MEDIAN * median
    largest = float(np.max(np.abs(signals)))
    if not largest <= limit:
        n_bad = int(np.count_nonzero(np.any(np.abs(signals) > limit, axis=-1)))
        raise InputError(
            f"DWI file {dwi_path!r} has {n_bad} voxel(s) in the mask with a signal of up to {largest:.3g}, more than "
            f"{MAX_SIGNAL_TO_MEDIAN:g}× the median signal at the lowest b-value ({median:.3g}); zero or mask out the "
            f"corrupt voxels")


def study_signals(dwi: np.ndarray, mask: np.ndarray | None, b_values_s_per_mm2: np.ndarray, *,
                  dwi_path: str = "DWI", mask_path: str = "mask") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The voxels of a study that are fitted, as the network input.

    Args:
        dwi: ``(X, Y, Z, n_b)`` signals in any units, last axis in the order of ``b_values_s_per_mm2`` (s/mm²).
        mask: ``(X, Y, Z)``, voxels > 0 are fitted; None: every voxel.
        dwi_path, mask_path: the files, for messages.

    Returns:
        ``(signals (n, n_b) divided by S(b_min), S(b_min) (n,) in the DWI's units, voxels (X, Y, Z) bool)``: the n
        voxels of the mask whose S(b_min) is positive, in C order.

    Raises:
        InputError: an empty mask, no voxel with a positive signal, or implausibly bright voxels.
    """
    if mask is None:
        inside = np.ones(dwi.shape[:3], dtype=bool)
    else:
        inside = np.asarray(mask) > 0
        if not inside.any():
            raise InputError(f"mask file {mask_path!r} is empty (no voxel > 0); give a mask of the tissue to fit")
    signals = np.asarray(dwi)[inside]
    normalised, reference, valid = normalise_signal(signals, b_values_s_per_mm2)
    if not np.any(valid):
        raise InputError(f"DWI file {dwi_path!r} has no voxel with a positive signal at the lowest b-value in the "
                         "mask; check the image and the mask")
    check_plausible_signals(signals, reference[valid], dwi_path)
    voxels = inside.copy()
    voxels[inside] = valid
    return normalised[valid], reference[valid], voxels


def _numpy(value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _path(data: Mapping, key: Hashable) -> str:
    path = data.get(f"{key}{PATH_SUFFIX}", data.get(key))
    return str(path) if isinstance(path, (str, os.PathLike)) else str(key)


class LoadBValuesd(MapTransform):
    """Read the FSL b-values file named by ``keys`` (s/mm², one per DWI volume) into ``output_key`` (float64).

    Args:
        keys: the case key of the b-values file.
        dwi_key: the loaded DWI, whose last axis must have one volume per b-value.
        output_key: where the b-values go.
    """

    def __init__(self, keys: str = "bvals", *, dwi_key: str = "dwi", output_key: str = "b_values") -> None:
        super().__init__(keys)
        self.dwi_key = dwi_key
        self.output_key = output_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            dwi = d.get(self.dwi_key)
            n_volumes = None if dwi is None else int(dwi.shape[-1])
            d[self.output_key] = torch.as_tensor(read_bvals(str(d[key]), n_volumes=n_volumes))
        return d


class IvimSignalsd(MapTransform):
    """A loaded DWI (and mask) → the fitted voxels' signals divided by S(b_min) (:func:`study_signals`).

    Writes ``image`` ``(n, n_b)`` (float64), ``reference`` ``(n,)`` and ``voxels`` ``(X, Y, Z)`` (bool), and drops
    the 4-D DWI and the mask from the case (what follows needs only these).

    Args:
        keys: the loaded DWI (``(X, Y, Z, n_b)``).
        mask_key: the loaded mask (``None`` in the case: every voxel).
        b_values_key: the b-values (:class:`LoadBValuesd`).
        image_key, reference_key, voxels_key: where the outputs go.

    Raises:
        InputError: a mask on another grid, an empty mask, no voxel with signal, implausibly bright voxels.
    """

    def __init__(self, keys: str = "dwi", *, mask_key: str = "mask", b_values_key: str = "b_values",
                 image_key: str = "image", reference_key: str = "reference", voxels_key: str = "voxels") -> None:
        super().__init__(keys)
        self.mask_key = mask_key
        self.b_values_key = b_values_key
        self.image_key, self.reference_key, self.voxels_key = image_key, reference_key, voxels_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            dwi, mask = d.pop(key), d.pop(self.mask_key, None)
            dwi_path, mask_path = _path(d, key), _path(d, self.mask_key)
            if mask is not None:
                check_same_grid(tuple(dwi.shape), _numpy(dwi.affine), tuple(mask.shape), _numpy(mask.affine),
                                path_b=mask_path, what_b="mask", ref="DWI")
            signals, reference, voxels = study_signals(
                _numpy(dwi), None if mask is None else _numpy(mask), _numpy(d[self.b_values_key]),
                dwi_path=dwi_path, mask_path=mask_path)
            d[self.image_key] = torch.as_tensor(signals)
            d[self.reference_key] = torch.as_tensor(reference)
            d[self.voxels_key] = torch.as_tensor(voxels)
        return d


class ScaleS0d(MapTransform):
    """Estimated parameters ``(n, n_params)`` with S0 (last) relative to S(b_min) → S0 in the DWI's units.

    Args:
        keys: the parameters (float64 keeps the maps bit-identical to the pipeline's definition).
        reference_key: S(b_min) of each row (:class:`IvimSignalsd`).
        source_key: the main input, named in the error.

    Raises:
        InputError: a non-finite estimate (no maps are written for the case).
    """

    def __init__(self, keys: Sequence[str] | str = "pred", *, reference_key: str = "reference",
                 source_key: str = "dwi") -> None:
        super().__init__(keys)
        self.reference_key = reference_key
        self.source_key = source_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            params = torch.as_tensor(d[key]).clone()
            params[:, -1] *= torch.as_tensor(d[self.reference_key]).to(params)
            n_bad = int((~torch.isfinite(params).all(dim=1)).sum())
            if n_bad:
                raise InputError(f"the fit of {_path(d, self.source_key)!r} gave non-finite parameters in {n_bad} "
                                 "voxel(s); no maps written for it: check the DWI for corrupt voxels, or try "
                                 "--method lsq")
            d[key] = params
        return d


class ScatterVoxelsd(MapTransform):
    """Per-voxel values ``(n,)`` → a ``(X, Y, Z)`` map with them at ``voxels`` (C order) and 0 elsewhere.

    Args:
        keys: the per-voxel values (e.g. the columns that ``SplitDimd`` made of the parameters).
        voxels_key: the boolean ``(X, Y, Z)`` grid of the rows (:class:`IvimSignalsd`).
        dtype: the maps' data type (the values are rounded to it once, as when written).
    """

    def __init__(self, keys: Sequence[str] | str, *, voxels_key: str = "voxels", dtype: np.dtype | str = "float32"):
        super().__init__(keys)
        self.voxels_key = voxels_key
        self.dtype = np.dtype(dtype)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        voxels = _numpy(d[self.voxels_key]).astype(bool)
        for key in self.key_iterator(d):
            volume = np.zeros(voxels.shape, dtype=self.dtype)
            volume[voxels] = _numpy(d[key]).reshape(-1)
            d[key] = volume
        return d

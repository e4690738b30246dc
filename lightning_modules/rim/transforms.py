"""MONAI dictionary transforms of the ``rim_lesion_detection`` bundle: one case's QSM + FLAIR + lesion mask →
per-lesion patches and radiomic features (pre-processing), rim+ logits → lesion table and rim labelmap
(post-processing).

The bundle's ``configs/inference.json`` chains them around the network (see ``docs/README.md``)::

    LoadNiftid(qsm, flair, lesion_mask) → EnsureChannelFirstd → CheckRimInputsd
      → ResampleToQsmGridd(lesion_mask: nearest, flair: linear) → LabelLesionsd → Orientationd(RAS)
      → LesionPatchesd                                                [ → QSMRim-Net → ]
      RimOutputsd → Invertd(rim_labels, back to the QSM file's storage order) → SaveOutputsd

Volumes are MONAI channel-first images (1, i, j, k) with their NIfTI (RAS) affine.

Each step runs once per case. Lesion ids of a binary mask are numbered in the QSM file's storage order (as the
table documents); everything measured (volumes, centroids, patches, radiomics) is computed on the closest RAS
storage order of the QSM grid (flips and axis permutations, no resampling), so results do not depend on how the
images are stored. QSMRim-Net: Zhang et al., NeuroImage: Clinical 2022.
"""

from __future__ import annotations

import io
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, ResampleToMatch

from lightning_modules.bundle_workflow import PATH_SUFFIX
from lightning_modules.capability import columns
from lightning_modules.io import InputError, voxel_sizes_mm
from lightning_modules.rim.lesions import describe_lesions, label_lesions, lesion_patches, normalise_flair
from lightning_modules.rim.radiomics import FeatureStandardiser, feature_matrix, lesion_features, make_extractor

#: Columns of the lesion table, in order, as the bundle's capability.json describes them (centroids in RAS mm).
TABLE_COLUMNS = columns("rim_lesion_detection", "lesions")

#: Largest |χ| (ppm) accepted in a QSM: brain tissue lies within about ±1 ppm and even veins and calcifications
#: stay within a few ppm, so larger values are another unit (a ppb map, an int16 map scaled by 1000) or a corrupt
#: voxel; refused rather than classified (pyradiomics' texture matrices explode on such ranges).
MAX_PLAUSIBLE_QSM_PPM = 10.0

#: What each input is in messages.
WHAT = {"qsm": "QSM", "flair": "FLAIR", "lesion_mask": "lesion mask"}

#: Keys of the per-lesion measurements a case carries from :class:`LesionPatchesd` to :class:`RimOutputsd`.
LESION_KEYS = ("lesion_id", "n_voxels", "volume_mm3", "centroid_ras_mm")


def _array(value: object) -> np.ndarray:
    if isinstance(value, MetaTensor):
        value = value.as_tensor()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _volume(value: object) -> np.ndarray:
    """The (i, j, k) array of a channel-first (1, i, j, k) volume."""
    array = _array(value)
    return array[0] if array.ndim == 4 else array


def _path(data: Mapping, key: str) -> str:
    return str(data.get(f"{key}{PATH_SUFFIX}", data.get(key)))


def check_plausible_qsm(qsm: np.ndarray, qsm_path: str) -> None:
    """Refuse a QSM that is zero everywhere or reaches values that cannot be χ in ppm (``MAX_PLAUSIBLE_QSM_PPM``)."""
    if not np.any(qsm):
        raise InputError(f"QSM file {qsm_path!r} is zero everywhere, so there is nothing to classify; give a QSM in "
                         "ppm")
    largest = float(np.max(np.abs(qsm)))
    if largest > MAX_PLAUSIBLE_QSM_PPM:
        n_bad = int(np.count_nonzero(np.abs(qsm) > MAX_PLAUSIBLE_QSM_PPM))
        raise InputError(
            f"QSM file {qsm_path!r} reaches {largest:.3g} ({n_bad} voxel(s) beyond ±{MAX_PLAUSIBLE_QSM_PPM:g}); QSM "
            f"must be in ppm (brain χ lies within about ±1 ppm): divide a ppb map by 1000, or zero corrupt voxels")


def check_lesion_mask(mask: np.ndarray, mask_path: str) -> None:
    """Refuse a lesion mask with negative or non-integer values, or without any lesion voxel."""
    if np.any(mask < 0) or not np.all(np.equal(np.mod(mask, 1), 0)):
        raise InputError(f"lesion mask file {mask_path!r} has non-integer or negative values; give a binary mask "
                         f"(0/1) or integer lesion labels")
    if not np.any(mask):
        raise InputError(f"lesion mask file {mask_path!r} is empty (no lesion voxels); give a mask with lesions")


class CheckRimInputsd(MapTransform):
    """Refuse, in one sentence naming the file, a QSM that is not χ in ppm and a lesion mask that is not a mask.

    Args:
        qsm_key: the QSM (ppm).
        mask_key: the lesion mask (binary or integer labels).
    """

    def __init__(self, qsm_key: str = "qsm", mask_key: str = "lesion_mask") -> None:
        super().__init__([qsm_key, mask_key])
        self.qsm_key, self.mask_key = qsm_key, mask_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        check_plausible_qsm(_volume(d[self.qsm_key]), _path(d, self.qsm_key))
        check_lesion_mask(_volume(d[self.mask_key]), _path(d, self.mask_key))
        return d


class ResampleToQsmGridd(MapTransform):
    """Bring images on another grid onto the QSM's (shape and affine) with MONAI's ``ResampleToMatch``; 0 outside.

    Images whose shape matches and whose affine agrees within 1e-3 are taken as they are. Otherwise the image is
    resampled in world coordinates (``mode`` ``"nearest"`` for masks, ``"bilinear"`` for images), in float64, of its
    float32 values, rounded to float32: the numbers of the SimpleITK resampling this bundle used before (0.4.0),
    including its border rule: a QSM voxel whose centre maps within half a voxel outside the image takes the nearest
    edge value (``padding_mode="border"``), one further out is 0.

    Args:
        keys: the images to resample (e.g. ``("lesion_mask", "flair")``).
        ref_key: the QSM.
        mode: per key (or one for all), ``"nearest"`` or ``"bilinear"``.

    Raises:
        InputError: the image has content but none of it falls on the QSM grid.
    """

    def __init__(self, keys: Sequence[Hashable] | Hashable, *, ref_key: str = "qsm",
                 mode: Sequence[str] | str = "bilinear") -> None:
        super().__init__(keys)
        self.ref_key = ref_key
        self.mode = dict(zip(self.keys, [mode] * len(self.keys) if isinstance(mode, str) else mode))

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        ref = d[self.ref_key]
        ref_affine = _array(ref.affine).astype(np.float64)
        for key in self.key_iterator(d):
            image = d[key]
            affine = _array(image.affine).astype(np.float64)
            if tuple(image.shape) == tuple(ref.shape) and np.allclose(affine, ref_affine, atol=1e-3):
                continue
            values = _volume(image).astype(np.float32).astype(np.float64)
            resampled = resample_to_match(values, affine, tuple(ref.shape[-3:]), ref_affine, mode=self.mode[key])
            if np.any(values) and not np.any(resampled):
                raise InputError(f"{WHAT.get(key, key)} file {_path(d, key)!r} does not overlap the QSM in world "
                                 f"coordinates after resampling to its grid; check that both images come from the "
                                 f"same subject and session")
            d[key] = MetaTensor(torch.as_tensor(resampled)[None], meta={**image.meta, "affine": ref.affine})
        return d


def resample_to_match(values: np.ndarray, affine: np.ndarray, ref_shape: tuple[int, ...], ref_affine: np.ndarray, *,
                      mode: str) -> np.ndarray:
    """``values`` (3-D, on ``affine``) resampled onto the grid (``ref_shape``, ``ref_affine``) with MONAI's
    ``ResampleToMatch`` in float64, rounded to float32 (returned as float64); 0 where a reference voxel centre lies
    more than half a voxel outside the image (see :class:`ResampleToQsmGridd`)."""
    source = MetaTensor(torch.as_tensor(values, dtype=torch.float64)[None], affine=torch.as_tensor(affine))
    target = MetaTensor(torch.zeros((1, *ref_shape), dtype=torch.float64), affine=torch.as_tensor(ref_affine))
    inside = ResampleToMatch(mode="nearest", padding_mode="zeros", dtype=torch.float64)(
        MetaTensor(torch.ones_like(source.as_tensor()), affine=source.affine), target)
    out = ResampleToMatch(mode=mode, padding_mode="border", dtype=torch.float64)(source, target)
    out = out.as_tensor()[0].numpy() * inside.as_tensor()[0].numpy()
    return out.astype(np.float32).astype(np.float64)


class LabelLesionsd(MapTransform):
    """Integer lesion labels of a lesion mask: 26-connected components of a binary mask, or the given labels
    (:func:`lightning_modules.rim.lesions.label_lesions`), as int32 under ``labels_key`` on the mask's grid."""

    def __init__(self, mask_key: str = "lesion_mask", *, labels_key: str = "labels") -> None:
        super().__init__([mask_key])
        self.mask_key, self.labels_key = mask_key, labels_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        mask = d[self.mask_key]
        labels = label_lesions(np.rint(_volume(mask)).astype(np.int64))
        d[self.labels_key] = MetaTensor(torch.as_tensor(labels)[None], meta=dict(mask.meta))
        return d


class LesionPatchesd(MapTransform):
    """Each lesion's patch and radiomic features, the network's inputs, and its size and centroid, the table's.

    Reads the QSM (ppm), FLAIR and lesion labels (one grid, RAS storage order); writes ``image``: patches
    (n_lesions, 3, 24, 24, 24) float32 (QSM in ppm, FLAIR divided by its brain median, the lesion's mask; see
    :func:`lightning_modules.rim.lesions.lesion_patches`), ``radiomics``: standardised pyradiomics features
    (n_lesions, n_features) float32, and per lesion ``lesion_id``, ``n_voxels``, ``volume_mm3`` and
    ``centroid_ras_mm`` (n_lesions, 3).

    Args:
        stats_path: the feature standardisation (names, mean, std) shipped with the weights.
        radiomics_params: the pyradiomics YAML parameter file.
        qsm_key, flair_key, labels_key: the inputs.
        image_key, radiomics_key: where the network inputs go.
    """

    def __init__(self, *, stats_path: str | os.PathLike, radiomics_params: str | os.PathLike, qsm_key: str = "qsm",
                 flair_key: str = "flair", labels_key: str = "labels", image_key: str = "image",
                 radiomics_key: str = "radiomics") -> None:
        super().__init__([qsm_key, flair_key, labels_key])
        self.stats_path, self.radiomics_params = stats_path, radiomics_params
        self.qsm_key, self.flair_key, self.labels_key = qsm_key, flair_key, labels_key
        self.image_key, self.radiomics_key = image_key, radiomics_key
        self._standardiser: FeatureStandardiser | None = None
        self._extractor = None

    def _tools(self):
        if self._extractor is None:  # built on first use: importing pyradiomics is slow and --help needs neither
            self._standardiser = FeatureStandardiser.load(self.stats_path)
            self._extractor = make_extractor(self.radiomics_params)
        return self._standardiser, self._extractor

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        standardiser, extractor = self._tools()
        qsm = _volume(d[self.qsm_key]).astype(np.float64)
        flair = _volume(d[self.flair_key]).astype(np.float64)
        labels = _volume(d[self.labels_key])
        affine = _array(d[self.qsm_key].affine).astype(np.float64)
        voxel_mm = voxel_sizes_mm(affine)
        lesions = describe_lesions(labels, affine)
        name = Path(_path(d, self.qsm_key)).name
        rows = []
        for j, lesion in enumerate(lesions):  # pyradiomics: ~0.3 s per lesion, the slow step of a case
            rows.append(lesion_features(extractor, qsm, labels == lesion.label, voxel_mm))
            if (j + 1) % 25 == 0 or j + 1 == len(lesions):
                print(f"{name}: radiomics of {j + 1}/{len(lesions)} lesions", flush=True)
        brain = qsm != 0
        d[self.radiomics_key] = standardiser(feature_matrix(rows, standardiser.names))
        d[self.image_key] = lesion_patches(qsm, normalise_flair(flair, brain if brain.any() else None), labels,
                                           lesions, voxel_mm)
        d["lesion_id"] = np.array([lesion.label for lesion in lesions], dtype=np.int64)
        d["n_voxels"] = np.array([lesion.n_voxels for lesion in lesions], dtype=np.int64)
        d["volume_mm3"] = np.array([lesion.volume_mm3 for lesion in lesions], dtype=np.float64)
        d["centroid_ras_mm"] = np.array([lesion.centroid_ras_mm for lesion in lesions], dtype=np.float64).reshape(-1, 3)
        return d


def lesion_table(lesion_ids: Sequence[int], n_voxels: Sequence[int], volumes_mm3: Sequence[float],
                 centroids_ras_mm: np.ndarray, probabilities: Sequence[float], threshold: float) -> str:
    """The CSV text: one row per lesion with the described columns (``TABLE_COLUMNS``; centroids in RAS mm).

    >>> print(lesion_table([3], [2], [4.0], np.array([[1.0, 2.0, 3.0]]), [0.75], 0.5), end="")
    lesion_id,n_voxels,volume_mm3,centroid_x,centroid_y,centroid_z,rim_probability,rim_positive
    3,2,4.000,1.000,2.000,3.000,0.750000,1
    """
    out = io.StringIO()
    out.write(",".join(TABLE_COLUMNS) + "\n")
    for label, count, volume, (x, y, z), p in zip(lesion_ids, n_voxels, volumes_mm3, centroids_ras_mm, probabilities):
        row = {"lesion_id": f"{int(label)}", "n_voxels": f"{int(count)}", "volume_mm3": f"{float(volume):.3f}",
               "centroid_x": f"{float(x):.3f}", "centroid_y": f"{float(y):.3f}", "centroid_z": f"{float(z):.3f}",
               "rim_probability": f"{float(p):.6f}", "rim_positive": f"{int(p >= threshold)}"}
        out.write(",".join(row[column] for column in TABLE_COLUMNS) + "\n")
    return out.getvalue()


class RimOutputsd(MapTransform):
    """The network's rim+ logits of a case's lesions → ``table_key``: the lesion table (CSV text) and
    ``labels_out_key``: the rim labelmap (uint8: 0 background, 1 rim−, 2 rim+) on the lesion labels' grid.

    Args:
        threshold: rim+ probability threshold (a lesion is rim+ when σ(logit) ≥ threshold).
        pred_key: the logits (n_lesions, 1) or (n_lesions,).
        labels_key: the lesion labels.
        table_key, labels_out_key: the outputs (named like the capability's outputs).
    """

    def __init__(self, threshold: float, *, pred_key: str = "pred", labels_key: str = "labels",
                 table_key: str = "lesions", labels_out_key: str = "rim_labels") -> None:
        super().__init__([pred_key, labels_key])
        self.threshold = float(threshold)
        self.pred_key, self.labels_key = pred_key, labels_key
        self.table_key, self.labels_out_key = table_key, labels_out_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        logits = torch.as_tensor(d[self.pred_key]).detach().cpu().reshape(-1).contiguous()
        probabilities = torch.sigmoid(logits).numpy().astype(np.float64)
        ids = _array(d["lesion_id"]).reshape(-1)
        d[self.table_key] = lesion_table(ids, _array(d["n_voxels"]).reshape(-1), _array(d["volume_mm3"]).reshape(-1),
                                         _array(d["centroid_ras_mm"]).reshape(-1, 3), probabilities, self.threshold)
        labels = d[self.labels_key]
        label_values = _array(labels)
        lookup = np.zeros(int(label_values.max()) + 1, dtype=np.uint8)
        for label, p in zip(ids, probabilities):
            lookup[int(label)] = 2 if p >= self.threshold else 1
        rim_labels = torch.as_tensor(lookup[label_values])
        d[self.labels_out_key] = MetaTensor(rim_labels, meta=dict(labels.meta)) if isinstance(labels, MetaTensor) \
            else rim_labels
        return d

"""Inference app of the ``rim_lesion_detection`` bundle: QSM + FLAIR + lesion mask → lesion table and rim labelmap.

Per DESIGN.md: ``--qsm`` (ppm), ``--flair`` (any scale), ``--lesion_mask`` (binary → 26-connected components;
integer labels → one lesion per label), ``--threshold`` (default: the validated operating point stored in the
weights). FLAIR and mask on another grid are resampled to the QSM grid (SimpleITK; nearest neighbour for the
mask). Outputs ``{stem}_lesions.csv`` and ``{stem}_rim_labels.nii.gz`` (0 background, 1 rim−, 2 rim+) on the
QSM grid with the QSM affine. Lesions are labelled, measured and classified on the QSM grid's closest RAS storage
order (flips and axis permutations only, no resampling), so results do not depend on how the images are stored
(lesion ids of a binary mask are numbered in the file's storage order).
QSMRim-Net: Zhang et al., NeuroImage: Clinical 2022; DeepSMOTE: Dablain et al. 2022.
All cases of a batch are validated before anything is written; bad input is a one-line error, exit status 2.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lightning_modules.bundle_app import (
    exit_on_input_error,
    interruptible,
    is_given,
    load_network,
    output_path,
    parse_number,
    report_progress,
    resolve_device,
    validated_cases,
)
from lightning_modules.io import InputError, atomic_output_set, load_nifti, voxel_sizes_mm
from lightning_modules.rim.lesions import (
    describe_lesions,
    label_lesions,
    lesion_patches,
    normalise_flair,
)
from lightning_modules.rim.radiomics import FeatureStandardiser, feature_matrix, lesion_features, make_extractor

TABLE_SUFFIX, LABELS_SUFFIX = "lesions.csv", "rim_labels.nii.gz"
TABLE_COLUMNS = ("lesion_id", "n_voxels", "volume_mm3", "centroid_x", "centroid_y", "centroid_z",
                 "rim_probability", "rim_positive")

#: Largest |χ| (ppm) accepted in a QSM: brain tissue lies within about ±1 ppm and even veins and calcifications
#: stay within a few ppm, so larger values are another unit (a ppb map, an int16 map scaled by 1000) or a corrupt
#: voxel; refused rather than classified (pyradiomics' texture matrices explode on such ranges).
MAX_PLAUSIBLE_QSM_PPM = 10.0


def _to_sitk(data: np.ndarray, affine: np.ndarray):
    """A SimpleITK image of a NIfTI array (i, j, k) and RAS affine (SimpleITK is LPS)."""
    import SimpleITK as sitk  # noqa: N813 (the name SimpleITK documents)

    lps = np.diag([-1.0, -1.0, 1.0]) @ np.asarray(affine, dtype=np.float64)[:3]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(lps[:, 3].tolist())
    image.SetDirection((lps[:, :3] / spacing).flatten().tolist())
    return image


def resample_to_grid(data: np.ndarray, affine: np.ndarray, ref_shape: tuple[int, ...], ref_affine: np.ndarray, *,
                     nearest: bool) -> np.ndarray:
    """``data`` (on ``affine``) resampled onto the reference grid, 0 outside; nearest neighbour or linear."""
    import SimpleITK as sitk  # noqa: N813 (the name SimpleITK documents)

    moving = _to_sitk(np.asarray(data, dtype=np.float32), affine)
    reference = _to_sitk(np.zeros(ref_shape, dtype=np.float32), ref_affine)
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(moving, reference, sitk.Transform(), interpolator, 0.0)
    return np.transpose(sitk.GetArrayFromImage(out), (2, 1, 0)).astype(np.float64)


#: The RAS storage order as a nibabel orientation (voxel axis i → world axis, direction).
_RAS = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])


@dataclass
class RimCase:
    """One validated case on the QSM grid in RAS storage order (``affine``): QSM (ppm), FLAIR, lesion labels, and
    the way back to the QSM file's storage order (``to_input``: a nibabel orientation transform, None when the
    file is stored RAS) and affine (``input_affine``), and the output paths."""

    qsm_path: str
    qsm_ppm: np.ndarray
    flair: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    table: Path
    labelmap: Path
    input_affine: np.ndarray | None = None
    to_input: np.ndarray | None = None

    def on_input_grid(self, volume: np.ndarray) -> np.ndarray:
        """A volume of this case's (RAS-ordered) grid in the QSM file's storage order."""
        if self.to_input is None:
            return volume
        from nibabel.orientations import apply_orientation

        return np.ascontiguousarray(apply_orientation(volume, self.to_input))


def to_ras_storage(affine: np.ndarray, shape: tuple[int, ...], *volumes: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """``volumes`` (on the grid ``affine``, ``shape``) flipped/permuted to the closest RAS storage order, as
    ``nibabel.as_closest_canonical``: returns (RAS affine, transform back to the input order or None if the input
    is already RAS, volumes). The voxel values are untouched (no resampling)."""
    from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation, ornt_transform

    ornt = io_orientation(affine)
    if np.array_equal(ornt, _RAS):
        return affine, None, list(volumes)
    ras_affine = affine @ inv_ornt_aff(ornt, shape)
    return (ras_affine, ornt_transform(_RAS, ornt),
            [np.ascontiguousarray(apply_orientation(v, ornt)) for v in volumes])


def _on_qsm_grid(path: str, what: str, qsm: np.ndarray, qsm_affine: np.ndarray, *, nearest: bool) -> np.ndarray:
    data, affine, _ = load_nifti(path, what=what, ndim=3)
    if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(f"{what} file {path!r} has a singular affine; fix its header (voxel sizes, orientation)")
    if data.shape == qsm.shape and np.allclose(affine, qsm_affine, atol=1e-3):
        return data
    resampled = resample_to_grid(data, affine, qsm.shape, qsm_affine, nearest=nearest)
    if np.any(data) and not np.any(resampled):
        raise InputError(f"{what} file {path!r} does not overlap the QSM in world coordinates after resampling to "
                         f"its grid; check that both images come from the same subject and session")
    return resampled


def load_case(case: dict, output_dir: str | os.PathLike) -> RimCase:
    """Read and validate one case (QSM, FLAIR, lesion mask), bringing FLAIR and mask onto the QSM grid.

    Raises:
        InputError: unreadable files, wrong dimensionality, NaN/Inf, grids that cannot be aligned, an empty
            mask or mask values that are not non-negative integers.
    """
    for key in ("flair", "lesion_mask"):
        if not is_given(case.get(key)):
            raise InputError(f"no --{key} given for QSM {str(case['qsm'])!r}; pass --{key} FILE.nii.gz")
    qsm_path, flair_path, mask_path = str(case["qsm"]), str(case["flair"]), str(case["lesion_mask"])
    qsm, affine, _ = load_nifti(qsm_path, what="QSM", ndim=3)
    if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(f"QSM file {qsm_path!r} has a singular affine; fix its header (voxel sizes, orientation)")
    check_plausible_qsm(qsm, qsm_path)
    mask_raw, _, _ = load_nifti(mask_path, what="lesion mask", ndim=3)
    if np.any(mask_raw < 0) or not np.all(np.equal(np.mod(mask_raw, 1), 0)):
        raise InputError(f"lesion mask file {mask_path!r} has non-integer or negative values; give a binary mask "
                         f"(0/1) or integer lesion labels")
    if not np.any(mask_raw):
        raise InputError(f"lesion mask file {mask_path!r} is empty (no lesion voxels); give a mask with lesions")
    mask = _on_qsm_grid(mask_path, "lesion mask", qsm, affine, nearest=True)
    flair = _on_qsm_grid(flair_path, "FLAIR", qsm, affine, nearest=False)
    # lesion ids follow the file's storage order (as documented for the table); everything measured follows RAS
    labels = label_lesions(np.rint(mask).astype(np.int64))
    ras_affine, to_input, (qsm, flair, labels) = to_ras_storage(affine, qsm.shape, qsm, flair, labels)
    return RimCase(qsm_path, qsm, flair, labels, ras_affine, output_path(output_dir, qsm_path, TABLE_SUFFIX),
                   output_path(output_dir, qsm_path, LABELS_SUFFIX), input_affine=affine, to_input=to_input)


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


def lesion_table(lesions: list, probabilities: np.ndarray, threshold: float) -> str:
    """The CSV text: one row per lesion with DESIGN.md's columns (centroids in RAS mm)."""
    out = io.StringIO()
    out.write(",".join(TABLE_COLUMNS) + "\n")
    for lesion, p in zip(lesions, probabilities):
        x, y, z = lesion.centroid_ras_mm
        out.write(f"{lesion.label},{lesion.n_voxels},{lesion.volume_mm3:.3f},{x:.3f},{y:.3f},{z:.3f},"
                  f"{p:.6f},{int(p >= threshold)}\n")
    return out.getvalue()


class RimLesionDetectionApp:
    """The bundle's workflow: ``RimLesionDetectionApp(network=QsmRimNetEnsemble(), qsm=..., flair=..., ...).run()``.

    Args:
        network: the QSMRim-Net ensemble (the bundle's ``network_def``; any module with ``forward(patches,
            radiomics) → logits`` and a ``threshold`` buffer); weights from ``model_path``.
        model_path: the shipped ``state_dict`` (holds the validated threshold).
        stats_path: radiomic feature standardisation statistics (JSON).
        radiomics_params: pyradiomics YAML.
        qsm: QSM in ppm (single case); flair, lesion_mask: the other inputs.
        threshold: rim+ probability threshold (``None``: the stored operating point).
        datalist: JSON list of ``{"qsm": ..., "flair": ..., "lesion_mask": ...}`` (batch mode).
        output_dir: output folder (created if missing).
        device: torch device.
    """

    def __init__(self, network: nn.Module, *, model_path: str, stats_path: str, radiomics_params: str,
                 qsm: str | None = None, flair: str | None = None, lesion_mask: str | None = None,
                 threshold: float | str | None = None, datalist: str | None = None, output_dir: str = "output",
                 device: str | torch.device = "cpu") -> None:
        self.network, self.model_path, self.stats_path = network, model_path, stats_path
        self.radiomics_params = radiomics_params
        self.single_case = {"qsm": qsm, "flair": flair, "lesion_mask": lesion_mask}
        self.threshold, self.datalist = threshold, datalist
        self.output_dir, self.device = output_dir, device

    def _threshold(self, network: nn.Module) -> float:
        if not is_given(self.threshold):
            return float(network.threshold)
        value = parse_number(self.threshold, "threshold", hint="a rim+ probability threshold in (0, 1)")
        if not 0.0 < value < 1.0:
            raise InputError(f"--threshold {value} is outside (0, 1); give a rim+ probability threshold")
        return value

    def _outputs(self, qsm: str) -> list[Path]:
        return [output_path(self.output_dir, qsm, TABLE_SUFFIX), output_path(self.output_dir, qsm, LABELS_SUFFIX)]

    def run(self) -> list[Path]:
        """Validate every case, then classify each lesion and write the table and labelmap; returns the paths.
        SIGTERM/SIGINT end the run with a non-zero exit, keeping only the cases already complete."""
        with interruptible():
            return self._run()

    def _run(self) -> list[Path]:
        with exit_on_input_error():
            self.device = resolve_device(self.device)
            cases = validated_cases(self.single_case, datalist=self.datalist, main_key="qsm",
                                    outputs_of=self._outputs, validate=lambda case: load_case(case, self.output_dir))
            network = load_network(self.network, self.model_path).to(self.device)
            threshold = self._threshold(network)
            standardiser = FeatureStandardiser.load(self.stats_path)
            extractor = make_extractor(self.radiomics_params)
        written: list[Path] = []
        for i, case in enumerate(cases):
            loaded = load_case(case, self.output_dir)
            start = time.perf_counter()
            written += self.process(loaded, network, standardiser, extractor, threshold,
                                    progress=(i / len(cases), 1 / len(cases)))
            print(f"wrote {loaded.table} and {loaded.labelmap} ({time.perf_counter() - start:.1f} s)", flush=True)
        report_progress(1.0, "done")
        return written

    def process(self, case: RimCase, network: nn.Module, standardiser: FeatureStandardiser, extractor,
                threshold: float, *, progress: tuple[float, float] = (0.0, 1.0)) -> list[Path]:
        """Lesions → radiomics and patches → QSMRim-Net probabilities → table and labelmap of one case."""
        voxel_mm = voxel_sizes_mm(case.affine)
        lesions = describe_lesions(case.labels, case.affine)
        name = Path(case.qsm_path).name
        rows = []
        for j, lesion in enumerate(lesions):
            if j % 5 == 0:
                report_progress(progress[0] + progress[1] * 0.9 * j / len(lesions),
                                f"{name}: radiomics of lesion {j + 1}/{len(lesions)}")
            rows.append(lesion_features(extractor, case.qsm_ppm, case.labels == lesion.label, voxel_mm))
        features = torch.as_tensor(standardiser(feature_matrix(rows, standardiser.names)), device=self.device)
        brain = case.qsm_ppm != 0
        patches = lesion_patches(case.qsm_ppm, normalise_flair(case.flair, brain if brain.any() else None),
                                 case.labels, lesions, voxel_mm)
        report_progress(progress[0] + progress[1] * 0.95, f"{name}: QSMRim-Net on {len(lesions)} lesions")
        with torch.no_grad():
            logits = network(torch.as_tensor(patches, device=self.device), features)
        probabilities = torch.sigmoid(logits).cpu().numpy().astype(np.float64)
        rim_labels = np.zeros(case.labels.shape, dtype=np.uint8)
        lookup = np.zeros(int(case.labels.max()) + 1, dtype=np.uint8)
        for lesion, p in zip(lesions, probabilities):
            lookup[lesion.label] = 2 if p >= threshold else 1
        rim_labels[:] = lookup[case.labels]
        with atomic_output_set() as outputs:  # both files or neither
            labelmap = outputs.save_nifti(case.on_input_grid(rim_labels),
                                          case.affine if case.input_affine is None else case.input_affine,
                                          case.labelmap, dtype=np.uint8)
            table = outputs.write_text(lesion_table(lesions, probabilities, threshold), case.table)
        return [table, labelmap]

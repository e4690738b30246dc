"""Real-shape subjects (MS lesion masks of ../shared/data), the patient split, and the ensemble's calibration."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest
import torch

from lightning_modules.rim.calibration import expected_calibration_error, fit_platt, reliability_curve
from lightning_modules.rim.ensemble import QsmRimNetEnsemble
from lightning_modules.rim.real_shapes import PATIENT_SPLIT, mask_path, parse_key, reference_data_dir, subject_keys

MASKS = reference_data_dir() / "ms_lesion_masks"
needs_masks = pytest.mark.skipif(not MASKS.is_dir(), reason=f"MS lesion masks not found at {MASKS} (../shared/data "
                                                            f"or $QSM_SLICER_REFERENCE_DATA): real-shape tests skipped")


def test_patient_split_is_disjoint_and_keys_round_trip() -> None:
    roles = [set(v) for v in PATIENT_SPLIT.values()]
    assert sum(len(r) for r in roles) == len(set().union(*roles)) == 27
    assert len(PATIENT_SPLIT["test"]) == 7 and len(PATIENT_SPLIT["validation"]) == 5
    keys = subject_keys("validation", (0, 3))
    assert len(keys) == 10 and parse_key(keys[1]) == (PATIENT_SPLIT["validation"][0], 3)


@needs_masks
def test_split_covers_every_mask_file() -> None:
    files = sorted(p.name for p in MASKS.glob("patient*_lesion_mask_mni.nii.gz"))
    expected = sorted(mask_path(p).name for role in PATIENT_SPLIT.values() for p in role)
    assert files == expected


@needs_masks
def test_real_shape_subject_keeps_the_mask_components_and_draws_rims_on_large_lesions() -> None:
    import nibabel as nib
    from scipy import ndimage

    from lightning_modules.rim.real_shapes import RIM_MIN_VOLUME_MM3, make_real_shape_subject

    patient = 30  # 17 lesions: the smallest mask
    subject = make_real_shape_subject(patient, 0)
    mask = np.asarray(nib.load(mask_path(patient)).dataobj) > 0
    _, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    assert subject.labels.max() == n == len(subject.rim_positive)
    assert subject.labels.astype(bool).sum() == mask.sum()  # every lesion voxel lies inside the cropped brain
    volumes = np.bincount(subject.labels.ravel())[1:]
    assert subject.rim_positive.sum() >= 1 and np.all(volumes[subject.rim_positive] >= RIM_MIN_VOLUME_MM3)
    assert subject.qsm_ppm.shape == subject.flair.shape == subject.labels.shape
    assert np.isfinite(subject.qsm_ppm).all() and np.abs(subject.qsm_ppm).max() < 2.0
    # the rims survive the forward model and TKD: the inner edge layer of a rim+ lesion is brighter than its core
    for k in np.flatnonzero(subject.rim_positive):
        lesion = subject.labels == k + 1
        core = ndimage.binary_erosion(lesion, np.ones((3, 3, 3)))
        assert subject.qsm_ppm[lesion & ~core].mean() - subject.qsm_ppm[core].mean() > 0.005


def test_platt_scaling_recovers_the_calibration_of_simulated_logits() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 20000)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-(0.5 * logits - 1.0)))).astype(int)
    scale, bias = fit_platt(logits, labels)
    npt.assert_allclose([scale, bias], [0.5, -1.0], atol=0.06)
    calibrated = 1 / (1 + np.exp(-(scale * logits + bias)))
    assert expected_calibration_error(labels, calibrated) < 0.02
    assert expected_calibration_error(labels, 1 / (1 + np.exp(-logits))) > 0.1  # the raw logits are not
    observed, predicted = reliability_curve(labels, calibrated)
    npt.assert_allclose(observed, predicted, atol=0.05)


def test_ensemble_applies_its_stored_calibration() -> None:
    torch.manual_seed(0)
    ensemble = QsmRimNetEnsemble(2, n_radiomics=5).eval()
    patches, features = torch.randn(3, 3, 24, 24, 24) * 0.05, torch.randn(3, 5)
    ensemble.logit_scale.fill_(0.4)
    ensemble.logit_bias.fill_(-2.0)
    with torch.no_grad():
        npt.assert_allclose(ensemble(patches, features).numpy(),
                            0.4 * ensemble.mean_logit(patches, features).numpy() - 2.0, rtol=1e-5, atol=1e-6)
    assert {"logit_scale", "logit_bias", "threshold"} <= set(ensemble.state_dict())


def test_datamodule_splits_by_given_subjects(tmp_path) -> None:
    from lightning_modules.rim.data import RimLesionDataModule

    rng = np.random.default_rng(0)
    for key, n in (("patient02_s0", 7), ("patient03_s0", 5), ("patient12_s0", 4)):
        np.savez(tmp_path / f"subject_{key}.npz", patches=rng.normal(size=(n, 3, 4, 4, 4)).astype(np.float16),
                 features=rng.normal(size=(n, 2)), feature_names=np.array(["a", "b"]), rule_ppm=rng.normal(size=n),
                 volume_mm3=rng.uniform(10, 100, n), rim_positive=(np.arange(n) % 2).astype(np.int64))
    data = RimLesionDataModule(cache_dir=str(tmp_path), params="unused.yaml", stats_path=str(tmp_path / "s.json"),
                               train_subjects=["patient02_s0", "patient03_s0"], val_subjects=["patient12_s0"])
    data.setup()
    assert len(data.train_set) == 12 and len(data.val_set) == 4
    with pytest.raises(ValueError, match="both"):
        RimLesionDataModule(cache_dir=str(tmp_path), params="x", stats_path="y", train_subjects=["patient02_s0"])

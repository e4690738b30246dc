"""The shipped QSMRim-Net ensemble on fresh synthetic subjects (240 lesions) against the radiomics-only branch, and on
held-out real-shape patients (its calibrated operating point)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_modules.rim.data import subject_arrays
from lightning_modules.rim.ensemble import QsmRimNetEnsemble
from lightning_modules.rim.networks import QsmRimNet
from lightning_modules.rim.radiomics import FeatureStandardiser, make_extractor
from lightning_modules.rim.scores import pr_auc, roc_auc
from lightning_modules.rim.synth import make_subject

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "monai_bundles" / "rim_lesion_detection"
RADIOMICS_ONLY = {"use_patch": False, "smote_k": 0}
WEIGHTS = {  # name → (weights, options, ensemble members or None)
    "qsmrim_net": (BUNDLE / "models" / "model.pt", {}, 5),
}
#: The radiomics-only ensemble trained, selected and calibrated as the shipped one (benchmarks/rim_real_shapes.py).
RADIOMICS_ONLY_REAL = ROOT / "benchmarks" / "results" / "rim" / "radiomics_only_real_shapes.pt"


@pytest.fixture(scope="module")
def quality() -> dict[str, tuple[float, float]]:
    """(ROC AUC, PR AUC) of each model on eight fresh synthetic subjects (seeds never used before)."""
    missing = [str(path) for path, _, _ in WEIGHTS.values() if not path.is_file()]
    if missing:
        pytest.skip(f"trained weights not found: {missing}")
    extractor = make_extractor(BUNDLE / "configs" / "radiomics_qsm.yaml")
    standardiser = FeatureStandardiser.load(BUNDLE / "models" / "radiomics_standardisation.json")
    patches, features, labels = [], [], []
    # 8 fresh subjects, 240 lesions (≈ 72 rim+): the first version's 3 subjects (90 lesions) could not separate
    # models whose ROC AUCs differ by ~0.01, as the shipped model and radiomics alone do on the benchmark sets
    for seed in range(525252, 525260):
        arrays = subject_arrays(make_subject(seed, n_lesions=(30, 30), rim_fraction=(0.3, 0.3)), extractor)
        index = {n: i for i, n in enumerate(arrays["feature_names"].tolist())}
        patches.append(arrays["patches"])
        features.append(standardiser(np.stack([arrays["features"][:, index[n]] for n in standardiser.names], 1)))
        labels.append(arrays["rim_positive"])
    labels = np.concatenate(labels)
    assert labels.sum() >= 40
    out = {}
    for name, (path, options, members) in WEIGHTS.items():
        options = {"n_radiomics": len(standardiser.names), **options}
        network = QsmRimNet(**options) if members is None else QsmRimNetEnsemble(members, **options)
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        with torch.no_grad():
            scores = torch.sigmoid(network.eval()(torch.as_tensor(np.concatenate(patches), dtype=torch.float32),
                                                  torch.as_tensor(np.concatenate(features)))).numpy()
        out[name] = (roc_auc(labels, scores), pr_auc(labels, scores))
    return out


@pytest.mark.slow
def test_shipped_weights_find_rim_lesions_on_fresh_subjects(quality) -> None:
    roc, pr = quality["qsmrim_net"]
    assert roc >= 0.9 and pr >= 0.8, quality  # rim+ prevalence here is 0.3: a random ranking has PR AUC ≈ 0.3
    # 0.4.0 (fine-tuned on real shapes) measured 0.955 + 0.928 here (2026-12-04); 0.3.0 had 0.974 + 0.953 and was
    # ahead of the synthetic-shape radiomics-only models (1.906, 1.922), which 0.4.0 no longer is (1.883): the
    # comparison that matters now is on real shapes, below.


@pytest.fixture(scope="module")
def held_out_real_shapes() -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Rim+ labels, probabilities and stored threshold of the shipped model and of the radiomics-only ensemble
    trained the same way, on two held-out real-shape patients (8 and 16)."""
    from lightning_modules.rim.real_shapes import PATIENT_SPLIT, make_real_shape_subject, reference_data_dir

    if not (reference_data_dir() / "ms_lesion_masks").is_dir():
        pytest.skip(f"MS lesion masks not found under {reference_data_dir()} (../shared/data or "
                    f"$QSM_SLICER_REFERENCE_DATA): held-out real-shape test skipped")
    assert {8, 16} <= set(PATIENT_SPLIT["test"])  # never used for training, calibration or the threshold
    extractor = make_extractor(BUNDLE / "configs" / "radiomics_qsm.yaml")
    standardiser = FeatureStandardiser.load(BUNDLE / "models" / "radiomics_standardisation.json")
    patches, features, labels = [], [], []
    for patient in (8, 16):
        arrays = subject_arrays(make_real_shape_subject(patient, 0), extractor)
        index = {n: i for i, n in enumerate(arrays["feature_names"].tolist())}
        features.append(standardiser(np.stack([arrays["features"][:, index[n]] if n in index
                                               else np.full(len(arrays["features"]), np.nan)
                                               for n in standardiser.names], 1)))
        patches.append(arrays["patches"])
        labels.append(arrays["rim_positive"])
    out = {}
    for name, path, options in (("qsmrim_net", BUNDLE / "models" / "model.pt", {}),
                                ("radiomics_only", RADIOMICS_ONLY_REAL, RADIOMICS_ONLY)):
        network = QsmRimNetEnsemble(5, n_radiomics=len(standardiser.names), **options)
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        with torch.no_grad():
            logits = network.eval()(torch.as_tensor(np.concatenate(patches), dtype=torch.float32),
                                    torch.as_tensor(np.concatenate(features)))
        out[name] = (np.concatenate(labels), torch.sigmoid(logits).numpy(), float(network.threshold))
    return out


@pytest.mark.slow
def test_shipped_operating_point_holds_on_held_out_real_shapes(held_out_real_shapes) -> None:
    from lightning_modules.rim.scores import f1_at

    labels, probabilities, threshold = held_out_real_shapes["qsmrim_net"]
    assert labels.sum() >= 10
    # 0.3.0's failure (issue 25): rim+ lesions of real shape at a mean probability of 0.29, most below threshold
    assert probabilities[labels == 1].mean() > 0.6 and probabilities[labels == 0].mean() < 0.1
    # measured once (2026-12-04): F1 0.865 at 0.355, ROC AUC 0.985, rim+ mean 0.85, rim− 0.034 (0.3.0: F1 0.81, 0.66)
    assert f1_at(labels, probabilities, threshold) >= 0.75 and roc_auc(labels, probabilities) >= 0.95


@pytest.mark.slow
# Measured once on these 145 lesions (19 rim+; 2026-12-04): ROC + PR AUC 1.931 (0.985 + 0.946) against 1.890
# (0.979 + 0.911) for radiomics only; on all 7 held-out patients +0.041 PR AUC [+0.019, +0.066], but only +0.007
# [-0.027, +0.036] on a second simulation draw of them (docs): a deterministic regression check, not proof of a lead.
def test_shipped_weights_beat_radiomics_only_on_held_out_real_shapes(held_out_real_shapes) -> None:
    scores = {name: roc_auc(y, p) + pr_auc(y, p) for name, (y, p, _) in held_out_real_shapes.items()}
    assert scores["qsmrim_net"] > scores["radiomics_only"], scores

"""The shipped QSMRim-Net weights beat the radiomics-only baseline on a fresh synthetic subject."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_modules.rim.data import subject_arrays
from lightning_modules.rim.networks import QsmRimNet
from lightning_modules.rim.radiomics import FeatureStandardiser, make_extractor
from lightning_modules.rim.scores import pr_auc, roc_auc
from lightning_modules.rim.synth import make_subject

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "monai_bundles" / "rim_lesion_detection"
WEIGHTS = {"qsmrim_net": (BUNDLE / "models" / "model.pt", {}),
           "radiomics_only": (ROOT / "benchmarks" / "results" / "rim" / "radiomics_only.pt",
                              {"use_patch": False, "smote_k": 0})}


@pytest.mark.slow
def test_shipped_weights_beat_radiomics_only_on_a_synthetic_subject() -> None:
    missing = [str(path) for path, _ in WEIGHTS.values() if not path.is_file()]
    if missing:
        pytest.skip(f"trained weights not found: {missing}")
    subject = make_subject(424242, n_lesions=(30, 30), rim_fraction=(0.3, 0.3))
    arrays = subject_arrays(subject, make_extractor(BUNDLE / "configs" / "radiomics_qsm.yaml"))
    standardiser = FeatureStandardiser.load(BUNDLE / "models" / "radiomics_standardisation.json")
    index = {n: i for i, n in enumerate(arrays["feature_names"].tolist())}
    features = standardiser(np.stack([arrays["features"][:, index[n]] for n in standardiser.names], 1))
    labels = arrays["rim_positive"]
    quality = {}
    for name, (path, options) in WEIGHTS.items():
        network = QsmRimNet(len(standardiser.names), **options)
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        with torch.no_grad():
            scores = torch.sigmoid(network.eval()(torch.as_tensor(arrays["patches"], dtype=torch.float32),
                                                  torch.as_tensor(features))).numpy()
        quality[name] = (roc_auc(labels, scores), pr_auc(labels, scores))
    assert labels.sum() >= 5
    assert quality["qsmrim_net"][0] >= 0.9, quality
    assert sum(quality["qsmrim_net"]) > sum(quality["radiomics_only"]), quality

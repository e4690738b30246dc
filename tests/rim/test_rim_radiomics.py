"""pyradiomics wiring: our extractor reproduces pyradiomics' own baseline values on brain1/brain2 (../shared/data)."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from lightning_modules.rim.radiomics import FeatureStandardiser, feature_values, make_extractor

BUNDLE = Path(__file__).resolve().parents[2] / "monai_bundles" / "rim_lesion_detection"
CLASSES = ("firstorder", "glcm", "glrlm", "shape")
CHECKED = ("original_firstorder_Mean", "original_firstorder_Entropy", "original_firstorder_Kurtosis",
           "original_glcm_Contrast", "original_glcm_JointEntropy", "original_glrlm_RunEntropy",
           "original_glrlm_ShortRunEmphasis", "original_shape_VoxelVolume", "original_shape_Elongation")


def baseline_column(folder: Path, case: str) -> dict[str, str]:
    """Every row of pyradiomics' baseline CSVs for ``case`` (feature name → value as text)."""
    values: dict[str, str] = {}
    for name in CLASSES:
        with open(folder / "baseline" / f"baseline_{name}.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        column = rows[0].index(case)
        values.update({row[0]: row[column] for row in rows[1:]})
    return values


@pytest.mark.parametrize("case", ["brain1", "brain2"])
def test_extractor_matches_pyradiomics_baseline(reference_data: Path, case: str) -> None:
    folder = reference_data / "pyradiomics"
    if not (folder / "baseline").is_dir():
        pytest.skip(f"pyradiomics reference data not found in {folder}")
    baseline = baseline_column(folder, case)
    settings = ast.literal_eval(baseline["diagnostics_Configuration_Settings"])
    assert settings["binWidth"] == 25 and settings["label"] == 1
    extractor = make_extractor(settings)
    extractor.disableAllImageTypes()
    extractor.enableImageTypeByName("Original")
    extractor.disableAllFeatures()
    for name in CLASSES:
        extractor.enableFeatureClassByName(name)
    ours = feature_values(extractor.execute(str(folder / f"{case}_image.nrrd"), str(folder / f"{case}_label.nrrd")))
    if case == "brain1":
        assert ours["original_firstorder_Mean"] == pytest.approx(825.2354363065023, rel=1e-9)
    for name in CHECKED:
        assert ours[name] == pytest.approx(float(baseline[name]), rel=1e-4), name


def test_shipped_parameters_suit_qsm_in_ppm() -> None:
    params = yaml.safe_load((BUNDLE / "configs" / "radiomics_qsm.yaml").read_text())
    assert 0.001 <= params["setting"]["binWidth"] <= 0.01  # ppm; 25 would put a lesion into one bin
    assert set(params["imageType"]) == {"Original", "Wavelet"}
    assert set(params["featureClass"]) == set(CLASSES)


def test_standardiser_round_trip(tmp_path: Path) -> None:
    features = np.array([[1.0, 10.0, np.nan], [3.0, 10.0, 2.0], [5.0, 10.0, 4.0]])
    standardiser = FeatureStandardiser.fit(["a", "b", "c"], features)
    z = standardiser(features)
    np.testing.assert_allclose(z[:, 0], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    np.testing.assert_array_equal(z[:, 1], 0.0)  # constant feature: std 0 → 1, no division by zero
    assert z[0, 2] == 0.0  # NaN (not computable) → the mean
    standardiser.save(tmp_path / "stats.json")
    np.testing.assert_array_equal(FeatureStandardiser.load(tmp_path / "stats.json")(features), z)

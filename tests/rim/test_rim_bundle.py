"""The ``rim_lesion_detection`` bundle end to end: config properties, outputs per DESIGN.md, one-line errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lightning_modules.rim.transforms import TABLE_COLUMNS

BUNDLE = Path(__file__).resolve().parents[2] / "monai_bundles" / "rim_lesion_detection"
CONFIG = BUNDLE / "configs" / "inference.json"
MODEL = BUNDLE / "models" / "model.pt"
STATS = BUNDLE / "models" / "radiomics_standardisation.json"

needs_weights = pytest.mark.skipif(not (MODEL.is_file() and STATS.is_file()),
                                   reason="rim_lesion_detection has no trained weights models/model.pt yet")


def test_inference_config_has_every_workflow_property() -> None:
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(config_file=str(BUNDLE / "configs" / "inference.json"), workflow_type="infer",
                              meta_file=str(BUNDLE / "configs" / "metadata.json"),
                              logging_file=str(BUNDLE / "configs" / "logging.conf"))
    workflow.initialize()
    assert workflow.check_properties() == []


def write_case(folder: Path, *, affine: np.ndarray | None = None, flair_affine: np.ndarray | None = None,
               mask: np.ndarray | None = None) -> dict[str, str]:
    """Two spherical lesions on a 40³ grid (one with a paramagnetic rim) saved as QSM, FLAIR and mask files."""
    affine = np.diag([1.0, 1.0, 1.0, 1.0]) if affine is None else affine
    radius = [np.linalg.norm(np.indices((40, 40, 40)) - np.reshape(c, (3, 1, 1, 1)), axis=0)
              for c in ((12, 12, 20), (27, 27, 20))]
    qsm = np.where((radius[0] > 3) & (radius[0] <= 5), 0.06, 0.0).astype(np.float32)
    if mask is None:
        mask = ((radius[0] <= 5) | (radius[1] <= 5)).astype(np.uint8)
    flair = 100.0 + 80.0 * mask
    files = {}
    for key, data, aff in (("qsm", qsm, affine), ("flair", flair, flair_affine if flair_affine is not None else affine),
                           ("lesion_mask", mask, affine)):
        files[key] = str(folder / f"case_{key}.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(data), aff), files[key])
    return files


def run_app(files: dict[str, str], output_dir: Path, **options) -> None:
    """The bundle's ``inference.json`` in this process (what ``python -m monai.bundle run`` calls)."""
    from monai.bundle import run

    run(config_file=str(CONFIG), output_dir=str(output_dir), device="cpu", **files, **options)


@needs_weights
def test_table_and_labelmap_follow_the_contract(tmp_path: Path) -> None:
    affine = np.array([[-0.9, 0, 0, 20.0], [0, 0.9, 0, -15.0], [0, 0, 1.5, 4.0], [0, 0, 0, 1]])
    flair_affine = affine.copy()
    flair_affine[:3, 3] += [0.3, 0.0, 0.0]  # FLAIR on another grid: resampled to the QSM grid
    files = write_case(tmp_path, affine=affine, flair_affine=flair_affine)
    run_app(files, tmp_path / "out", threshold=0.5)
    rows = (tmp_path / "out" / "case_qsm_lesions.csv").read_text().splitlines()
    assert rows[0].split(",") == list(TABLE_COLUMNS)
    assert len(rows) == 3
    first = dict(zip(TABLE_COLUMNS, rows[1].split(",")))
    np.testing.assert_allclose([float(first[c]) for c in ("centroid_x", "centroid_y", "centroid_z")],
                               affine[:3, :3] @ [12, 12, 20] + affine[:3, 3], atol=1e-3)
    assert float(first["volume_mm3"]) == pytest.approx(int(first["n_voxels"]) * 0.9 * 0.9 * 1.5, rel=1e-4)
    labels_img = nib.load(str(tmp_path / "out" / "case_qsm_rim_labels.nii.gz"))
    assert labels_img.shape == (40, 40, 40)
    np.testing.assert_allclose(labels_img.affine, affine, atol=1e-6)
    labels = np.asarray(labels_img.dataobj)
    for row, centre in zip(rows[1:], ((12, 12, 20), (27, 27, 20))):
        value = dict(zip(TABLE_COLUMNS, row.split(",")))
        assert labels[centre] == 1 + int(value["rim_positive"])
        assert int(value["rim_positive"]) == int(float(value["rim_probability"]) >= 0.5)
    assert set(np.unique(labels)) <= {0, 1, 2}


def bad_mask_cases() -> dict[str, tuple[dict, str]]:
    shifted = np.eye(4)
    shifted[:3, 3] = 500.0
    labels = np.zeros((40, 40, 40))
    labels[10:14, 10:14, 10:14] = 1.5
    return {"no overlap": ({"mask_affine": shifted}, "does not overlap"),
            "empty": ({"mask": np.zeros((40, 40, 40), np.uint8)}, "empty"),
            "non-integer": ({"mask": labels}, "non-integer")}


@needs_weights
@pytest.mark.parametrize("case", list(bad_mask_cases()))
def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path: Path, capsys, case: str) -> None:
    options, message = bad_mask_cases()[case]
    files = write_case(tmp_path, mask=options.get("mask"))
    if "mask_affine" in options:
        mask_img = nib.load(files["lesion_mask"])
        nib.save(nib.Nifti1Image(np.asarray(mask_img.dataobj), options["mask_affine"]), files["lesion_mask"])
    with pytest.raises(SystemExit) as exit_info:
        run_app(files, tmp_path / "out")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    error = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(error) == 1 and message in error[0] and "case_lesion_mask" in error[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

"""The qsm_dipole_inversion bundle end to end: command-line contract, grids, obliquity, units, batch, bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigWorkflow
from monai.bundle import run as bundle_run

from lightning_modules.metrics import nrmse
from lightning_modules.physics import ppm_per_hz, ppm_per_rad
from lightning_modules.physics.dipole import b0_direction_from_affine
from lightning_modules.qsm.simulate import head_phantom, simulate_field

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "monai_bundles" / "qsm_dipole_inversion" / "configs" / "inference.json"
SHAPE, VOXEL_MM = (36, 36, 30), (2.0, 2.0, 2.5)


def _affine(rotation: np.ndarray | None = None) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = (np.eye(3) if rotation is None else rotation) @ np.diag(VOXEL_MM)
    affine[:3, 3] = (-35.0, -40.0, -30.0)
    return affine


def _rotation_x(degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _write_case(folder: Path, affine: np.ndarray, *, name: str = "sub-01_field", scale: float = 1.0):
    """Phantom field simulated with the B0 direction the affine implies; returns paths and the truth."""
    chi, brain = head_phantom(SHAPE, VOXEL_MM, seed=4)
    case = simulate_field(chi, brain, VOXEL_MM, b0_direction_from_affine(affine))
    folder.mkdir(parents=True, exist_ok=True)
    field_path, mask_path = folder / f"{name}.nii.gz", folder / f"{name}_mask.nii.gz"
    nib.save(nib.Nifti1Image((case.field_ppm * scale).astype(np.float32), affine), field_path)
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), mask_path)
    return field_path, mask_path, chi, brain


def _run(**options) -> None:
    bundle_run(config_file=str(CONFIG), **{k: str(v) if isinstance(v, Path) else v for k, v in options.items()})


def _chi(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float64)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_config_passes_monai_property_check():
    workflow = ConfigWorkflow(config_file=str(CONFIG), workflow_type="infer")
    workflow.initialize()
    assert workflow.check_properties() == []


def test_metadata_has_every_required_field():
    meta = json.loads((CONFIG.parent / "metadata.json").read_text())
    for key in ("version", "changelog", "monai_version", "pytorch_version", "numpy_version",
                "required_packages_version", "task", "description", "authors", "copyright", "network_data_format"):
        assert key in meta, key
    assert meta["version"] in meta["changelog"]
    for part, key in (("inputs", "image"), ("outputs", "pred")):
        spec = meta["network_data_format"][part][key]
        for field in ("type", "format", "modality", "num_channels", "spatial_shape", "dtype", "value_range",
                      "is_patch_data", "channel_def"):
            assert field in spec, (part, field)


def test_cli_end_to_end_keeps_grid_and_inputs(tmp_path):
    field_path, mask_path, chi, brain = _write_case(tmp_path / "in", _affine())
    before = (_digest(field_path), _digest(mask_path))
    out = tmp_path / "out" / "nested"
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIG), "--field", str(field_path),
         "--mask", str(mask_path), "--output_dir", str(out), "--method", "ndi"],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[progress] 100%" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["sub-01_field_chi.nii.gz"]
    result = nib.load(out / "sub-01_field_chi.nii.gz")
    source = nib.load(field_path)
    assert result.shape == source.shape
    np.testing.assert_array_equal(result.affine, source.affine)
    estimate = _chi(out / "sub-01_field_chi.nii.gz")
    assert np.all(estimate[~brain] == 0)
    assert nrmse(estimate, chi, brain) < 0.8
    assert (_digest(field_path), _digest(mask_path)) == before


@pytest.mark.parametrize("method", ["tkd", "ndi"])
def test_methods_recover_the_phantom(tmp_path, method):
    field_path, mask_path, chi, brain = _write_case(tmp_path, _affine())
    _run(field=field_path, mask=mask_path, output_dir=tmp_path / "out", method=method)
    assert nrmse(_chi(tmp_path / "out" / "sub-01_field_chi.nii.gz"), chi, brain) < 0.8


def test_oblique_affine_equals_the_equivalent_axial_case(tmp_path):
    # the same physical data stored with permuted array axes: B0 (world z) lies along array axis 0 there
    field_path, mask_path, _, _ = _write_case(tmp_path / "axial", _affine())
    _run(field=field_path, mask=mask_path, output_dir=tmp_path / "axial_out")
    axial = _chi(tmp_path / "axial_out" / "sub-01_field_chi.nii.gz")

    perm = (2, 0, 1)
    src = nib.load(field_path)
    permuted_affine = src.affine.copy()
    permuted_affine[:, :3] = src.affine[:, list(perm)]
    for path, folder in ((field_path, "perm"), (mask_path, "perm")):
        data = np.transpose(np.asarray(nib.load(path).dataobj), perm)
        (tmp_path / folder).mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(data, permuted_affine), tmp_path / folder / path.name)
    _run(field=tmp_path / "perm" / field_path.name, mask=tmp_path / "perm" / mask_path.name,
         output_dir=tmp_path / "perm_out")
    permuted = _chi(tmp_path / "perm_out" / "sub-01_field_chi.nii.gz")
    np.testing.assert_allclose(np.transpose(permuted, np.argsort(perm)), axial, atol=2e-5)


def test_rotated_acquisition_uses_the_affine_b0_direction(tmp_path):
    affine = _affine(_rotation_x(25.0))
    field_path, mask_path, chi, brain = _write_case(tmp_path, affine)
    _run(field=field_path, mask=mask_path, output_dir=tmp_path / "auto")
    b0 = b0_direction_from_affine(affine)
    _run(field=field_path, mask=mask_path, output_dir=tmp_path / "explicit", b0_dir=json.dumps(b0.tolist()))
    _run(field=field_path, mask=mask_path, output_dir=tmp_path / "wrong", b0_dir="[0, 0, 1]")
    auto, explicit, wrong = (_chi(tmp_path / d / "sub-01_field_chi.nii.gz") for d in ("auto", "explicit", "wrong"))
    np.testing.assert_allclose(auto, explicit, atol=1e-6)
    assert nrmse(auto, chi, brain) < 0.8
    assert nrmse(auto, chi, brain) < 0.9 * nrmse(wrong, chi, brain)


@pytest.mark.parametrize(("unit", "extra", "scale"), [
    ("hz", {"b0_tesla": 3.0}, 1 / ppm_per_hz(3.0)),
    ("rad", {"b0_tesla": 3.0, "te_ms": 20.0}, 1 / ppm_per_rad(3.0, 20.0)),
])
def test_field_units_give_the_same_chi(tmp_path, unit, extra, scale):
    field_path, mask_path, _, _ = _write_case(tmp_path / "ppm", _affine())
    _run(field=field_path, mask=mask_path, output_dir=tmp_path / "ppm_out", method="tkd")
    field_u, mask_u, _, _ = _write_case(tmp_path / unit, _affine(), scale=scale)
    _run(field=field_u, mask=mask_u, output_dir=tmp_path / f"{unit}_out", method="tkd", field_unit=unit, **extra)
    reference = _chi(tmp_path / "ppm_out" / "sub-01_field_chi.nii.gz")
    np.testing.assert_allclose(_chi(tmp_path / f"{unit}_out" / "sub-01_field_chi.nii.gz"), reference,
                               atol=1e-4 * np.abs(reference).max())


def test_default_mask_is_the_nonzero_field(tmp_path):
    field_path, _, _, brain = _write_case(tmp_path, _affine())
    _run(field=field_path, output_dir=tmp_path / "out", method="tkd")
    estimate = _chi(tmp_path / "out" / "sub-01_field_chi.nii.gz")
    assert np.all(estimate[~brain] == 0) and np.count_nonzero(estimate[brain]) > 0.95 * brain.sum()


def test_datalist_batch(tmp_path):
    for name in ("a", "b"):
        _write_case(tmp_path / "data", _affine(), name=name)
    datalist = tmp_path / "data" / "list.json"
    datalist.write_text(json.dumps([{"field": "a.nii.gz", "mask": "a_mask.nii.gz"},
                                    {"field": "b.nii.gz", "mask": "b_mask.nii.gz", "method": "tkd"}]))
    _run(datalist=datalist, output_dir=tmp_path / "out", method="tkd")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_chi.nii.gz", "b_chi.nii.gz"]


# --- bad input: one line naming the file, exit status 2, nothing written -------------------------------------


def _bad_cases(tmp_path: Path):
    field_path, mask_path, _, _ = _write_case(tmp_path / "good", _affine())
    field = np.asarray(nib.load(field_path).dataobj)
    bad = tmp_path / "bad"
    bad.mkdir()
    nib.save(nib.Nifti1Image(np.stack([field, field], -1), _affine()), bad / "field4d.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), _affine()), bad / "mask_small.nii.gz")
    shifted = _affine()
    shifted[:3, 3] += 5.0
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.uint8), shifted), bad / "mask_shifted.nii.gz")
    with_nan = field.copy()
    with_nan[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(with_nan, _affine()), bad / "field_nan.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.uint8), _affine()), bad / "mask_empty.nii.gz")
    return {
        "4-D field": ({"field": bad / "field4d.nii.gz"}, ["field4d.nii.gz", "4-D"]),
        "mask on another shape": ({"field": field_path, "mask": bad / "mask_small.nii.gz"}, ["mask_small", "shape"]),
        "mask on another affine": ({"field": field_path, "mask": bad / "mask_shifted.nii.gz"},
                                   ["mask_shifted", "affine"]),
        "NaN in field": ({"field": bad / "field_nan.nii.gz"}, ["field_nan.nii.gz", "NaN"]),
        "empty mask": ({"field": field_path, "mask": bad / "mask_empty.nii.gz"}, ["mask_empty", "empty"]),
        "unknown unit": ({"field": field_path, "field_unit": "tesla"}, ["tesla", "unit"]),
        "Hz without B0": ({"field": field_path, "field_unit": "hz"}, ["--b0_tesla"]),
        "missing file": ({"field": bad / "nope.nii.gz"}, ["nope.nii.gz", "does not exist"]),
        "unknown method": ({"field": field_path, "method": "magic"}, ["magic"]),
        "bad b0_dir": ({"field": field_path, "b0_dir": "[0, 0]"}, ["--b0_dir"]),
    }


def test_bad_inputs_give_one_line_errors_and_no_output(tmp_path, capsys):
    for label, (options, needles) in _bad_cases(tmp_path).items():
        out = tmp_path / "out" / label.replace(" ", "_")
        with pytest.raises(SystemExit) as info:
            _run(output_dir=out, **options)
        assert info.value.code == 2, label
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) >= 1 and err[-1].startswith("error: "), (label, err)
        for needle in needles:
            assert needle in err[-1], (label, err[-1])
        assert not out.exists() or not any(out.iterdir()), label


def test_bad_input_on_the_command_line_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIG), "--field",
         str(tmp_path / "missing.nii.gz"), "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: field map file")
    assert not (tmp_path / "out").exists()


def test_batch_is_validated_before_anything_is_written(tmp_path):
    field_path, mask_path, _, _ = _write_case(tmp_path, _affine())
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps([{"field": str(field_path)}, {"field": str(tmp_path / "missing.nii.gz")}]))
    with pytest.raises(SystemExit):
        _run(datalist=datalist, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

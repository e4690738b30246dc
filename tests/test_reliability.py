"""Reliability of the four bundles on bad and edge-case input (issue 28): outputs never overwrite inputs,
degenerate affines, folders given as files, unusable ``--output_dir`` and ``--device``, non-numeric options,
implausible values, ``--help``, interruption by SIGTERM/SIGINT, and storage-orientation invariance.

The bundles run through their real ``inference.json`` (``monai.bundle.run`` in this process, which is what
``python -m monai.bundle run`` calls), except where a separate process is the point (signals, the command line).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import run as bundle_run

from lightning_modules.physics.dipole import b0_direction_from_affine
from lightning_modules.qsm.simulate import head_phantom, simulate_field
from lightning_modules.spio import acquisition as acq

REPO = Path(__file__).resolve().parents[1]
BUNDLES = {name: REPO / "monai_bundles" / name / "configs" / "inference.json"
           for name in ("qsm_dipole_inversion", "ivim_mapping", "spio_quantification", "rim_lesion_detection")}
QSM, IVIM, SPIO, RIM = BUNDLES
QSM_SHAPE, QSM_VOXEL_MM = (20, 20, 16), (2.0, 2.0, 2.5)
SPIO_PIXEL_MM = acq.VIEWLINE_FOV_MM[0] / acq.VIEWLINE_MATRIX[0]


# ------------------------------------------------------------------------------------------------- helpers

def _affine(voxel_mm=QSM_VOXEL_MM) -> np.ndarray:
    affine = np.diag([*voxel_mm, 1.0])
    affine[:3, 3] = (-20.0, -22.0, -18.0)
    return affine


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), str(path))
    return path


def _save_degenerate(data: np.ndarray, path: Path) -> Path:
    """A NIfTI whose sform is all zero (code 1) and that has no qform."""
    header = nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4)).header
    for row in ("srow_x", "srow_y", "srow_z"):
        header[row][:] = 0.0
    header["sform_code"], header["qform_code"] = 1, 0
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), None, header=header), str(path))
    assert not np.any(nib.load(str(path)).affine[:3, :3])
    return path


def _qsm_field(affine: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    affine = _affine() if affine is None else affine
    chi, brain = head_phantom(QSM_SHAPE, QSM_VOXEL_MM, seed=3)
    field = simulate_field(chi, brain, QSM_VOXEL_MM, b0_direction_from_affine(affine)).field_ppm
    return field.astype(np.float32), brain


def _qsm_case(folder: Path, name: str = "s") -> tuple[Path, Path]:
    field, brain = _qsm_field()
    return _save(field, _affine(), folder / f"{name}.nii.gz"), _save(brain, _affine(), folder / f"{name}_mask.nii.gz")


def _spio_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    nx, nz = acq.VIEWLINE_MATRIX
    image = 1.0 + 0.1 * rng.random((nx, nz, 1, 2))
    image[40:70, 50:80, 0, :] *= 0.3  # a dark object
    return image.astype(np.float32)


def _spio_affine() -> np.ndarray:
    return np.diag([SPIO_PIXEL_MM, SPIO_PIXEL_MM, 1.0, 1.0])


def _ivim_case(folder: Path, name: str = "d") -> tuple[Path, Path]:
    b = np.array([0, 10, 20, 50, 100, 200, 400, 800], dtype=float)
    signal_b = 0.9 * np.exp(-b * 1e-3) + 0.1 * np.exp(-b * 2e-2)
    dwi = np.broadcast_to(signal_b, (4, 4, 3, b.size)) * 1000.0
    bvals = folder / f"{name}.bval"
    folder.mkdir(parents=True, exist_ok=True)
    bvals.write_text(" ".join(f"{v:g}" for v in b))
    return _save(dwi, np.diag([2.0, 2.0, 3.0, 1.0]), folder / f"{name}.nii.gz"), bvals


def _rim_case(folder: Path, name: str = "q") -> dict[str, Path]:
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    qsm = np.zeros((24, 24, 24), dtype=np.float32)
    qsm[4:20, 4:20, 4:20] = 0.01
    lesion = np.zeros_like(qsm)
    lesion[9:15, 9:15, 9:15] = 1
    return {"qsm": _save(qsm, affine, folder / f"{name}.nii.gz"),
            "flair": _save(1.0 + lesion, affine, folder / f"{name}_flair.nii.gz"),
            "lesion_mask": _save(lesion, affine, folder / f"{name}_lesions_mask.nii.gz")}


def _run(capsys, bundle: str, **options) -> tuple[int, str, str]:
    """Run a bundle's real config in this process; returns (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        bundle_run(config_file=str(BUNDLES[bundle]), **{k: str(v) if isinstance(v, Path) else v
                                                         for k, v in options.items()})
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    """The single ``error:`` line of stderr (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _refused(capsys, bundle: str, *, expect: str, **options) -> str:
    code, _, err = _run(capsys, bundle, **options)
    assert code == 2, (code, err)
    line = _one_error_line(err)
    assert expect in line, line
    return line


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --------------------------------------------------------------------------------- 1: outputs vs inputs

def test_qsm_output_never_overwrites_its_mask(tmp_path, capsys):
    field, _ = _qsm_case(tmp_path)
    mask = tmp_path / "s_chi.nii.gz"  # the name the χ map would get
    _save(nib.load(str(field)).get_fdata() != 0, _affine(), mask)
    before = mask.read_bytes()
    _refused(capsys, QSM, expect="would overwrite the --mask input", field=field, mask=mask, output_dir=tmp_path,
             method="tkd")
    assert mask.read_bytes() == before


def test_qsm_output_collision_seen_through_symlinks_and_dotdot(tmp_path, capsys):
    field, _ = _qsm_case(tmp_path / "in")
    mask = tmp_path / "in" / "s_chi.nii.gz"
    _save(np.ones(QSM_SHAPE), _affine(), mask)
    (tmp_path / "link").symlink_to(tmp_path / "in")
    _refused(capsys, QSM, expect="would overwrite", field=field, mask=mask,
             output_dir=tmp_path / "link" / ".." / "in", method="tkd")


def test_qsm_batch_where_one_case_writes_another_cases_input(tmp_path, capsys):
    first, _ = _qsm_case(tmp_path, "a")
    second = _save(nib.load(str(first)).get_fdata(), _affine(), tmp_path / "a_chi.nii.gz")
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps([{"field": first.name}, {"field": second.name}]))
    before = _files(tmp_path)
    _refused(capsys, QSM, expect="would overwrite the --field input", datalist=datalist, output_dir=tmp_path,
             method="tkd")
    assert _files(tmp_path) == before


def test_spio_output_never_overwrites_an_input(tmp_path, capsys):
    image = _save(_spio_image(), _spio_affine(), tmp_path / "v.nii.gz")
    other = _save(_spio_image(1), _spio_affine(), tmp_path / "v_concentration.nii.gz")
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps([{"image": image.name}, {"image": other.name}]))
    before = other.read_bytes()
    _refused(capsys, SPIO, expect="would overwrite the --image input", datalist=datalist, output_dir=tmp_path)
    assert other.read_bytes() == before


def test_ivim_output_never_overwrites_its_mask(tmp_path, capsys):
    dwi, bvals = _ivim_case(tmp_path)
    mask = _save(np.ones((4, 4, 3)), np.diag([2.0, 2.0, 3.0, 1.0]), tmp_path / "d_D.nii.gz")
    before = mask.read_bytes()
    _refused(capsys, IVIM, expect="would overwrite the --mask input", dwi=dwi, bvals=bvals, mask=mask,
             output_dir=tmp_path, method="lsq")
    assert mask.read_bytes() == before


def test_rim_output_table_never_overwrites_an_input(tmp_path, capsys):
    case = _rim_case(tmp_path)
    flair = case["flair"].rename(tmp_path / "q_lesions.csv")  # an input named like the table output
    _refused(capsys, RIM, expect="would overwrite the --flair input", qsm=case["qsm"], flair=flair,
             lesion_mask=case["lesion_mask"], output_dir=tmp_path)


def test_rim_batch_labelmap_of_one_case_is_another_cases_qsm(tmp_path, capsys):
    case = _rim_case(tmp_path)
    second = _save(np.zeros((24, 24, 24)) + 0.01, np.eye(4), tmp_path / "q_rim_labels.nii.gz")
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps([{k: str(v) for k, v in case.items()},
                                    {"qsm": str(second), "flair": str(case["flair"]),
                                     "lesion_mask": str(case["lesion_mask"])}]))
    _refused(capsys, RIM, expect="would overwrite", datalist=datalist, output_dir=tmp_path)


# --------------------------------------------------------------------------------- 2: degenerate affines

@pytest.mark.parametrize("bundle", [QSM, SPIO, IVIM, RIM])
def test_degenerate_affine_is_refused_in_one_line(bundle, tmp_path, capsys):
    if bundle == QSM:
        options = {"field": _save_degenerate(_qsm_field()[0], tmp_path / "s.nii.gz"), "method": "tkd"}
    elif bundle == SPIO:
        options = {"image": _save_degenerate(_spio_image(), tmp_path / "v.nii.gz")}
    elif bundle == IVIM:
        dwi, bvals = _ivim_case(tmp_path)
        options = {"dwi": _save_degenerate(nib.load(str(dwi)).get_fdata(), dwi), "bvals": bvals, "method": "lsq"}
    else:
        options = {k: str(v) for k, v in _rim_case(tmp_path).items()}
        _save_degenerate(nib.load(options["qsm"]).get_fdata(), Path(options["qsm"]))
    _refused(capsys, bundle, expect="degenerate affine", output_dir=tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_qsm_batch_with_a_degenerate_second_case_writes_nothing(tmp_path, capsys):
    good, _ = _qsm_case(tmp_path, "a")
    bad = _save_degenerate(_qsm_field()[0], tmp_path / "b.nii.gz")
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps([{"field": str(good)}, {"field": str(bad)}]))
    _refused(capsys, QSM, expect="degenerate affine", datalist=datalist, output_dir=tmp_path / "out", method="tkd")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------ 3: --output_dir that is a file

@pytest.mark.parametrize("bundle", [QSM, SPIO, IVIM, RIM])
def test_output_dir_that_is_a_file_is_refused(bundle, tmp_path, capsys):
    not_a_folder = tmp_path / "results"
    not_a_folder.write_text("a file")
    main = {QSM: "field", SPIO: "image", IVIM: "dwi", RIM: "qsm"}[bundle]
    options = {main: _save(np.ones((4, 4, 4)), np.eye(4), tmp_path / "x.nii.gz"), "output_dir": not_a_folder}
    _refused(capsys, bundle, expect="is an existing file, not a folder", **options)
    _refused(capsys, bundle, expect="is an existing file, not a folder",
             **{**options, "output_dir": not_a_folder / "sub"})
    assert not_a_folder.read_text() == "a file"


# ------------------------------------------------------------------------------ 4: --device cuda on CPU

@pytest.mark.parametrize("bundle", [QSM, SPIO, IVIM, RIM])
def test_unavailable_device_is_refused(bundle, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if bundle == QSM:
        options = {"field": _qsm_case(tmp_path)[0], "method": "tkd"}
    elif bundle == SPIO:
        options = {"image": _save(_spio_image(), _spio_affine(), tmp_path / "v.nii.gz")}
    elif bundle == IVIM:
        dwi, bvals = _ivim_case(tmp_path)
        options = {"dwi": dwi, "bvals": bvals, "method": "lsq"}
    else:
        options = _rim_case(tmp_path)
    _refused(capsys, bundle, expect="--device cuda is not available", device="cuda", output_dir=tmp_path / "o",
             **options)
    _refused(capsys, bundle, expect="--device 'gpu0' is not a device", device="gpu0", output_dir=tmp_path / "o",
             **options)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------ numeric and parsed options (7)

@pytest.mark.parametrize(("option", "value", "expect"), [
    ("b0_tesla", "abc", "--b0_tesla 'abc' is not a number"),
    ("te_ms", "nan", "--te_ms 'nan' is not a finite number"),
    ("b0_dir", "[x,y,z]", "--b0_dir '[x,y,z]' is not a B0 direction"),
    ("b0_dir", "[0,0,0]", "--b0_dir '[0,0,0]' is not a B0 direction"),
])
def test_qsm_bad_option_values_name_the_option(option, value, expect, tmp_path, capsys):
    field, mask = _qsm_case(tmp_path)
    options = {"field": field, "mask": mask, "field_unit": "rad", "b0_tesla": "3", "te_ms": "20", "method": "tkd",
               "output_dir": tmp_path / "o", option: value}
    line = _refused(capsys, QSM, expect=expect, **options)
    assert "<ast." not in line and "object at 0x" not in line


@pytest.mark.parametrize(("option", "value", "expect"), [
    ("max_epochs", "abc", "--max_epochs 'abc' is not a number"),
    ("max_epochs", "2.5", "--max_epochs '2.5' is not an integer"),
    ("max_epochs", "0", "--max_epochs 0 is outside 1 ≤ value"),
    ("patience_epochs", "x", "--patience_epochs 'x' is not a number"),
    ("batches_per_epoch", "-3", "--batches_per_epoch -3 is outside"),
    ("seed", "s", "--seed 's' is not a number"),
    ("refine_strength", "inf", "--refine_strength 'inf' is not a finite number"),
    ("n_ensemble", "two", "--n_ensemble 'two' is not a number"),
    ("posterior_simulations", "many", "--posterior_simulations 'many' is not a number"),
    ("num_threads", "0", "--num_threads 0 is outside"),
])
def test_ivim_bad_numeric_options_name_the_option(option, value, expect, tmp_path, capsys):
    dwi, bvals = _ivim_case(tmp_path)
    _refused(capsys, IVIM, expect=expect, dwi=dwi, bvals=bvals, output_dir=tmp_path / "o", **{option: value})
    assert not (tmp_path / "o").exists()


def test_rim_bad_threshold_names_the_option(tmp_path, capsys):
    _refused(capsys, RIM, expect="--threshold 'abc' is not a number", threshold="abc", output_dir=tmp_path / "o",
             **_rim_case(tmp_path))
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------ folders given as files

@pytest.mark.parametrize("bundle", [QSM, SPIO, IVIM, RIM])
def test_folder_given_as_a_file_is_reported_as_a_folder(bundle, tmp_path, capsys):
    folder = tmp_path / "scan.nii.gz"
    folder.mkdir()
    main = {QSM: "field", SPIO: "image", IVIM: "dwi", RIM: "qsm"}[bundle]
    extra = {IVIM: {"bvals": _ivim_case(tmp_path)[1]},
             RIM: {"flair": folder, "lesion_mask": folder}}.get(bundle, {})
    _refused(capsys, bundle, expect="is a folder, not a file", output_dir=tmp_path / "o", **{main: folder}, **extra)
    _refused(capsys, bundle, expect="is a folder, not a file", output_dir=tmp_path / "o", datalist=tmp_path)


# --------------------------------------------------------------------------------- 5: implausible values

def test_qsm_field_with_an_absurd_voxel_is_refused(tmp_path, capsys):
    field, brain = _qsm_field()
    mask = _save(brain, _affine(), tmp_path / "m.nii.gz")
    for voxel in ((10, 10, 8), (0, 0, 0)):  # inside the brain, and outside it (TKD inverts the whole field)
        assert brain[voxel] == (voxel != (0, 0, 0))
        corrupt = field.copy()
        corrupt[voxel] = 1e30
        path = _save(corrupt, _affine(), tmp_path / "s.nii.gz")
        _refused(capsys, QSM, expect="the bundle expects a local field of at most a few ppm", field=path, mask=mask,
                 method="tkd", output_dir=tmp_path / "o")
    ppb = _save(_qsm_field()[0] * 1e3 * 1e3, _affine(), tmp_path / "ppb.nii.gz")  # a field a million times too big
    _refused(capsys, QSM, expect="--field_unit", field=ppb, method="tkd", output_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_spio_image_with_an_absurd_pixel_is_refused(tmp_path, capsys):
    image = _spio_image()
    image[5, 5, 0, 0] = 1e30
    path = _save(image, _spio_affine(), tmp_path / "v.nii.gz")
    _refused(capsys, SPIO, expect="without such outliers", image=path, output_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_ivim_dwi_with_an_absurd_voxel_is_refused(tmp_path, capsys):
    dwi, bvals = _ivim_case(tmp_path)
    data = nib.load(str(dwi)).get_fdata()
    data[1, 2, 1, 3] = 1e30
    _save(data, np.diag([2.0, 2.0, 3.0, 1.0]), dwi)
    for method in ("lsq", "net"):  # the posterior-mean fit used to give NaN maps and exit 0
        _refused(capsys, IVIM, expect="more than 1000× the median signal at the lowest b-value", dwi=dwi,
                 bvals=bvals, method=method, output_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_ivim_non_finite_fit_is_an_error_not_nan_maps(tmp_path, capsys, monkeypatch):
    from lightning_modules.ivim.inferers import LeastSquaresInferer

    real_estimate = LeastSquaresInferer.estimate

    def nan_estimate(self, *args, **kwargs):
        params = real_estimate(self, *args, **kwargs)
        params[0, 1] = np.nan
        return params

    monkeypatch.setattr(LeastSquaresInferer, "estimate", nan_estimate)
    dwi, bvals = _ivim_case(tmp_path)
    _refused(capsys, IVIM, expect="gave non-finite parameters in 1 voxel(s)", dwi=dwi, bvals=bvals, method="lsq",
             output_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists() or not _files(tmp_path / "o")


def test_ivim_net_fit_with_a_one_voxel_mask_is_refused_in_one_line(tmp_path, capsys):
    dwi, bvals = _ivim_case(tmp_path)
    mask = np.zeros((4, 4, 3))
    mask[1, 1, 1] = 1
    mask = _save(mask, np.diag([2.0, 2.0, 3.0, 1.0]), tmp_path / "m.nii.gz")
    _refused(capsys, IVIM, expect="needs at least 2", dwi=dwi, bvals=bvals, mask=mask, posterior_mean=False,
             max_epochs=1, batches_per_epoch=2, output_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists()
    code, _, err = _run(capsys, IVIM, dwi=dwi, bvals=bvals, mask=mask, method="lsq", output_dir=tmp_path / "o")
    assert code == 0, err  # least squares fits a single voxel


@pytest.mark.parametrize(("name", "scale", "expect"), [
    ("ppb_int16", 1e5, "QSM must be in ppm"),  # 0.01 ppm × 1e5 = ±1000, stored as int16
    ("corrupt_voxel", None, "QSM must be in ppm"),
    ("all_zero", 0.0, "is zero everywhere"),
])
def test_rim_implausible_qsm_is_refused(name, scale, expect, tmp_path, capsys):
    case = _rim_case(tmp_path)
    qsm = nib.load(str(case["qsm"])).get_fdata()
    if name == "corrupt_voxel":
        qsm[0, 0, 0] = 1e30
        _save(qsm, np.eye(4), case["qsm"])
    elif name == "ppb_int16":
        qsm[12:14, 12:14, 12:14] = -0.01
        nib.save(nib.Nifti1Image(np.rint(qsm * scale).astype(np.int16), np.eye(4)), str(case["qsm"]))
    else:
        _save(qsm * scale, np.eye(4), case["qsm"])
    _refused(capsys, RIM, expect=expect, output_dir=tmp_path / "o", **case)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------ --help

@pytest.mark.parametrize(("bundle", "options"), [
    (QSM, ("--field", "--mask", "--field_unit", "--b0_tesla", "--te_ms", "--b0_dir", "--method", "--datalist",
           "--output_dir", "--device")),
    (SPIO, ("--image", "--datalist", "--output_dir", "--device", "--objects",
            "{stem}_objects.csv (a table; with --objects true)")),
])
def test_help_prints_options_units_and_defaults(bundle, options, capsys):
    code, out, err = _run(capsys, bundle, help=True)
    assert code == 0 and "error:" not in err, err
    for option in options:
        assert option in out, option
    assert ("ppm" in out and 'default "ppm"' in out) if bundle == QSM else "µg Fe/mm³" in out
    assert 'default "output"' in out


@pytest.mark.parametrize(("bundle", "options", "units"), [
    (IVIM, ("--dwi", "--bvals", "--mask", "--model", "--mode", "--method", "--max_epochs", "--posterior_mean",
            "--seed", "--datalist", "--output_dir", "--device"),
     ("s/mm²", "mm²/s", "default 60", "{stem}_D.nii.gz (mm²/s)", "{stem}_f1.nii.gz (fraction; with --model triexp)")),
    (RIM, ("--qsm", "--flair", "--lesion_mask", "--threshold", "--datalist", "--output_dir", "--device"),
     ("ppm",)),
])
def test_help_of_ivim_and_rim(bundle, options, units, capsys):
    code, out, err = _run(capsys, bundle, help=True)
    assert code == 0 and "error:" not in err, err
    for option in (*options, *units, 'default "output"'):
        assert option in out, option


def test_help_on_the_command_line_without_trust_warning(tmp_path):
    result = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLES[QSM]),
                             "--help"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert "--field_unit" in result.stdout and "Traceback" not in result.stderr
    assert "Only proceed if this config is from a source you trust" not in result.stderr


def test_trust_warning_is_dropped_only_for_our_shipped_configs(tmp_path):
    from lightning_modules.monai_trust import PTH_LINE, install_pth, is_shipped_trust_warning

    def message(path):
        return (f'parsing config_file {path}: any `"_target_"` value in it is resolved to an importable callable '
                "and invoked with no allow list ... Only proceed if this config is from a source you trust")

    copy = tmp_path / "qsm_dipole_inversion" / "configs" / "inference.json"
    copy.parent.mkdir(parents=True)
    copy.write_text(BUNDLES[QSM].read_text())
    assert all(is_shipped_trust_warning(message(BUNDLES[b]), UserWarning) for b in BUNDLES)
    assert is_shipped_trust_warning(message([str(BUNDLES[QSM]), str(BUNDLES[QSM].parent / "train.json")]), UserWarning)
    assert not is_shipped_trust_warning(message(copy), UserWarning)
    assert not is_shipped_trust_warning(message([str(BUNDLES[QSM]), str(copy)]), UserWarning)
    assert not is_shipped_trust_warning("something else", UserWarning)
    assert Path(install_pth(str(tmp_path))).read_text() == PTH_LINE


# --------------------------------------------------------------------------------- 8, 10: interruption

_CHILD = """
import json, sys, time
import nibabel as nib
from monai.bundle import run

real_save, calls = nib.save, []

def slow_save(img, path, *args, **kwargs):  # the n-th write stalls after its temporary file is written
    real_save(img, path, *args, **kwargs)
    calls.append(path)
    if len(calls) == int(sys.argv[2]):
        print("[test] temporary file written", flush=True)
        time.sleep(120)

nib.save = slow_save
run(config_file=sys.argv[1], **json.loads(sys.argv[3]))
"""


def _interrupt_during_write(config: Path, options: dict, *, nth_write: int,
                            signum: int | None) -> subprocess.CompletedProcess:
    """Run the bundle in a child whose ``nth_write`` stalls, then interrupt it: with ``signum``, or (``None``) by
    the Slicer panel's Cancel (``QSMSlicerCommon.process.BundleProcess.cancel``: SIGTERM to the process group)."""
    sys.path.insert(0, str(REPO / "QSMSlicerExtension"))
    try:
        from QSMSlicerCommon.process import BundleProcess
    finally:
        sys.path.remove(str(REPO / "QSMSlicerExtension"))
    lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
    process = BundleProcess([sys.executable, "-c", _CHILD, str(config), str(nth_write), json.dumps(options)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, on_line=lambda s, t: lines[s].append(t))
    process.start()
    deadline = time.monotonic() + 240
    while not any("[test] temporary file written" in t for t in lines["stdout"]) and time.monotonic() < deadline:
        assert process.poll() is None, lines["stderr"][-20:]
        time.sleep(0.05)
    if signum is None:
        outcome = process.cancel(grace_s=60)
        assert outcome.cancelled
    else:
        os.kill(process.pid, signum)
        outcome = process.wait(timeout_s=120)
    return subprocess.CompletedProcess(process.command, outcome.returncode, "\n".join(lines["stdout"]),
                                       "\n".join(lines["stderr"]))


@pytest.mark.parametrize(("bundle", "signum"), [(QSM, None), (SPIO, signal.SIGTERM), (QSM, signal.SIGINT),
                                              (IVIM, signal.SIGTERM), (RIM, None)],
                         ids=["qsm-slicer-cancel", "spio-sigterm", "qsm-sigint", "ivim-sigterm", "rim-slicer-cancel"])
def test_interrupted_batch_exits_nonzero_and_leaves_no_temporary_or_partial_file(bundle, signum, tmp_path):
    out = tmp_path / "out"
    nth_write = 2
    if bundle == QSM:
        cases = [{"field": str(_qsm_case(tmp_path, name)[0])} for name in ("a", "b")]
        options, first, shape = {"method": "tkd"}, "a_chi.nii.gz", QSM_SHAPE
    elif bundle == IVIM:  # interrupted between the second case's 1st and 2nd map: none of its maps may appear
        cases = [dict(zip(("dwi", "bvals"), map(str, _ivim_case(tmp_path, name)))) for name in ("a", "b")]
        options, shape, nth_write = {"method": "lsq"}, (4, 4, 3), 5
        first = {f"a_{p}.nii.gz" for p in ("D", "f", "Dstar", "S0")}
    elif bundle == RIM:  # the second case's labelmap is written, its table not yet
        cases = [{k: str(v) for k, v in _rim_case(tmp_path, name).items()} for name in ("a", "b")]
        options, shape, first = {}, (24, 24, 24), {"a_rim_labels.nii.gz", "a_lesions.csv"}
    else:
        cases = [{"image": str(_save(_spio_image(i), _spio_affine(), tmp_path / f"{n}.nii.gz"))}
                 for i, n in enumerate(("a", "b"))]
        options, first, shape = {}, "a_concentration.nii.gz", (*acq.VIEWLINE_MATRIX, 1)
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps(cases))
    result = _interrupt_during_write(BUNDLES[bundle], {**options, "datalist": str(datalist), "output_dir": str(out)},
                                     nth_write=nth_write, signum=signum)
    signum = signal.SIGTERM if signum is None else signum
    assert result.returncode == 128 + signum, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert f"error: interrupted by {signal.Signals(signum).name}" in result.stderr
    first = {first} if isinstance(first, str) else first
    assert _files(out) == first, _files(out)  # the finished case complete, nothing of the second, no .tmp
    for name in first:
        if name.endswith(".nii.gz"):
            assert nib.load(str(out / name)).shape == shape


def test_sigterm_inside_lightning_fit_exits_nonzero():
    """Lightning ends ``fit`` on SIGTERM with a ``SystemExit`` without a code; a run must still fail."""
    import pytorch_lightning as pl
    import torch

    from lightning_modules.bundle_app import interruptible

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            if self.global_step == 2:
                os.kill(os.getpid(), signal.SIGTERM)
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 2)), batch_size=4)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    with pytest.raises(SystemExit) as exit_:
        with interruptible():
            trainer.fit(Tiny(), data)
    assert exit_.value.code == 128 + signal.SIGTERM


@pytest.mark.parametrize("library_reaction", ["system_exit_without_code", "swallowed"])
def test_sigterm_that_a_library_catches_still_fails_the_run(library_reaction):
    from lightning_modules.bundle_app import interruptible

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_:
        with interruptible():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except BaseException:
                if library_reaction == "system_exit_without_code":
                    raise SystemExit from None
    assert exit_.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


# ------------------------------------------------------------------------------- orientation invariance

def _flip_x(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, data.shape[0] - 1
    return data[::-1].copy(), affine @ flip


def _swap_xy(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    swap = np.eye(4)[[1, 0, 2, 3]]
    return np.swapaxes(data, 0, 1).copy(), affine @ swap


@pytest.mark.parametrize("method", ["tkd", "tv"])
def test_qsm_result_does_not_depend_on_storage_orientation(method, tmp_path, capsys):
    affine = _affine()
    field, brain = _qsm_field(affine)
    chis = {}
    for name, (to_storage, back) in {
        "plain": (lambda d, a: (d, a), lambda d: d),
        "flipped": (_flip_x, lambda d: d[::-1]),
        "swapped": (_swap_xy, lambda d: np.swapaxes(d, 0, 1)),
    }.items():
        stored_field, stored_affine = to_storage(field, affine)
        stored_mask, _ = to_storage(brain.astype(np.float32), affine)
        f = _save(stored_field, stored_affine, tmp_path / f"{name}.nii.gz")
        m = _save(stored_mask, stored_affine, tmp_path / f"{name}_mask.nii.gz")
        code, _, err = _run(capsys, QSM, field=f, mask=m, method=method, output_dir=tmp_path / "out")
        assert code == 0, err
        written = nib.load(str(tmp_path / "out" / f"{name}_chi.nii.gz"))
        assert np.allclose(written.affine, stored_affine)
        chis[name] = back(np.asarray(written.dataobj, dtype=np.float64))
    scale = np.abs(chis["plain"]).max()
    for name in ("flipped", "swapped"):
        np.testing.assert_allclose(chis[name], chis["plain"], atol=1e-4 * scale, err_msg=name)


def test_spio_result_does_not_depend_on_x_storage_direction(tmp_path, capsys):
    image, affine = _spio_image(), _spio_affine()
    flipped, flipped_affine = _flip_x(image, affine)
    _save(image, affine, tmp_path / "plain.nii.gz")
    _save(flipped, flipped_affine, tmp_path / "flipped.nii.gz")
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps([{"image": "plain.nii.gz"}, {"image": "flipped.nii.gz"}]))
    code, _, err = _run(capsys, SPIO, datalist=datalist, output_dir=tmp_path / "out")
    assert code == 0, err
    plain = nib.load(str(tmp_path / "out" / "plain_concentration.nii.gz")).get_fdata()
    mirrored = nib.load(str(tmp_path / "out" / "flipped_concentration.nii.gz")).get_fdata()[::-1]
    np.testing.assert_allclose(mirrored, plain, atol=1e-5 * max(plain.max(), 1e-3))


def _rim_asymmetric(shape=(24, 22, 20)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """QSM (ppm), FLAIR and a lesion mask with nothing symmetric: noise, and a rim on one side of one lesion."""
    rng = np.random.default_rng(7)
    grid = np.indices(shape)
    qsm = np.zeros(shape)
    qsm[2:-2, 2:-2, 2:-2] = 0.02 * rng.standard_normal((shape[0] - 4, shape[1] - 4, shape[2] - 4))
    lesion = np.zeros(shape)
    for centre, radius in (((9, 8, 9), 3.5), ((16, 14, 11), 2.5)):
        distance = np.linalg.norm(grid - np.reshape(centre, (3, 1, 1, 1)), axis=0)
        lesion[distance <= radius] = 1
        qsm[(distance > radius - 1.5) & (distance <= radius + 0.5) & (grid[0] > centre[0])] += 0.06
    flair = 100.0 + 60.0 * lesion + 5.0 * rng.standard_normal(shape)
    return qsm, flair, lesion


def test_rim_result_does_not_depend_on_storage_orientation(tmp_path, capsys):
    affine = np.diag([1.0, 1.2, 1.1, 1.0])
    affine[:3, 3] = (-12.0, -13.0, -11.0)
    data = _rim_asymmetric()
    backs = {"plain": lambda d: d, "flipped": lambda d: d[::-1], "swapped": lambda d: np.swapaxes(d, 0, 1)}
    entries = []
    for name, to_storage in (("plain", lambda d, a: (d, a)), ("flipped", _flip_x), ("swapped", _swap_xy)):
        for key, volume in zip(("qsm", "flair", "lesion_mask"), data):
            stored, stored_affine = to_storage(volume, affine)
            _save(stored, stored_affine, tmp_path / f"{name}_{key}.nii.gz")
        entries.append({k: f"{name}_{k}.nii.gz" for k in ("qsm", "flair", "lesion_mask")})
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps(entries))
    code, _, err = _run(capsys, RIM, datalist=datalist, output_dir=tmp_path / "out", threshold=0.5)
    assert code == 0, err
    tables, labelmaps = {}, {}
    for name, back in backs.items():
        rows = (tmp_path / "out" / f"{name}_qsm_lesions.csv").read_text().splitlines()[1:]
        # lesion by lesion (by centroid in RAS mm): the same volume, centroid and rim probability
        tables[name] = sorted(tuple(row.split(",")[1:]) for row in rows)
        written = nib.load(str(tmp_path / "out" / f"{name}_qsm_rim_labels.nii.gz"))
        stored = nib.load(str(tmp_path / f"{name}_qsm.nii.gz"))
        assert written.shape == stored.shape
        np.testing.assert_allclose(written.affine, stored.affine, atol=1e-6)
        labelmaps[name] = back(np.asarray(written.dataobj))
    assert len(tables["plain"]) == 2
    for name in ("flipped", "swapped"):
        assert tables[name] == tables["plain"], name
        np.testing.assert_array_equal(labelmaps[name], labelmaps["plain"], err_msg=name)

"""The ``spio_quantification`` bundle: DESIGN.md's command-line contract, bad input, and the shipped weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import run as bundle_run

from lightning_modules.bundle_app import bundle_root
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import CONCENTRATION_FLOOR_UG_PER_MM3, load_network, predict_concentration
from lightning_modules.spio.baseline import TrainingMeanBaseline
from lightning_modules.spio.data import random_sample
from lightning_modules.spio.networks import DeepSpio

BUNDLE = Path(bundle_root("spio_quantification"))
CONFIG = BUNDLE / "configs" / "inference.json"
MODEL = BUNDLE / "models" / "model.pt"
needs_weights = pytest.mark.skipif(not MODEL.is_file(), reason="shipped weights not present")


def _run(capsys, **options) -> tuple[int, str]:
    """Run the bundle's config in this process (what ``python -m monai.bundle run`` calls): (exit status, stderr)."""
    capsys.readouterr()
    try:
        bundle_run(config_file=str(CONFIG), device="cpu", **options)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@needs_weights
def test_command_line_writes_the_concentration_on_the_input_grid(cylinder_image, tmp_path):
    path, affine, truth = cylinder_image
    out_dir = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLE / "configs" / "inference.json"),
         "--image", str(path), "--output_dir", str(out_dir), "--device", "cpu"],
        capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[progress] 100%" in result.stdout
    snr_line = next(line for line in result.stdout.splitlines() if "estimated SNR" in line)
    assert not snr_line.startswith("warning")  # 19 dB: no low-SNR warning (the rod's iron reads ≈ 2 dB low)
    assert abs(float(snr_line.split("estimated SNR ")[1].split(" dB")[0]) - 19.0) <= 3.0, snr_line
    written = nib.load(str(out_dir / "viewline_cyl_concentration.nii.gz"))
    assert written.shape == (128, 128, 1)
    assert np.array_equal(written.affine, affine)
    concentration = np.asarray(written.dataobj)[:, :, 0]
    assert concentration.min() >= 0
    assert 3.5 < float(np.median(concentration[truth > 0])) < 14.0  # 6.98 µg Fe/mm³ within a factor 2


@pytest.mark.parametrize(("shape", "expected"), [((128, 128, 2), "shape (128, 128, 2)"),
                                                 ((128, 128, 1, 1), "one channel"),
                                                 ((64, 64, 1, 2), "shape (64, 64, 1, 2)")])
def test_wrong_shape_is_a_one_line_error_naming_the_acquisition(tmp_path, capsys, shape, expected):
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(shape, dtype=np.float32), np.eye(4)), str(path))
    code, err = _run(capsys, image=str(path), output_dir=str(tmp_path / "o"))
    assert code == 2
    line = _one_error_line(err)
    assert str(path) in line and expected in line
    assert "7 T" in line and "25 lines" in line and "even-line and odd-line" in line
    assert not (tmp_path / "o").exists()


def _copy(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


def _voxel_problem(kind: str) -> np.ndarray:
    data = np.ones((128, 128, 1, 2), dtype=np.float32)
    if kind == "NaN":
        data[3, 4, 0, 1] = np.nan
    elif kind == "zero everywhere":
        data[:] = 0
    else:  # "without such outliers"
        data[5, 5, 0, 0] = 1e30
    return data


@needs_weights
@pytest.mark.parametrize("kind", ["NaN", "zero everywhere", "without such outliers"])
def test_a_case_with_bad_voxels_stops_the_batch_at_that_case(cylinder_image, tmp_path, capsys, kind):
    """Voxels are read once, case by case: a batch stops AT the bad case (one line, exit 2), keeping the complete
    outputs of the cases before it and writing nothing of the bad case or of the cases after it."""
    good, _, _ = cylinder_image
    first, last = _copy(good, tmp_path / "first.nii.gz"), _copy(good, tmp_path / "last.nii.gz")
    nib.save(nib.Nifti1Image(_voxel_problem(kind), np.eye(4)), str(tmp_path / "bad.nii.gz"))
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps([{"image": first.name}, {"image": "bad.nii.gz"}, {"image": last.name}]))
    out = tmp_path / "o"
    code, err = _run(capsys, datalist=str(datalist), output_dir=str(out))
    assert code == 2
    line = _one_error_line(err)
    assert str(tmp_path / "bad.nii.gz") in line and kind in line
    assert sorted(p.name for p in out.iterdir()) == ["first_concentration.nii.gz"]  # no temporary file either
    alone = tmp_path / "alone"
    assert _run(capsys, image=str(first), output_dir=str(alone))[0] == 0
    assert (out / "first_concentration.nii.gz").read_bytes() == (alone / "first_concentration.nii.gz").read_bytes()


@pytest.mark.parametrize("problem", ["shape", "missing", "collision"])
def test_a_header_problem_anywhere_in_the_batch_stops_it_before_any_output(cylinder_image, tmp_path, capsys,
                                                                           problem):
    good, _, _ = cylinder_image
    entries = [{"image": str(good)}]
    if problem == "shape":
        nib.save(nib.Nifti1Image(np.ones((128, 128, 2), dtype=np.float32), np.eye(4)), str(tmp_path / "b.nii.gz"))
        entries.append({"image": "b.nii.gz"})
        expected = "has shape (128, 128, 2)"
    elif problem == "missing":
        entries.append({"image": "absent.nii.gz"})
        expected = "does not exist"
    else:
        (tmp_path / "other").mkdir()
        entries.append({"image": str(_copy(good, tmp_path / "other" / good.name))})
        expected = "two cases would both write"
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps(entries))
    code, err = _run(capsys, datalist=str(datalist), output_dir=str(tmp_path / "o"))
    assert code == 2 and expected in _one_error_line(err)
    assert not (tmp_path / "o").exists()


@needs_weights
def test_each_case_is_read_once(cylinder_image, tmp_path, capsys, nifti_data_reads):
    """Voxel data is read once per case (headers aside: the batch is validated from them up front)."""
    good, _, _ = cylinder_image
    names = ["a.nii.gz", "b.nii.gz", "c.nii.gz"]
    for name in names:
        _copy(good, tmp_path / name)
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps([{"image": name} for name in names]))
    code, err = _run(capsys, datalist=str(datalist), output_dir=str(tmp_path / "o"))
    assert code == 0, err
    assert sorted(nifti_data_reads) == names, nifti_data_reads
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [f"{n[:1]}_concentration.nii.gz" for n in names]


@needs_weights
def test_shipped_weights_beat_the_no_learning_baseline_on_fresh_samples():
    network = load_network(DeepSpio(), MODEL)
    train = [random_sample(0, i)[1].numpy() for i in range(6)]
    baseline = TrainingMeanBaseline().fit(np.stack(train))
    net_errors, baseline_errors = [], []
    for i in range(4):
        image, truth = random_sample(987, i)  # a seed never used in training or validation
        net_errors.append(nmae(predict_concentration(network, image.numpy()), truth[0].numpy()))
        baseline_errors.append(nmae(baseline.predict(image.numpy()), truth[0].numpy()))
    assert np.mean(net_errors) < 0.85 * min(np.mean(baseline_errors), 1.0)  # 1.0: the all-zero map
    assert torch.get_num_threads() == 1


@needs_weights
def test_prediction_is_flip_equivariant_and_floored_only_when_asked():
    network = load_network(DeepSpio(), MODEL)
    image = random_sample(987, 5)[0].numpy()
    mirrored = image[:, ::-1].copy()
    shipped = predict_concentration(network, image)
    np.testing.assert_allclose(predict_concentration(network, mirrored)[::-1], shipped, atol=1e-5)
    assert not np.any((shipped > 0) & (shipped < CONCENTRATION_FLOOR_UG_PER_MM3))
    raw = predict_concentration(network, image, flip_average=False, shifts_px=(0,), floor_ug_per_mm3=0.0,
                                 object_shrinkage=0.0)
    with torch.no_grad():
        expected = network(torch.as_tensor(image)[None])[0, 0].clamp_min(0.0).numpy()
    np.testing.assert_allclose(raw, expected, atol=1e-6)
    assert np.any((raw > 0) & (raw < CONCENTRATION_FLOOR_UG_PER_MM3))  # the floor has something to remove
    unflipped = predict_concentration(network, mirrored, flip_average=False, shifts_px=(0,), floor_ug_per_mm3=0.0,
                                      object_shrinkage=0.0)
    assert np.abs(unflipped[::-1] - raw).max() > 1e-3

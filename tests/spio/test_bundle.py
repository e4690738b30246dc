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

from lightning_modules.bundle_app import bundle_root
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import (
    CONCENTRATION_FLOOR_UG_PER_MM3,
    SpioQuantificationApp,
    load_network,
    predict_concentration,
)
from lightning_modules.spio.baseline import TrainingMeanBaseline
from lightning_modules.spio.data import random_sample
from lightning_modules.spio.networks import DeepSpio

BUNDLE = Path(bundle_root("spio_quantification"))
MODEL = BUNDLE / "models" / "model.pt"
needs_weights = pytest.mark.skipif(not MODEL.is_file(), reason="shipped weights not present")


def test_inference_config_passes_monai_checks():
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(config_file=str(BUNDLE / "configs" / "inference.json"),
                              meta_file=str(BUNDLE / "configs" / "metadata.json"), workflow_type="infer")
    workflow.initialize()
    assert workflow.check_properties() == []
    metadata = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    assert metadata["network_data_format"]["inputs"]["image"]["num_channels"] == 2


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
    app = SpioQuantificationApp(DeepSpio(), model_path=str(MODEL), image=str(path), output_dir=str(tmp_path / "o"))
    with pytest.raises(SystemExit) as exit_info:
        app.run()
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and expected in err
    assert "7 T" in err and "25 lines" in err and "even-line and odd-line" in err
    assert not (tmp_path / "o").exists()


def test_nan_in_a_datalist_case_stops_the_batch_before_any_output(cylinder_image, tmp_path, capsys):
    good, _, _ = cylinder_image
    data = np.ones((128, 128, 1, 2), dtype=np.float32)
    data[3, 4, 0, 1] = np.nan
    bad = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(bad))
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps([{"image": str(good)}, {"image": "nan.nii.gz"}]))
    app = SpioQuantificationApp(DeepSpio(), model_path=str(MODEL), datalist=str(datalist),
                                output_dir=str(tmp_path / "o"))
    with pytest.raises(SystemExit):
        app.run()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nan.nii.gz" in err and "NaN" in err
    assert not (tmp_path / "o").exists()


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
    raw = predict_concentration(network, image, flip_average=False, floor_ug_per_mm3=0.0)
    with torch.no_grad():
        expected = network(torch.as_tensor(image)[None])[0, 0].clamp_min(0.0).numpy()
    np.testing.assert_allclose(raw, expected, atol=1e-6)
    assert np.any((raw > 0) & (raw < CONCENTRATION_FLOOR_UG_PER_MM3))  # the floor has something to remove
    assert np.abs(predict_concentration(network, mirrored, flip_average=False)[::-1] - raw).max() > 1e-3

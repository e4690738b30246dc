"""The bundle's noise-adaptive weights (0.11.0, issue 24 session 34): images whose noise between the lines is not
single-channel Rician are mapped by the noise-robust DeepSPIO and refiner, all others exactly as before; the config
names the switch, ``--noise_adaptive false`` turns it off, and another ``--model_path`` is never paired with the
shipped robust weights."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run

from lightning_modules.io import load_nifti
from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.inferers import NoiseModelInferer
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.phantoms import agar_disk, cylinder
from lightning_modules.spio.simulation_refiner import SimulationRefined, load_refiner
from lightning_modules.spio.snr import match_coil_noise_floor, rician_like
from lightning_modules.spio.viewline import NOISE_MODELS, TRAINING_COILS, simulate_viewline_with_field, sos_coils

BUNDLE = Path(__file__).resolve().parents[2] / "monai_bundles" / "spio_quantification"
CONFIG, MODELS = BUNDLE / "configs" / "inference.json", BUNDLE / "models"
ROBUST_MODEL, ROBUST_REFINER = MODELS / "model_noise_robust.pt", MODELS / "refiner_noise_robust.pt"
needs_weights = pytest.mark.skipif(not ROBUST_MODEL.is_file(), reason="shipped weights not present")


def _viewline_nifti(folder: Path, noise_model: str) -> Path:
    """A 6.98 µg Fe/mm³ rod in agar at 19 dB under ``noise_model``, as the bundle reads it (x, z, 1, even/odd)."""
    concentration = 6.98 * cylinder((0.0, 0.0, 0.0), 3.0, np.array([0.0, 1.0, 0.0])).float()
    image, _, _ = simulate_viewline_with_field(agar_disk(radius_mm=22.0), concentration, snr_db=19.0,
                                               generator=torch.Generator().manual_seed(3), noise_model=noise_model)
    path = folder / f"rod_{noise_model}.nii.gz"
    data = np.moveaxis(image.numpy(), 0, -1)[:, :, None, :] * 1000.0
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([0.39, 0.39, 1.0, 1.0])), str(path))
    return path


def _image(path: Path) -> np.ndarray:
    data, _, _ = load_nifti(path)
    return np.moveaxis(data[:, :, 0, :], -1, 0).astype(np.float32)


def _run(path: Path, output_dir: Path, **overrides) -> np.ndarray:
    bundle_run(config_file=str(CONFIG), image=str(path), output_dir=str(output_dir), device="cpu", **overrides)
    stem = path.name.removesuffix(".nii.gz")
    return np.asarray(nib.load(str(output_dir / f"{stem}_concentration.nii.gz")).dataobj)[:, :, 0]


def test_noise_model_inferer_maps_each_image_with_the_network_its_noise_calls_for() -> None:
    images = torch.stack([torch.full((2, 4, 4), v) for v in (1.0, -1.0, 2.0)])  # the sign stands for the check
    inferer = NoiseModelInferer(other_network=lambda x: 10 * x, expected=lambda image: image.sum() > 0)
    assert inferer.uses_other(images) == [False, True, False]
    mixed = inferer(images, lambda x: x)
    np.testing.assert_array_equal(mixed[:, 0, 0, 0].numpy(), [1.0, -10.0, 2.0])
    # a batch with one kind of image runs as one batch through one network
    assert torch.equal(inferer(images[[0, 2]], lambda x: x), images[[0, 2]])
    assert torch.equal(inferer(images[[1]], lambda x: x), 10 * images[[1]])
    # without another network every image is the network's
    assert torch.equal(NoiseModelInferer()(images, lambda x: 3 * x), 3 * images)


def test_the_other_network_reads_a_many_coil_image_with_its_floor_matched() -> None:
    """0.12.0 (session 35): with ``other_coils`` the companion gets a many-coil image's floor lowered to its coil
    count; the check is made on the image as given, and the shipped network's images are never changed."""
    concentration = torch.zeros(acq.VIEWLINE_MATRIX[0], acq.VIEWLINE_NY, acq.VIEWLINE_MATRIX[1])
    images = [simulate_viewline_with_field(agar_disk(radius_mm=22.0), concentration, snr_db=15.0, noise_model=m,
                                           generator=torch.Generator().manual_seed(9))[0] for m in ("sos32", "complex")]
    batch, seen = torch.stack(images), []
    inferer = NoiseModelInferer(other_network=lambda x: seen.append(x) or x, other_coils=4)
    out = inferer(batch, lambda x: -x)
    assert inferer.uses_other(batch) == [True, False] and len(seen) == 1
    np.testing.assert_array_equal(seen[0][0].numpy(), match_coil_noise_floor(images[0].numpy(), 4))
    assert not torch.equal(seen[0][0], images[0])
    assert torch.equal(out[1], -images[1])
    unmatched = NoiseModelInferer(other_network=lambda x: x)  # other_coils None: as given
    assert torch.equal(unmatched(batch[:1], lambda x: -x), batch[:1])


def test_simulation_refined_takes_the_other_refiner_only_for_the_other_noise() -> None:
    class Constant(torch.nn.Module):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value, self.lifts = torch.nn.Parameter(torch.tensor(value)), ("ball",)

        def forward(self, image, hypothesis, prior):
            return torch.full_like(prior, float(self.value))

    step = SimulationRefined("pred", refiner=Constant(1.0), other_refiner=Constant(2.0),
                             expected=lambda image: image.sum() > 0)
    pred = torch.zeros(1, 128, 128)
    for sign, value in ((1.0, 1.0), (-1.0, 2.0)):
        out = step({"image": sign * torch.ones(2, 128, 128), "pred": pred})["pred"]
        assert torch.all(out == value)


@needs_weights
def test_the_config_names_the_switch() -> None:
    config = ConfigParser(ConfigParser.load_config_file(str(CONFIG)))
    evaluator = config.get_parsed_content("evaluator")
    switch = config.get_parsed_content("noise_adaptive_inferer")
    assert evaluator.inferer is switch and switch.inferer is config.get_parsed_content("inferer")
    robust = config.get_parsed_content("noise_robust_network")
    assert switch.other_network is robust and isinstance(robust, DeepSpio) and not robust.training
    assert robust is not config.get_parsed_content("network")
    shipped = load_network(DeepSpio(), MODELS / "model.pt").state_dict()
    assert any(not torch.equal(v, shipped[k]) for k, v in robust.state_dict().items())  # other weights
    refined = next(t for t in config.get_parsed_content("postprocessing").transforms
                   if isinstance(t, SimulationRefined))
    assert refined.other_refiner is config.get_parsed_content("noise_robust_refiner")
    assert refined.other_refiner is not None and refined.other_refiner is not refined.refiner


@needs_weights
def test_other_noise_is_mapped_with_the_robust_weights_and_rician_noise_as_before(tmp_path: Path, capsys) -> None:
    network, refiner = load_network(DeepSpio(), MODELS / "model.pt"), load_refiner(str(MODELS / "refiner.pt"))
    robust, robust_refiner = load_network(DeepSpio(), ROBUST_MODEL), load_refiner(str(ROBUST_REFINER))
    for noise_model in ("magnitude", "complex"):
        path = _viewline_nifti(tmp_path, noise_model)
        image = _image(path)
        assert rician_like(image) == (noise_model == "complex")
        written = _run(path, tmp_path / noise_model)
        line = next(s for s in capsys.readouterr().out.splitlines() if path.name in s)
        adaptive = predict_concentration(network, image, refiner=refiner, other_network=robust,
                                         other_refiner=robust_refiner)
        np.testing.assert_array_equal(written, adaptive)  # the bundle is the benchmarks' array path
        off = _run(path, tmp_path / f"{noise_model}_off", noise_adaptive=False)
        np.testing.assert_array_equal(off, predict_concentration(network, image, refiner=refiner))
        if noise_model == "complex":  # Rician: the shipped weights, bit for bit
            np.testing.assert_array_equal(written, off)
            assert "estimated SNR" in line
        else:
            robust_alone = predict_concentration(robust, image, refiner=robust_refiner)
            np.testing.assert_array_equal(written, robust_alone)
            assert np.abs(written - off).max() > 0.1
            assert "mapped with the noise-robust weights" in line and "estimated SNR" not in line
    capsys.readouterr()
    _run(_viewline_nifti(tmp_path, "sos4"), tmp_path / "off_line", noise_adaptive=False)
    assert "trained on single-channel images only" in capsys.readouterr().out


@needs_weights
def test_a_many_coil_image_is_mapped_with_its_floor_matched_to_the_companions_coils(tmp_path: Path, capsys) -> None:
    """0.12.0: the bundle's inferer matches the floor to the coils the companion learned (viewline's TRAINING_COILS,
    the most coils of training's noise models), and writes what ``predict_concentration`` gives, bit for bit."""
    config = ConfigParser(ConfigParser.load_config_file(str(CONFIG)))
    assert config.get_parsed_content("noise_adaptive_inferer").other_coils == TRAINING_COILS
    assert TRAINING_COILS == max(sos_coils(m) or 1 for m in NOISE_MODELS)
    network, refiner = load_network(DeepSpio(), MODELS / "model.pt"), load_refiner(str(MODELS / "refiner.pt"))
    robust, robust_refiner = load_network(DeepSpio(), ROBUST_MODEL), load_refiner(str(ROBUST_REFINER))
    path = _viewline_nifti(tmp_path, "sos32")
    image = _image(path)
    written = _run(path, tmp_path / "sos32")
    line = next(s for s in capsys.readouterr().out.splitlines() if path.name in s)
    assert "noise floor was first lowered to that of the 4 coils" in line
    assert 20 <= int(re.search(r"≈ (\d+) coils", line).group(1)) <= 40  # 32 coils, read from the image
    np.testing.assert_array_equal(written, predict_concentration(network, image, refiner=refiner, other_network=robust,
                                                                 other_refiner=robust_refiner))
    as_given = predict_concentration(network, image, refiner=refiner, other_network=robust,
                                     other_refiner=robust_refiner, other_coils=None)  # 0.11.0
    assert np.abs(written - as_given).max() > 0.1


@needs_weights
def test_another_model_path_is_not_paired_with_the_robust_weights(tmp_path: Path) -> None:
    own = tmp_path / "own.pt"
    shutil.copyfile(MODELS / "model.pt", own)
    path = _viewline_nifti(tmp_path, "magnitude")
    written = _run(path, tmp_path / "own", model_path=str(own))
    np.testing.assert_array_equal(written, _run(path, tmp_path / "off", noise_adaptive=False))


def test_a_bad_noise_adaptive_value_is_one_line(tmp_path: Path, capsys) -> None:
    path = _viewline_nifti(tmp_path, "magnitude")
    with pytest.raises(SystemExit) as exit_info:
        _run(path, tmp_path / "o", noise_adaptive="maybe")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --noise_adaptive must be true or false, not 'maybe'"
    assert not (tmp_path / "o").exists()


@needs_weights
def test_missing_companion_weights_are_one_line(tmp_path: Path, capsys) -> None:
    path = _viewline_nifti(tmp_path, "complex")
    with pytest.raises(SystemExit) as exit_info:
        _run(path, tmp_path / "o", noise_robust_model_path=str(tmp_path / "absent.pt"))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "absent.pt" in error and "--noise_adaptive false" in error
    assert len(error.splitlines()) == 1 and not (tmp_path / "o").exists()


def test_an_image_with_negative_pixels_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    """Rule 5: Gaussian noise added to a magnitude with its sign kept is not a magnitude image; mapped as given it read
    NMAE ≈ 8, so the bundle says what to do instead of mapping it; a non-negative image (|·| of it) runs."""
    signed = _viewline_nifti(tmp_path, "signed")
    data, affine, _ = load_nifti(signed)
    assert (data < 0).any()
    with pytest.raises(SystemExit) as exit_info:
        _run(signed, tmp_path / "s")
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "rod_signed.nii.gz" in error and "negative pixel(s)" in error
    assert "pass its absolute value" in error and not (tmp_path / "s").exists()
    magnitude = tmp_path / "rod_abs.nii.gz"
    nib.save(nib.Nifti1Image(np.abs(data).astype(np.float32), affine), str(magnitude))
    if ROBUST_MODEL.is_file():
        assert _run(magnitude, tmp_path / "m").max() > 1.0

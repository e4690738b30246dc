"""The per-object report of a SPIO map and its level-trust factors (spio.object_report, session 44)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.inferers import SimpleInferer
from scipy import ndimage

from lightning_modules.io import save_nifti_atomic
from lightning_modules.spio import object_report as orp
from lightning_modules.spio.inferers import SHIFT_AVERAGE_PX, FlipAverageInferer, ShiftAverageInferer, shift

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


class _Asymmetric(torch.nn.Module):
    """A network whose six passes differ: an asymmetric 3 × 3 convolution of the first channel, then a square."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(18.0).reshape(1, 2, 3, 3) / 50)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) ** 2


def test_the_spread_is_the_standard_deviation_of_the_six_passes_and_the_mean_is_the_bundles_map():
    network = _Asymmetric()
    image = np.random.default_rng(0).random((2, 16, 12))
    mean, spread = orp.pass_mean_and_spread(network, image)
    x = torch.as_tensor(image, dtype=torch.float32)[None]
    with torch.no_grad():
        shipped = FlipAverageInferer(ShiftAverageInferer(SimpleInferer(), shifts=SHIFT_AVERAGE_PX))(x, network)[0, 0]
        passes = []  # every pass mapped back onto the image's grid, explicitly
        for flip in (False, True):
            xf = x.flip(2) if flip else x
            for s in SHIFT_AVERAGE_PX:
                m = shift(network(shift(xf, s, 2)), -s, 2)
                passes.append((m.flip(2) if flip else m)[0, 0].numpy())
    passes = np.stack(passes)
    assert mean == pytest.approx(shipped.numpy().astype(np.float64), rel=1e-5, abs=1e-6)
    inner = slice(1, -1)  # the edge rows along x are seen by fewer passes (zeros shifted in), as in the map itself
    expected = passes.astype(np.float64).std(0)[inner]
    assert spread[inner] == pytest.approx(expected, rel=1e-4, abs=1e-5)  # batched vs single passes: float32 rounding
    assert spread[inner].min() > 0


def test_an_image_the_bundle_maps_with_the_noise_robust_companion_gets_the_companions_passes():
    """As the bundle's ``NoiseModelInferer``: an image whose noise is not single-channel Rician (uniform noise here)
    is mapped by ``other_network``, so the mean of the passes is the companion's map, not the main network's."""
    from lightning_modules.spio.inferers import NoiseModelInferer
    from lightning_modules.spio.snr import rician_like

    network, other = _Asymmetric(), _Asymmetric()
    with torch.no_grad():
        other.conv.weight.mul_(-0.5)
    image = np.random.default_rng(1).random((2, 128, 128))
    assert not rician_like(image)
    mean, spread = orp.pass_mean_and_spread(network, image, other_network=other)
    inferer = NoiseModelInferer(FlipAverageInferer(ShiftAverageInferer(SimpleInferer(), shifts=SHIFT_AVERAGE_PX)),
                                other_network=other, other_coils=4)
    with torch.no_grad():
        expected = inferer(torch.as_tensor(image, dtype=torch.float32)[None], network)[0, 0].numpy()
    assert mean == pytest.approx(expected.astype(np.float64), rel=1e-5, abs=1e-6)
    assert not np.allclose(mean, orp.pass_mean_and_spread(network, image)[0])


def test_rows_give_each_objects_area_level_iron_centroid_and_its_spread_bin():
    concentration = np.zeros((40, 40))
    concentration[5:9, 10:15] = 2.0  # 20 px
    concentration[6, 12] = 4.0
    concentration[25:35, 25:35] = 0.5  # 100 px
    spread = np.zeros_like(concentration)
    spread[5:9, 10:15] = 0.01  # relative spread 0.01 / mean(2.1) ≈ 0.005: the lowest bin
    spread[25:35, 25:35] = 0.5  # relative spread 1.0: the highest
    affine = np.array([[0.0, 0.0, 1.0, 7.0], [0.4, 0.0, 0.0, -3.0], [0.0, 0.5, 0.0, 2.0], [0, 0, 0, 1.0]])
    rows = orp.object_rows(concentration, spread, (0.4, 0.5), affine)
    assert [r["label"] for r in rows] == [1, 2]
    first, second = rows
    assert first["area_mm2"] == pytest.approx(20 * 0.2) and first["level_ug_per_mm3"] == 2.0
    assert first["iron_ug_per_mm"] == pytest.approx((19 * 2.0 + 4.0) * 0.2)
    assert (first["x_mm"], first["y_mm"], first["z_mm"]) == pytest.approx((7.0, -3.0 + 6.5 * 0.4, 2.0 + 12 * 0.5))
    assert (first["p_no_iron"], first["level_factor_50"], first["level_factor_80"]) == orp.SPREAD_BIN_TABLE[0]
    assert second["relative_spread"] == pytest.approx(1.0)
    top = orp.SPREAD_BIN_TABLE[-1]
    assert (second["p_no_iron"], second["level_factor_80"]) == (top[0], top[2])
    assert orp.csv_text(rows).splitlines()[0] == ",".join(orp.COLUMNS)
    with pytest.raises(ValueError, match="not the map's"):
        orp.object_rows(concentration, spread[:10], (0.4, 0.5))


def test_the_table_says_more_spread_less_trust():
    table = np.array(orp.SPREAD_BIN_TABLE)
    assert len(table) == len(orp.SPREAD_BIN_EDGES) + 1 and np.all(np.diff(orp.SPREAD_BIN_EDGES) > 0)
    assert np.all((table[:, 0] >= 0) & (table[:, 0] <= 1)) and np.all(table[:, 2] >= table[:, 1])
    assert np.all(table[:, 1] >= 1) and np.all(np.diff(table[:, 2]) > 0)


def test_the_factors_hold_on_fresh_simulated_images():
    """Known truth: on fresh images of training's generator (seed 1, 18 600–18 659, never used to fit the table), the
    shipped bundle's objects have their level within the 80 % factor for most objects with iron, and within the
    50 % factor for about half — and would not if the spread were wrong (all in the lowest bin: far fewer)."""
    from spio_design_comparison import sample_arrays
    from spio_error_budget import best_scale
    from spio_object_accuracy import shipped_bundle

    from lightning_modules.spio.app import predict_concentration

    network, refiner = shipped_bundle()
    within_50, within_80, lowest_bin = [], [], []
    for image, truth, _ in sample_arrays(1, range(18600, 18660)):
        if not truth.any():
            continue
        final = predict_concentration(network, image, refiner=refiner)
        _, spread = orp.pass_mean_and_spread(network, image)
        labels, n = ndimage.label(final > 0)
        for row in orp.object_rows(final, spread, (0.390625, 0.390625)):
            k = labels == row["label"]
            scale = best_scale(truth[k], final[k])
            if scale <= 0:
                continue
            error = abs(np.log(scale))
            within_50.append(error <= np.log(row["level_factor_50"]))
            within_80.append(error <= np.log(row["level_factor_80"]))
            lowest_bin.append(error <= np.log(orp.SPREAD_BIN_TABLE[0][2]))
    assert len(within_80) > 100
    assert 0.35 <= np.mean(within_50) <= 0.65
    assert 0.68 <= np.mean(within_80) <= 0.92
    assert np.mean(lowest_bin) < np.mean(within_80) - 0.2


def test_the_command_line_reports_a_mapped_cylinder_and_refuses_a_map_of_another_image(cylinder_image, tmp_path,
                                                                                       capsys):
    """Known truth: a 6.98 µg Fe/mm³ rod of r = 3 mm in agar at 19 dB, mapped by the shipped bundle: one object, at
    the rod's place, its level within its 80 % factor of the truth, with little doubt that it is iron."""
    import nibabel as nib
    from spio_object_accuracy import shipped_bundle

    from lightning_modules.spio.app import predict_concentration

    path, affine, truth = cylinder_image
    image = np.moveaxis(np.asarray(nib.load(str(path)).dataobj)[:, :, 0, :], -1, 0)
    network, refiner = shipped_bundle()
    final = predict_concentration(network, image, refiner=refiner)
    save_nifti_atomic(final[:, :, None].astype(np.float32), affine, tmp_path / "map.nii.gz")
    orp.main(["--image", str(path), "--concentration", str(tmp_path / "map.nii.gz"), "--out", str(tmp_path / "o.csv")])
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert lines[0] == ",".join(orp.COLUMNS)
    rows = [dict(zip(orp.COLUMNS, (float(v) for v in line.split(",")), strict=True)) for line in lines[1:]]
    rod = max(rows, key=lambda r: r["iron_ug_per_mm"])
    centre = affine @ np.array([*np.argwhere(np.squeeze(truth) > 0).mean(0), 0.0, 1.0])
    assert np.linalg.norm(np.array([rod["x_mm"], rod["y_mm"], rod["z_mm"]]) - centre[:3]) < 1.0
    assert abs(np.log(rod["level_ug_per_mm3"] / 6.98)) <= np.log(rod["level_factor_80"])
    assert rod["p_no_iron"] <= 0.1
    capsys.readouterr()
    save_nifti_atomic(final[:, :, None].astype(np.float32), np.diag([0.5, 0.5, 1.0, 1.0]), tmp_path / "moved.nii.gz")
    with pytest.raises(SystemExit) as exit_info:
        orp.main(["--image", str(path), "--concentration", str(tmp_path / "moved.nii.gz")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "is not a map of" in err and err.count("\n") == 1, err


def test_the_bundle_writes_the_same_table_beside_its_map_with_objects_true(cylinder_image, tmp_path, capsys):
    """Session 45: ``--objects true`` adds ``{stem}_objects.csv`` (the capability's described output) to the run's
    atomic set, the very table the command line makes from that map and image; ``--objects maybe`` is a one-line
    error that writes nothing."""
    import subprocess

    from lightning_modules import capability

    path = cylinder_image[0]
    bundle = Path(__file__).resolve().parents[2] / "monai_bundles" / "spio_quantification"
    config = bundle / "configs" / "inference.json"
    runs = {value: subprocess.Popen([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(config),
                                     "--image", str(path), "--output_dir", str(tmp_path / value), "--device", "cpu",
                                     "--objects", value], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for value in ("true", "maybe")}
    results = {value: (child.communicate(timeout=300), child.returncode) for value, child in runs.items()}
    (_, err), code = results["true"]
    assert code == 0, err[-2000:]
    stem = path.name.removesuffix(".nii.gz")
    described = capability.outputs("spio_quantification", objects=True)
    assert set(described) == {"concentration", "objects"}
    assert {p.name for p in (tmp_path / "true").iterdir()} == {f"{stem}_{s}" for s in described.values()}
    orp.main(["--image", str(path), "--concentration", str(tmp_path / "true" / f"{stem}_concentration.nii.gz"),
              "--out", str(tmp_path / "cli.csv")])
    written = (tmp_path / "true" / f"{stem}_objects.csv").read_text()
    assert written == (tmp_path / "cli.csv").read_text()
    assert written.splitlines()[0] == ",".join(capability.columns("spio_quantification", "objects"))
    (_, err), code = results["maybe"]
    assert code == 2 and not (tmp_path / "maybe").exists()
    assert "--objects must be true or false, not 'maybe'" in err and err.strip().count("\n") == 0, err


def test_only_other_weights_than_the_shipped_ones_get_the_uncalibrated_warning(tmp_path):
    from lightning_modules.bundle_app import bundle_root

    shipped = Path(bundle_root("spio_quantification")) / "models" / "model.pt"
    assert orp.uncalibrated_warning(None) is None and orp.uncalibrated_warning(str(shipped)) is None
    other = tmp_path / "mine.pt"
    warning = orp.uncalibrated_warning(str(other))
    assert warning.startswith(f"warning: {other}: ") and "fitted on the shipped weights' passes" in warning
    assert "\n" not in warning

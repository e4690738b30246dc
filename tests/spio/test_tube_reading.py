"""Reading bench-phantom tubes from the concentration map (lightning_modules.spio.tube_reading, session 38)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_modules.io import save_nifti_atomic
from lightning_modules.spio import tube_reading as tr
from lightning_modules.spio.viewline import PIXEL_MM

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))  # the acceptance run's cylinder


def _two_tubes() -> tuple[np.ndarray, np.ndarray]:
    """Two square "lumens" 3 pixels apart, each with its iron spread over a 1-pixel ring (a walled tube as the
    shipped weights map it): 100 px at 4 and at 1 µg Fe/mm³, spread over 144 px each."""
    lumens = np.zeros((64, 64), np.int64)
    lumens[20:30, 20:30], lumens[20:30, 33:43] = 1, 2
    concentration = np.zeros((64, 64))
    concentration[19:31, 19:31] = 4.0 * 100 / 144
    concentration[19:31, 32:44] = 1.0 * 100 / 144
    return concentration, lumens


def test_summed_iron_over_the_lumen_area_reads_the_level_the_lumen_mean_misses():
    concentration, lumens = _two_tubes()
    rows = tr.tube_readings(concentration, lumens, (0.5, 0.5), margin_mm=1.5)
    assert [r["label"] for r in rows] == [1, 2]
    assert [r["lumen_area_mm2"] for r in rows] == pytest.approx([25.0, 25.0])
    assert [r["lumen_mean_ug_per_mm3"] for r in rows] == pytest.approx([4 * 100 / 144, 100 / 144])
    assert [r["concentration_ug_per_mm3"] for r in rows] == pytest.approx([4.0, 1.0])
    assert [r["iron_ug_per_mm"] for r in rows] == pytest.approx([4.0 * 25, 1.0 * 25])


def test_a_known_inner_diameter_makes_a_rough_labelmap_read_right():
    """Labels drawn one pixel too large on every side (140 pixels for 100): their own area reads the tubes 140/100
    too low; the known
    lumen area (a diameter whose π d² / 4 is the 25 mm² lumen) reads them exactly."""
    concentration, lumens = _two_tubes()
    rough = tr.exclusive_regions(lumens, 1)
    drawn = tr.tube_readings(concentration, rough, (0.5, 0.5), margin_mm=1.0)
    assert [r["concentration_ug_per_mm3"] for r in drawn] == pytest.approx([4.0 * 100 / 140, 100 / 140])
    diameter = 2 * np.sqrt(25.0 / np.pi)
    for diameters in ([diameter], [diameter, diameter]):
        known = tr.tube_readings(concentration, rough, (0.5, 0.5), margin_mm=1.0, inner_diameter_mm=diameters)
        assert [r["concentration_ug_per_mm3"] for r in known] == pytest.approx([4.0, 1.0])
        assert [r["drawn_area_mm2"] for r in known] == pytest.approx([35.0, 35.0])
        assert [r["lumen_area_mm2"] for r in known] == pytest.approx([25.0, 25.0])
    for bad in ([diameter] * 3, [0.0]):
        with pytest.raises(tr.InputError, match="one diameter > 0 for every tube or one per label"):
            tr.tube_readings(concentration, rough, (0.5, 0.5), inner_diameter_mm=bad)


def test_regions_are_exclusive_and_a_zero_margin_is_the_lumen():
    _, lumens = _two_tubes()
    regions = tr.exclusive_regions(lumens, 3)
    assert set(np.unique(regions)) == {0, 1, 2}
    assert np.all(regions[lumens > 0] == lumens[lumens > 0])
    assert regions[25, 31] == 1 and regions[25, 32] == 2          # the gap is split, not shared
    assert np.array_equal(tr.exclusive_regions(lumens, 0), lumens)
    assert not tr.exclusive_regions(np.zeros((8, 8), int), 3).any()


def test_a_walled_rod_mapped_by_the_shipped_bundle_reads_right_when_summed():
    """Known truth through the shipped weights: a rod of r = 3 mm along y at 3.49 µg Fe/mm³ inside a dark 0.7 mm
    wall, noise-free. The map's mean in the lumen reads ≈ 30 % low (iron spread over lumen and wall); the iron summed
    1.2 mm around the lumen over its area reads within 10 %."""
    from spio_accuracy import cylinder_phantom
    from spio_object_accuracy import shipped_bundle

    from lightning_modules.spio.app import predict_concentration

    network, refiner = shipped_bundle()
    image, truth, _, _ = cylinder_phantom(3.49, wall_mm=0.7)
    prediction = predict_concentration(network, image.numpy(), refiner=refiner)
    (row,) = tr.tube_readings(prediction, (truth > 0).astype(int), PIXEL_MM)
    assert row["lumen_mean_ug_per_mm3"] / 3.49 < 0.8
    assert row["concentration_ug_per_mm3"] / 3.49 == pytest.approx(1.0, abs=0.10)


def test_the_command_line_writes_a_csv_and_refuses_bad_input_in_one_line(tmp_path, capsys):
    concentration, lumens = _two_tubes()
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    save_nifti_atomic(concentration[:, :, None], affine, tmp_path / "map.nii.gz")
    save_nifti_atomic(lumens[:, :, None].astype(np.float32), affine, tmp_path / "lumens.nii.gz")
    tr.main(["--concentration", str(tmp_path / "map.nii.gz"), "--lumens", str(tmp_path / "lumens.nii.gz"),
             "--margin_mm", "1.5", "--out", str(tmp_path / "tubes.csv")])
    lines = (tmp_path / "tubes.csv").read_text().splitlines()
    assert lines[0] == ",".join(tr.COLUMNS) and len(lines) == 3
    assert [float(line.split(",")[-1]) for line in lines[1:]] == pytest.approx([4.0, 1.0], rel=1e-5)
    capsys.readouterr()
    save_nifti_atomic(lumens[:32, :, None].astype(np.float32), affine, tmp_path / "small.nii.gz")
    save_nifti_atomic(lumens[:, :, None] * 0.5, affine, tmp_path / "halves.nii.gz")
    save_nifti_atomic(lumens[:, :, None].astype(np.float32), np.diag([0.4, 0.4, 1.0, 1.0]), tmp_path / "moved.nii.gz")
    for lumen_file, message in (("small.nii.gz", "is not the concentration map's (64, 64)"),
                                ("halves.nii.gz", "must be whole numbers"),
                                ("moved.nii.gz", "affine is not the concentration map's"),
                                ("missing.nii.gz", "does not exist")):
        with pytest.raises(SystemExit) as exit_info:
            tr.main(["--concentration", str(tmp_path / "map.nii.gz"), "--lumens", str(tmp_path / lumen_file)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err

"""The SNR estimate of a View Line image (``lightning_modules/spio/snr.py``) and the bundle's report of it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lightning_modules.bundle_workflow import PATH_SUFFIX
from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.phantoms import agar_disk
from lightning_modules.spio.snr import (
    equivalent_coils,
    estimate_snr_db,
    gap_pixels,
    gap_quartile_ratio,
    line_and_gap_pixels,
    match_coil_noise_floor,
    noise_below_integer_step,
    noise_sigma,
    quantisation_step,
    rician_like,
    tissue_signal_estimate,
)
from lightning_modules.spio.transforms import ReportViewLineSNRd
from lightning_modules.spio.viewline import PIXEL_MM, line_centres_mm, pixel_centres_mm, simulate_viewline_with_field

NO_IRON = torch.zeros(acq.VIEWLINE_MATRIX[0], acq.VIEWLINE_NY, acq.VIEWLINE_MATRIX[1])


def _agar(snr_db: float, seed: int, noise_model: str = "complex") -> np.ndarray:
    image, _, _ = simulate_viewline_with_field(agar_disk(radius_mm=22.0), NO_IRON, snr_db=snr_db,
                                               generator=torch.Generator().manual_seed(seed), noise_model=noise_model)
    return image.numpy()


def test_line_and_gap_pixels_lie_wholly_inside_a_line_or_a_gap():
    line, gap = line_and_gap_pixels()
    z, centres = pixel_centres_mm(acq.VIEWLINE_MATRIX[1], PIXEL_MM[1]).numpy(), line_centres_mm().numpy()
    half_pixel, half_line = PIXEL_MM[1] / 2, acq.VIEWLINE_LINE_WIDTH_MM / 2
    inside = line >= 0
    assert np.all(np.abs(z[inside] - centres[line[inside]]) + half_pixel <= half_line + 1e-6)
    assert np.all(np.abs(z[gap][:, None] - centres[None, :]).min(axis=1) - half_pixel >= half_line - 1e-6)
    assert not np.any(inside & gap)
    assert set(line[inside]) == set(range(acq.VIEWLINE_N_LINES))  # every line has pixels wholly inside it
    assert gap.sum() >= acq.VIEWLINE_N_LINES - 1  # at least one per gap


def test_noise_sigma_reads_rayleigh_noise():
    sigma = 0.37
    noise = torch.randn((2, 2, *acq.VIEWLINE_MATRIX), generator=torch.Generator().manual_seed(0)) * sigma
    magnitude = torch.sqrt(noise[0] ** 2 + noise[1] ** 2).numpy()
    assert noise_sigma(magnitude) == pytest.approx(sigma, rel=0.05)


def test_noise_free_tissue_signal_is_the_simulators():
    image = _agar(math.inf, 0)
    signal = math.exp(-acq.VIEWLINE_TE_S * acq.VIEWLINE_R2STAR_TISSUE_PER_S)  # the agar disk's ρ = 1
    assert tissue_signal_estimate(image, 0.0) == pytest.approx(signal, rel=0.02)
    assert estimate_snr_db(image) == math.inf


@pytest.mark.parametrize("snr_db", [6.0, 11.0, 19.0, 28.0])
def test_estimate_recovers_the_simulated_snr_of_uniform_tissue(snr_db):
    estimates = [estimate_snr_db(_agar(snr_db, seed)) for seed in range(3)]
    assert np.allclose(estimates, snr_db, atol=1.0), estimates


def test_estimate_does_not_depend_on_the_intensity_scale():
    image = _agar(15.0, 1)
    assert estimate_snr_db(1234.0 * image) == pytest.approx(estimate_snr_db(image), abs=1e-6)


def test_report_warns_below_11_db_and_passes_the_data_unchanged(capsys):
    transform = ReportViewLineSNRd(keys="image")
    for snr_db, warned in ((7.0, True), (22.0, False)):
        image = torch.from_numpy(_agar(snr_db, 2))
        out = transform({"image": image, f"image{PATH_SUFFIX}": "V.nii.gz"})
        assert out["image"] is image
        line = capsys.readouterr().out.strip()
        assert line.startswith("warning: V.nii.gz: estimated SNR") == warned, line
        assert "V.nii.gz: estimated SNR" in line
        assert abs(float(line.split("estimated SNR ")[1].split(" dB")[0]) - snr_db) <= 1.0, line


@pytest.mark.parametrize(("model", "ratio"), [  # median / lower quartile of chi with 2, 1, 8, 4, 16, 64 dof
    ("complex", 1.552), ("magnitude", 2.117), ("sos4", 1.203), ("sos2", 1.321), ("sos8", 1.135), ("sos32", 1.063)])
def test_the_gap_quartile_ratio_tells_the_noise_models_apart(model, ratio):
    image = _agar(12.0, 4, noise_model=model)
    assert gap_quartile_ratio(image) == pytest.approx(ratio, rel=0.04)
    assert rician_like(image) == (model == "complex")
    assert rician_like(_agar(math.inf, 4, noise_model=model))  # noise-free: nothing to judge


@pytest.mark.parametrize("model", ["magnitude", "sos4"])
def test_report_warns_instead_of_an_snr_when_the_noise_is_not_rician(capsys, model):
    ReportViewLineSNRd(keys="image")({"image": torch.from_numpy(_agar(20.0, 5, noise_model=model)),
                                      f"image{PATH_SUFFIX}": "V.nii.gz"})
    line = capsys.readouterr().out.strip()
    assert line.startswith("warning: V.nii.gz: the noise between the lines is not that of a single-channel")
    assert "no SNR estimated" in line and "estimated SNR" not in line


def test_report_warns_when_the_lines_hold_no_signal(capsys):
    noise = torch.randn((2, 2, *acq.VIEWLINE_MATRIX), generator=torch.Generator().manual_seed(6))
    magnitude = torch.sqrt(noise[0] ** 2 + noise[1] ** 2)  # Rayleigh noise ...
    line, _ = line_and_gap_pixels()
    magnitude[:, :, torch.from_numpy(line >= 0)] = 0.0       # ... and nothing where the lines are
    ReportViewLineSNRd(keys="image")({"image": magnitude, f"image{PATH_SUFFIX}": "V.nii.gz"})
    line = capsys.readouterr().out.strip()
    assert line.startswith("warning: V.nii.gz: no tissue signal found on the lines"), line


# ---------------------------------------------------------------- integer-valued images (session 34, rule 4)

def _rounded(image: np.ndarray, steps_per_sigma: float) -> np.ndarray:
    return np.round(image * (steps_per_sigma / noise_sigma(image)))


def test_float_images_gap_pixels_are_not_dithered():
    image = _agar(15.0, 7)
    _, gap = line_and_gap_pixels()
    np.testing.assert_array_equal(gap_pixels(image), image[:, :, gap].astype(np.float64))


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_integer_images_keep_their_noise_model_and_snr(steps):
    rician, magnitude = _agar(15.0, 8), _agar(15.0, 8, noise_model="magnitude")
    rounded = _rounded(rician, steps)
    assert rician_like(rounded) and not rician_like(_rounded(magnitude, steps))
    assert abs(estimate_snr_db(rounded) - estimate_snr_db(rician)) < 0.5
    assert rician_like(rounded) == rician_like(rounded.copy())  # the dither is seeded: the same answer every time
    assert gap_quartile_ratio(rounded) == gap_quartile_ratio(rounded.copy())


def test_integer_noise_below_one_step_is_not_judged():
    rounded = _rounded(_agar(15.0, 9, noise_model="magnitude"), 0.4)
    assert noise_below_integer_step(rounded) and rician_like(rounded)
    assert not noise_below_integer_step(_rounded(_agar(15.0, 9, noise_model="magnitude"), 3))
    noise_free = np.round(1000 * _agar(math.inf, 9))
    assert rician_like(noise_free) and estimate_snr_db(noise_free) == math.inf


@pytest.mark.parametrize("scale", [0.37, 24.4])
def test_quantised_images_of_any_step_are_judged_as_integer_ones(scale):
    """A NIfTI scl_slope makes the stored integers k·slope: the same answers as the integers."""
    for model in ("complex", "magnitude"):
        integers = _rounded(_agar(15.0, 10, noise_model=model), 2)
        scaled = integers * scale
        _, gap = line_and_gap_pixels()
        assert quantisation_step(scaled[:, :, gap]) == pytest.approx(scale)
        assert rician_like(scaled) == rician_like(integers) == (model == "complex")
    assert quantisation_step(_agar(15.0, 10)[:, :, gap]) is None  # continuous values: no dither


@pytest.mark.parametrize(("model", "coils"), [("complex", 1), ("magnitude", 1), ("sos2", 2), ("sos4", 4), ("sos8", 8),
                                              ("sos32", 32)])
def test_equivalent_coils_reads_the_coil_count(model, coils):
    """Session 35: the χ₂N whose quartile ratio the gap pixels have; Gaussian noise on the magnitude (a heavier lower
    tail than Rayleigh's) and a noise-free image read as one coil."""
    assert equivalent_coils(_agar(12.0, 5, noise_model=model)) == pytest.approx(coils, rel=0.1)
    assert equivalent_coils(_agar(math.inf, 5, noise_model=model)) == 1.0


def test_matching_lowers_a_many_coil_floor_to_the_companions():
    """32 coils matched to 4: excited tissue's mean power becomes that of the same tissue seen by 4 coils (A² + 8σ²),
    within a few per cent; the gaps' falls from 8 times the 4-coil image's to within 30 % of it (the clip at 0 of a
    background wider than χ₈ keeps a little). Images of fewer coils are passed as given (the same array); a 4-coil
    image, whose estimate scatters around 4, is changed by a tiny fraction of its floor (the matching is continuous
    in N, no threshold)."""
    line, gap = line_and_gap_pixels()
    many, four = _agar(12.0, 6, noise_model="sos32"), _agar(12.0, 7, noise_model="sos4")
    matched = match_coil_noise_floor(many, 4)
    assert matched.shape == many.shape and matched.dtype == many.dtype and (matched >= 0).all()
    def power(image: np.ndarray, pixels: np.ndarray) -> float:
        return float((image[pixels].astype(np.float64) ** 2).mean())

    noise_free = _agar(math.inf, 6)
    lines = (noise_free > 0.5 * noise_free.max()) & (line >= 0)  # excited tissue
    gaps = np.broadcast_to(gap >= 0, many.shape)
    assert power(matched, lines) == pytest.approx(power(four, lines), rel=0.05)
    assert power(many, lines) > 1.1 * power(four, lines)  # what the matching removes
    assert power(matched, gaps) == pytest.approx(power(four, gaps), rel=0.3)
    assert power(many, gaps) > 6 * power(four, gaps)
    for model in ("complex", "magnitude", "sos2"):
        image = _agar(12.0, 8, noise_model=model)
        assert match_coil_noise_floor(image, 4) is image
    image = _agar(12.0, 8, noise_model="sos4")
    assert power(match_coil_noise_floor(image, 4), gaps) == pytest.approx(power(image, gaps), rel=0.05)

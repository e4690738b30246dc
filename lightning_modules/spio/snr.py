"""The SNR of a View Line image, estimated from the image alone, and a check of its noise model (issue 24,
session 33).

The maps' accuracy depends most on the noise (the bundle's docs, "Measured accuracy": NMAE ≈ 0.3 above 11 dB,
≈ 0.5–0.6 at 5–11 dB on simulated images), so the bundle tells the user the SNR it sees. The definition is the
simulator's (:func:`~lightning_modules.spio.viewline.add_noise`): ``SNR[dB] = 20 log10(S / σ)`` with S the signal
of excited, SPIO-free tissue and σ the standard deviation of the complex noise (FIELD_NOTES.md, SPIO: over tissue,
not over the dark gaps between the lines).

- **σ** from the gaps between the lines: pixels whose whole extent lies in the 1 mm between two neighbouring lines
  carry no excited spin in either channel (away from iron, which bends lines into them), so their magnitude is
  Rayleigh(σ), whose lower quartile is σ·√(−2 ln 0.75); the quartile ignores the minority of gap pixels a bent
  line reaches.
- **S** from the lines' centres: pixels whose whole extent lies within a line, in that line's channel, are
  ρ·e^(−TE·R2*) plus noise. Tissue is where their local amplitude (the mean power along x over 9 pixels minus the
  noise power 2σ², square-rooted) exceeds a tenth of its maximum (the simulator's tissue: ρ above a tenth of its
  maximum); S is the square root of the mean power there minus 2σ² (Rician power, ``E[M²] = A² + 2σ²``) without
  the darkest fifth of those pixels (iron darkens tissue and bends lines away; the simulator's S is of SPIO-free
  tissue).
- **The noise model**: the estimate (and the network) assume single-channel Rician noise. The gap pixels' median over
  their lower quartile is 1.55 for it, ≈ 2.12 for real Gaussian noise on the magnitude and ≈ 1.21 for four coils
  combined by root-sum-of-squares (:func:`rician_like`).
- **Coils** (session 35): N coils combined by root-sum-of-squares leave a χ₂N(σ) background of power 2Nσ²; the same
  ratio gives N (:func:`equivalent_coils`; for coils of unequal noise or correlated noise, an effective N) and
  :func:`match_coil_noise_floor` lowers the floor to that of fewer coils.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.stats import chi

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.viewline import PIXEL_MM, line_centres_mm, pixel_centres_mm

#: Quantile of the gap pixels σ is read from (low, so that the lines iron bends into the gaps hardly move it) and
#: that quantile of a Rayleigh(σ) variable over σ.
GAP_QUANTILE = 0.25
RAYLEIGH_QUANTILE_OVER_SIGMA = math.sqrt(-2.0 * math.log(1.0 - GAP_QUANTILE))
#: Pixels along x over which the lines' power is averaged to find tissue.
TISSUE_WINDOW_PX = 9
#: Tissue: local signal amplitude above this fraction of its maximum (taken as its 99.9th percentile, which noise
#: hardly moves): the simulator's tissue is ρ > 10 % of its maximum.
TISSUE_FRACTION = 0.1
TOP_PERCENTILE = 99.9
#: The darkest fifth of the tissue pixels is left out of S: iron darkens tissue (R2*) and bends lines out of their
#: nominal pixels, which the simulator's S (of SPIO-free tissue) does not see (a tenth read ≈ 1 dB low on training's
#: generator, benchmarks/results/spio/decision_rule_session33.md).
DARK_TAIL_FRACTION = 0.2
#: The gap pixels' median over their lower quartile for single-channel Rician noise (Rayleigh: √(ln 4)/√(−2 ln ¾) =
#: 1.552) lies in this range; real Gaussian noise on the magnitude gives ≈ 2.12 (half-normal), four coils combined by
#: root-sum-of-squares ≈ 1.21 (χ₈): session 33, addendum 3.
RICIAN_RATIO_RANGE = (1.38, 1.83)
#: Coil counts of the table :func:`equivalent_coils` inverts (χ₂N quartile ratios, N = 1 … 1024, continuous).
_COILS_GRID = np.geomspace(1.0, 1024.0, 512)
_CHI_QUARTILES = np.stack([chi.ppf(GAP_QUANTILE, 2 * _COILS_GRID), chi.ppf(0.5, 2 * _COILS_GRID)], axis=1)
_CHI_RATIOS = _CHI_QUARTILES[:, 1] / _CHI_QUARTILES[:, 0]  # decreasing in N
#: Seed of the dither of integer-valued images' gap pixels (:func:`gap_pixels`): the same image, the same answer.
DITHER_SEED = 0
#: Below this (dB), the bundle warns that the map is much less accurate (the docs' 5–11 dB bin).
LOW_SNR_DB = 11.0
#: Above this (dB), the estimate is reported as noise-free (∞).
NOISE_FREE_DB = 60.0


def line_and_gap_pixels(nz: int = acq.VIEWLINE_MATRIX[1], pixel_mm: float = PIXEL_MM[1],
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Along z: the line (0 … 24) whose width wholly holds each pixel (−1 if none), and whether a pixel lies wholly in
    a gap between two neighbouring lines; shapes (nz,), from the nominal geometry of
    :mod:`~lightning_modules.spio.acquisition`."""
    z = pixel_centres_mm(nz, pixel_mm).numpy()
    lines = line_centres_mm().numpy()
    half_pixel, half_line = pixel_mm / 2, acq.VIEWLINE_LINE_WIDTH_MM / 2
    distance = np.abs(z[:, None] - lines[None, :])
    nearest = distance.argmin(axis=1)
    line = np.where(distance.min(axis=1) + half_pixel <= half_line, nearest, -1)
    gap_half = (acq.VIEWLINE_LINE_SPACING_MM - acq.VIEWLINE_LINE_WIDTH_MM) / 2
    gap_centres = lines[:-1] + acq.VIEWLINE_LINE_SPACING_MM / 2
    gap = np.abs(z[:, None] - gap_centres[None, :]).min(axis=1) + half_pixel <= gap_half
    return line, gap


def quantisation_step(pixels: np.ndarray) -> float | None:
    """The step of values stored on a uniform grid — integers (DICOM, 8-bit exports), or integers times a NIfTI
    ``scl_slope`` — or None for continuous values (nearly all distinct) and for a single value. (An intercept would
    shift the background, which the noise check and the SNR estimate assume to be zero-based magnitudes.)"""
    values = np.unique(np.asarray(pixels, dtype=np.float64))
    if values.size < 2 or values.size > pixels.size // 4:
        return None
    step = float(np.diff(values).min())
    k = (values - values[0]) / step
    return step if np.allclose(k, np.round(k), rtol=0, atol=1e-3) else None


def _dithered_gap_pixels(image: np.ndarray) -> tuple[np.ndarray, float | None]:
    """:func:`gap_pixels` and their :func:`quantisation_step` (None: continuous values, not dithered)."""
    _, gap = line_and_gap_pixels(np.shape(image)[-1])
    pixels = np.asarray(image, dtype=np.float64)[:, :, gap]
    step = quantisation_step(pixels)
    if step is not None:
        pixels = pixels + step * np.random.default_rng(DITHER_SEED).uniform(-0.5, 0.5, pixels.shape)
    return pixels, step


def gap_pixels(image: np.ndarray) -> np.ndarray:
    """The gap pixels of both channels of a View Line magnitude image (2, x, z), float64. Quantised values
    (:func:`quantisation_step`) are dithered by U(−step/2, step/2) (fixed seed) so that noise of a few steps keeps the
    shape of its distribution for the quantiles below (session 34, rule 4: without it, Rician noise of σ = 1–3
    integer steps reads as another noise model)."""
    return _dithered_gap_pixels(image)[0]


def noise_sigma(image: np.ndarray) -> float:
    """σ of the complex noise of a View Line magnitude image (2, x, z), from the gap pixels of both channels."""
    return float(np.quantile(gap_pixels(image), GAP_QUANTILE)) / RAYLEIGH_QUANTILE_OVER_SIGMA


def _quartile_ratio(pixels: np.ndarray) -> tuple[float, float, float]:
    """(median / lower quartile, ``math.inf`` when the quartile is not positive; median; lower quartile) of gap
    pixels."""
    lower, median = np.quantile(pixels, [GAP_QUANTILE, 0.5])
    return (float(median / lower) if lower > 0 else math.inf), float(median), float(lower)


def gap_quartile_ratio(image: np.ndarray) -> float:
    """The gap pixels' median over their lower quartile (both channels) of a View Line magnitude image (2, x, z): a
    shape of the noise distribution independent of its scale (``math.inf`` without noise)."""
    return _quartile_ratio(gap_pixels(image))[0]


def noise_below_integer_step(image: np.ndarray) -> bool:
    """Whether ``image``'s gap pixels are quantised (:func:`quantisation_step`) with noise too small for its shape to
    be told from the quantisation (their dithered median below one step)."""
    pixels, step = _dithered_gap_pixels(image)
    return step is not None and 0 < _quartile_ratio(pixels)[1] < step


def rician_like(image: np.ndarray) -> bool:
    """Whether the noise between the lines looks like a single-channel magnitude image's (Rician, what the network
    was trained on); a noise-free image, and an integer-valued one whose noise is below one step, count as such
    (nothing to judge)."""
    pixels, step = _dithered_gap_pixels(image)
    ratio, median, _ = _quartile_ratio(pixels)
    in_range = math.isinf(ratio) or RICIAN_RATIO_RANGE[0] <= ratio <= RICIAN_RATIO_RANGE[1]
    return in_range or (step is not None and 0 < median < step)


def _coils_and_sigma(pixels: np.ndarray) -> tuple[float, float]:
    """(N, σ) of gap pixels read as a χ₂N(σ) sample: N from their median over lower quartile (1 for a ratio at or
    above Rayleigh's, :data:`_COILS_GRID`'s top for one below the table), σ from the lower quartile."""
    ratio, _, lower = _quartile_ratio(pixels)
    if math.isinf(ratio):
        return 1.0, 0.0
    coils = float(np.interp(ratio, _CHI_RATIOS[::-1], _COILS_GRID[::-1]))  # clipped to the table's ends
    return coils, lower / float(np.interp(coils, _COILS_GRID, _CHI_QUARTILES[:, 0]))


def equivalent_coils(image: np.ndarray) -> float:
    """N, the coils a root-sum-of-squares image (2, x, z) looks combined from: the χ₂N whose median over lower
    quartile is the gap pixels' (1 for single-channel Rician noise and for noise with a heavier lower tail, such as
    Gaussian noise on the magnitude; continuous; 1 for a noise-free image)."""
    return _coils_and_sigma(gap_pixels(image))[0]


def match_coil_noise_floor(image: np.ndarray, coils: float) -> np.ndarray:
    """``image`` (2, x, z) with the noise floor of :func:`equivalent_coils` N lowered to that of ``coils``:
    √max(M² − 2(N − coils)σ², 0), so that tissue has the power A² + 2·coils·σ² of a ``coils``-coil image (session 35:
    the noise-robust companion learned 4 coils). Returned as given (the same array) when N ≤ ``coils``."""
    found, sigma = _coils_and_sigma(gap_pixels(image))
    if found <= coils:
        return image
    power = np.asarray(image, dtype=np.float64) ** 2 - 2.0 * (found - coils) * sigma**2
    return np.sqrt(np.clip(power, 0.0, None)).astype(np.asarray(image).dtype, copy=False)


def tissue_signal_estimate(image: np.ndarray, sigma: float) -> float:
    """S, the signal of excited SPIO-free tissue, from the line-centre pixels of a View Line image (2, x, z)."""
    image = np.asarray(image, dtype=np.float64)
    line, _ = line_and_gap_pixels(image.shape[-1])
    columns = np.flatnonzero(line >= 0)
    power = image[line[columns] % 2, :, columns].T ** 2  # (x, line-centre pixels), each in its line's channel
    local_power = ndimage.uniform_filter1d(power, TISSUE_WINDOW_PX, axis=0, mode="nearest")
    amplitude = np.sqrt(np.clip(local_power - 2 * sigma**2, 0.0, None))
    top = float(np.percentile(amplitude, TOP_PERCENTILE))
    if top <= 0:
        return 0.0
    tissue_power = np.sort(power[amplitude > TISSUE_FRACTION * top])
    kept = tissue_power[int(DARK_TAIL_FRACTION * len(tissue_power)):]
    return math.sqrt(max(float(kept.mean()) - 2 * sigma**2, 0.0))


def estimate_snr_db(image: np.ndarray) -> float:
    """SNR in dB (``math.inf`` above :data:`NOISE_FREE_DB`) of a View Line magnitude image (2, x, z), any scale."""
    sigma = noise_sigma(image)
    signal = tissue_signal_estimate(image, sigma)
    if signal <= 0:
        return -math.inf
    if sigma <= signal * 10 ** (-NOISE_FREE_DB / 20):
        return math.inf
    return 20 * math.log10(signal / sigma)

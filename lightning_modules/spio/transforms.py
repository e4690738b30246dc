"""MONAI dictionary transforms of the ``spio_quantification`` bundle: one View Line image from file to DeepSPIO's
input, and the network's map back to the file's grid.

The bundle's ``inference.json`` chains them after :class:`lightning_modules.bundle_workflow.LoadNiftid` (which
reads ``image`` as a float64 :class:`~monai.data.MetaTensor` (nx, nz, 1, 2) with its affine)::

    CheckViewLineImaged   the trained matrix (nx, nz, 1, 2), not all zero, an intensity scale the network can
                          normalise (99th percentile > 0, no pixel over MAX_INTENSITY_OVER_P99 × it); a warning
                          for a pixel size other than the trained one
    ViewLineChannelsd     ``image`` as the network's (2, nx, nz) float32 input (channel 0 even, 1 odd lines)
    ReportViewLineSNRd    prints the SNR estimated from the image, a warning below 11 dB or for noise other than
                          single-channel Rician (session 33)

and, after the inferer (:class:`lightning_modules.spio.inferers.FlipAverageInferer`)::

    ConcentrationFloord   the map ≥ 0 with values below CONCENTRATION_FLOOR_UG_PER_MM3 set to 0
    (SimulationRefined and ConcentrationFloord again: the refiner, lightning_modules.spio.simulation_refiner)
    ObjectLevelShrinkd    every object's core pulled half-way to its own median level (0.14.0, session 41)
    Transposed            MONAI's: (1, nx, nz) → (nx, nz, 1), the input's grid for SaveOutputsd

Every problem a user can cause is an :class:`~lightning_modules.io.InputError` naming the file and the acquisition
the network assumes, which the evaluator prints as one line. :func:`check_case_header` is the same case's shape
check from its header only (nothing read), run on every case of a batch before anything is written.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.transforms import MapTransform
from scipy import ndimage

from lightning_modules.bundle_workflow import PATH_SUFFIX, plain_tensor, read_nifti_header
from lightning_modules.io import InputError, voxel_sizes_mm
from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.snr import LOW_SNR_DB, equivalent_coils, estimate_snr_db, gap_quartile_ratio, rician_like
from lightning_modules.spio.viewline import PIXEL_MM, TRAINING_COILS

#: What the loaded file is called in messages.
WHAT = {"image": "View Line image"}

#: Shape of a View Line image file: (nx, nz, 1, 2), x phase-encode, z readout, 4th axis even / odd lines.
VIEWLINE_FILE_SHAPE = (*acq.VIEWLINE_MATRIX, 1, 2)

#: Largest pixel accepted, as a multiple of the image's 99th-percentile (channel-summed) intensity, which the
#: network divides by: a magnitude image's brightest pixels are a few times that, a corrupt pixel far more.
MAX_INTENSITY_OVER_P99 = 1000.0

#: Predicted concentrations below this are reported as 0 µg Fe/mm³: they lie under the lowest concentration the
#: network was trained on (0.22) and are mostly leakage around objects. Chosen, with the flip × shift average
#: (0.5.0; 0.1 with the flip average alone), on simulated samples 1000–1299 of seed 1 (neither training nor the
#: validation or test sets): ``benchmarks/spio_postprocessing.py``.
CONCENTRATION_FLOOR_UG_PER_MM3 = 0.15

#: Object-level shrinkage (0.14.0, issue 24 session 41, :func:`shrink_object_levels`): an object's core is its pixels at
#: or above this fraction of the object's 75th-percentile concentration …
OBJECT_CORE_FRACTION = 0.5
#: … and every core pixel moves this fraction of the way to the core's median. Both chosen on development sets
#: (``benchmarks/results/spio/decision_rule_session41.md``); 0 switches the step off.
OBJECT_LEVEL_SHRINKAGE = 0.5

#: The acquisition the shipped network was trained for, quoted in errors and in the bundle's docs.
ACQUISITION = (
    f"a View Line image of shape {VIEWLINE_FILE_SHAPE} "
    f"(x phase-encode, z readout along B0, 4th axis = even-line and odd-line images) acquired at "
    f"{acq.VIEWLINE_B0_TESLA:g} T with FOV {acq.VIEWLINE_FOV_MM[0]:g} × {acq.VIEWLINE_FOV_MM[1]:g} mm, "
    f"{acq.VIEWLINE_N_LINES} lines of {acq.VIEWLINE_LINE_WIDTH_MM:g} mm every {acq.VIEWLINE_LINE_SPACING_MM:g} mm, "
    f"Gz {acq.VIEWLINE_GZ_T_PER_M * 1e3:g} mT/m, Gr {acq.VIEWLINE_GR_T_PER_M * 1e3:g} mT/m, "
    f"TE {acq.VIEWLINE_TE_S * 1e3:g} ms"
)


def check_viewline_shape(shape: tuple[int, ...], path: str) -> None:
    """Refuse a file shape other than the trained (nx, nz, 1, 2), naming the acquisition the network assumes.

    Raises:
        InputError: the shape, with a hint when the two channels were stored as one.
    """
    if tuple(shape) != VIEWLINE_FILE_SHAPE:
        problem = f"has shape {tuple(shape)}"
        if len(shape) == 4 and shape[3] == 1:
            problem += " (one channel; the even- and odd-line images must be separate volumes)"
        raise InputError(f"View Line image {path!r} {problem}; the network expects {ACQUISITION}")


def check_case_header(case: Mapping) -> None:
    """Everything about one case (a dict with the command-line keys) that its header shows, without reading voxel
    data: the file exists, is a readable NIfTI with a usable affine, of shape (nx, nz, 1, 2).

    Raises:
        InputError: the first problem, as one sentence naming the file.
    """
    path = str(case["image"])
    shape, _ = read_nifti_header(path, what=WHAT["image"])
    check_viewline_shape(shape, path)


def check_plausible_intensities(image: np.ndarray, path: str) -> None:
    """Refuse an image (nx, nz, 2) whose intensity scale the network cannot normalise: nothing above 0 in 99 % of
    the pixels, or pixels beyond ``MAX_INTENSITY_OVER_P99`` times the 99th percentile (a corrupt pixel)."""
    total = np.abs(image).sum(axis=-1)
    p99 = float(np.percentile(total, 99))
    if p99 <= 0:
        raise InputError(f"View Line image {path!r} is zero in more than 99 % of its pixels; the network expects "
                         f"a magnitude image of tissue or phantom across the field of view")
    largest = float(total.max())
    if largest > MAX_INTENSITY_OVER_P99 * p99:
        n_bad = int(np.count_nonzero(total > MAX_INTENSITY_OVER_P99 * p99))
        raise InputError(f"View Line image {path!r} has {n_bad} pixel(s) up to {largest:.3g}, over "
                         f"{MAX_INTENSITY_OVER_P99:g}× its 99th-percentile intensity {p99:.3g}; the network "
                         f"expects a magnitude image without such outliers: replace the corrupt pixels")


def check_magnitude(image: np.ndarray, path: str) -> None:
    """Refuse an image with negative pixels: a magnitude image has none (session 34, rule 5). They come from noise added
    to a magnitude with its sign kept (a simple simulator), a real-valued reconstruction or an interpolation's
    undershoot; mapped as given, such images read NMAE ≈ 8 on simulated samples, their absolute values ≈ 0.4."""
    negative = image < 0
    if negative.any():
        raise InputError(f"View Line image {path!r} has {int(negative.sum())} negative pixel(s) (down to "
                         f"{float(image.min()):.3g}); a magnitude image has none: if noise was added with its sign "
                         f"kept, pass its absolute value; if an interpolation undershot, clip it at 0")


class CheckViewLineImaged(MapTransform):
    """Refuse a loaded View Line image (nx, nz, 1, 2) the network cannot quantify, as one :class:`InputError`
    naming the file: a shape other than the trained one, all zero, negative pixels (:func:`check_magnitude`), or an
    implausible intensity scale (:func:`check_plausible_intensities`). A pixel size more than 5 % off the trained one
    prints a warning (the concentrations may be off) and goes on."""

    def __init__(self, keys: Sequence[Hashable] | Hashable = "image") -> None:
        super().__init__(keys)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            path = str(d.get(f"{key}{PATH_SUFFIX}", d[key]))
            image = plain_tensor(d[key]).numpy()
            check_viewline_shape(image.shape, path)
            if not np.any(image):
                raise InputError(f"View Line image {path!r} is zero everywhere; the network expects {ACQUISITION}")
            check_magnitude(image, path)
            check_plausible_intensities(image[:, :, 0, :], path)
            pixel_mm = voxel_sizes_mm(np.asarray(d[key].affine, dtype=np.float64))[[0, 1]]
            if not np.allclose(pixel_mm, PIXEL_MM, rtol=0.05):
                print(f"warning: {path}: pixel size {pixel_mm.round(3).tolist()} mm differs from the trained "
                      f"{[round(p, 3) for p in PIXEL_MM]} mm; the concentrations may be off", flush=True)
        return d


def snr_report(path: str, image: np.ndarray, *, robust_weights: bool = False) -> str:
    """The line the bundle prints about an image's noise (session 33): its SNR estimated from the image, a warning
    below :data:`~lightning_modules.spio.snr.LOW_SNR_DB`, where the maps are much less accurate (the bundle's docs,
    "Measured accuracy"), or a warning instead of a number when the noise between the lines is not that of a
    single-channel magnitude image (:func:`~lightning_modules.spio.snr.rician_like`), which says whether the image
    is mapped with the noise-robust weights (``robust_weights``, 0.11.0)."""
    if not rician_like(image):
        what = (f"warning: {path}: the noise between the lines is not that of a single-channel magnitude image "
                f"(median / lower quartile {gap_quartile_ratio(image):.2f}; Rician 1.55, e.g. multi-coil "
                f"root-sum-of-squares ≈ 1.2, Gaussian noise on the magnitude ≈ 2.1): ")
        if robust_weights:
            coils = equivalent_coils(image)
            floor = (f"; it looks like root-sum-of-squares of ≈ {coils:.0f} coils, so its noise floor was first "
                     f"lowered to that of the {TRAINING_COILS} coils those weights learned" if coils > TRAINING_COILS
                     else "")
            return what + ("mapped with the noise-robust weights (models/model_noise_robust.pt), trained on such "
                           f"noise too{floor}; less accurate than on single-channel images (docs/README.md, "
                           "Limitations); no SNR estimated")
        return what + ("the network was trained on single-channel images only and is much less accurate on others "
                       "(docs/README.md, Limitations); no SNR estimated")
    snr_db = estimate_snr_db(image)
    if snr_db == float("-inf"):
        return (f"warning: {path}: no tissue signal found on the lines (only noise?): the map cannot be trusted; "
                f"the network expects {ACQUISITION}")
    if snr_db == float("inf"):
        return f"{path}: estimated SNR ∞ (no noise found between the lines)"
    if snr_db < LOW_SNR_DB:
        return (f"warning: {path}: estimated SNR {snr_db:.0f} dB, below {LOW_SNR_DB:.0f} dB: on simulated images the "
                f"maps' NMAE is about 0.5-0.6 at 5-11 dB against about 0.3 above (docs/README.md, Measured accuracy)")
    return f"{path}: estimated SNR {snr_db:.0f} dB"


class ReportViewLineSNRd(MapTransform):
    """Print each View Line image's SNR as estimated from the image (:func:`snr_report`, issue 24 session 33), with
    a warning below :data:`~lightning_modules.spio.snr.LOW_SNR_DB` or when the noise is not single-channel Rician
    (``robust_weights``: such images are mapped with the noise-robust weights); the data pass unchanged. Expects the
    network's input layout (2, nx, nz)."""

    def __init__(self, keys: Sequence[Hashable] | Hashable = "image", *, robust_weights: bool = False) -> None:
        super().__init__(keys)
        self.robust_weights = bool(robust_weights)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            path = str(d.get(f"{key}{PATH_SUFFIX}", "image"))
            print(snr_report(path, plain_tensor(d[key]).numpy(), robust_weights=self.robust_weights), flush=True)
        return d


class ViewLineChannelsd(MapTransform):
    """A View Line image (nx, nz, 1, 2) as the network's input (2, nx, nz) float32: channel 0 the even-line image,
    channel 1 the odd-line image, in the file's intensity units (the network normalises them)."""

    def __init__(self, keys: Sequence[Hashable] | Hashable = "image") -> None:
        super().__init__(keys)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = plain_tensor(d[key])[:, :, 0, :].permute(2, 0, 1).to(torch.float32)
        return d


def floor_concentration(concentration: torch.Tensor,
                        floor_ug_per_mm3: float = CONCENTRATION_FLOOR_UG_PER_MM3) -> torch.Tensor:
    """``concentration`` (µg Fe/mm³, any shape) clamped at 0, with the values below ``floor_ug_per_mm3`` set to 0
    (a floor of 0 keeps every positive value)."""
    concentration = concentration.clamp_min(0.0)
    zero = torch.zeros((), dtype=concentration.dtype, device=concentration.device)
    return torch.where(concentration < floor_ug_per_mm3, zero, concentration)


def object_components(plane: np.ndarray,
                      support_ug_per_mm3: float = CONCENTRATION_FLOOR_UG_PER_MM3) -> tuple[np.ndarray, int]:
    """The objects of one map (x, z): (labels 0 … n, n) of the connected components (4-connectivity) of the pixels
    ≥ ``support_ug_per_mm3`` (the bundle's objects: :func:`object_cores`, the refiner's ``object_labels``)."""
    return ndimage.label(plane >= max(support_ug_per_mm3, np.finfo(plane.dtype).tiny))


def object_cores(plane: np.ndarray, *, core_fraction: float = OBJECT_CORE_FRACTION,
                 support_ug_per_mm3: float = CONCENTRATION_FLOOR_UG_PER_MM3) -> list[np.ndarray]:
    """The core (boolean mask) of every object of one map (x, z): an object is a connected component
    (4-connectivity) of the pixels ≥ ``support_ug_per_mm3``, its core the pixels ≥ ``core_fraction`` × the
    component's 75th percentile (:func:`shrink_object_levels`; also the refiner's training copy of the step)."""
    labels, n = object_components(plane, support_ug_per_mm3)
    cores = []
    for j in range(1, n + 1):
        component = labels == j
        cores.append(component & (plane >= core_fraction * np.percentile(plane[component], 75)))
    return cores


def shrink_object_levels(concentration: torch.Tensor | np.ndarray, *,
                         core_fraction: float = OBJECT_CORE_FRACTION,
                         strength: float = OBJECT_LEVEL_SHRINKAGE,
                         support_ug_per_mm3: float = CONCENTRATION_FLOOR_UG_PER_MM3) -> torch.Tensor | np.ndarray:
    """Pull every object's core toward the object's own level: one concentration per object is what the simulator,
    tubes and vials give, and the estimator's level wanders inside an object (issue 24, session 41).

    An object is a connected component (4-connectivity) of the pixels ≥ ``support_ug_per_mm3`` in the last two axes
    (x, z) — after the bundle's floor, of the map's nonzero pixels; a map floored lower keeps its faint pixels as
    they are instead of letting them join objects into one; its core is the pixels ≥ ``core_fraction`` × the
    component's 75th percentile; each core pixel m becomes (1 − ``strength``)·m + ``strength``·median(core). Pixels
    outside cores, zeros and the total support are unchanged, and every value stays between the object's smallest
    and largest; ``strength`` 0 returns the map as given. Same type, shape and dtype as ``concentration``
    (µg Fe/mm³, ≥ 0).

    >>> m = np.zeros((1, 8, 8)); m[0, 2:5, 2:5] = [[2, 2, 2], [2, 4, 2], [2, 2, 2]]
    >>> float(shrink_object_levels(m)[0, 3, 3])
    3.0
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], not {strength}")
    as_tensor = isinstance(concentration, torch.Tensor)
    values = concentration.detach().cpu().numpy() if as_tensor else np.asarray(concentration)
    out = values.copy()
    if strength > 0:
        planes = out.reshape(-1, *values.shape[-2:])
        for plane in planes:
            for core in object_cores(plane, core_fraction=core_fraction, support_ug_per_mm3=support_ug_per_mm3):
                plane[core] = (1 - strength) * plane[core] + strength * np.median(plane[core])
        out = planes.reshape(values.shape)
    if as_tensor:  # a copy keeps the dtype, the device and a MetaTensor's metadata
        result = concentration.detach().clone()
        result.copy_(torch.as_tensor(out, dtype=concentration.dtype))
        return result
    return out


class ObjectLevelShrinkd(MapTransform):
    """The predicted map with every object's core pulled toward the object's own level
    (:func:`shrink_object_levels`; 0.14.0)."""

    def __init__(self, keys: Sequence[Hashable] | Hashable = "pred", *,
                 core_fraction: float = OBJECT_CORE_FRACTION, strength: float = OBJECT_LEVEL_SHRINKAGE) -> None:
        super().__init__(keys)
        self.core_fraction, self.strength = float(core_fraction), float(strength)
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], not {strength}")

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = shrink_object_levels(d[key], core_fraction=self.core_fraction, strength=self.strength)
        return d


class ConcentrationFloord(MapTransform):
    """The predicted map (µg Fe/mm³) ≥ 0, with the values below ``floor_ug_per_mm3`` reported as 0
    (:func:`floor_concentration`)."""

    def __init__(self, keys: Sequence[Hashable] | Hashable = "pred", *,
                 floor_ug_per_mm3: float = CONCENTRATION_FLOOR_UG_PER_MM3) -> None:
        super().__init__(keys)
        self.floor_ug_per_mm3 = float(floor_ug_per_mm3)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = floor_concentration(d[key], self.floor_ug_per_mm3)
        return d

"""Inference app of the ``spio_quantification`` bundle: View Line images in, SPIO concentration maps out.

Reads ``--image V.nii.gz`` of shape (nx, nz, 1, 2) (x phase-encode, z readout ∥ B0, 4th axis even / odd lines),
runs DeepSPIO (della Maggiora et al., IEEE TPAMI 2020) and writes ``{output_dir}/{stem}_concentration.nii.gz``
of shape (nx, nz, 1) in µg Fe/mm³ with exactly the input's affine. All inputs of a batch are validated before
anything is written; bad input is a one-line error naming the file and the acquisition the network assumes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lightning_modules.bundle_app import (
    exit_on_input_error,
    interruptible,
    load_network,
    output_path,
    report_progress,
    resolve_device,
    validated_cases,
)
from lightning_modules.io import InputError, load_nifti, save_nifti_atomic, voxel_sizes_mm
from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.viewline import PIXEL_MM

OUTPUT_SUFFIX = "concentration.nii.gz"

#: Largest pixel accepted, as a multiple of the image's 99th-percentile (channel-summed) intensity, which the
#: network divides by: a magnitude image's brightest pixels are a few times that, a corrupt pixel far more.
MAX_INTENSITY_OVER_P99 = 1000.0

#: The acquisition the shipped network was trained for, quoted in errors and in the bundle's docs.
ACQUISITION = (
    f"a View Line image of shape ({acq.VIEWLINE_MATRIX[0]}, {acq.VIEWLINE_MATRIX[1]}, 1, 2) "
    f"(x phase-encode, z readout along B0, 4th axis = even-line and odd-line images) acquired at "
    f"{acq.VIEWLINE_B0_TESLA:g} T with FOV {acq.VIEWLINE_FOV_MM[0]:g} × {acq.VIEWLINE_FOV_MM[1]:g} mm, "
    f"{acq.VIEWLINE_N_LINES} lines of {acq.VIEWLINE_LINE_WIDTH_MM:g} mm every {acq.VIEWLINE_LINE_SPACING_MM:g} mm, "
    f"Gz {acq.VIEWLINE_GZ_T_PER_M * 1e3:g} mT/m, Gr {acq.VIEWLINE_GR_T_PER_M * 1e3:g} mT/m, "
    f"TE {acq.VIEWLINE_TE_S * 1e3:g} ms"
)


@dataclass
class SpioCase:
    """One validated case: the image as (2, nx, nz), its grid and the output path."""

    image_path: str
    image: np.ndarray
    affine: np.ndarray
    header: object
    output: Path


def load_case(case: dict, output_dir: str | os.PathLike) -> SpioCase:
    """Read and validate one View Line image.

    Raises:
        InputError: missing/unreadable file, NaN/Inf, or a shape other than (nx, nz, 1, 2) with the trained
            matrix, stating the acquisition the network assumes.
    """
    path = str(case["image"])
    data, affine, header = load_nifti(path, what="View Line image")
    expected = (*acq.VIEWLINE_MATRIX, 1, 2)
    if data.ndim != 4 or tuple(data.shape) != expected:
        problem = f"has shape {tuple(data.shape)}"
        if data.ndim == 4 and data.shape[3] == 1:
            problem += " (one channel; the even- and odd-line images must be separate volumes)"
        raise InputError(f"View Line image {path!r} {problem}; the network expects {ACQUISITION}")
    if not np.any(data):
        raise InputError(f"View Line image {path!r} is zero everywhere; the network expects {ACQUISITION}")
    check_plausible_intensities(data[:, :, 0, :], path)
    pixel_mm = voxel_sizes_mm(affine)[[0, 1]]
    if not np.allclose(pixel_mm, PIXEL_MM, rtol=0.05):
        print(f"warning: {path}: pixel size {pixel_mm.round(3).tolist()} mm differs from the trained "
              f"{[round(p, 3) for p in PIXEL_MM]} mm; the concentrations may be off", flush=True)
    image = np.moveaxis(data[:, :, 0, :], -1, 0)
    return SpioCase(path, image, affine, header, output_path(output_dir, path, OUTPUT_SUFFIX))


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


#: Predicted concentrations below this are reported as 0 µg Fe/mm³: they lie under the lowest concentration the
#: network was trained on (0.22) and are mostly leakage around objects. Chosen, with the flip average, on
#: simulated samples 1000–1299 of seed 1 (neither training nor the validation or test sets):
#: ``benchmarks/spio_postprocessing.py``.
CONCENTRATION_FLOOR_UG_PER_MM3 = 0.1


def predict_concentration(network: DeepSpio, image: np.ndarray, device: torch.device | str = "cpu", *,
                          flip_average: bool = True,
                          floor_ug_per_mm3: float = CONCENTRATION_FLOOR_UG_PER_MM3) -> np.ndarray:
    """Concentration map (nx, nz) in µg Fe/mm³ (≥ 0) of a View Line image (2, nx, nz) in any intensity units.

    Args:
        network: DeepSPIO in eval mode.
        image: even- and odd-line images (2, nx, nz).
        device: where to run the network.
        flip_average: average with the mirrored prediction of the image mirrored along x (the acquisition is
            symmetric under x → −x, and training used that flip); makes the map exactly flip-equivariant.
        floor_ug_per_mm3: predictions below this are set to 0 (0 keeps every positive value).
    """
    x = torch.as_tensor(np.asarray(image), dtype=torch.float32, device=device)[None]
    with torch.no_grad():
        network = network.to(device)
        if flip_average:
            both = network(torch.cat([x, x.flip(-2)]))
            concentration = 0.5 * (both[0, 0] + both[1, 0].flip(-2))
        else:
            concentration = network(x)[0, 0]
    return apply_floor(concentration.clamp_min(0.0).cpu().numpy(), floor_ug_per_mm3)


def apply_floor(concentration: np.ndarray, floor_ug_per_mm3: float) -> np.ndarray:
    """``concentration`` (µg Fe/mm³) with the values below ``floor_ug_per_mm3`` set to 0."""
    return np.where(concentration < floor_ug_per_mm3, np.zeros((), concentration.dtype), concentration)


class SpioQuantificationApp:
    """The bundle's workflow: ``SpioQuantificationApp(network=DeepSpio(), image=..., output_dir=...).run()``.

    Args:
        network: the DeepSPIO module (the bundle's ``network_def``); its weights are loaded from ``model_path``.
        model_path: the shipped ``state_dict``.
        image: View Line image (single case).
        datalist: JSON list of ``{"image": ...}`` (batch mode).
        output_dir: output folder (created if missing).
        device: torch device.
    """

    def __init__(self, network: DeepSpio, *, model_path: str, image: str | None = None, datalist: str | None = None,
                 output_dir: str = "output", device: str | torch.device = "cpu") -> None:
        self.network, self.model_path = network, model_path
        self.single_case = {"image": image}
        self.datalist, self.output_dir, self.device = datalist, output_dir, device

    def run(self) -> list[Path]:
        """Validate every case, then predict and write each; returns the written paths. SIGTERM/SIGINT end the
        run with a non-zero exit, keeping only the maps already complete."""
        with interruptible():
            return self._run()

    def _run(self) -> list[Path]:
        with exit_on_input_error():
            device = resolve_device(self.device)
            cases = validated_cases(self.single_case, datalist=self.datalist, main_key="image",
                                    outputs_of=lambda image: [output_path(self.output_dir, image, OUTPUT_SUFFIX)],
                                    validate=lambda case: load_case(case, self.output_dir))
            network = load_network(self.network, self.model_path).to(device)
        written = []
        for i, case in enumerate(cases):
            loaded = load_case(case, self.output_dir)
            report_progress(i / len(cases), f"DeepSPIO: {Path(loaded.image_path).name}")
            start = time.perf_counter()
            concentration = predict_concentration(network, loaded.image, device)
            written.append(save_nifti_atomic(concentration[:, :, None], loaded.affine, loaded.output,
                                             header=loaded.header))
            print(f"wrote {loaded.output} ({time.perf_counter() - start:.2f} s)", flush=True)
        report_progress(1.0, "done")
        return written

"""Inference app of the ``qsm_dipole_inversion`` bundle: files in, χ maps out, per DESIGN.md's contract.

Reads a local field map (ppm / Hz / rad) and an optional mask, takes the B0 direction from the affine (or
``--b0_dir``), inverts with the selected method and writes ``{output_dir}/{stem}_chi.nii.gz`` (ppm, 0 outside
the mask) on the input's grid. All inputs of a batch are validated before anything is written.
"""

from __future__ import annotations

import ast
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lightning_modules.bundle_app import (
    exit_on_input_error,
    interruptible,
    is_given,
    output_path,
    parse_number,
    report_progress,
    resolve_device,
    validated_cases,
)
from lightning_modules.io import InputError, check_same_grid, load_nifti, save_nifti_atomic, voxel_sizes_mm
from lightning_modules.physics import field_scale_to_ppm
from lightning_modules.physics.dipole import b0_direction_from_affine, normalise_direction
from lightning_modules.qsm.methods import DEFAULT_METHOD, build_network, invert_field

OUTPUT_SUFFIX = "chi.nii.gz"

#: Largest |local field| (ppm) accepted: tissue and air differ by about 9.4 ppm in susceptibility, so no field in
#: or near the brain comes close; larger values are a wrong unit or a corrupt voxel, refused rather than inverted.
MAX_PLAUSIBLE_FIELD_PPM = 100.0


@dataclass
class QsmCase:
    """One validated case: field in ppm, boolean mask, grid and B0 direction in voxel axes."""

    field_path: str
    field_ppm: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    header: object
    voxel_size_mm: np.ndarray
    b0_direction: np.ndarray
    output: Path


def parse_b0_dir(value: object) -> np.ndarray | None:
    """``--b0_dir`` as a unit vector: accepts a list or a string like ``"[0, 0.5, 1]"``; None if absent."""
    if not is_given(value):
        return None
    usage = f"--b0_dir {value!r} is not a B0 direction; give three finite numbers, not all zero, like \"[0,0,1]\""
    try:
        vec = ast.literal_eval(value) if isinstance(value, str) else value
        return normalise_direction([float(v) for v in vec])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise InputError(usage) from None


def load_case(case: dict, output_dir: str | os.PathLike) -> QsmCase:
    """Read and validate one case (a dict with the command-line keys).

    Raises:
        InputError: any problem with the files or options, as one sentence.
    """
    field_path = str(case["field"])
    field, affine, header = load_nifti(field_path, what="field map", ndim=3)
    unit = str(case.get("field_unit") or "ppm")
    b0_tesla = parse_number(case.get("b0_tesla"), "b0_tesla", hint="the main field strength in T, e.g. 3")
    te_ms = parse_number(case.get("te_ms"), "te_ms", hint="the echo time in ms, e.g. 20")
    try:
        scale = field_scale_to_ppm(unit, b0_tesla=b0_tesla, te_ms=te_ms)
    except ValueError as err:
        raise InputError(f"field map {field_path!r}: {err}") from None
    field_ppm = field * scale
    if is_given(case.get("mask")):
        mask_path = str(case["mask"])
        mask_data, mask_affine, _ = load_nifti(mask_path, what="mask", ndim=3)
        check_same_grid(field.shape, affine, mask_data.shape, mask_affine, path_b=mask_path, what_b="mask",
                        ref="field map")
        mask = mask_data > 0
        if not mask.any():
            raise InputError(f"mask file {mask_path!r} is empty (no voxel > 0); give a brain mask")
    else:
        mask = field != 0
        if not mask.any():
            raise InputError(f"field map {field_path!r} is zero everywhere, so there is nothing to invert")
    check_plausible_field(field_ppm, field_path, unit)
    b0 = parse_b0_dir(case.get("b0_dir"))
    if b0 is None:
        b0 = b0_direction_from_affine(affine)
    return QsmCase(field_path, field_ppm, mask, affine, header, voxel_sizes_mm(affine), b0,
                   output_path(output_dir, field_path, OUTPUT_SUFFIX))


def check_plausible_field(field_ppm: np.ndarray, field_path: str, unit: str) -> None:
    """Refuse a field with values that cannot be a local field in ppm (see ``MAX_PLAUSIBLE_FIELD_PPM``), inside or
    outside the mask (some methods invert the whole field before masking χ)."""
    largest = float(np.max(np.abs(field_ppm)))
    if largest > MAX_PLAUSIBLE_FIELD_PPM:
        n_bad = int(np.count_nonzero(np.abs(field_ppm) > MAX_PLAUSIBLE_FIELD_PPM))
        raise InputError(
            f"field map {field_path!r} reaches {largest:.3g} ppm as --field_unit {unit} ({n_bad} voxel(s) above "
            f"{MAX_PLAUSIBLE_FIELD_PPM:g} ppm); the bundle expects a local field of at most a few ppm: give the "
            f"right --field_unit (hz with --b0_tesla, rad with --b0_tesla and --te_ms) or zero the corrupt voxels")


def invert(case: QsmCase, network: torch.nn.Module, device: torch.device) -> np.ndarray:
    """χ (ppm) of one case with the given solver/network module, 0 outside the mask."""
    field = torch.as_tensor(case.field_ppm, dtype=torch.float32, device=device)
    mask = torch.as_tensor(case.mask, dtype=torch.float32, device=device)
    return invert_field(network, field, mask, case.voxel_size_mm, case.b0_direction).cpu().numpy()


class QsmInversionApp:
    """The bundle's workflow: ``QsmInversionApp(field=..., output_dir=...).run()``.

    Args mirror the command-line options of DESIGN.md (``field``, ``mask``, ``field_unit``, ``b0_tesla``,
    ``te_ms``, ``b0_dir``, ``method``, ``datalist``, ``output_dir``, ``device``).
    """

    def __init__(
        self, *, field: str | None = None, mask: str | None = None, field_unit: str = "ppm",
        b0_tesla: float | None = None, te_ms: float | None = None, b0_dir: object = None,
        method: str = DEFAULT_METHOD, datalist: str | None = None, output_dir: str = "output",
        device: str | torch.device = "cpu", bundle_root: str | None = None,
    ) -> None:
        self.single_case = {"field": field, "mask": mask, "field_unit": field_unit, "b0_tesla": b0_tesla,
                            "te_ms": te_ms, "b0_dir": b0_dir}
        self.method = method
        self.datalist = datalist
        self.output_dir = output_dir
        self.device = device
        self.bundle_root = bundle_root

    def run(self) -> list[Path]:
        """Validate every case, then invert and write each; returns the written paths. SIGTERM/SIGINT end the
        run with a non-zero exit, keeping only the χ maps already complete."""
        with interruptible():
            return self._run()

    def _run(self) -> list[Path]:
        with exit_on_input_error():
            device = resolve_device(self.device)
            network = build_network(self.method, self.bundle_root).to(device).eval()
            cases = validated_cases(self.single_case, datalist=self.datalist, main_key="field",
                                    outputs_of=lambda field: [output_path(self.output_dir, field, OUTPUT_SUFFIX)],
                                    validate=lambda case: load_case(case, self.output_dir))
        written = []
        for i, case in enumerate(cases):
            loaded = load_case(case, self.output_dir)
            report_progress(i / len(cases), f"{self.method}: {Path(loaded.field_path).name}")
            start = time.perf_counter()
            chi = invert(loaded, network, device)
            written.append(save_nifti_atomic(chi, loaded.affine, loaded.output, header=loaded.header))
            print(f"wrote {loaded.output} ({time.perf_counter() - start:.1f} s)", flush=True)
        report_progress(1.0, "done")
        return written

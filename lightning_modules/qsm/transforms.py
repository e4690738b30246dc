"""MONAI dictionary transforms of the ``qsm_dipole_inversion`` bundle: one case's field map from file to the
network's input, and the network's χ back to the file's grid.

The bundle's ``inference.json`` chains them after :class:`lightning_modules.bundle_workflow.LoadNiftid` (which
reads ``field`` and ``mask`` as float64 :class:`~monai.data.MetaTensor` s with their affine)::

    BrainMaskd       mask > 0, or the voxels where the field is not 0 when no mask is given (and the grid check)
    FieldToPpmd      the field in ppm from its --field_unit and what that unit requires (capability.json)
    CheckFieldPlausibled   refuse |field| > MAX_PLAUSIBLE_FIELD_PPM (a wrong unit or a corrupt voxel)
    DipoleGeometryd  voxel_size_mm (from the affine) and b0_direction (--b0_dir, else scanner z through the affine)
    NetworkInputd    ``image`` (1, i, j, k) float32 field and ``mask`` (1, i, j, k) float32, the network's input

Every problem a user can cause is an :class:`~lightning_modules.io.InputError` naming the file, which the
evaluator prints as one line.
:func:`check_case_header` is the same case's check from headers and options only (nothing read), run on every
case of a batch before anything is written.
"""

from __future__ import annotations

import ast
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from lightning_modules.bundle_app import is_given, parse_number
from lightning_modules.bundle_workflow import PATH_SUFFIX, plain_tensor, read_nifti_header
from lightning_modules.capability import choices, default, requires
from lightning_modules.io import InputError, check_same_grid, voxel_sizes_mm
from lightning_modules.physics import field_scale_to_ppm
from lightning_modules.physics.dipole import b0_direction_from_affine, normalise_direction

BUNDLE = "qsm_dipole_inversion"

#: Largest |local field| (ppm) accepted: tissue and air differ by about 9.4 ppm in susceptibility, so no field in
#: or near the brain comes close; larger values are a wrong unit or a corrupt voxel, refused rather than inverted.
MAX_PLAUSIBLE_FIELD_PPM = 100.0

#: What the loaded files are called in messages.
WHAT = {"field": "field map", "mask": "mask"}


def _path(data: Mapping, key: str) -> str:
    return str(data.get(f"{key}{PATH_SUFFIX}", data.get(key)))


def _affine(value: torch.Tensor) -> np.ndarray:
    return np.asarray(value.affine, dtype=np.float64)


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


def field_scale(case: Mapping, field_path: str) -> float:
    """Factor that brings the case's field map to ppm, from its ``field_unit`` and the options that unit requires
    by the bundle's description (``b0_tesla``, ``te_ms``); given values of the others are checked, not used."""
    unit = str(case.get("field_unit") or default(BUNDLE, "field_unit"))
    values = {"b0_tesla": parse_number(case.get("b0_tesla"), "b0_tesla", hint="the main field strength in T, e.g. 3"),
              "te_ms": parse_number(case.get("te_ms"), "te_ms", hint="the echo time in ms, e.g. 20")}
    try:
        return field_scale_to_ppm(unit, **{name: values[name] for name in requires(BUNDLE, "field_unit", unit)})
    except ValueError as err:
        raise InputError(f"field map {field_path!r}: {err}") from None


def unit_requirements() -> str:
    """What each field unit needs, from the bundle's description.

    >>> unit_requirements()
    'hz with --b0_tesla, rad with --b0_tesla and --te_ms'
    """
    return ", ".join(f"{unit} with " + " and ".join(f"--{name}" for name in needed)
                     for unit in choices(BUNDLE, "field_unit") if (needed := requires(BUNDLE, "field_unit", unit)))


def check_case_header(case: Mapping) -> None:
    """Everything about one case (a dict with the command-line keys) that headers and options show, without
    reading voxel data: field 3-D with a usable affine, mask on its grid, unit with what it needs, ``b0_dir``.

    Raises:
        InputError: the first problem, as one sentence naming the file or option.
    """
    field_path = str(case["field"])
    shape, affine = read_nifti_header(field_path, what=WHAT["field"], ndim=3)
    field_scale(case, field_path)
    if is_given(case.get("mask")):
        mask_path = str(case["mask"])
        mask_shape, mask_affine = read_nifti_header(mask_path, what=WHAT["mask"], ndim=3)
        check_same_grid(shape, affine, mask_shape, mask_affine, path_b=mask_path, what_b="mask", ref="field map")
    parse_b0_dir(case.get("b0_dir"))


class BrainMaskd(MapTransform):
    """``mask``: the given mask > 0 (checked to lie on the field's grid and not to be empty), or where the field is
    not 0 when no mask is given. Kept as a boolean :class:`MetaTensor` on the field's grid."""

    def __init__(self, field_key: str = "field", mask_key: str = "mask") -> None:
        super().__init__([field_key, mask_key], allow_missing_keys=True)
        self.field_key, self.mask_key = field_key, mask_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        field = d[self.field_key]
        mask = d.get(self.mask_key)
        if mask is not None:
            mask_path = _path(d, self.mask_key)
            check_same_grid(tuple(field.shape), _affine(field), tuple(mask.shape), _affine(mask), path_b=mask_path,
                            what_b="mask", ref="field map")
            inside = plain_tensor(mask) > 0
            if not bool(inside.any()):
                raise InputError(f"mask file {mask_path!r} is empty (no voxel > 0); give a brain mask")
        else:
            inside = plain_tensor(field) != 0
            if not bool(inside.any()):
                raise InputError(f"field map {_path(d, self.field_key)!r} is zero everywhere, so there is nothing "
                                 "to invert")
        d[self.mask_key] = MetaTensor(inside, affine=field.affine)
        return d


class FieldToPpmd(MapTransform):
    """The field map in ppm, from the case's ``field_unit`` (ppm, hz, rad), ``b0_tesla`` (T) and ``te_ms`` (ms):
    ``rad = 2π γ̄ B0 TE · ppm · 1e-6``, ``hz = γ̄ B0 · ppm · 1e-6`` (DESIGN.md's physics conventions)."""

    def __init__(self, keys: Sequence[Hashable] | Hashable = "field") -> None:
        super().__init__(keys)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = d[key] * field_scale(d, _path(d, key))
        return d


class CheckFieldPlausibled(MapTransform):
    """Refuse a field (ppm) with values that cannot be a local field (``MAX_PLAUSIBLE_FIELD_PPM``), inside or
    outside the mask (some methods invert the whole field before masking χ)."""

    def __init__(self, keys: Sequence[Hashable] | Hashable = "field", *,
                 max_ppm: float = MAX_PLAUSIBLE_FIELD_PPM) -> None:
        super().__init__(keys)
        self.max_ppm = float(max_ppm)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            magnitude = plain_tensor(d[key]).abs()
            largest = float(magnitude.max())
            if largest > self.max_ppm:
                unit = d.get("field_unit") or default(BUNDLE, "field_unit")
                n_bad = int((magnitude > self.max_ppm).sum())
                raise InputError(
                    f"field map {_path(d, key)!r} reaches {largest:.3g} ppm as --field_unit {unit} ({n_bad} voxel(s) "
                    f"above {self.max_ppm:g} ppm); the bundle expects a local field of at most a few ppm: give the "
                    f"right --field_unit ({unit_requirements()}) or zero the corrupt voxels")
        return d


class DipoleGeometryd(Transform):
    """The dipole kernel's geometry of a case: ``voxel_size_mm`` (the affine's column norms) and ``b0_direction``
    (the case's ``b0_dir`` if given, else scanner z through the affine, ``R⁻¹ [0, 0, 1]``), float64 tensors (3,)."""

    def __init__(self, field_key: str = "field", b0_dir_key: str = "b0_dir") -> None:
        self.field_key, self.b0_dir_key = field_key, b0_dir_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        affine = _affine(d[self.field_key])
        b0 = parse_b0_dir(d.get(self.b0_dir_key))
        if b0 is None:
            b0 = b0_direction_from_affine(affine)
        d["voxel_size_mm"] = torch.as_tensor(voxel_sizes_mm(affine), dtype=torch.float64)
        d["b0_direction"] = torch.as_tensor(b0, dtype=torch.float64)
        return d


class NetworkInputd(Transform):
    """The network's inputs: ``image`` = the field (ppm) as a (1, i, j, k) float32 tensor, ``mask`` as (1, i, j, k)
    float32 (1 inside)."""

    def __init__(self, field_key: str = "field", mask_key: str = "mask", image_key: str = "image") -> None:
        self.field_key, self.mask_key, self.image_key = field_key, mask_key, image_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        d[self.image_key] = plain_tensor(d[self.field_key]).to(torch.float32)[None]
        d[self.mask_key] = plain_tensor(d[self.mask_key]).to(torch.float32)[None]
        return d

"""What the ``rim_lesion_detection`` bundle's ``inference.json`` checks before its evaluator runs.

Per DESIGN.md: ``--qsm`` (ppm), ``--flair`` (any scale), ``--lesion_mask`` (binary → 26-connected components;
integer labels → one lesion per label), ``--threshold`` (default: the validated operating point stored in the
weights). FLAIR and mask on another grid are resampled to the QSM grid. Outputs ``{stem}_lesions.csv`` and
``{stem}_rim_labels.nii.gz`` (0 background, 1 rim−, 2 rim+) on the QSM grid with the QSM affine; the suffixes
come from the capability description (``configs/capability.json``).

The work itself is MONAI's evaluator over :mod:`lightning_modules.rim.transforms` and the network. These
functions are the config's expressions that run while MONAI builds that workflow, before anything is written:
every case of a batch checked from its headers and options, every output path resolved and collision-free, and
the threshold (the device, the weights and the refusal of a run without input are
:mod:`lightning_modules.bundle_workflow`'s, shared by every bundle). Bad input ends the run there with one line on
stderr and exit status 2.
"""

from __future__ import annotations

import os

from torch import nn

from lightning_modules import capability
from lightning_modules.bundle_app import exit_on_input_error, is_given, output_path, parse_number, validated_cases
from lightning_modules.bundle_workflow import in_dataset_dir, read_nifti_header
from lightning_modules.io import InputError
from lightning_modules.rim.transforms import WHAT

BUNDLE = "rim_lesion_detection"


def check_case_headers(case: dict) -> None:
    """Check one case from its headers only: every input given, readable, 3-D, with an invertible affine.

    Raises:
        InputError: the first problem, naming the file.
    """
    for key in ("flair", "lesion_mask"):
        if not is_given(case.get(key)):
            raise InputError(f"no --{key} given for QSM {str(case['qsm'])!r}; pass --{key} FILE.nii.gz")
    for key in ("qsm", "lesion_mask", "flair"):
        read_nifti_header(case[key], what=WHAT[key], ndim=3)


def cases(qsm: str | None, flair: str | None, lesion_mask: str | None, *, datalist: str | None,
          output_dir: str | os.PathLike, dataset_dir: str | os.PathLike = ".") -> list[dict]:
    """The run's cases (the single case or ``--datalist``'s), each checked from its headers, with every output
    path resolved and collision-free; nothing is written yet. Without ``--qsm`` and ``--datalist`` there is no
    case (the workflow can still be built and checked, e.g. by MONAI's ``check_properties``; running it says what
    is missing, see :func:`lightning_modules.bundle_workflow.require_input`).

    Args:
        dataset_dir: the folder relative ``--qsm``/``--flair``/``--lesion_mask`` paths are read from (default: the
            current folder); a datalist's relative paths are read from the datalist's folder.
    """
    if not (is_given(qsm) or is_given(datalist)):
        return []
    outputs = capability.outputs(BUNDLE)
    with exit_on_input_error():
        return validated_cases({"qsm": in_dataset_dir(qsm, dataset_dir), "flair": in_dataset_dir(flair, dataset_dir),
                                "lesion_mask": in_dataset_dir(lesion_mask, dataset_dir)},
                               datalist=datalist, main_key=capability.main_input(BUNDLE),
                               outputs_of=lambda main: [output_path(output_dir, main, s) for s in outputs.values()],
                               validate=check_case_headers)


def threshold(value: object, network: nn.Module) -> float:
    """The rim+ probability threshold: ``--threshold`` in (0, 1), or the operating point stored in the weights."""
    with exit_on_input_error():
        if not is_given(value):
            return float(network.threshold)
        number = parse_number(value, "threshold", hint="a rim+ probability threshold in (0, 1)")
        if not 0.0 < number < 1.0:
            raise InputError(f"--threshold {number} is outside (0, 1); give a rim+ probability threshold")
        return number

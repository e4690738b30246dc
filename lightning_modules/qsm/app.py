"""What the ``qsm_dipole_inversion`` bundle's ``inference.json`` calls while it is parsed, before MONAI's evaluator
runs: the validated cases of a run, the method's network and its weights file (the device, the weights loading and
the refusal of a run without input are :mod:`lightning_modules.bundle_workflow`'s, shared by every bundle).

The workflow itself is MONAI's: ``inference.json`` names the loader and the transforms of
:mod:`lightning_modules.qsm.transforms`, the network (:func:`lightning_modules.qsm.methods.inversion_network`),
the inferer and the evaluator (:class:`lightning_modules.bundle_workflow.BundleEvaluator`). The functions here run
while the config is parsed, outside the evaluator, so each turns bad input into one line on stderr and exit
status 2 itself (:func:`~lightning_modules.bundle_app.exit_on_input_error`; MONAI's parser would otherwise wrap
the error in a traceback).
"""

from __future__ import annotations

import os

from torch import nn

from lightning_modules import capability
from lightning_modules.bundle_app import exit_on_input_error, is_given, output_path, validated_cases
from lightning_modules.bundle_workflow import in_dataset_dir
from lightning_modules.qsm.methods import BUNDLE, inversion_network, weights_for
from lightning_modules.qsm.transforms import check_case_header

#: The options of one case, as on the command line (DESIGN.md's contract, capability.json's inputs and options).
CASE_KEYS = ("field", "mask", "field_unit", "b0_tesla", "te_ms", "b0_dir")


@exit_on_input_error()
def cases(*, output_dir: str | os.PathLike, datalist: str | None = None, dataset_dir: str | None = None,
          **options: object) -> list[dict]:
    """The run's cases (``--field`` and the other case options, or every entry of ``--datalist``), each checked
    from its headers and options (:func:`check_case_header`) and every output path resolved and checked for
    collisions, before anything is read or written.

    ``dataset_dir``: the folder that relative ``--field``, ``--mask`` and ``--datalist`` paths are taken from
    (default: the current folder); relative paths inside a datalist are taken from the datalist's folder.
    """
    unknown = set(options) - set(CASE_KEYS)
    if unknown:
        raise TypeError(f"unknown case options {sorted(unknown)}")
    main_key = capability.main_input(BUNDLE)
    if not is_given(options.get(main_key)) and not is_given(datalist):
        return []  # no input: the config still parses for MONAI's checks; bundle_workflow.require_input refuses runs
    single = {key: options.get(key) for key in CASE_KEYS}
    for key in ("field", "mask"):
        single[key] = in_dataset_dir(single[key], dataset_dir)
    suffixes = list(capability.outputs(BUNDLE).values())
    return validated_cases(single, datalist=in_dataset_dir(datalist, dataset_dir), main_key=main_key,
                           outputs_of=lambda main: [output_path(output_dir, main, s) for s in suffixes],
                           validate=check_case_header)


@exit_on_input_error()
def network(method: str, *, window_inferer: object = None) -> nn.Module:
    """``network_def`` of ``method`` (:func:`~lightning_modules.qsm.methods.inversion_network`); an unknown
    method is one line and exit status 2."""
    return inversion_network(method, window_inferer=window_inferer)


@exit_on_input_error()
def model_path(method: str, bundle_root: str | None) -> str | None:
    """The shipped weights file of ``method`` (None for the classical methods)."""
    return weights_for(method, bundle_root)

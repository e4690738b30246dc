"""What the ``ivim_mapping`` bundle's ``inference.json`` checks before it runs anything, and the study fit as one call.

The config resolves, in this order: :func:`checked_options` (every option parsed and checked), the shared
:func:`~lightning_modules.bundle_workflow.require_input` and :func:`~lightning_modules.bundle_workflow.checked_device`
(``--device``), :func:`ivim_cases` (every case checked from its headers and b-values, every output path resolved and
free): a bad value ends the run there with one line and exit status 2, before anything is read or written.
:func:`inferers` builds the estimators the config's ``inferer`` picks from. :func:`fit_study` is the same estimate
on arrays (for benchmarks), through the bundle's own transforms' functions and inferers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lightning_modules import capability
from lightning_modules.bundle_app import (
    exit_on_input_error,
    is_given,
    output_path,
    parse_flag,
    parse_number,
    validated_cases,
)
from lightning_modules.bundle_workflow import in_dataset_dir, read_nifti_header
from lightning_modules.io import InputError, check_same_grid
from lightning_modules.ivim.inferers import (
    IvimInferer,
    IvimNetFitInferer,
    LeastSquaresInferer,
    PosteriorMeanInferer,
    PretrainedInferer,
)
from lightning_modules.ivim.pretrained import pretrained_weights, runs_on
from lightning_modules.ivim.signal import PARAMETER_NAMES
from lightning_modules.ivim.transforms import read_bvals, study_signals

BUNDLE = "ivim_mapping"

#: Numeric options: (integer, minimum, what is expected) for the one-line error (which adds the default as an example).
_NUMBERS = {
    "posterior_simulations": (True, 1, "the number of simulated signals"),
    "max_epochs": (True, 1, "the most training epochs"),
    "patience_epochs": (True, 0, "epochs without improvement before stopping"),
    "batches_per_epoch": (True, 1, "random batches per epoch"),
    "refine_strength": (False, 0, "a weight decay ≥ 0 (0: off)"),
    "n_ensemble": (True, None, "1 or more networks"),
    "seed": (True, 0, "a non-negative integer"),
    "num_threads": (True, 1, "the number of CPU threads"),
}


@dataclass(frozen=True)
class IvimOptions:
    """The bundle's options, parsed and checked (:meth:`parse`); defaults from ``configs/capability.json``."""

    model: str
    mode: str
    method: str
    bounds: str
    posterior_mean: bool
    posterior_simulations: int
    max_epochs: int
    patience_epochs: int
    batches_per_epoch: int
    refine_strength: float
    n_ensemble: int
    seed: int
    num_threads: int

    @classmethod
    def parse(cls, **raw: object) -> IvimOptions:
        """Options as the command line gives them (strings or numbers; absent ones take their default).

        Raises:
            InputError: an unknown choice, a value that is not a number of the right kind, or options that do not
                go together, naming the option.
        """
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown option(s) {', '.join(sorted(unknown))}; see --help")
        values = {name: raw[name] if is_given(raw.get(name)) else capability.default(BUNDLE, name)
                  for name in cls.__dataclass_fields__}
        for name in ("model", "mode", "method", "bounds"):
            allowed = capability.choices(BUNDLE, name)
            if values[name] not in allowed:
                raise InputError(f"unknown --{name} {values[name]!r}; use one of {', '.join(allowed)}")
        for name, (integer, minimum, hint) in _NUMBERS.items():
            hint = f"{hint}, e.g. {capability.default(BUNDLE, name)}"
            values[name] = parse_number(values[name], name, integer=integer, minimum=minimum, hint=hint)
            if values[name] is None:
                raise InputError(f"--{name} needs a value")
        if values["n_ensemble"] < 1:
            raise InputError(f"--n_ensemble must be at least 1 (one network), not {values['n_ensemble']}; use 1 or "
                             "more")
        values["posterior_mean"] = parse_flag(values["posterior_mean"])
        if not isinstance(values["posterior_mean"], bool):
            raise InputError(f"--posterior_mean must be true or false, not {values['posterior_mean']!r}")
        if values["posterior_mean"] and (values["refine_strength"] > 0 or values["n_ensemble"] > 1):
            raise InputError("--refine_strength and --n_ensemble apply to IVIM-NET alone; add --posterior_mean false")
        return cls(**values)

    @property
    def estimator(self) -> str:
        """The key of the inferer these options run: ``lsq``, ``pretrained``, ``posterior_mean`` or ``ivim_net``."""
        if self.method == "lsq":
            return "lsq"
        if self.mode == "pretrained":
            return "pretrained"
        return "posterior_mean" if self.posterior_mean else "ivim_net"

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The estimated parameters, in the network's output order (the maps written)."""
        return PARAMETER_NAMES[self.model]

    def outputs(self) -> dict[str, str]:
        """Map name → file suffix, from the capability description."""
        return capability.outputs(BUNDLE, model=self.model)


def checked_options(**raw: object) -> IvimOptions:
    """:meth:`IvimOptions.parse`, a bad value ending the run with one line and exit status 2."""
    with exit_on_input_error():
        return IvimOptions.parse(**raw)


def inferers(options: IvimOptions, *, device: torch.device, bundle_root: str | os.PathLike) -> dict[str, IvimInferer]:
    """Every estimator of the bundle as its inferer, configured by ``options`` (:attr:`IvimOptions.estimator`
    picks one)."""
    common = {"model": options.model, "bounds": options.bounds}
    return {
        "lsq": LeastSquaresInferer(**common, device=device),
        "pretrained": PretrainedInferer(**common, bundle_root=str(bundle_root), device=device),
        "posterior_mean": PosteriorMeanInferer(**common, n_simulated=options.posterior_simulations,
                                               seed=options.seed),
        "ivim_net": IvimNetFitInferer(**common, max_epochs=options.max_epochs,
                                      patience_epochs=options.patience_epochs,
                                      batches_per_epoch=options.batches_per_epoch,
                                      refine_strength=options.refine_strength, n_ensemble=options.n_ensemble,
                                      seed=options.seed, device=device),
    }


def check_case(case: dict, options: IvimOptions, *, network: nn.Module | None = None,
               bundle_root: str | os.PathLike | None = None) -> None:
    """Check one case from its headers and b-values (no image data is read).

    Raises:
        InputError: a missing or unreadable file, a DWI that is not 4-D, b-values that do not match its volumes or
            are too few for the model, a mask on another grid, or (``--mode pretrained``) no network for the
            b-values.
    """
    dwi_path = str(case["dwi"])
    shape, affine = read_nifti_header(dwi_path, what="DWI", ndim=4)
    if not is_given(case.get("bvals")):
        raise InputError(f"no b-values given for {dwi_path!r}; pass --bvals FILE.bval")
    b = read_bvals(str(case["bvals"]), n_volumes=shape[3])
    n_params = len(options.parameter_names) - 1
    if np.unique(b).size < n_params + 1:
        raise InputError(f"b-values file {str(case['bvals'])!r} has {np.unique(b).size} distinct b-values; the "
                         f"{options.model} model needs at least {n_params + 1}")
    if is_given(case.get("mask")):
        mask_shape, mask_affine = read_nifti_header(str(case["mask"]), what="mask", ndim=3)
        check_same_grid(shape, affine, mask_shape, mask_affine, path_b=str(case["mask"]), what_b="mask", ref="DWI")
    if options.estimator == "pretrained" and not runs_on(network, options.model, b):
        pretrained_weights(options.model, b, bundle_root)


def ivim_cases(dwi: str | None, bvals: str | None, mask: str | None, *, datalist: str | None,
               output_dir: str | os.PathLike, options: IvimOptions, dataset_dir: str | os.PathLike = "",
               network: nn.Module | None = None, bundle_root: str | os.PathLike | None = None) -> list[dict]:
    """The run's cases (``--dwi/--bvals/--mask`` or every ``--datalist`` entry), each checked by :func:`check_case`
    and with its outputs resolved and free (:func:`~lightning_modules.bundle_app.validated_cases`); a problem ends
    the run with one line and exit status 2 before anything is written. No input: no cases (MONAI's property
    checks build the dataset without one; the run itself is refused by
    :func:`~lightning_modules.bundle_workflow.require_input`).

    Args:
        dataset_dir: the folder relative ``--dwi``/``--bvals``/``--mask`` paths are read from (default: the current
            folder); a datalist's relative paths are read from the datalist's folder.
        network: the configured network (``--mode pretrained`` accepts the b-values it was trained for).
    """
    main = capability.main_input(BUNDLE)
    if not is_given(dwi) and not is_given(datalist):
        return []  # MONAI's property checks build the dataset without input; the run is refused by require_input
    suffixes = list(options.outputs().values())
    with exit_on_input_error():
        return validated_cases(
            {"dwi": in_dataset_dir(dwi, dataset_dir), "bvals": in_dataset_dir(bvals, dataset_dir),
             "mask": in_dataset_dir(mask, dataset_dir)}, datalist=datalist, main_key=main,
            outputs_of=lambda path: [output_path(output_dir, path, suffix) for suffix in suffixes],
            validate=lambda case: check_case(case, options, network=network, bundle_root=bundle_root))


def fit_study(dwi: np.ndarray, b_values_s_per_mm2: np.ndarray, mask: np.ndarray | None, options: IvimOptions, *,
              network: nn.Module | None = None, bundle_root: str | os.PathLike | None = None,
              device: str | torch.device = "cpu") -> np.ndarray:
    """The bundle's estimate of a study held in arrays: what ``inference.json`` writes, before the maps are
    scattered on the grid.

    Args:
        dwi: ``(X, Y, Z, n_b)`` signals; ``mask``: ``(X, Y, Z)`` (None: every voxel).

    Returns:
        ``(n_mask_voxels, n_params)`` parameters of the mask's voxels in C order (S0 in the DWI's units, 0 where the
        signal at the lowest b-value is not positive).
    """
    b = np.asarray(b_values_s_per_mm2, dtype=np.float64)
    signals, reference, voxels = study_signals(dwi, mask, b)
    inferer = inferers(options, device=torch.device(device), bundle_root=bundle_root or "")[options.estimator]
    with torch.enable_grad():
        fitted = inferer.estimate(signals, b, network=network, reference=reference, voxels=voxels)
    fitted[:, -1] *= reference
    inside = np.ones(dwi.shape[:3], dtype=bool) if mask is None else np.asarray(mask) > 0
    params = np.zeros((int(inside.sum()), fitted.shape[1]))
    params[voxels[inside]] = fitted
    return params

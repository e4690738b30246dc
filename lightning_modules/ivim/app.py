"""Inference app of the ``ivim_mapping`` bundle: a 4-D DWI and its b-values in, IVIM parameter maps out.

Per DESIGN.md's contract: ``--dwi`` (4-D, last axis = b-values), ``--bvals`` (FSL style), optional ``--mask``,
``--model biexp|triexp``, ``--mode fit|pretrained``, ``--method net|lsq``; writes ``{stem}_{parameter}.nii.gz``
on the DWI's grid, 0 outside the mask and where the lowest-b signal is not positive. Every case of a batch is
validated before anything is written.
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
    is_given,
    output_path,
    parse_flag,
    parse_number,
    report_progress,
    resolve_device,
    validated_cases,
)
from lightning_modules.io import InputError, atomic_output_set, check_same_grid, load_nifti
from lightning_modules.ivim.data import IvimDataModule
from lightning_modules.ivim.lsq import IvimLsq, bounds_array
from lightning_modules.ivim.module import DEFAULT_REFINE_STRENGTH, ProgressLines, fit_ivim_net
from lightning_modules.ivim.networks import IvimNet, predict_ivim_net
from lightning_modules.ivim.posterior import DEFAULT_N_SIMULATED, posterior_mean_fit
from lightning_modules.ivim.signal import PARAMETER_NAMES, average_repeats, normalise_signal
from lightning_modules.ivim.simulate import IVIMNET_B_VALUES, OSIPI_B_VALUES

#: Shipped weights per (model, b-value scheme), in the bundle's ``models/`` folder (bi-exponential only).
PRETRAINED_SCHEMES = {"ivimnet11": IVIMNET_B_VALUES, "osipi18": OSIPI_B_VALUES}
PRETRAINED_WEIGHTS = {
    ("biexp", "ivimnet11"): "model.pt",
    ("biexp", "osipi18"): "model_biexp_osipi18.pt",
}


#: Largest accepted ratio of any signal in the mask to the median signal at the lowest b-value there: diffusion
#: weighting only lowers the signal and tissues differ by a few times at most, so a voxel 1000× brighter is a
#: corrupt value (one such voxel used to turn every fitted map into NaN), refused rather than fitted.
MAX_SIGNAL_TO_MEDIAN = 1000.0

#: Fewest voxels with signal that IVIM-NET's fit to the study (``--posterior_mean false``) can train on: one is
#: held out for validation, the rest are the training set.
MIN_NET_FIT_VOXELS = 2


@dataclass
class IvimCase:
    """One validated case: the masked voxels' signals (n_voxels, n_b), their positions and the grid."""

    dwi_path: str
    signals: np.ndarray
    b_values: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    header: object


def read_bvals(path: str | os.PathLike, *, n_volumes: int | None = None) -> np.ndarray:
    """b-values (s/mm²) of an FSL-style ``.bval`` file: whitespace-separated numbers, one per volume.

    Raises:
        InputError: unreadable file, non-numbers, negative values or a count different from ``n_volumes``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"b-values file {str(path)!r} cannot be read ({err.strerror}); check the path") from None
    try:
        b = np.array([float(v) for v in text.split()], dtype=np.float64)
    except ValueError:
        raise InputError(f"b-values file {str(path)!r} is not a list of numbers; give FSL-style b-values") from None
    if b.size == 0 or not np.all(np.isfinite(b)):
        raise InputError(f"b-values file {str(path)!r} holds no finite b-values; give one b-value per volume")
    if np.any(b < 0):
        raise InputError(f"b-values file {str(path)!r} has negative b-values; b-values are ≥ 0 s/mm²")
    if n_volumes is not None and b.size != n_volumes:
        raise InputError(f"b-values file {str(path)!r} has {b.size} b-values but the DWI has {n_volumes} volumes; "
                         "give one b-value per volume")
    return b


def load_case(case: dict, *, model: str) -> IvimCase:
    """Read and validate one case (a dict with the command-line keys).

    Raises:
        InputError: any problem with the files, as one sentence.
    """
    dwi_path = str(case["dwi"])
    if not is_given(case.get("bvals")):
        raise InputError(f"no b-values given for {dwi_path!r}; pass --bvals FILE.bval")
    dwi, affine, header = load_nifti(dwi_path, what="DWI", ndim=4)
    b = read_bvals(str(case["bvals"]), n_volumes=dwi.shape[3])
    n_params = len(PARAMETER_NAMES[model]) - 1
    if np.unique(b).size < n_params + 1:
        raise InputError(f"b-values file {str(case['bvals'])!r} has {np.unique(b).size} distinct b-values; the "
                         f"{model} model needs at least {n_params + 1}")
    if is_given(case.get("mask")):
        mask_path = str(case["mask"])
        mask_data, mask_affine, _ = load_nifti(mask_path, what="mask", ndim=3)
        check_same_grid(dwi.shape, affine, mask_data.shape, mask_affine, path_b=mask_path, what_b="mask", ref="DWI")
        mask = mask_data > 0
        if not mask.any():
            raise InputError(f"mask file {mask_path!r} is empty (no voxel > 0); give a mask of the tissue to fit")
    else:
        mask = np.ones(dwi.shape[:3], dtype=bool)
    signals = dwi[mask]
    _, ref, valid = normalise_signal(signals, b)
    if not np.any(valid):
        raise InputError(f"DWI file {dwi_path!r} has no voxel with a positive signal at the lowest b-value in the "
                         "mask; check the image and the mask")
    check_plausible_signals(signals, ref[valid], dwi_path)
    return IvimCase(dwi_path, signals, b, mask, affine, header)


def check_plausible_signals(signals: np.ndarray, reference: np.ndarray, dwi_path: str) -> None:
    """Refuse signals in the mask beyond ``MAX_SIGNAL_TO_MEDIAN`` × the median lowest-b signal (``reference``: that
    signal of the voxels with a positive one)."""
    median = float(np.median(reference))
    limit = MAX_SIGNAL_TO_MEDIAN * median
    largest = float(np.max(np.abs(signals)))
    if not largest <= limit:
        n_bad = int(np.count_nonzero(np.any(np.abs(signals) > limit, axis=-1)))
        raise InputError(
            f"DWI file {dwi_path!r} has {n_bad} voxel(s) in the mask with a signal of up to {largest:.3g}, more than "
            f"{MAX_SIGNAL_TO_MEDIAN:g}× the median signal at the lowest b-value ({median:.3g}); zero or mask out the "
            f"corrupt voxels")


def pretrained_network(model: str, b_values: np.ndarray, bundle_root: str | os.PathLike) -> IvimNet:
    """The shipped IVIM-NET for ``model`` whose b-value scheme equals the distinct values of ``b_values``.

    Raises:
        InputError: no weights for this scheme (suggests ``--mode fit``) or missing weight file.
    """
    if not any(m == model for m, _ in PRETRAINED_WEIGHTS):
        raise InputError(f"--mode pretrained has no weights for --model {model}; use --mode fit to train on this "
                         "data set")
    unique = np.unique(b_values)
    for scheme, scheme_b in PRETRAINED_SCHEMES.items():
        if unique.size == len(scheme_b) and np.allclose(unique, scheme_b, atol=0.5):
            path = Path(bundle_root) / "models" / PRETRAINED_WEIGHTS[(model, scheme)]
            if not path.is_file():
                raise InputError(f"weights file {str(path)!r} is missing; reinstall the bundle or use --mode fit")
            network = IvimNet(scheme_b, model=model)
            network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return network
    raise InputError(
        f"--mode pretrained has weights only for the IVIM-NET b-values {list(IVIMNET_B_VALUES)} and OSIPI's "
        f"{list(OSIPI_B_VALUES)}, not {unique.tolist()}; use --mode fit to train on this data set"
    )


class IvimMappingApp:
    """The bundle's workflow: ``IvimMappingApp(dwi=..., bvals=..., output_dir=...).run()``.

    Args mirror the command-line options of DESIGN.md (``dwi``, ``bvals``, ``mask``, ``model``, ``mode``,
    ``method``, ``datalist``, ``output_dir``, ``device``) plus ``bounds`` (``body``/``brain``), the training
    budget of ``--mode fit`` (``max_epochs``, ``patience_epochs``, ``batches_per_epoch``), the weight decay of
    its D* refinement stage (``refine_strength``, 0: off; see :func:`fit_ivim_net`), the number of networks it
    trains and averages (``n_ensemble``, 1: one network) — these three for IVIM-NET alone,
    ``posterior_mean=False`` — or the default SNR-aware empirical-Bayes posterior-mean estimator
    (``posterior_mean=True``, and the number of signals it simulates, ``posterior_simulations``;
    :mod:`lightning_modules.ivim.posterior`), ``seed`` (fit mode: the same study, options and seed give the
    same maps) and ``num_threads``.
    """

    def __init__(
        self, *, dwi: str | None = None, bvals: str | None = None, mask: str | None = None, model: str = "biexp",
        mode: str = "fit", method: str = "net", datalist: str | None = None, output_dir: str = "output",
        device: str | torch.device = "cpu", bundle_root: str | None = None, bounds: str = "body",
        max_epochs: int = 60, patience_epochs: int = 10, batches_per_epoch: int = 250, seed: int = 0,
        num_threads: int | None = None, refine_strength: float = DEFAULT_REFINE_STRENGTH, n_ensemble: int = 1,
        posterior_mean: bool | str = True, posterior_simulations: int = DEFAULT_N_SIMULATED,
    ) -> None:
        self.single_case = {"dwi": dwi, "bvals": bvals, "mask": mask}
        self.model, self.mode, self.method, self.bounds = str(model), str(mode), str(method), str(bounds)
        self.datalist = datalist
        self.output_dir = output_dir
        self.device = device
        self.bundle_root = bundle_root
        # numbers as given; _check_options parses them (a one-line error naming the option, not a traceback)
        self.max_epochs, self.patience_epochs, self.seed = max_epochs, patience_epochs, seed
        self.batches_per_epoch = batches_per_epoch
        self.num_threads = num_threads
        self.refine_strength = refine_strength
        self.n_ensemble = n_ensemble
        # the command line may hand over "true"/"false" as strings; anything else is refused by _check_options
        self.posterior_mean = parse_flag(posterior_mean)
        self.posterior_simulations = posterior_simulations

    def _check_options(self) -> None:
        choices = (("model", self.model, ("biexp", "triexp")), ("mode", self.mode, ("fit", "pretrained")),
                   ("method", self.method, ("net", "lsq")), ("bounds", self.bounds, ("body", "brain")))
        for name, value, allowed in choices:
            if value not in allowed:
                raise InputError(f"unknown --{name} {value!r}; use one of {', '.join(allowed)}")
        self.max_epochs = parse_number(self.max_epochs, "max_epochs", integer=True, minimum=1,
                                       hint="the most training epochs, e.g. 60")
        self.patience_epochs = parse_number(self.patience_epochs, "patience_epochs", integer=True, minimum=0,
                                            hint="epochs without improvement before stopping, e.g. 10")
        self.batches_per_epoch = parse_number(self.batches_per_epoch, "batches_per_epoch", integer=True, minimum=1,
                                              hint="random batches per epoch, e.g. 250")
        self.seed = parse_number(self.seed, "seed", integer=True, minimum=0, hint="a non-negative integer")
        self.num_threads = parse_number(self.num_threads, "num_threads", integer=True, minimum=1,
                                        hint="the number of CPU threads, e.g. 1")
        self.refine_strength = parse_number(self.refine_strength, "refine_strength", minimum=0,
                                            hint="a weight decay ≥ 0 (0: off)")
        self.n_ensemble = parse_number(self.n_ensemble, "n_ensemble", integer=True, hint="1 or more networks")
        self.posterior_simulations = parse_number(self.posterior_simulations, "posterior_simulations", integer=True,
                                                  hint="the number of simulated signals, e.g. 300000")
        for name in ("max_epochs", "patience_epochs", "batches_per_epoch", "seed", "refine_strength", "n_ensemble",
                     "posterior_simulations"):
            if getattr(self, name) is None:
                raise InputError(f"--{name} needs a value")
        if self.n_ensemble < 1:
            raise InputError(f"--n_ensemble must be at least 1 (one network), not {self.n_ensemble}; use 1 or more")
        if not isinstance(self.posterior_mean, bool):
            raise InputError(f"--posterior_mean must be true or false, not {self.posterior_mean!r}")
        if self.posterior_simulations < 1:
            raise InputError(f"--posterior_simulations must be at least 1, not {self.posterior_simulations}")
        if self.posterior_mean and (self.refine_strength > 0 or self.n_ensemble > 1):
            raise InputError("--refine_strength and --n_ensemble apply to IVIM-NET alone; add --posterior_mean false")

    def _validate(self, case: dict) -> None:
        loaded = load_case(case, model=self.model)
        n_valid = int(np.count_nonzero(normalise_signal(loaded.signals, loaded.b_values)[2]))
        if self.method == "net" and self.mode == "fit" and not self.posterior_mean and n_valid < MIN_NET_FIT_VOXELS:
            raise InputError(f"DWI file {loaded.dwi_path!r} has {n_valid} voxel(s) with signal in the mask; IVIM-NET's "
                             f"fit to the study needs at least {MIN_NET_FIT_VOXELS}: give a larger mask, or use "
                             "--posterior_mean true or --method lsq")
        if self.method == "net" and self.mode == "pretrained":
            pretrained_network(self.model, loaded.b_values, self.bundle_root)

    def _outputs(self, dwi_path: str) -> list[Path]:
        return [output_path(self.output_dir, dwi_path, f"{name}.nii.gz") for name in PARAMETER_NAMES[self.model]]

    def fit_case(self, case: IvimCase) -> np.ndarray:
        """Parameters ``(n_masked_voxels, n_params)`` of one case (S0 in signal units, 0 where not fitted)."""
        normalised, ref, valid = normalise_signal(case.signals, case.b_values)
        params = np.zeros((normalised.shape[0], len(PARAMETER_NAMES[self.model])))
        if self.method == "lsq":
            report_progress(0.1, f"least squares on {int(valid.sum())} voxels")
            lsq = IvimLsq(case.b_values, model=self.model, bounds=self.bounds, device=self.device)
            return lsq.fit(case.signals).params
        if self.mode == "pretrained":
            network = pretrained_network(self.model, case.b_values, self.bundle_root).to(self.device)
            b_unique, signals = average_repeats(normalised[valid], case.b_values)
            signals = normalise_signal(signals, b_unique)[0]
        elif self.posterior_mean:
            report_progress(0.05, f"posterior-mean fit of {int(valid.sum())} voxels (least squares, noise, prior)")
            valid_mask = case.mask.copy()
            valid_mask[case.mask] = valid
            params[valid] = posterior_mean_fit(
                normalised[valid], case.b_values, model=self.model, bounds=self.bounds, mask=valid_mask,
                reference=ref[valid], n_simulated=self.posterior_simulations, seed=self.seed, progress_bar=False,
                callbacks=[ProgressLines(start=0.3, end=0.9, message="posterior-mean network training")])[0]
            params[:, -1] *= ref
            params[~valid] = 0.0
            return params
        else:
            signals = normalised[valid]
            torch.manual_seed(self.seed)  # the initial weights: the same study, options and seed give the same maps
            network = IvimNet(case.b_values, model=self.model, bounds=self.bounds)
            data = IvimDataModule(signals, b_values_s_per_mm2=case.b_values, batches_per_epoch=self.batches_per_epoch,
                                  seed=self.seed)
            network = fit_ivim_net(data, network, max_epochs=self.max_epochs, patience_epochs=self.patience_epochs,
                                   refine_strength=self.refine_strength, n_ensemble=self.n_ensemble, seed=self.seed,
                                   progress=(0.05, 0.9)).to(self.device)
        limits = bounds_array(self.model, self.bounds)
        params[valid] = np.clip(predict_ivim_net(network, signals), limits[:, 0], limits[:, 1])
        params[:, -1] *= ref
        params[~valid] = 0.0
        return params

    def run(self) -> list[Path]:
        """Validate every case, then fit and write each case's maps as one set; returns the written paths.
        SIGTERM/SIGINT end the run with a non-zero exit, keeping only the cases whose maps are all written."""
        with interruptible():
            return self._run()

    def _run(self) -> list[Path]:
        with exit_on_input_error():
            self._check_options()
            self.device = resolve_device(self.device)
            if self.num_threads:
                torch.set_num_threads(int(self.num_threads))
            cases = validated_cases(self.single_case, datalist=self.datalist, main_key="dwi",
                                    outputs_of=self._outputs, validate=self._validate)
        written = []
        for i, case in enumerate(cases):
            loaded = load_case(case, model=self.model)
            report_progress(i / len(cases), f"IVIM {self.method} ({self.mode}): {Path(loaded.dwi_path).name}")
            start = time.perf_counter()
            params = self.fit_case(loaded)
            if not np.all(np.isfinite(params)):
                with exit_on_input_error():
                    raise InputError(f"the fit of {loaded.dwi_path!r} gave non-finite parameters in "
                                     f"{int(np.count_nonzero(~np.all(np.isfinite(params), axis=1)))} voxel(s); no maps "
                                     "written for it: check the DWI for corrupt voxels, or try --method lsq")
            with atomic_output_set() as outputs:  # all maps of the case or none
                for k, path in enumerate(self._outputs(loaded.dwi_path)):
                    volume = np.zeros(loaded.mask.shape, dtype=np.float32)
                    volume[loaded.mask] = params[:, k]
                    written.append(outputs.save_nifti(volume, loaded.affine, path, header=loaded.header))
            print(f"wrote {len(PARAMETER_NAMES[self.model])} maps of {loaded.dwi_path} "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)
        report_progress(1.0, "done")
        return written

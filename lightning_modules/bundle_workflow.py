"""The MONAI-native pieces every bundle's ``inference.json`` is built from. STATUS: READY (API below is stable).

What the config names is what runs. A bundle's ``inference.json`` reads, top to bottom::

    "cases":          "$lightning_modules.bundle_app.validated_cases(...)"   # every case checked from headers and
                                                                            # options, every output path resolved
                                                                            # and collision-free: nothing written yet
    "preprocessing":  {"_target_": "Compose", "transforms": [LoadNiftid(...), <capability's dict transforms>]}
    "dataset":        {"_target_": "Dataset", "data": "@cases", "transform": "@preprocessing"}
    "dataloader":     {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "num_workers": 0}
    "network_def":    the capability's nn.Module (forward(x) on ONE tensor; per-case geometry such as the dipole
                      kernel's voxel size / B0 direction arrives as keyword tensors through ``prepare_batch``)
    "run_device":     "$lightning_modules.bundle_workflow.checked_device(@device)"
    "network":        "$lightning_modules.bundle_workflow.load_weights(@network_def, @model_path, @run_device)"
    "inferer":        {"_target_": "SimpleInferer"} or {"_target_": "SlidingWindowInferer", ...}
    "prepare_batch":  {"_target_": "PrepareBatchExtraInput", "extra_keys": {...}}   (when the forward needs more)
    "postprocessing": {"_target_": "Compose", "transforms": [<capability's dict transforms>, SaveOutputsd(...)]}
    "evaluator":      {"_target_": "lightning_modules.bundle_workflow.BundleEvaluator", "device": "@device",
                       "val_data_loader": "@dataloader", "network": "@network", "inferer": "@inferer",
                       "postprocessing": "@postprocessing", "prepare_batch": "@prepare_batch", "label": "@method"}
    "run":            ["$lightning_modules.bundle_workflow.require_input(@<main input>, @datalist, bundle=...)",
                       "$@evaluator.run()"]

The config-time helpers (:func:`checked_device`, :func:`load_weights`, :func:`in_dataset_dir`,
:func:`require_input`) run while MONAI parses the config, outside the evaluator, so each turns bad input into one
line on stderr and exit status 2 itself (MONAI's parser would otherwise wrap the error in a traceback).

Each case is read once, by :class:`LoadNiftid` inside the dataset; the up-front validation of a batch uses
:func:`read_nifti_header`, which reads headers only. :class:`BundleEvaluator` is MONAI's
``SupervisedEvaluator`` plus what a command-line user needs: one-line errors for bad input (an
:class:`~lightning_modules.io.InputError` raised inside a transform is unwrapped from MONAI's
``RuntimeError("applying transform ...")``), progress lines for the Slicer panel, and SIGTERM/SIGINT ending the
run with no partial output. :class:`SaveOutputsd` writes one case's outputs as one atomic set on the main
input's exact grid (shape, affine and header), so an interrupted or failed case leaves nothing.

We write our own loader and writer rather than MONAI's ``LoadImaged``/``SaveImaged`` because ours refuse what
users get wrong in one sentence (degenerate affines, NaNs, wrong dimensionality, folders given as files), and
write a case's several outputs atomically as a set with the input's exact header, which ``SaveImaged`` does not.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from ignite.engine import Events
from monai.data import MetaTensor
from monai.engines import SupervisedEvaluator
from monai.transforms import MapTransform
from torch import nn

from lightning_modules import capability
from lightning_modules.bundle_app import (
    exit_on_input_error,
    interruptible,
    is_given,
    load_network,
    no_input_error,
    output_path,
    report_progress,
    resolve_device,
)
from lightning_modules.io import InputError, atomic_output_set, load_nifti, read_nifti_header

__all__ = ["BundleEvaluator", "LoadNiftid", "SaveOutputsd", "checked_device", "in_dataset_dir", "input_error_in",
           "load_weights", "plain_tensor", "read_nifti_header", "require_input"]

#: Key suffix under which :class:`LoadNiftid` keeps each loaded file's path (``field`` → ``field_path``).
PATH_SUFFIX = "_path"


class LoadNiftid(MapTransform):
    """Load the NIfTI files named by ``keys`` into :class:`~monai.data.MetaTensor` s with their affine, checked by
    :func:`lightning_modules.io.load_nifti` (one-sentence :class:`InputError` for what users get wrong).

    Keys whose value is absent (``None``, ``""``) are left as ``None``. Each loaded file's path is kept under
    ``{key}_path`` (a string, which survives collation) for the writer and for messages.

    Args:
        keys: the case keys naming NIfTI files.
        what: per key, what the file is in messages (e.g. ``{"field": "field map"}``); default the key.
        ndim: per key (or for all) the allowed number of dimensions.
        dtype: data type of the loaded arrays (float64 keeps outputs bit-identical to a float64 pipeline).
    """

    def __init__(self, keys: Sequence[Hashable] | Hashable, *, what: Mapping[str, str] | None = None,
                 ndim: Mapping[str, int | tuple[int, ...]] | int | tuple[int, ...] | None = None,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.what = dict(what or {})
        self.ndim = ndim
        self.dtype = dtype

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            if not is_given(d[key]):
                d[key] = None
                continue
            ndim = self.ndim.get(key) if isinstance(self.ndim, Mapping) else self.ndim
            array, affine, _ = load_nifti(d[key], what=self.what.get(key, str(key)), ndim=ndim)
            d[f"{key}{PATH_SUFFIX}"] = str(d[key])
            d[key] = MetaTensor(torch.as_tensor(array, dtype=self.dtype), affine=torch.as_tensor(affine),
                                meta={"filename_or_obj": str(d[f"{key}{PATH_SUFFIX}"])})
        return d


def plain_tensor(value: torch.Tensor) -> torch.Tensor:
    """``value`` without MONAI's metadata (a :class:`~monai.data.MetaTensor` as a plain tensor; others as they are)."""
    return value.as_tensor() if isinstance(value, MetaTensor) else value


def _as_array(value: object) -> np.ndarray | str:
    if isinstance(value, str):
        return value
    if isinstance(value, torch.Tensor):
        return plain_tensor(value.detach().cpu()).numpy()
    return np.asarray(value)


class SaveOutputsd(MapTransform):
    """Write one case's outputs as ONE atomic set: ``{output_dir}/{stem}_{suffix}`` for each output key, on the
    main input's exact grid (its affine and header), ``stem`` from the main input's file name.

    Array outputs become NIfTI (leading singleton channel axes squeezed until the array has the main input's
    spatial rank, or ``spatial_ndim``); string outputs (e.g. a CSV table) are written as text. Either every output
    of the case appears or none does. Prints ``wrote PATH`` per file.

    Args:
        outputs: output key in the data → file suffix (read the suffixes from :mod:`lightning_modules.capability`).
        main_input: the case key of the main input; its path is taken from ``{main_input}_path`` or the key itself.
        output_dir: the run's output folder (created if missing).
        spatial_ndim: rank of the written arrays (default: the main input's rank as stored, e.g. 4 for IVIM's DWI
            gives 3-D maps only if given as 3 here).
        dtype: on-disk data type of arrays (labelmaps: ``"uint8"``), for all outputs or per output key.
        input_header: start each NIfTI from the main input's header (True, keeps e.g. its description and units)
            or from a fresh one (False: for outputs that are not the input's kind, such as a labelmap of a map,
            whose display range ``cal_min/cal_max`` must not be the input's); for all outputs or per output key.
            Shape, affine (sform and qform), data type and scaling are always the output's own.
    """

    def __init__(self, outputs: Mapping[str, str], *, main_input: str, output_dir: str | os.PathLike,
                 spatial_ndim: int = 3, dtype: Mapping[str, str] | str = "float32",
                 input_header: Mapping[str, bool] | bool = True) -> None:
        super().__init__(list(outputs), allow_missing_keys=False)
        self.outputs = dict(outputs)
        self.main_input = main_input
        self.output_dir = Path(output_dir)
        self.spatial_ndim = spatial_ndim
        self.dtype = dtype
        self.input_header = input_header

    def main_path(self, data: Mapping) -> str:
        """The main input's path in a case (``{main_input}_path`` if the loader stored it)."""
        path = data.get(f"{self.main_input}{PATH_SUFFIX}", data.get(self.main_input))
        if isinstance(path, (list, tuple)):  # a collated batch of one that was not decollated
            path = path[0]
        return str(path)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        source = self.main_path(d)
        reference = nib.load(source)
        affine = np.asarray(reference.affine, dtype=np.float64)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        written = []
        with atomic_output_set() as outputs:
            for key, suffix in self.outputs.items():
                path = output_path(self.output_dir, source, suffix)
                value = _as_array(d[key])
                if isinstance(value, str):
                    written.append(outputs.write_text(value, path))
                    continue
                while value.ndim > self.spatial_ndim and value.shape[0] == 1:
                    value = value[0]
                dtype = self.dtype.get(key, "float32") if isinstance(self.dtype, Mapping) else self.dtype
                keep = self.input_header.get(key, True) if isinstance(self.input_header, Mapping) \
                    else self.input_header
                written.append(outputs.save_nifti(value, affine, path, header=reference.header if keep else None,
                                                  dtype=np.dtype(dtype)))
        for path in written:
            print(f"wrote {path}", flush=True)
        d["written"] = [str(p) for p in written]
        return d


@exit_on_input_error()
def checked_device(value: object) -> torch.device:
    """``--device`` as a torch device (absent: cuda when available, else cpu), refused in one line (exit status 2)
    if it is not a device or is not available here."""
    if not is_given(value):
        value = "cuda" if torch.cuda.is_available() else "cpu"
    return resolve_device(value)


@exit_on_input_error()
def require_input(main_input: object, datalist: object, *, bundle: str) -> None:
    """Refuse a run of ``bundle`` given neither its main input (``--field``, ``--dwi``, ``--image``, ``--qsm``) nor
    ``--datalist``, in one line (exit status 2). Without input a config still builds (its cases are empty), so
    MONAI's property checks run; this refuses the run itself."""
    if not is_given(main_input) and not is_given(datalist):
        raise no_input_error(capability.main_input(bundle))


def in_dataset_dir(path: object, dataset_dir: object) -> object:
    """``path`` taken from ``dataset_dir`` (the config's ``dataset_dir``) when it is relative; absent values, absolute
    paths and the default ``"."`` leave it as it is."""
    if not is_given(path) or not is_given(dataset_dir) or str(dataset_dir) == "." or os.path.isabs(str(path)):
        return path
    return os.path.join(str(dataset_dir), str(path))


@exit_on_input_error()
def load_weights(network: nn.Module, model_path: str | os.PathLike | None, device: torch.device | str | None = None,
                 *, hint: str = "train them with configs/train.json") -> nn.Module:
    """``network`` with the shipped ``state_dict`` at ``model_path`` loaded (eval mode), moved to ``device`` if
    given; a network without weights (a classical solver, ``model_path`` absent) comes back as it is. A missing or
    mismatched weights file is one line and exit status 2 (``hint`` says what to do)."""
    if is_given(model_path):
        network = load_network(network, str(model_path), hint=hint)
    network = network.eval()
    return network if device is None else network.to(device)


def input_error_in(error: BaseException) -> InputError | None:
    """The :class:`InputError` behind ``error``: MONAI wraps an exception raised inside a transform in
    ``RuntimeError("applying transform ...")`` (once per nested ``Compose``), so follow the causes."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, InputError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


class BundleEvaluator(SupervisedEvaluator):
    """MONAI's ``SupervisedEvaluator`` for a command-line bundle run.

    Adds: ``[progress]`` lines (one per case and a final 100 %), one-line errors for bad input raised anywhere in
    loading, inference or writing (exit status 2), and SIGTERM/SIGINT handling (exit 128 + signal, no partial
    output; see :func:`lightning_modules.bundle_app.interruptible`). Everything else is MONAI's: pass the
    ``SupervisedEvaluator`` arguments (``device``, ``val_data_loader``, ``network``, ``inferer``,
    ``postprocessing``, ``prepare_batch``, ...).

    Args:
        label: what the progress lines say before each case's file name (e.g. the method).
        main_input: the case key of the main input, for the progress lines.
    """

    def __init__(self, *, label: str = "", main_input: str | None = None, **kwargs: object) -> None:
        kwargs.setdefault("decollate", True)
        super().__init__(**kwargs)
        self.label = str(label or "")
        self.main_input = main_input
        # ignite logs "Current run is terminating due to exception" before re-raising; the exception itself is
        # reported (one line for bad input, a traceback for a bug), so that log line is only noise
        self.logger.setLevel(logging.CRITICAL)
        self.add_event_handler(Events.ITERATION_STARTED, self._report_case)
        self.add_event_handler(Events.COMPLETED, lambda _engine: report_progress(1.0, "done"))

    def _report_case(self, engine: SupervisedEvaluator) -> None:
        total = engine.state.epoch_length or 1
        done = engine.state.iteration - 1
        name = ""
        batch = engine.state.batch
        if self.main_input and isinstance(batch, Mapping):
            path = batch.get(f"{self.main_input}{PATH_SUFFIX}", batch.get(self.main_input))
            path = path[0] if isinstance(path, (list, tuple)) and path else path
            name = Path(str(path)).name if isinstance(path, (str, os.PathLike)) else ""
        message = ": ".join(part for part in (self.label, name) if part)
        report_progress(done / total, message or f"case {done + 1} of {total}")

    def run(self, global_epoch: int = 1) -> None:  # type: ignore[override]
        """Run every case; bad input ends the run with one line on stderr and exit status 2."""
        with interruptible(), exit_on_input_error():
            try:
                super().run(global_epoch)
            except Exception as error:
                cause = input_error_in(error)
                if cause is None:
                    raise
                raise cause from None

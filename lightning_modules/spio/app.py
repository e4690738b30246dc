"""What the ``spio_quantification`` bundle's ``inference.json`` calls while it is parsed, and its prediction on arrays.

Per DESIGN.md: ``--image V.nii.gz`` of shape (nx, nz, 1, 2) (x phase-encode, z readout ∥ B0, 4th axis even / odd
lines) → ``{output_dir}/{stem}_concentration.nii.gz`` of shape (nx, nz, 1) in µg Fe/mm³ with exactly the input's
affine. The workflow itself is MONAI's: ``inference.json`` names the loader and the transforms of
:mod:`lightning_modules.spio.transforms`, the network (DeepSPIO, della Maggiora et al., IEEE TPAMI 2020), the
inferer (:class:`lightning_modules.spio.inferers.FlipAverageInferer`) and the evaluator
(:class:`lightning_modules.bundle_workflow.BundleEvaluator`). :func:`cases` runs while the config is parsed:
every case of a batch checked from its header, every output path resolved and collision-free, before anything is
read or written. :func:`predict_concentration` is the same map of an image held in an array (benchmarks, tests),
through the same inferers and floor (since 0.5.0 the flip average wraps a shift average along x).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import torch
from monai.inferers import SimpleInferer
from torch import nn

from lightning_modules import capability
from lightning_modules.bundle_app import (
    bundle_root,
    exit_on_input_error,
    is_given,
    load_network,
    output_path,
    parse_flag,
    parse_number,
    validated_cases,
)
from lightning_modules.bundle_workflow import in_dataset_dir
from lightning_modules.io import InputError
from lightning_modules.spio.inferers import (
    SHIFT_AVERAGE_PX,
    FlipAverageInferer,
    NoiseModelInferer,
    ShiftAverageInferer,
)
from lightning_modules.spio.simulation_refiner import SimulationRefiner, load_refiner, refine_floored
from lightning_modules.spio.transforms import (
    CONCENTRATION_FLOOR_UG_PER_MM3,
    OBJECT_CORE_FRACTION,
    OBJECT_LEVEL_SHRINKAGE,
    check_case_header,
    floor_concentration,
    shrink_object_levels,
)
from lightning_modules.spio.viewline import TRAINING_COILS

__all__ = ["CONCENTRATION_FLOOR_UG_PER_MM3", "apply_floor", "cases", "load_network", "predict_concentration",
           "bundle_refiner", "bundle_shrinkage", "noise_robust_network", "noise_robust_refiner"]

BUNDLE = "spio_quantification"


def cases(image: str | None, *, datalist: str | None, output_dir: str | os.PathLike,
          dataset_dir: str | os.PathLike = ".") -> list[dict]:
    """The run's cases (``--image``, or every entry of ``--datalist``), each checked from its header
    (:func:`~lightning_modules.spio.transforms.check_case_header`), with every output path resolved and
    collision-free; nothing is read or written yet. Without ``--image`` and ``--datalist`` there is no case (the
    workflow still builds for MONAI's property checks; running it is refused by
    :func:`~lightning_modules.bundle_workflow.require_input`).

    Args:
        dataset_dir: the folder relative ``--image`` and ``--datalist`` paths are taken from (default: the current
            folder); relative paths inside a datalist are taken from the datalist's folder.
    """
    if not is_given(image) and not is_given(datalist):
        return []
    suffixes = list(capability.outputs(BUNDLE).values())
    with exit_on_input_error():
        return validated_cases({"image": in_dataset_dir(image, dataset_dir)},
                               datalist=in_dataset_dir(datalist, dataset_dir), main_key=capability.main_input(BUNDLE),
                               outputs_of=lambda main: [output_path(output_dir, main, s) for s in suffixes],
                               validate=check_case_header)


def predict_concentration(network: nn.Module, image: np.ndarray, device: torch.device | str = "cpu", *,
                          flip_average: bool = True, shifts_px: tuple[int, ...] = SHIFT_AVERAGE_PX,
                          floor_ug_per_mm3: float = CONCENTRATION_FLOOR_UG_PER_MM3,
                          refiner: nn.Module | None = None, other_network: nn.Module | None = None,
                          other_refiner: nn.Module | None = None,
                          other_coils: float | None = TRAINING_COILS,
                          object_shrinkage: float = OBJECT_LEVEL_SHRINKAGE,
                          object_core_fraction: float = OBJECT_CORE_FRACTION) -> np.ndarray:
    """Concentration map (nx, nz) in µg Fe/mm³ (≥ 0) of a View Line image (2, nx, nz) in any intensity units: what
    the bundle writes, through its inferer, floor, refiner (when given) and one-level-per-object step.

    Args:
        network: DeepSPIO in eval mode.
        image: even- and odd-line images (2, nx, nz).
        device: where to run the network.
        flip_average: average with the mirrored prediction of the image mirrored along x
            (:class:`~lightning_modules.spio.inferers.FlipAverageInferer`); makes the map exactly flip-equivariant.
        shifts_px: average over these shifts of the image along x
            (:class:`~lightning_modules.spio.inferers.ShiftAverageInferer`, inside the flip average); ``(0,)`` is
            the image alone.
        floor_ug_per_mm3: predictions below this are set to 0 (0 keeps every positive value).
        refiner: the simulate-and-compare refiner (0.9.0; :func:`~lightning_modules.spio.simulation_refiner.
            load_refiner` of the bundle's ``models/refiner.pt``), run on the floored map and floored again, as the
            bundle's post-processing does; None gives DeepSPIO's map alone (0.8.x).
        other_network, other_refiner: the noise-robust weights (0.11.0, session 34), used instead of ``network`` and
            ``refiner`` when the image's noise is not single-channel Rician
            (:class:`~lightning_modules.spio.inferers.NoiseModelInferer`); None keeps ``network`` and ``refiner``.
        other_coils: the companion's input has a many-coil noise floor lowered to this many coils' (0.12.0,
            session 35, as the bundle's ``noise_adaptive_inferer``); None: as given (0.11.0).
        object_shrinkage, object_core_fraction: the last step, every object's core pulled this fraction of the way
            toward its median (:func:`~lightning_modules.spio.transforms.shrink_object_levels`; 0.14.0, session 41,
            the bundle's ``ObjectLevelShrinkd``); 0 gives 0.13.0's map.
    """
    x = torch.as_tensor(np.asarray(image), dtype=torch.float32, device=device)[None]
    inferer = ShiftAverageInferer(SimpleInferer(), shifts=shifts_px)
    if flip_average:
        inferer = FlipAverageInferer(inferer)
    inferer = NoiseModelInferer(inferer, other_network=None if other_network is None else other_network.to(device),
                                other_coils=other_coils)
    with torch.no_grad():
        concentration = floor_concentration(inferer(x, network.to(device))[0, 0], floor_ug_per_mm3)
    if refiner is not None:
        if other_refiner is not None and inferer.uses_other(x)[0]:
            refiner = other_refiner
        concentration = refine_floored(refiner, x, concentration[None, None], floor_ug_per_mm3=floor_ug_per_mm3)[0, 0]
    return shrink_object_levels(concentration.cpu().numpy(), core_fraction=object_core_fraction,
                                strength=object_shrinkage)


def bundle_refiner(refiner_path: str | None, device: torch.device | str = "cpu", *, refine: object = True,
                   lifts: list[str] | tuple[str, ...] | None = None) -> SimulationRefiner | None:
    """The run's simulate-and-compare refiner: ``refiner_path``'s weights reading ``lifts`` (the bundle's
    ``refiner_lifts``; None: as the weights say), or None for ``--refine false``; any other ``--refine`` value, or
    weights for other lifts, is a one-line error (exit status 2)."""
    if not bundle_flag(refine, "refine"):
        return None
    with exit_on_input_error():
        try:
            return load_refiner(refiner_path, device, None if lifts is None else tuple(lifts))
        except ValueError as error:
            raise InputError(str(error)) from None


def bundle_shrinkage(value: object) -> float:
    """The bundle's ``--object_shrinkage`` as a number in [0, 1]; anything else is a one-line error (exit status 2)."""
    hint = "a fraction from 0 (0.13.0's map) to 1 (one flat level per object)"
    with exit_on_input_error():
        number = parse_number(value, "object_shrinkage", minimum=0.0, maximum=1.0, hint=hint)
        if number is None:
            raise InputError(f"--object_shrinkage needs a value; give {hint}")
    return float(number)


def bundle_flag(value: object, option: str) -> bool:
    """``--option`` as a bool; any other value is a one-line error (exit status 2)."""
    with exit_on_input_error():
        flag = parse_flag(value)
        if not isinstance(flag, bool):
            raise InputError(f"--{option} must be true or false, not {value!r}")
    return flag


def is_shipped_weights(model_path: str | os.PathLike | None) -> bool:
    """Whether ``model_path`` is the bundle's own ``models/model.pt`` (a path not given is not)."""
    shipped = Path(bundle_root(BUNDLE)) / "models" / "model.pt"
    return is_given(model_path) and Path(model_path).resolve() == shipped.resolve()


def noise_robust_network(network_def: nn.Module, model_path: str | os.PathLike | None,
                         robust_model_path: str | os.PathLike | None, device: torch.device | str = "cpu", *,
                         noise_adaptive: object = True) -> nn.Module | None:
    """The network for the images whose noise is not single-channel Rician (0.11.0, issue 24 session 34): a copy
    of ``network_def`` with ``robust_model_path``'s weights, in eval mode on ``device``. None — every image mapped
    by the run's network — with ``--noise_adaptive false``, without robust weights, or when ``model_path`` is not
    the bundle's own ``models/model.pt`` (the robust weights are that network's companion, not another's)."""
    if (not bundle_flag(noise_adaptive, "noise_adaptive") or not is_given(robust_model_path)
            or not is_shipped_weights(model_path)):
        return None
    with exit_on_input_error():
        network = load_network(copy.deepcopy(network_def), str(robust_model_path),
                               hint="reinstall the bundle, or pass --noise_adaptive false")
    return network.to(device)


def noise_robust_refiner(robust_refiner_path: str | None, robust_network: nn.Module | None,
                         device: torch.device | str = "cpu", *, refine: object = True,
                         lifts: list[str] | tuple[str, ...] | None = None) -> SimulationRefiner | None:
    """The refiner for the images :func:`noise_robust_network` maps (trained on its maps): ``robust_refiner_path``'s
    weights as :func:`bundle_refiner` loads them, or None when there is no robust network or no refinement."""
    if robust_network is None:
        return None
    return bundle_refiner(robust_refiner_path, device, refine=refine, lifts=lifts)


def apply_floor(concentration: np.ndarray, floor_ug_per_mm3: float) -> np.ndarray:
    """``concentration`` (µg Fe/mm³, ≥ 0) with the values below ``floor_ug_per_mm3`` set to 0, as the bundle's
    floor (:func:`~lightning_modules.spio.transforms.floor_concentration`) does it."""
    return floor_concentration(torch.as_tensor(concentration), floor_ug_per_mm3).numpy()

"""The ``--method`` switch of the QSM bundle: builds the solver or network for a method name.

Classical methods are parameter-free modules; learned methods (learned NDI and QSMGAN) load their shipped
``state_dict`` from the bundle's ``models/`` folder here, with ``torch.load(..., weights_only=True)``.
:func:`invert_field` runs any of them: kernel methods get the exact dipole kernel of the input, QSMGAN (fixed
training geometry) the voxel size and B0 direction, which it resamples to and from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from lightning_modules.bundle_app import load_network
from lightning_modules.io import InputError
from lightning_modules.physics.dipole import dipole_kernel
from lightning_modules.qsm.learned_ndi import LearnedNdi
from lightning_modules.qsm.qsmgan import QsmganGenerator
from lightning_modules.qsm.qsmgan_inference import QsmganInversion
from lightning_modules.qsm.solvers import Ndi, Tkd, solve
from lightning_modules.qsm.tv import TotalVariation

#: Method names accepted by the bundle, in the order of the documentation.
METHODS = ("qsmgan", "learned_ndi", "tv", "ndi", "tkd")
#: Methods that are implemented in this version.
AVAILABLE_METHODS = METHODS
#: Shipped weights of each learned method, relative to the bundle root.
WEIGHTS = {"learned_ndi": "models/model.pt", "qsmgan": "models/qsmgan.pt"}
#: NDI stops (at most 100 iterations) once its data residual falls to this multiple of the field's non-dipolar
#: part (the discrepancy principle, :class:`lightning_modules.qsm.solvers.Ndi`). Set on the real slabs by 2-fold
#: cross-validation: the ratio at the best iteration is 0.67 on s1o1 and 0.78 on s2o4, and each slab's ratio used on
#: the other loses under one NRMSE point against that slab's best iteration (docs/README.md).
NDI_STOP_RATIO = 0.7
#: Default method: chosen on real brains by the rule in the bundle's docs/README.md (written before the run of
#: ``benchmarks/qsm_invivo.py``): QSMGAN, mean NRMSE vs COSMOS over the two slabs 65.7 % (each slab inverted by the
#: model trained without it) against TV's 68.4 %, NDI's 68.7 % and TKD's 89.6 %; no sign flips in the haemorrhage.
DEFAULT_METHOD = "qsmgan"


def build_network(method: str = DEFAULT_METHOD, bundle_root: str | None = None) -> nn.Module:
    """The inversion module for ``method``.

    Raises:
        InputError: unknown method, or a learned method whose weights file is missing.
    """
    name = str(method).lower()
    if name == "tkd":
        return Tkd()
    if name == "ndi":
        return Ndi(stop_ratio=NDI_STOP_RATIO)
    if name == "tv":
        return TotalVariation()
    if name == "learned_ndi":
        return load_weights(learned_ndi_network(), name, bundle_root)
    if name == "qsmgan":
        return load_weights(qsmgan_network(), name, bundle_root)
    raise InputError(f"unknown --method {method!r}; use one of {', '.join(AVAILABLE_METHODS)}")


def learned_ndi_network() -> LearnedNdi:
    """The shipped learned-NDI architecture (``train.json`` builds its ``network_def`` here too): 32 unrolled
    iterations, data weighted by the mask with χ kept inside it (local fields); an odd, zero-mean CNN update in
    iterations 23 and 24, then 8 plain NDI iterations (see :class:`LearnedNdi`)."""
    return LearnedNdi(iterations=32, channels=8, cnn_iterations=2, weighting="mask", odd_cnn=True,
                      final_data_iterations=8, zero_mean_cnn=True)


def qsmgan_network(*, generator_weights: str | None = None) -> QsmganInversion:
    """The shipped QSMGAN architecture (``train_qsmgan.json`` builds its ``network_def`` here too): a U-Net of
    width 8 and three levels that corrects the whole-volume TV inversion (automatic weight), trained on in-vivo
    fields with COSMOS targets (see :mod:`lightning_modules.qsm.invivo_data`); its correction has zero mean over
    the mask. ``generator_weights`` starts the U-Net from the generator of a saved QSMGAN ``state_dict``."""
    network = QsmganInversion(QsmganGenerator(channels=8, levels=3, in_channels=3), prior=TotalVariation(),
                              zero_mean_correction=True)
    if generator_weights is not None:
        state = torch.load(generator_weights, map_location="cpu", weights_only=True)
        network.generator.load_state_dict({k.removeprefix("generator."): v for k, v in state.items()
                                           if k.startswith("generator.")})
    return network


def invert_field(
    network: nn.Module, field_ppm: torch.Tensor, mask: torch.Tensor | None, voxel_size_mm: Sequence[float],
    b0_direction: Sequence[float],
) -> torch.Tensor:
    """χ (ppm) of a 3-D local field (ppm) with any method's module, on the field's grid.

    Kernel-based methods (TKD, NDI, learned NDI) are called with the exact dipole kernel of this grid;
    QSMGAN is called with the voxel size and B0 direction, since it resamples to its training geometry.
    Learned NDI and QSMGAN see the volume with its array axes permuted so that the axis closest to B0 comes last
    (exact, no interpolation; undone on the result): learned NDI's CNN was trained with B0 within 30° of that axis,
    and QSMGAN's grid has B0 along its last axis, so sagittal or coronal storage orders get the same answer as the
    equivalent axial one without a resampling.
    """
    with torch.no_grad():
        order = b0_last_order(b0_direction) if isinstance(network, (LearnedNdi, QsmganInversion)) else (0, 1, 2)
        if order != (0, 1, 2):
            inverse = tuple(order.index(a) for a in range(3))
            chi = invert_field(network, field_ppm.permute(order).contiguous(),
                               None if mask is None else mask.permute(order).contiguous(),
                               [voxel_size_mm[a] for a in order], [b0_direction[a] for a in order])
            return chi.permute(inverse).contiguous()
        if isinstance(network, QsmganInversion):
            return network(field_ppm, mask, voxel_size_mm, b0_direction)
        kernel = dipole_kernel(field_ppm.shape, voxel_size_mm, b0_direction, device=field_ppm.device)
        return solve(network, field_ppm, kernel, mask, voxel_size_mm)


def b0_last_order(b0_direction: Sequence[float]) -> tuple[int, int, int]:
    """Axis order that puts the array axis closest to the B0 direction last, the other two in their order."""
    axis = max(range(3), key=lambda a: abs(float(b0_direction[a])))
    return (*(a for a in range(3) if a != axis), axis)


def load_weights(network: nn.Module, method: str, bundle_root: str | None) -> nn.Module:
    """Load the shipped ``state_dict`` of ``method`` into ``network`` (``torch.load(weights_only=True)``)."""
    if bundle_root is None:
        raise InputError(f"--method {method} is not available without the bundle folder that holds its weights; "
                         "pass --bundle_root")
    return load_network(network, Path(bundle_root) / WEIGHTS[method],
                        hint="train them with configs/train.json or use --method ndi")

"""The ``--method`` switch of the QSM bundle: the solver or network of a method name, and the bundle's network.

Classical methods are parameter-free modules; learned methods (learned NDI and QSMGAN) have shipped
``state_dict`` s in the bundle's ``models/`` folder (:data:`WEIGHTS`, :func:`weights_for`), loaded with
``torch.load(..., weights_only=True)``. :func:`invert_field` runs any of them: kernel methods get the exact dipole
kernel of the input, QSMGAN (fixed training geometry) the voxel size and B0 direction, which it resamples to and
from. :class:`DipoleInversion` wraps any of them as the bundle's ``network_def``: ``forward`` takes ONE tensor
(batch, 1, i, j, k) of fields in ppm and, as keyword tensors with defaults, the mask and the geometry.

Method names and the default method are read from the capability description
(``monai_bundles/qsm_dipole_inversion/configs/capability.json``); :data:`METHODS` and :data:`DEFAULT_METHOD`
are aliases computed from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from lightning_modules import capability
from lightning_modules.bundle_app import is_given, load_network
from lightning_modules.io import InputError
from lightning_modules.physics.dipole import dipole_kernel
from lightning_modules.qsm.learned_ndi import LearnedNdi
from lightning_modules.qsm.qsmgan import QsmganGenerator
from lightning_modules.qsm.qsmgan_inference import QsmganInversion
from lightning_modules.qsm.solvers import Ndi, Tkd, solve
from lightning_modules.qsm.tv import TotalVariation

#: The bundle whose capability description names the methods.
BUNDLE = "qsm_dipole_inversion"
#: Method names accepted by the bundle, in the order of the documentation (from capability.json).
METHODS = capability.choices(BUNDLE, "method")
#: Methods that are implemented in this version.
AVAILABLE_METHODS = METHODS
#: Shipped weights of each learned method, relative to the bundle root.
WEIGHTS = {"learned_ndi": "models/model.pt", "qsmgan": "models/qsmgan.pt"}
#: NDI stops (at most 100 iterations) once its data residual falls to this multiple of the field's non-dipolar
#: part (the discrepancy principle, :class:`lightning_modules.qsm.solvers.Ndi`). Set on the real slabs by 2-fold
#: cross-validation: the ratio at the best iteration is 0.67 on s1o1 and 0.78 on s2o4, and each slab's ratio used on
#: the other loses under one NRMSE point against that slab's best iteration (docs/README.md).
NDI_STOP_RATIO = 0.7
#: Default method (from capability.json): chosen on real brains by the rule in the bundle's docs/README.md (written
#: before the run of ``benchmarks/qsm_invivo.py``): QSMGAN, mean NRMSE vs COSMOS over the two slabs 65.7 % (each slab
#: inverted by the model trained without it) against TV's 68.4 %, NDI's 68.7 % and TKD's 89.6 %; no sign flips in
#: the haemorrhage.
DEFAULT_METHOD = capability.default(BUNDLE, "method")


def method_name(method: str) -> str:
    """``method`` checked against :data:`METHODS` (any case).

    Raises:
        InputError: unknown method.
    """
    name = str(method).lower()
    if name not in AVAILABLE_METHODS:
        raise InputError(f"unknown --method {method!r}; use one of {', '.join(AVAILABLE_METHODS)}")
    return name


def solver_for(method: str = DEFAULT_METHOD, *, window_inferer: object = None) -> nn.Module:
    """The inversion module of ``method`` without weights (``window_inferer``: QSMGAN's sliding windows, see
    :class:`lightning_modules.qsm.qsmgan_inference.ValidCentreWindowInferer`; other methods ignore it).

    Raises:
        InputError: unknown method.
    """
    name = method_name(method)
    if name == "tkd":
        return Tkd()
    if name == "ndi":
        return Ndi(stop_ratio=NDI_STOP_RATIO)
    if name == "tv":
        return TotalVariation()
    if name == "learned_ndi":
        return learned_ndi_network()
    return qsmgan_network(window_inferer=window_inferer)


def build_network(method: str = DEFAULT_METHOD, bundle_root: str | None = None) -> nn.Module:
    """The inversion module for ``method``, with its shipped weights for a learned method.

    Raises:
        InputError: unknown method, or a learned method whose weights file is missing.
    """
    network = solver_for(method)
    name = method_name(method)
    return load_weights(network, name, bundle_root) if name in WEIGHTS else network


def weights_for(method: str, bundle_root: str | None) -> str | None:
    """Path of the shipped weights of ``method`` in the bundle folder, None for a method without weights
    (what ``inference.json``'s ``model_path`` is).

    Raises:
        InputError: unknown method, or a learned method without the bundle folder.
    """
    name = method_name(method)
    if name not in WEIGHTS:
        return None
    if not is_given(bundle_root):
        raise InputError(f"--method {name} is not available without the bundle folder that holds its weights; "
                         "pass --bundle_root")
    return str(Path(str(bundle_root)) / WEIGHTS[name])


class DipoleInversion(nn.Module):
    """The bundle's network: any method's solver with a one-tensor ``forward``, ``field (batch, 1, i, j, k) ppm →
    χ (batch, 1, i, j, k) ppm``, 0 outside the mask.

    Per-case geometry arrives as keyword tensors (``PrepareBatchExtraInput`` in ``inference.json``), each with a
    default so that MONAI's ``verify_net_in_out`` can call ``forward`` with the field alone:

    - ``mask`` (batch, 1, i, j, k): 1 inside the brain (default: everywhere);
    - ``voxel_size_mm`` (batch, 3): voxel sizes along the array axes in mm (default 1 mm isotropic);
    - ``b0_direction`` (batch, 3): B0 direction in voxel axes (default: the last array axis).

    The learned methods see each volume with the array axis closest to B0 last (:func:`invert_field`: an exact
    permutation, undone on χ). Each volume is inverted in NIfTI storage (Fortran) order, the memory layout of
    nibabel's arrays: FFT rounding depends on the layout (~1e-7 ppm), and this keeps χ bit-identical to the
    bundle's earlier app, which inverted the arrays as nibabel returned them.

    Its ``state_dict`` is the solver's under ``solver.``; :meth:`load_state_dict` also takes the solver's own
    ``state_dict`` (the shipped ``models/*.pt`` files), so one weights file serves both.
    """

    def __init__(self, solver: nn.Module) -> None:
        super().__init__()
        self.solver = solver

    def forward(
        self, field_ppm: torch.Tensor, mask: torch.Tensor | None = None, voxel_size_mm: torch.Tensor | None = None,
        b0_direction: torch.Tensor | None = None,
    ) -> torch.Tensor:
        chis = []
        for b in range(field_ppm.shape[0]):
            voxel = (1.0, 1.0, 1.0) if voxel_size_mm is None else [float(v) for v in voxel_size_mm[b]]
            b0 = (0.0, 0.0, 1.0) if b0_direction is None else [float(v) for v in b0_direction[b]]
            chis.append(invert_field(self.solver, _storage_order(field_ppm[b, 0]),
                                     None if mask is None else _storage_order(mask[b, 0]), voxel, b0))
        return torch.stack(chis)[:, None]

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """Load this module's ``state_dict`` or the solver's own (keys without the ``solver.`` prefix)."""
        if state_dict and not all(str(k).startswith("solver.") for k in state_dict):
            state_dict = {f"solver.{k}": v for k, v in state_dict.items()}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def _storage_order(volume: torch.Tensor) -> torch.Tensor:
    """A copy of a 3-D volume in Fortran (NIfTI storage) memory order, the layout of nibabel's arrays."""
    return volume.permute(2, 1, 0).contiguous().permute(2, 1, 0)


def inversion_network(method: str = DEFAULT_METHOD, *, window_inferer: object = None) -> DipoleInversion:
    """``network_def`` of ``inference.json``: :class:`DipoleInversion` of ``method``'s solver (no weights yet;
    the config's ``network`` loads ``model_path``)."""
    return DipoleInversion(solver_for(method, window_inferer=window_inferer))


def learned_ndi_network() -> LearnedNdi:
    """The shipped learned-NDI architecture (``train.json`` builds its ``network_def`` here too): 32 unrolled
    iterations, data weighted by the mask with χ kept inside it (local fields); an odd, zero-mean CNN update in
    iterations 23 and 24, then 8 plain NDI iterations (see :class:`LearnedNdi`)."""
    return LearnedNdi(iterations=32, channels=8, cnn_iterations=2, weighting="mask", odd_cnn=True,
                      final_data_iterations=8, zero_mean_cnn=True)


def qsmgan_network(*, generator_weights: str | None = None, window_inferer: object = None) -> QsmganInversion:
    """The shipped QSMGAN architecture (``train_qsmgan.json`` builds its ``network_def`` here too): a U-Net of
    width 8 and three levels that corrects the whole-volume TV inversion (automatic weight), trained on in-vivo
    fields with COSMOS targets (see :mod:`lightning_modules.qsm.invivo_data`); its correction has zero mean over
    the mask. ``generator_weights`` starts the U-Net from the generator of a saved QSMGAN ``state_dict``;
    ``window_inferer`` replaces its sliding-window inferer (default: :class:`ValidCentreWindowInferer`)."""
    network = QsmganInversion(QsmganGenerator(channels=8, levels=3, in_channels=3), prior=TotalVariation(),
                              zero_mean_correction=True, window_inferer=window_inferer)
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
        order = b0_last_order(b0_direction) if wants_b0_last(network) else (0, 1, 2)
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


def wants_b0_last(network: nn.Module) -> bool:
    """True for the modules that see the volume with the array axis closest to B0 last (learned NDI and QSMGAN,
    also inside :class:`DipoleInversion`); see :func:`invert_field`."""
    network = network.solver if isinstance(network, DipoleInversion) else network
    return isinstance(network, (LearnedNdi, QsmganInversion))


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

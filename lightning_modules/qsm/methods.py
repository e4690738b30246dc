"""The ``--method`` switch of the QSM bundle: builds the solver or network for a method name.

Classical methods are parameter-free modules; learned methods (issue: learned NDI and QSMGAN) will load their
shipped ``state_dict`` from the bundle's ``models/`` folder here, with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from torch import nn

from lightning_modules.io import InputError
from lightning_modules.qsm.solvers import Ndi, Tkd

#: Method names accepted by the bundle, in the order of the documentation.
METHODS = ("qsmgan", "learned_ndi", "ndi", "tkd")
#: Methods that are implemented in this version.
AVAILABLE_METHODS = ("ndi", "tkd")
#: Default method: the most accurate one measured (see the bundle's docs/README.md).
DEFAULT_METHOD = "ndi"


def build_network(method: str = DEFAULT_METHOD, bundle_root: str | None = None) -> nn.Module:
    """The inversion module for ``method``.

    Raises:
        InputError: unknown method, or a learned method whose weights are not shipped yet.
    """
    name = str(method).lower()
    if name == "tkd":
        return Tkd()
    if name == "ndi":
        return Ndi()
    if name in METHODS:
        raise InputError(
            f"--method {name} is not available in this version (no trained weights shipped yet); "
            f"use one of {', '.join(AVAILABLE_METHODS)}"
        )
    raise InputError(f"unknown --method {method!r}; use one of {', '.join(AVAILABLE_METHODS)}")

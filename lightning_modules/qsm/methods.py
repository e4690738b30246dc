"""The ``--method`` switch of the QSM bundle: builds the solver or network for a method name.

Classical methods are parameter-free modules; learned methods (issue: learned NDI and QSMGAN) will load their
shipped ``state_dict`` from the bundle's ``models/`` folder here, with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from lightning_modules.bundle_app import load_network
from lightning_modules.io import InputError
from lightning_modules.qsm.learned_ndi import LearnedNdi
from lightning_modules.qsm.solvers import Ndi, Tkd

#: Method names accepted by the bundle, in the order of the documentation.
METHODS = ("qsmgan", "learned_ndi", "ndi", "tkd")
#: Methods that are implemented in this version.
AVAILABLE_METHODS = ("learned_ndi", "ndi", "tkd")
#: Shipped weights of each learned method, relative to the bundle root.
WEIGHTS = {"learned_ndi": "models/model.pt"}
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
    if name == "learned_ndi":
        return load_weights(learned_ndi_network(), name, bundle_root)
    if name in METHODS:
        raise InputError(
            f"--method {name} is not available in this version (no trained weights shipped yet); "
            f"use one of {', '.join(AVAILABLE_METHODS)}"
        )
    raise InputError(f"unknown --method {method!r}; use one of {', '.join(AVAILABLE_METHODS)}")


def learned_ndi_network() -> LearnedNdi:
    """The shipped learned-NDI architecture (``train.json`` builds its ``network_def`` here too)."""
    return LearnedNdi(iterations=24, channels=8, cnn_iterations=2)


def load_weights(network: nn.Module, method: str, bundle_root: str | None) -> nn.Module:
    """Load the shipped ``state_dict`` of ``method`` into ``network`` (``torch.load(weights_only=True)``)."""
    if bundle_root is None:
        raise InputError(f"--method {method} needs the bundle folder to find its weights; pass --bundle_root")
    return load_network(network, Path(bundle_root) / WEIGHTS[method],
                        hint="train them with configs/train.json or use --method ndi")

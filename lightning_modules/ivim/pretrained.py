"""The shipped IVIM-NET weights: which b-value scheme each file was trained for, and loading them.

``--mode pretrained`` runs the bundle's ``network_def`` with ``models/model.pt`` (IVIM-NET's 11 b-values) on a
study acquired with that scheme; a study on another scheme we ship weights for (OSIPI's 18 b-values) runs the
network of that scheme instead (:func:`pretrained_network`). Any other scheme is refused with a one-line error.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lightning_modules.io import InputError
from lightning_modules.ivim.networks import IvimNet
from lightning_modules.ivim.simulate import IVIMNET_B_VALUES, OSIPI_B_VALUES

#: b-values (s/mm²) of each scheme we ship weights for.
PRETRAINED_SCHEMES = {"ivimnet11": IVIMNET_B_VALUES, "osipi18": OSIPI_B_VALUES}
#: Shipped weights per (model, scheme), in the bundle's ``models/`` folder (bi-exponential only).
PRETRAINED_WEIGHTS = {
    ("biexp", "ivimnet11"): "model.pt",
    ("biexp", "osipi18"): "model_biexp_osipi18.pt",
}
#: Largest difference (s/mm²) between a study's b-value and the scheme's for the two to count as the same.
SCHEME_TOLERANCE_S_PER_MM2 = 0.5


def same_scheme(b_values_s_per_mm2: np.ndarray, scheme_s_per_mm2: np.ndarray) -> bool:
    """True if the distinct values of ``b_values_s_per_mm2`` are the scheme's (within 0.5 s/mm²)."""
    unique = np.unique(np.asarray(b_values_s_per_mm2, dtype=np.float64))
    scheme = np.sort(np.asarray(scheme_s_per_mm2, dtype=np.float64))
    return unique.size == scheme.size and bool(np.allclose(unique, scheme, atol=SCHEME_TOLERANCE_S_PER_MM2))


def runs_on(network: torch.nn.Module | None, model: str, b_values_s_per_mm2: np.ndarray) -> bool:
    """True if ``network`` (e.g. an :class:`IvimNet`) estimates ``model`` and was trained for the distinct values of
    ``b_values_s_per_mm2`` (its ``b_values`` buffer)."""
    scheme = getattr(network, "b_values", None)
    return (getattr(network, "model", None) == model and scheme is not None
            and same_scheme(b_values_s_per_mm2, scheme.detach().cpu().numpy()))


def pretrained_weights(model: str, b_values_s_per_mm2: np.ndarray, bundle_root: str | os.PathLike) -> tuple[str, Path]:
    """The scheme and weights file shipped for ``model`` and the b-values of a study.

    Raises:
        InputError: no weights for this model or scheme (suggests ``--mode fit``) or a missing weights file.
    """
    if not any(m == model for m, _ in PRETRAINED_WEIGHTS):
        raise InputError(f"--mode pretrained has no weights for --model {model}; use --mode fit to train on this "
                         "data set")
    for scheme, scheme_b in PRETRAINED_SCHEMES.items():
        if same_scheme(b_values_s_per_mm2, scheme_b):
            path = Path(bundle_root) / "models" / PRETRAINED_WEIGHTS[(model, scheme)]
            if not path.is_file():
                raise InputError(f"weights file {str(path)!r} is missing; reinstall the bundle or use --mode fit")
            return scheme, path
    raise InputError(
        f"--mode pretrained has weights only for the IVIM-NET b-values {list(IVIMNET_B_VALUES)} and OSIPI's "
        f"{list(OSIPI_B_VALUES)}, not {np.unique(b_values_s_per_mm2).tolist()}; use --mode fit to train on this "
        "data set"
    )


def pretrained_network(model: str, b_values_s_per_mm2: np.ndarray, bundle_root: str | os.PathLike) -> IvimNet:
    """The shipped IVIM-NET for ``model`` whose b-value scheme equals the distinct values of ``b_values_s_per_mm2``
    (eval mode).

    Raises:
        InputError: as :func:`pretrained_weights`.
    """
    scheme, path = pretrained_weights(model, b_values_s_per_mm2, bundle_root)
    network = IvimNet(PRETRAINED_SCHEMES[scheme], model=model)
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return network.eval()

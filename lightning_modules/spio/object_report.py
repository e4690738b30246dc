"""Per-object report of a SPIO concentration map: each object's size, level and iron, and how far its level can be
trusted (issue 24, session 44).

The bundle's DeepSPIO map is the mean of six passes (the image mirrored along x or not × shifted by −1, 0, +1
pixels). Where the passes disagree the network is unsure: over an object of the final map, their relative spread
(the mean per-pixel standard deviation over the object / the object's mean) tracks the *size* of the object's level
error — Spearman ρ +0.57 with |log best scale| on simulated development images, where the object's area gives −0.41,
its level −0.35 and the SNR −0.22 — but not its sign (ρ +0.08), so it cannot correct the level
(``benchmarks/results/spio/decision_rule_session44.md``), only say how uncertain it is. Simulated objects binned by
that spread (``benchmarks/spio_object_uncertainty.py``) give each object of a map the fraction of its bin's objects
that held no iron (``p_no_iron``) and the factors within which half (``level_factor_50``) or 80 %
(``level_factor_80``) of the bin's objects with iron had their level (×/÷ the truth's L1 best fit). On other shapes
and anatomy than training's the errors are larger than these factors say (the bundle's docs, Accuracy).

Usage (the image the bundle mapped and the map it wrote; the same weights, ``--model_path``, as the map):
    .venv/bin/python -m lightning_modules.spio.object_report --image V.nii.gz \\
        --concentration out/V_concentration.nii.gz --out V_objects.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.inferers import SimpleInferer
from monai.transforms import MapTransform
from torch import nn

from lightning_modules import capability
from lightning_modules.bundle_app import bundle_root, exit_on_input_error
from lightning_modules.bundle_workflow import PATH_SUFFIX
from lightning_modules.io import InputError, load_nifti, voxel_sizes_mm, write_text_atomic
from lightning_modules.spio.inferers import (
    SHIFT_AVERAGE_PX,
    FlipAverageInferer,
    NoiseModelInferer,
    ShiftAverageInferer,
)
from lightning_modules.spio.transforms import object_components
from lightning_modules.spio.viewline import TRAINING_COILS

#: Interior edges of the relative-spread bins (the deciles of 1 991 objects of 0.14.0's maps of training's generator,
#: seed 1, images 16 800–17 399; ``benchmarks/spio_object_uncertainty.py``, session 44).
SPREAD_BIN_EDGES: tuple[float, ...] = (0.0677, 0.0841, 0.0963, 0.1097, 0.1254, 0.1456, 0.1763, 0.2482, 0.547)
#: Per bin: the fraction of its objects without true iron, and the 50 % and 80 % quantiles of |level / truth's best
#: fit| as a ×/÷ factor over its objects with iron (same objects as :data:`SPREAD_BIN_EDGES`).
SPREAD_BIN_TABLE: tuple[tuple[float, float, float], ...] = (
    (0.01, 1.063, 1.133), (0.0, 1.075, 1.189), (0.025, 1.114, 1.248), (0.035, 1.116, 1.258), (0.03, 1.158, 1.366),
    (0.06, 1.177, 1.416), (0.055, 1.181, 1.433), (0.075, 1.234, 1.513), (0.166, 1.39, 2.004), (0.535, 3.913, 10.716))
#: The table's columns, in order: the bundle's described output ``objects`` (units and help: its capability.json).
COLUMNS = capability.columns("spio_quantification", "objects")


def pass_mean_and_spread(network: nn.Module, image: np.ndarray, *, other_network: nn.Module | None = None,
                         other_coils: float | None = TRAINING_COILS) -> tuple[np.ndarray, np.ndarray]:
    """The six test-time passes' mean map (unfloored, the bundle's inferer's output) and their standard deviation per
    pixel, (x, z), µg Fe/mm³, of a View Line image (2, x, z): the bundle's own inferers run on ``[f, f²]``, so every
    pixel is averaged over the passes that saw it, with the map's own weights. ``other_network``: the noise-robust
    companion, which the bundle uses for images whose noise is not single-channel Rician (``NoiseModelInferer``,
    with their noise floor lowered to ``other_coils`` coils' first), so the passes are those of the map's network."""
    def moments(net: nn.Module):
        def both(t: torch.Tensor) -> torch.Tensor:  # in float64: E[m²] − E[m]² cancels where the passes agree
            m = net(t).double()
            return torch.cat([m, m * m], dim=1)
        return both

    inferer = NoiseModelInferer(FlipAverageInferer(ShiftAverageInferer(SimpleInferer(), shifts=SHIFT_AVERAGE_PX)),
                                other_network=None if other_network is None else moments(other_network),
                                other_coils=other_coils)
    device = next(network.parameters()).device
    x = torch.as_tensor(np.asarray(image), dtype=torch.float32)[None].to(device)
    with torch.no_grad():
        out = inferer(x, moments(network))[0].cpu().numpy()
    return out[0], np.sqrt(np.clip(out[1] - out[0] ** 2, 0.0, None))


def relative_spread(levels: np.ndarray, spreads: np.ndarray) -> float:
    """The passes' relative spread over one object: its pixels' mean spread / their mean map value (> 0)."""
    return float(np.mean(spreads) / np.mean(levels))


def spread_bin(value: float) -> tuple[float, float, float]:
    """(fraction without iron, level factor 50 %, level factor 80 %) of simulated objects whose relative spread falls
    in the same bin as ``value`` (:data:`SPREAD_BIN_TABLE`)."""
    return SPREAD_BIN_TABLE[int(np.searchsorted(SPREAD_BIN_EDGES, value, side="right"))]


def object_rows(concentration: np.ndarray, spread: np.ndarray, pixel_mm: tuple[float, float],
                affine: np.ndarray | None = None) -> list[dict[str, float]]:
    """One row per object of the map (the bundle's objects: 4-connected components of its nonzero pixels, in label
    order): centroid (world mm through ``affine``, else pixel coordinates × ``pixel_mm``), area (mm²), level (the
    median, µg Fe/mm³), iron (µg Fe per mm along the slice normal), the passes' relative spread and what simulated
    objects of that spread say (:func:`spread_bin`)."""
    concentration = np.asarray(concentration, np.float64)
    if np.shape(spread) != concentration.shape:
        raise ValueError(f"the spread's shape {np.shape(spread)} is not the map's {concentration.shape}")
    pixel_area = float(pixel_mm[0] * pixel_mm[1])
    labels, n = object_components(concentration)
    rows = []
    for j in range(1, n + 1):
        k = labels == j
        spread_k = relative_spread(concentration[k], np.asarray(spread)[k])
        p_no_iron, factor_50, factor_80 = spread_bin(spread_k)
        ix, iz = (float(v) for v in np.argwhere(k).mean(0))
        world = (affine @ np.array([ix, iz, 0.0, 1.0]))[:3] if affine is not None else (
            ix * pixel_mm[0], 0.0, iz * pixel_mm[1])
        rows.append({"label": j, "x_mm": float(world[0]), "y_mm": float(world[1]), "z_mm": float(world[2]),
                     "area_mm2": float(k.sum()) * pixel_area, "level_ug_per_mm3": float(np.median(concentration[k])),
                     "iron_ug_per_mm": float(concentration[k].sum()) * pixel_area,
                     "relative_spread": spread_k, "p_no_iron": p_no_iron, "level_factor_50": factor_50,
                     "level_factor_80": factor_80})
    return rows


def csv_text(rows: Sequence[dict[str, float]]) -> str:
    return ",".join(COLUMNS) + "\n" + "".join(
        ",".join(str(row[c]) if c == "label" else f"{row[c]:.6g}" for c in COLUMNS) + "\n" for row in rows)


def object_table(plane: np.ndarray, spread: np.ndarray, affine: np.ndarray) -> str:
    """The CSV text of :func:`object_rows` for a map on the grid of ``affine`` (its pixel size read from it)."""
    spacing = voxel_sizes_mm(affine)
    return csv_text(object_rows(plane, spread, (float(spacing[0]), float(spacing[1])), affine))


def uncalibrated_warning(model_path: str | None) -> str | None:
    """The warning for weights other than the shipped ``models/model.pt``, whose passes :data:`SPREAD_BIN_TABLE` was
    fitted on; None for the shipped weights (or none given: the shipped ones are used)."""
    from lightning_modules.spio.app import is_shipped_weights

    if not model_path or is_shipped_weights(model_path):
        return None
    return (f"warning: {model_path}: the object table's p_no_iron and level factors were fitted on the shipped "
            "weights' passes, not on these weights': read them as a rough guide only")


class ObjectReportd(MapTransform):
    """The bundle's ``--objects true`` (session 45): the object report of the final map ``keys`` (1, x, z) as CSV
    text in ``output_key``, which the bundle writes beside the map as ``{stem}_objects.csv`` in one atomic set
    (``SaveOutputsd``). The passes are run again on ``[f, f²]`` with the run's own ``network`` (and
    ``other_network``, the noise-robust companion the run maps such images with), so the spread is that of the map's
    network; the positions go through the case's image affine (``{image_key}_path``). ``enabled`` False (the
    default, ``--objects false``) leaves the data as it is. ``model_path``: the run's weights; other than the shipped
    ones, a warning says the table's bins were not fitted for them (:func:`uncalibrated_warning`)."""

    def __init__(self, keys: KeysCollection = "pred", *, network: nn.Module, other_network: nn.Module | None = None,
                 image_key: str = "image", output_key: str = "objects", enabled: bool = False,
                 model_path: str | None = None) -> None:
        super().__init__(keys)
        self.network, self.other_network = network, other_network
        self.image_key, self.output_key, self.enabled = image_key, output_key, bool(enabled)
        self.warning = uncalibrated_warning(model_path) if self.enabled else None

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        if not self.enabled:
            return d
        (key,) = tuple(self.key_iterator(d))
        _, spread = pass_mean_and_spread(self.network, torch.as_tensor(d[self.image_key]).cpu().numpy(),
                                         other_network=self.other_network)
        plane = torch.as_tensor(d[key]).detach().cpu().numpy()[0]
        path = d[f"{self.image_key}{PATH_SUFFIX}"]
        affine = np.asarray(nib.load(str(path[0] if isinstance(path, (list, tuple)) else path)).affine, np.float64)
        d[self.output_key] = object_table(plane, spread, affine)
        if self.warning:
            print(self.warning, flush=True)
        return d


def main(argv: Sequence[str] | None = None) -> None:
    from lightning_modules.spio.app import load_network
    from lightning_modules.spio.networks import DeepSpio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="the View Line image the bundle mapped, (128, 128, 1, 2)")
    parser.add_argument("--concentration", required=True, help="the bundle's {stem}_concentration.nii.gz of it")
    parser.add_argument("--model_path", default=None,
                        help="the DeepSPIO weights that made the map (default: the bundle's models/model.pt, and its "
                             "noise-robust companion for images whose noise is not single-channel Rician, as the "
                             "bundle maps them)")
    parser.add_argument("--out", default=None, help="write the table as CSV here (default: print only)")
    args = parser.parse_args(argv)
    with exit_on_input_error():
        image, image_affine, _ = load_nifti(args.image, what="View Line image", ndim=(4,))
        concentration, affine, _ = load_nifti(args.concentration, what="concentration", ndim=(2, 3))
        if image.shape[2:] != (1, 2) or concentration.shape[2:] not in ((), (1,)):
            raise InputError(f"{args.image!r} must be one View Line slice (x, z, 1, 2) and {args.concentration!r} "
                             f"its one-slice map; got {image.shape} and {concentration.shape}")
        plane = concentration.reshape(concentration.shape[:2])
        if plane.shape != image.shape[:2] or not np.allclose(affine, image_affine, atol=1e-3):
            raise InputError(f"{args.concentration!r} is not a map of {args.image!r}: another grid or affine")
        models = Path(bundle_root("spio_quantification")) / "models"
        network = load_network(DeepSpio(), args.model_path or str(models / "model.pt"))
        other = None if args.model_path else load_network(DeepSpio(), str(models / "model_noise_robust.pt"))
    view = np.moveaxis(image[:, :, 0, :], -1, 0)  # (2, x, z)
    if warning := uncalibrated_warning(args.model_path):
        print(warning, file=sys.stderr, flush=True)
    _, spread = pass_mean_and_spread(network, view, other_network=other)
    text = object_table(plane, spread, affine)
    if args.out:
        write_text_atomic(text, Path(args.out))
    print(text, end="")


if __name__ == "__main__":
    main()

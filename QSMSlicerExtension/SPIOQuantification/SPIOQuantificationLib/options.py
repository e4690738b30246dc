"""What the SPIOQuantification panel sends to ``spio_quantification``, with an early check of the image layout."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from QSMSlicerCommon.options import SpioOptions

#: How accurate the maps are, as the panel's help and the web app's SPIO page say it (the bundle's docs, "Accuracy":
#: 0.14.0 on simulated images).
ACCURACY_NOTE = ("Not yet quantitative: NMAE ≈ 0.35 on simulated images (≈ 0.5–0.6 below 11 dB, where the bundle "
                 "warns), an object's iron usually read low, small deposits most.")
#: What the panel's help says beyond the bundle's description.
HELP_NOTE = ("The shipped network assumes the acquisition described in the bundle's documentation. "
             f"{ACCURACY_NOTE} Use the maps for where the iron is and its order of magnitude, not yet for "
             "quantitative levels. Read bench tubes with the Bench tubes section.")


def view_line_layout_problem(node_array_shape: Sequence[int], node_name: str) -> str | None:
    """Why a node cannot be a View Line image, or ``None`` if it can.

    The bundle expects (nx, nz, 1, 2): one x–z slice with the even-line and odd-line images as two channels.
    Slicer arrays are (k, j, i, components), so the node's array must be (1, nz, nx, 2).

    >>> view_line_layout_problem((1, 128, 128, 2), "viewline") is None
    True
    >>> view_line_layout_problem((128, 128, 1), "viewline")
    "'viewline' has array shape (128, 128, 1); a View Line image is one slice with 2 channels (even and odd lines)"
    """
    shape = tuple(int(s) for s in node_array_shape)
    if len(shape) == 4 and shape[0] == 1 and shape[3] == 2:
        return None
    return (f"{node_name!r} has array shape {shape}; a View Line image is one slice with 2 channels "
            "(even and odd lines)")


def spio_options(image: Path, *, object_shrinkage: float | None = None) -> SpioOptions:
    """Options for the staged View Line image; ``object_shrinkage`` ``None`` keeps the bundle's default."""
    if object_shrinkage is None:
        return SpioOptions(image=image)
    return SpioOptions(image=image, object_shrinkage=float(object_shrinkage))

"""The IVIMMapping panel's choices, where the b-values come from, and how they become ``ivim_mapping`` options."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from QSMSlicerCommon import capability
from QSMSlicerCommon.options import IvimOptions

#: ``--model``, ``--mode`` and ``--method`` values, from the bundle's description.
MODELS, MODES, METHODS = (capability.choices(IvimOptions.BUNDLE, option) for option in ("model", "mode", "method"))
#: Unit of the b-values, from the bundle's description.
B_VALUE_UNIT = capability.describe(IvimOptions.BUNDLE)["inputs"]["bvals"]["unit"]
#: Node attribute in which Slicer's MultiVolume importer stores one label (here: the b-value) per frame.
FRAME_LABELS_ATTRIBUTE = "MultiVolume.FrameLabels"
#: A sequence's index is read as b-values only when its name or unit says so (not a time or a frame number).
_B_VALUE_INDEX = re.compile(r"^b$|b[-_ ]?val|s/mm", re.IGNORECASE)


def parse_b_values(text: str, *, source: str) -> list[float]:
    """b-values (``B_VALUE_UNIT``) from text separated by commas and/or whitespace.

    Args:
        text: e.g. ``"0, 10, 20, 50"``.
        source: where the text came from, for the error message.

    Raises:
        ValueError: empty text, a non-number or a negative value (one sentence naming ``source``).

    >>> parse_b_values("0, 10 20,50", source="the b-values field")
    [0.0, 10.0, 20.0, 50.0]
    """
    tokens = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    if not tokens:
        raise ValueError(f"{source} holds no b-values; give one b-value in {B_VALUE_UNIT} per frame of the series")
    values = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"{source}: {token!r} is not a number; give b-values in {B_VALUE_UNIT}") from None
        if value < 0:
            raise ValueError(f"{source}: b-value {value:g} is negative; b-values are ≥ 0 {B_VALUE_UNIT}")
        values.append(value)
    return values


def b_values_from_sequence_index(index_name: str, index_unit: str, index_values: list[str]) -> str | None:
    """The index values of a DWI sequence as b-value text, if the index is a b-value; else ``None``.

    >>> b_values_from_sequence_index("b-value", "s/mm2", ["0", "50", "800"])
    '0 50 800'
    >>> b_values_from_sequence_index("time", "s", ["0", "1"]) is None
    True
    """
    if _B_VALUE_INDEX.search(index_name) or _B_VALUE_INDEX.search(index_unit):
        return " ".join(index_values)
    return None


def choose_b_values(*, file_path: str | Path | None, typed: str, series_labels: str | None,
                    series_name: str) -> list[float]:
    """The b-values of a run: from the b-value file if one is chosen, else the typed text, else the series.

    Args:
        file_path: FSL-style ``.bval`` file chosen in the panel; empty, ``"."`` or ``None`` when none is.
        typed: the b-values field.
        series_labels: b-values stored with the series (MultiVolume frame labels or a b-value sequence index).
        series_name: node name, for the error message.

    Raises:
        ValueError: no source holds b-values, or the chosen one does not parse (one sentence naming it).
    """
    if file_path is not None and str(file_path) not in ("", "."):
        path = Path(file_path)
        if not path.is_file():
            raise ValueError(f"b-value file {str(path)!r} does not exist; choose an FSL-style .bval file")
        return parse_b_values(path.read_text(encoding="utf-8"), source=f"b-value file {str(path)!r}")
    if typed.strip():
        return parse_b_values(typed, source="the b-values field")
    if series_labels:
        return parse_b_values(series_labels, source=f"the b-values stored with {series_name!r}")
    raise ValueError(f"{series_name!r} has no b-values stored with it; choose a b-value file or type the b-values")


def stack_frames(frames: list[np.ndarray], series_name: str) -> np.ndarray:
    """One (k, j, i, b) array from the (k, j, i) frames of a DWI sequence.

    Raises:
        ValueError: fewer than two frames, or frames of different shapes.
    """
    if len(frames) < 2:
        raise ValueError(f"sequence {series_name!r} has {len(frames)} frame(s); an IVIM series needs one per b-value")
    shapes = {np.shape(f) for f in frames}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"the frames of sequence {series_name!r} have shapes {sorted(shapes)}; "
                         "they must be 3-D volumes on one grid")
    return np.stack(frames, axis=-1)


def write_bvals(values: list[float], path: Path) -> Path:
    """Write an FSL-style b-value file (one line, space-separated, ``B_VALUE_UNIT``)."""
    path.write_text(" ".join(f"{v:g}" for v in values) + "\n", encoding="utf-8")
    return path


def ivim_options(dwi: Path, bvals: Path, mask: Path | None, *, model: str, mode: str, method: str) -> IvimOptions:
    """Options for staged inputs.

    Raises:
        ValueError: unknown model, mode or method.
    """
    for what, value, allowed in (("model", model, MODELS), ("mode", mode, MODES), ("method", method, METHODS)):
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
    return IvimOptions(dwi=dwi, bvals=bvals, mask=mask, model=model, mode=mode, method=method)

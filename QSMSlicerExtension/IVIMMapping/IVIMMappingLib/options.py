"""The IVIMMapping panel's choices, b-value parsing and how they become ``ivim_mapping`` options."""

from __future__ import annotations

import re
from pathlib import Path

from QSMSlicerCommon.options import IVIM_MAPS, IvimOptions

#: ``--model`` values.
MODELS = tuple(IVIM_MAPS)
#: ``--mode`` values.
MODES = ("fit", "pretrained")
#: ``--method`` values.
METHODS = ("net", "lsq")
#: Node attribute in which Slicer's MultiVolume importer stores one label (here: the b-value) per frame.
FRAME_LABELS_ATTRIBUTE = "MultiVolume.FrameLabels"


def parse_b_values(text: str, *, source: str) -> list[float]:
    """b-values in s/mm² from text separated by commas and/or whitespace.

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
        raise ValueError(f"{source} holds no b-values; give one b-value in s/mm² per frame of the series")
    values = []
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"{source}: {token!r} is not a number; give b-values in s/mm²") from None
        if value < 0:
            raise ValueError(f"{source}: b-value {value:g} is negative; b-values are ≥ 0 s/mm²")
        values.append(value)
    return values


def write_bvals(values: list[float], path: Path) -> Path:
    """Write an FSL-style b-value file (one line, space-separated, s/mm²)."""
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

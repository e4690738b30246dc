"""What the RimLesionDetection panel sends to ``rim_lesion_detection`` and how it summarises the lesion table."""

from __future__ import annotations

import csv
from pathlib import Path

from QSMSlicerCommon.options import RimOptions


def rim_options(qsm: Path, flair: Path, lesion_mask: Path, *, threshold: float) -> RimOptions:
    """Options for staged inputs; a threshold ≤ 0 leaves the bundle's validated operating point."""
    return RimOptions(qsm=qsm, flair=flair, lesion_mask=lesion_mask,
                      threshold=float(threshold) if threshold > 0 else None)


def summarize_lesions(csv_path: Path) -> str:
    """One line for the log: how many lesions the table lists and how many are rim+.

    Raises:
        ValueError: the table lacks the ``rim_positive`` column of the bundle's contract.
    """
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "rim_positive" not in rows[0]:
        raise ValueError(f"lesion table {str(csv_path)!r} has no rim_positive column; is it a rim bundle output?")
    positive = sum(str(r["rim_positive"]).strip().lower() in ("1", "true", "yes") for r in rows)
    return f"{len(rows)} lesion(s), {positive} rim+"

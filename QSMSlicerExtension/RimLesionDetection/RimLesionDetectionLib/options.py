"""What the RimLesionDetection panel sends to ``rim_lesion_detection``."""

from __future__ import annotations

from pathlib import Path

from QSMSlicerCommon.options import RimOptions


def rim_options(qsm: Path, flair: Path, lesion_mask: Path, *, threshold: float) -> RimOptions:
    """Options for staged inputs; a threshold ≤ 0 leaves the bundle's validated operating point."""
    return RimOptions(qsm=qsm, flair=flair, lesion_mask=lesion_mask,
                      threshold=float(threshold) if threshold > 0 else None)

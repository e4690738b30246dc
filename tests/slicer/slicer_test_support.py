"""Paths shared by the Slicer-extension tests, and the import paths Slicer would set up.

The Slicer modules cannot be imported here (no ``slicer``); their plain-Python parts can: ``QSMSlicerCommon``
and each ``<Module>Lib`` are put on ``sys.path`` the way Slicer does (module folders and the extension folder).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXTENSION_DIR = REPO / "QSMSlicerExtension"
MODULES = ("QSMInversion", "IVIMMapping", "SPIOQuantification", "RimLesionDetection")

for folder in (EXTENSION_DIR, *(EXTENSION_DIR / m for m in MODULES)):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def run_with_only(paths: list[Path], statement: str, *, drop: tuple[str, ...]) -> subprocess.CompletedProcess:
    """Run ``statement`` in a fresh interpreter whose ``sys.path`` is ``paths`` followed by this interpreter's
    entries that contain none of ``drop`` (how Slicer imports a module: only its folder added)."""
    keep = f"[p for p in sys.path if p and not any(d in p for d in {drop!r})]"
    code = f"import sys; sys.path[:] = {[str(p) for p in paths]!r} + {keep}; {statement}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO.parent)

"""Paths shared by the Slicer-extension tests, and the import paths Slicer would set up.

The Slicer modules cannot be imported here (no ``slicer``); their plain-Python parts can: ``QSMSlicerCommon``
and each ``<Module>Lib`` are put on ``sys.path`` the way Slicer does (module folders and the extension folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXTENSION_DIR = REPO / "QSMSlicerExtension"
MODULES = ("QSMInversion", "IVIMMapping", "SPIOQuantification", "RimLesionDetection")

for folder in (EXTENSION_DIR, *(EXTENSION_DIR / m for m in MODULES)):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

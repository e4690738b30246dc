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


def scene_node_ids(scene) -> set[str]:
    """IDs of every node in an MRML scene."""
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def add_volume(slicer, name: str, array_ijk, affine, class_name: str = "vtkMRMLScalarVolumeNode"):
    """A volume node from an (i, j, k[, c]) array and its IJK→RAS matrix, made with ``slicer.util``."""
    import numpy as np

    array_kji = np.ascontiguousarray(np.transpose(array_ijk, (2, 1, 0, *range(3, np.ndim(array_ijk)))))
    return slicer.util.addVolumeFromArray(array_kji, np.asarray(affine, dtype=float), name, class_name)


def ijk_to_ras_array(node):
    """A volume node's IJK→RAS matrix as a 4×4 numpy array."""
    import numpy as np
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])

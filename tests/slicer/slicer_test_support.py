"""Paths shared by the Slicer-extension tests, the import paths Slicer would set up, and Slicer's module factory.

Importing this puts ``QSMSlicerExtension/headless`` on ``sys.path`` (``headless_slicer``: ``import slicer`` on
real Slicer code) and, the way Slicer does, the extension folder and the module folders (``QSMSlicerCommon``
and each ``<Module>Lib``).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
EXTENSION_DIR = REPO / "QSMSlicerExtension"
HEADLESS_DIR = EXTENSION_DIR / "headless"

if str(HEADLESS_DIR) not in sys.path:
    sys.path.insert(0, str(HEADLESS_DIR))

import headless_slicer  # noqa: E402  (from HEADLESS_DIR)

MODULES = headless_slicer.MODULES
headless_slicer.add_module_paths()


def register_module(name: str):
    """What Slicer's scripted-module factory does with ``<name>/<name>.py``: import it, instantiate its module class
    with a module object that knows the file's path (``slicer.modules.<name lower>``), which registers the
    module's self-test in ``slicer.selfTests``. Returns the imported Python module."""
    slicer = headless_slicer.load()
    module = importlib.import_module(name)
    parent = SimpleNamespace(path=module.__file__, name=name, isEntered=True)
    setattr(slicer.modules, name.lower(), parent)
    setattr(slicer.modules, f"{name}Instance", getattr(module, name)(parent))
    return module


def new_module_widget(name: str):
    """The module's panel as Slicer makes it: the widget class on a ``qMRMLWidget`` with a layout, then ``setup()``."""
    import qt

    slicer = headless_slicer.load()
    module = register_module(name)
    panel = slicer.qMRMLWidget()
    panel.setLayout(qt.QVBoxLayout())
    panel.setMRMLScene(slicer.mrmlScene)
    panel.isEntered = True
    widget = getattr(module, f"{name}Widget")(panel)
    widget.setup()
    return widget


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

"""``import slicer`` in the web app: Slicer's own Python layer over the scene that trame-slicer shows.

The same construction as ``tests/slicer/real_slicer.py``, for ``.venv-web``: the ``slicer`` package is Slicer
5.12.3's ``Base/Python/slicer`` (``util``, ``ScriptedLoadableModule``, ``parameterNodeWrapper``; read from
``../shared/slicer-5.12.3`` or ``$QSM_SLICER_SOURCE``, never copied) with the C++ classes of the ``slicer-core``
wheel that trame-slicer pulls put into its namespace. The Qt modules the Python layer imports (``qt``, ``ctk``)
and ``slicer.app`` with its I/O manager are the stand-ins of ``tests/slicer/stand_in/`` (no widget is ever
shown here; the web page is the GUI). Unlike the tests, the scene, the application logic and the module logics
are trame-slicer's :class:`~trame_slicer.core.SlicerApp`, so that the modules' Logic classes load their results
into the very scene the browser's slice views render, with Slicer's colour files loaded into it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[3]
EXTENSION = REPO / "QSMSlicerExtension"
MODULES = ("QSMInversion", "IVIMMapping", "SPIOQuantification", "RimLesionDetection")
STAND_IN = REPO / "tests" / "slicer" / "stand_in"
SLICER_SOURCE = Path(os.environ.get("QSM_SLICER_SOURCE") or REPO.parent / "shared" / "slicer-5.12.3")
PYTHON_LAYER = SLICER_SOURCE / "Base" / "Python" / "slicer"
COLOUR_FILES = SLICER_SOURCE / "Base" / "Logic" / "Resources" / "ColorFiles"


def unavailable() -> str | None:
    """Why the web app cannot start here (one line), or ``None``."""
    if not (PYTHON_LAYER / "ScriptedLoadableModule.py").is_file():
        return (f"Slicer 5.12.3's Python layer not found at {PYTHON_LAYER}: place ../shared/slicer-5.12.3 beside "
                "the repository or set QSM_SLICER_SOURCE")
    for package in ("slicer_core", "trame_slicer"):
        if importlib.util.find_spec(package) is None:
            return f"{package} is not installed: run the web app with .venv-web/bin/python (`make web` makes it)"
    return None


def _stand_in_class(name: str) -> type:
    """Any other Qt widget class of ``slicer`` that the Python layer names in annotations: a plain widget."""
    import qt

    if not name.startswith(("qMRML", "qSlicer")):
        raise AttributeError(f"module 'slicer' has no attribute {name!r}")
    return qt.__getattr__("Q" + name)


def import_slicer():
    """Put Slicer's Python layer in ``sys.modules["slicer"]`` with slicer-core's classes (before trame-slicer's
    own ``from slicer import ...``), and the module folders on ``sys.path``. Returns ``slicer``."""
    loaded = sys.modules.get("slicer")
    if loaded is not None and hasattr(loaded, "ScriptedLoadableModule"):
        return loaded
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    for folder in (STAND_IN, EXTENSION, *(EXTENSION / name for name in MODULES)):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("slicer", PYTHON_LAYER / "__init__.py",
                                                  submodule_search_locations=[str(PYTHON_LAYER)])
    slicer = importlib.util.module_from_spec(spec)
    sys.modules["slicer"] = slicer
    spec.loader.exec_module(slicer)
    for package in ("slicer_core", "slicer_layer_dm"):
        library = importlib.import_module(package)
        for name in dir(library):
            if not name.startswith("_"):
                setattr(slicer, name, getattr(library, name))
    import mrml_widgets

    for name in ("qMRMLWidget", "qMRMLNodeComboBox", "qMRMLTableView"):
        setattr(slicer, name, getattr(mrml_widgets, name))
    slicer.__getattr__ = _stand_in_class
    import slicer.ScriptedLoadableModule  # noqa: F401  (Slicer's own, from PYTHON_LAYER)
    import slicer.util  # noqa: F401

    return slicer


class _VolumesLogicWithMessages:
    """slicer-core 5.11 (trame-slicer's pin) has ``AddArchetypeVolume`` without the 5.12 ``messages`` argument
    that the I/O manager passes; everything else is the real volumes logic."""

    def __init__(self, logic) -> None:
        self._logic = logic

    def AddArchetypeVolume(self, path: str, name: str, options: int, file_list=None, messages=None):  # noqa: N802
        return self._logic.AddArchetypeVolume(path, name, options)

    def __getattr__(self, name: str):
        return getattr(self._logic, name)


def attach(slicer_app) -> object:
    """Make ``slicer.mrmlScene``, ``slicer.app`` and ``slicer.modules.<name>.logic()`` those of a trame-slicer
    :class:`SlicerApp`, and load Slicer's colour files (DivergingBlueRed, Viridis...) into its scene."""
    slicer = import_slicer()
    from slicer_app import Application, CoreIOManager, share_folder_with_colour_files

    scene, application_logic = slicer_app.scene, slicer_app.app_logic
    if COLOUR_FILES.is_dir():
        application_logic.SetHomeDirectory(str(share_folder_with_colour_files(COLOUR_FILES)))
        application_logic.SetShareDirectory("share/Slicer-5.12")
    colours = slicer.vtkSlicerColorLogic()
    application_logic.SetColorLogic(colours)
    colours.SetMRMLApplicationLogic(application_logic)
    colours.SetMRMLScene(scene)
    tables = slicer.vtkSlicerTablesLogic()
    sequences = slicer.vtkSlicerSequencesLogic()
    for name, logic in (("Tables", tables), ("Sequences", sequences)):
        slicer_app.register_module_logic(logic, logic_name=name)
    logics = {"colors": colours, "volumes": slicer_app.volumes_logic, "tables": tables,
              "segmentations": slicer_app.segmentations_logic, "markups": slicer_app.markups_logic,
              "sequences": sequences}
    for name, logic in logics.items():
        setattr(slicer.modules, name, SimpleNamespace(logic=lambda logic=logic: logic))
    slicer.mrmlScene = scene
    slicer.app = Application(CoreIOManager(scene, _VolumesLogicWithMessages(slicer_app.volumes_logic), tables))
    return slicer

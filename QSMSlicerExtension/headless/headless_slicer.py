"""``import slicer`` without a Slicer application: Slicer 5.12.3's own Python layer + the slicer-core wheel + Qt
stand-ins. Used by the tests (``tests/slicer``) and the web app (``QSMSlicerExtension/web``); never installed
into Slicer (this folder is not in the CMake install).

The ``slicer`` package is Slicer's own ``Base/Python/slicer`` (its ``__init__``, ``util``,
``ScriptedLoadableModule``, ``parameterNodeWrapper``, ``packaging``, read from ``../shared/slicer-5.12.3`` or
``$QSM_SLICER_SOURCE``, never copied), with the MRML classes and module logics of the ``slicer-core`` wheel
(``slicer_core``: the same C++ libraries as Slicer, without Qt) put into its namespace, as Slicer's ``kits`` do.
Only what needs Qt is a stand-in (the other files of this folder, which must be on ``sys.path``): the ``qt`` and
``ctk`` modules, the MRML widgets, and ``slicer.app`` with the I/O manager behind
``loadVolume``/``loadTable``/``saveNode``, rebuilt over the real volumes and tables logics and storage nodes
(``slicer_app.py``). :func:`load` gives that layer a scene and module logics of its own, as Slicer's start-up
does; the web app gives it trame-slicer's instead (``slicer_app.install_application``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXTENSION = HERE.parent
#: the extension's scripted modules (their folders are what Slicer puts on ``sys.path``)
MODULES = ("QSMInversion", "IVIMMapping", "SPIOQuantification", "RimLesionDetection")
#: Slicer 5.12.3's sources (Python layer and colour files): ``$QSM_SLICER_SOURCE`` or ``../shared/slicer-5.12.3``.
SLICER_SOURCE = Path(os.environ.get("QSM_SLICER_SOURCE") or EXTENSION.parent.parent / "shared" / "slicer-5.12.3")
PYTHON_LAYER = SLICER_SOURCE / "Base" / "Python" / "slicer"
COLOUR_FILES = SLICER_SOURCE / "Base" / "Logic" / "Resources" / "ColorFiles"
#: the wheels whose C++ classes go into ``slicer`` (``slicer_layer_dm``: slicer-core 5.11's displayable managers)
CORE_PACKAGES = ("slicer_core", "slicer_layer_dm")


def add_module_paths() -> None:
    """Put the extension folder and each module folder on ``sys.path``, as Slicer's module paths do."""
    for folder in (EXTENSION, *(EXTENSION / name for name in MODULES)):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def unavailable() -> str | None:
    """Why the real layer cannot be loaded here (one line: a skip message), or ``None``."""
    if not (PYTHON_LAYER / "ScriptedLoadableModule.py").is_file():
        return (f"Slicer 5.12.3's Python layer not found at {PYTHON_LAYER} (place ../shared/slicer-5.12.3 beside "
                "the repository or set QSM_SLICER_SOURCE)")
    if importlib.util.find_spec("slicer_core") is None:
        return "slicer-core is not installed (`make install` installs slicer-core==5.12.4.0 with the test extra)"
    return None


def _stand_in_class(name: str) -> type:
    """Any Qt widget class of ``slicer`` not stood in for by name (``qMRMLSliderWidget``...): a plain widget."""
    import qt

    if not name.startswith(("qMRML", "qSlicer")):
        raise AttributeError(f"module 'slicer' has no attribute {name!r}")
    return qt.__getattr__("Q" + name)


def import_slicer():
    """Put Slicer's Python layer in ``sys.modules["slicer"]`` with slicer-core's classes and the MRML widget
    stand-ins (once per process), without a scene or ``slicer.app`` yet. Returns ``slicer``.

    Raises:
        RuntimeError: :func:`unavailable` says why.
    """
    loaded = sys.modules.get("slicer")
    if loaded is not None and hasattr(loaded, "ScriptedLoadableModule"):
        return loaded
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location("slicer", PYTHON_LAYER / "__init__.py",
                                                  submodule_search_locations=[str(PYTHON_LAYER)])
    slicer = importlib.util.module_from_spec(spec)
    sys.modules["slicer"] = slicer
    spec.loader.exec_module(slicer)
    for package in CORE_PACKAGES:
        if importlib.util.find_spec(package) is None:
            continue
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


def load(*, colour_files: bool = True):
    """:func:`import_slicer` with a scene, module logics and ``slicer.app`` of its own, as Slicer starts up
    (once per process). Returns ``slicer``.

    Args:
        colour_files: load Slicer's colour files into the scene, as a Slicer installation does.
    """
    slicer = import_slicer()
    if hasattr(slicer, "real_layer_colour_files"):
        return slicer
    from slicer_app import build_application

    build_application(slicer, COLOUR_FILES if colour_files else None)
    slicer.real_layer_colour_files = colour_files
    return slicer

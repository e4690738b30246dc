"""``import slicer`` on real Slicer code: Slicer 5.12.3's own Python layer + the slicer-core wheel + Qt stand-ins.

The ``slicer`` package is Slicer's own ``Base/Python/slicer`` (its ``__init__``, ``util``,
``ScriptedLoadableModule``, ``parameterNodeWrapper``, ``packaging``, read from ``../shared/slicer-5.12.3``,
never copied), with the MRML classes and module logics of the ``slicer-core`` wheel (``slicer_core``: the
same C++ libraries as Slicer 5.12, without Qt) put into its namespace, as Slicer's ``kits`` do. Only what
needs Qt is a stand-in (``stand_in/``): the ``qt`` and ``ctk`` modules, the MRML widgets, and ``slicer.app``
with the I/O manager behind ``loadVolume``/``loadTable``/``saveNode``, rebuilt over the real volumes and tables
logics and storage nodes (``stand_in/slicer_app.py``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAND_IN = HERE / "stand_in"
REPO = HERE.parents[1]
#: Slicer 5.12.3's sources (Python layer and colour files): ``$QSM_SLICER_SOURCE`` or ``../shared/slicer-5.12.3``.
SLICER_SOURCE = Path(os.environ.get("QSM_SLICER_SOURCE") or REPO.parent / "shared" / "slicer-5.12.3")
PYTHON_LAYER = SLICER_SOURCE / "Base" / "Python" / "slicer"
COLOUR_FILES = SLICER_SOURCE / "Base" / "Logic" / "Resources" / "ColorFiles"


def unavailable() -> str | None:
    """Why the real layer cannot be loaded here (a skip message), or ``None``."""
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


def load(*, colour_files: bool = True):
    """Import ``slicer`` as described above (once per process) and return it.

    Args:
        colour_files: load Slicer's colour files into the scene, as a Slicer installation does.
    """
    loaded = sys.modules.get("slicer")
    if loaded is not None and hasattr(loaded, "real_layer_colour_files"):
        return loaded
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    if str(STAND_IN) not in sys.path:
        sys.path.insert(0, str(STAND_IN))
    spec = importlib.util.spec_from_file_location("slicer", PYTHON_LAYER / "__init__.py",
                                                  submodule_search_locations=[str(PYTHON_LAYER)])
    slicer = importlib.util.module_from_spec(spec)
    sys.modules["slicer"] = slicer
    spec.loader.exec_module(slicer)

    import slicer_core

    for name in dir(slicer_core):
        if not name.startswith("_"):
            setattr(slicer, name, getattr(slicer_core, name))
    import mrml_widgets
    from slicer_app import build_application

    for name in ("qMRMLWidget", "qMRMLNodeComboBox", "qMRMLTableView"):
        setattr(slicer, name, getattr(mrml_widgets, name))
    slicer.__getattr__ = _stand_in_class
    slicer.app, modules = build_application(slicer, COLOUR_FILES if colour_files else None)
    for name, value in vars(modules).items():
        setattr(slicer.modules, name, value)
    slicer.real_layer_colour_files = colour_files
    import slicer.util  # noqa: F401  (Slicer's own, from PYTHON_LAYER)

    return slicer


def register_module(name: str):
    """What Slicer's scripted-module factory does with ``<name>/<name>.py``: import it, instantiate its module class
    with a module object that knows the file's path (``slicer.modules.<name lower>``), which registers the
    module's self-test in ``slicer.selfTests``. Returns the imported Python module."""
    import importlib
    from types import SimpleNamespace

    slicer = load()
    module = importlib.import_module(name)
    parent = SimpleNamespace(path=module.__file__, name=name, isEntered=True)
    setattr(slicer.modules, name.lower(), parent)
    setattr(slicer.modules, f"{name}Instance", getattr(module, name)(parent))
    return module


def new_module_widget(name: str):
    """The module's panel as Slicer makes it: the widget class on a ``qMRMLWidget`` with a layout, then ``setup()``."""
    import qt

    slicer = load()
    module = register_module(name)
    panel = slicer.qMRMLWidget()
    panel.setLayout(qt.QVBoxLayout())
    panel.setMRMLScene(slicer.mrmlScene)
    panel.isEntered = True
    widget = getattr(module, f"{name}Widget")(panel)
    widget.setup()
    return widget

"""``import slicer`` in the web app: Slicer's own Python layer over the scene that trame-slicer shows.

The layer is ``QSMSlicerExtension/headless``'s, as in the tests: Slicer 5.12.3's ``Base/Python/slicer`` with the
C++ classes of the ``slicer-core`` wheel that trame-slicer pulls, and the Qt stand-ins (no widget is ever shown
here; the web page is the GUI). Unlike the tests, the scene, the application logic and the module logics are
trame-slicer's :class:`~trame_slicer.core.SlicerApp`, so that the modules' Logic classes load their results
into the very scene the browser's slice views render, with Slicer's colour files loaded into it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HEADLESS = REPO / "QSMSlicerExtension" / "headless"
if str(HEADLESS) not in sys.path:
    sys.path.insert(0, str(HEADLESS))

import headless_slicer  # noqa: E402  (from HEADLESS)


def unavailable() -> str | None:
    """Why the web app cannot start here (one line), or ``None``."""
    for package in ("slicer_core", "trame_slicer"):
        if importlib.util.find_spec(package) is None:
            return f"{package} is not installed: run the web app with .venv-web/bin/python (`make web` makes it)"
    return headless_slicer.unavailable()


def import_slicer():
    """Put Slicer's Python layer in ``sys.modules["slicer"]`` with slicer-core's classes (before trame-slicer's
    own ``from slicer import ...``), and the module folders on ``sys.path``. Returns ``slicer``."""
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    headless_slicer.add_module_paths()
    return headless_slicer.import_slicer()


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
    from slicer_app import install_application

    colour_files = headless_slicer.COLOUR_FILES if headless_slicer.COLOUR_FILES.is_dir() else None
    install_application(slicer, slicer_app.scene, slicer_app.app_logic, colour_files,
                        logics={"volumes": slicer_app.volumes_logic, "segmentations": slicer_app.segmentations_logic,
                                "markups": slicer_app.markups_logic},
                        io_volumes_logic=_VolumesLogicWithMessages(slicer_app.volumes_logic))
    return slicer

"""What Slicer's Qt application gives the Python layer, rebuilt over slicer-core's real MRML code.

``slicer.app`` (``qSlicerApplication``) is Qt; the Python layer needs only a little of it: the version, the
temporary folder, the testing flag, the main window (``slicer.util`` shows dialogs only when there is one) and
the core I/O manager behind ``slicer.util.loadVolume`` / ``loadTable`` / ``saveNode``. :class:`CoreIOManager`
does what Slicer's readers and writers do, with slicer-core's real logics and storage nodes: volumes are read
by ``vtkSlicerVolumesLogic.AddArchetypeVolume`` (ITK), tables by ``vtkSlicerTablesLogic.AddTable``, and nodes
are written by their own default storage node. ``slicer.modules.<name>.logic()`` are the real module logics on
the same scene, with an application logic that made the scene's singletons, three slice views, and the colour
tables from Slicer's colour files (:func:`build_application`), or those of an existing scene, such as the web
app's trame-slicer one (:func:`install_application`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import qt

#: Slicer's ``loadingOptions`` bits of ``vtkSlicerVolumesLogic.AddArchetypeVolume``.
_LABELMAP, _CENTERED, _SINGLE_FILE, _AUTO_WINDOW_LEVEL, _DISCARD_ORIENTATION = 1, 2, 4, 8, 16
_VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


class CoreIOManager:
    """``qSlicerCoreIOManager``: file types, loading nodes, saving nodes (the calls ``slicer.util`` makes)."""

    def __init__(self, scene, volumes_logic, tables_logic) -> None:
        self.scene, self.volumes_logic, self.tables_logic = scene, volumes_logic, tables_logic

    def fileType(self, filename: str) -> str:  # noqa: N802
        name = str(filename).lower()
        if name.endswith((".csv", ".tsv")):
            return "TableFile"
        if name.endswith(_VOLUME_SUFFIXES):
            return "VolumeFile"
        return "NoFile"

    def fileWriterFileType(self, node) -> str:  # noqa: N802
        if node.IsA("vtkMRMLVolumeNode"):
            return "VolumeFile"
        if node.IsA("vtkMRMLTableNode"):
            return "TableFile"
        return "NoFile"

    def loadNodes(self, file_type: str, properties: dict, loaded, messages) -> bool:  # noqa: N802
        path = properties["fileName"]
        if file_type == "VolumeFile":
            name = properties.get("name") or Path(path).name.split(".")[0]
            options = (_LABELMAP * bool(properties.get("labelmap")) + _CENTERED * bool(properties.get("center"))
                       + _SINGLE_FILE * bool(properties.get("singleFile", True))
                       + _AUTO_WINDOW_LEVEL * bool(properties.get("autoWindowLevel", True))
                       + _DISCARD_ORIENTATION * bool(properties.get("discardOrientation")))
            node = self.volumes_logic.AddArchetypeVolume(path, name, options, None, messages)
            if node is not None and properties.get("colorNodeID"):
                node.GetDisplayNode().SetAndObserveColorNodeID(properties["colorNodeID"])
        elif file_type == "TableFile":
            node = self.tables_logic.AddTable(path, properties.get("name") or Path(path).stem)
        else:
            messages.AddMessage(0, f"no reader for {file_type}")
            return False
        if node is None:
            return False
        loaded.AddItem(node)
        return True

    def saveNodes(self, file_type: str, properties: dict, messages) -> bool:  # noqa: N802
        node = self.scene.GetNodeByID(properties["nodeID"])
        storage = node.GetStorageNode()
        if storage is None:
            node.AddDefaultStorageNode()
            storage = node.GetStorageNode()
        storage.SetFileName(str(properties["fileName"]))
        return bool(storage.WriteData(node))


class _MainWindow(qt.QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.objectName = "qSlicerMainWindow"


class _ModuleManager(qt.QObject):
    SIGNALS = ("moduleAboutToBeUnloaded",)


class Application:
    """``slicer.app``: what the Python layer and our modules read from ``qSlicerApplication``."""

    applicationName = "3D Slicer"  # noqa: N815

    def __init__(self, io_manager: CoreIOManager, application_logic, *, version: tuple[int, int] = (5, 12)) -> None:
        self.majorVersion, self.minorVersion = version
        self.temporaryPath = tempfile.gettempdir()
        self.testing = False
        self._io_manager = io_manager
        self._application_logic = application_logic  # also keeps it alive: the module logics only point to it
        self._main_window = _MainWindow()
        self._module_manager = _ModuleManager()

    def coreIOManager(self) -> CoreIOManager:  # noqa: N802
        return self._io_manager

    def applicationLogic(self):  # noqa: N802
        return self._application_logic

    def translate(self, context: str, text: str) -> str:
        return text

    def moduleManager(self):  # noqa: N802
        return self._module_manager

    def testingEnabled(self) -> bool:  # noqa: N802
        return self.testing

    def topLevelWidgets(self) -> list:  # noqa: N802
        return [self._main_window]

    def layoutManager(self):  # noqa: N802
        return None

    def processEvents(self) -> None:  # noqa: N802
        pass

    def setOverrideCursor(self, cursor) -> None:  # noqa: N802
        pass

    def restoreOverrideCursor(self) -> None:  # noqa: N802
        pass


def share_folder_with_colour_files(colour_files: Path) -> Path:
    """A Slicer home folder whose ``share/Slicer-5.12/ColorFiles`` links to Slicer's colour files (no copy)."""
    home = Path(tempfile.mkdtemp(prefix="slicer-home-"))
    atexit.register(shutil.rmtree, home, True)
    share = home / "share" / "Slicer-5.12"
    share.mkdir(parents=True)
    os.symlink(colour_files, share / "ColorFiles")
    return home


#: ``slicer.modules.<name>.logic()`` our modules and Slicer's Python layer use → the logic's class in slicer-core
MODULE_LOGICS = {"colors": "vtkSlicerColorLogic", "volumes": "vtkSlicerVolumesLogic", "tables": "vtkSlicerTablesLogic",
                 "segmentations": "vtkSlicerSegmentationsModuleLogic", "markups": "vtkSlicerMarkupsLogic",
                 "sequences": "vtkSlicerSequencesLogic"}


def install_application(slicer, scene, application_logic, colour_files: Path | None, *, logics: dict | None = None,
                        io_volumes_logic=None) -> dict:
    """Make ``slicer.mrmlScene``, ``slicer.app`` and ``slicer.modules.<name>.logic()`` those of a scene and its
    application logic: the module logics of :data:`MODULE_LOGICS` that ``logics`` does not give are made and
    registered, and a colour logic loads Slicer's colour files into the scene, as Slicer's start-up does.

    Args:
        slicer: the ``slicer`` package with slicer-core's classes in it.
        scene: the ``vtkMRMLScene``.
        application_logic: its ``vtkSlicerApplicationLogic``.
        colour_files: Slicer's ``ColorFiles`` folder; ``None`` for a Slicer whose colour files are missing.
        logics: module logics already registered on the scene, by ``slicer.modules`` name (``volumes``...).
        io_volumes_logic: what the I/O manager reads volumes with (default: the volumes logic).

    Returns:
        Every module logic, by name.
    """
    if colour_files is not None:
        application_logic.SetHomeDirectory(str(share_folder_with_colour_files(colour_files)))
        application_logic.SetShareDirectory("share/Slicer-5.12")
    logics = dict(logics or {})
    for name, class_name in MODULE_LOGICS.items():
        if name in logics:
            continue
        logic = logics[name] = getattr(slicer, class_name)()
        if name == "colors":
            application_logic.SetColorLogic(logic)
        application_logic.SetModuleLogic(name.capitalize(), logic)
        logic.SetMRMLApplicationLogic(application_logic)
        logic.SetMRMLScene(scene)
    for name, logic in logics.items():
        setattr(slicer.modules, name, SimpleNamespace(logic=lambda logic=logic: logic))
    slicer.mrmlScene = scene
    slicer.app = Application(CoreIOManager(scene, io_volumes_logic or logics["volumes"], logics["tables"]),
                             application_logic)
    return logics


def build_application(slicer, colour_files: Path | None) -> None:
    """A new scene with its application logic, three slice views and :func:`install_application` on them.

    Args:
        slicer: the ``slicer`` package with slicer-core's classes in it.
        colour_files: Slicer's ``ColorFiles`` folder, loaded as the colour logic does at start-up; ``None``
            for a Slicer whose colour files are missing.
    """
    scene = slicer.vtkMRMLScene()
    application_logic = slicer.vtkSlicerApplicationLogic()
    application_logic.SetMRMLScene(scene)
    install_application(slicer, scene, application_logic, colour_files)
    for layout_name in ("Red", "Yellow", "Green"):
        slice_logic = slicer.vtkMRMLSliceLogic()
        slice_logic.SetMRMLApplicationLogic(application_logic)
        slice_logic.SetMRMLScene(scene)
        slice_logic.AddSliceNode(layout_name)

"""What Slicer's Qt application gives the Python layer, rebuilt over slicer-core's real MRML code.

``slicer.app`` (``qSlicerApplication``) is Qt; the Python layer needs only a little of it: the version, the
temporary folder, the testing flag, the main window (``slicer.util`` shows dialogs only when there is one) and
the core I/O manager behind ``slicer.util.loadVolume`` / ``loadTable`` / ``saveNode``. :class:`CoreIOManager`
does what Slicer's readers and writers do, with slicer-core's real logics and storage nodes: volumes are read
by ``vtkSlicerVolumesLogic.AddArchetypeVolume`` (ITK), tables by ``vtkSlicerTablesLogic.AddTable``, and nodes
are written by their own default storage node. ``slicer.modules.<name>.logic()`` are the real module logics on
the same scene, with an application logic that made the scene's singletons, three slice views, and the colour
tables from Slicer's colour files.
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

    def __init__(self, io_manager: CoreIOManager, *, version: tuple[int, int] = (5, 12)) -> None:
        self.majorVersion, self.minorVersion = version
        self.temporaryPath = tempfile.gettempdir()
        self.testing = False
        self._io_manager = io_manager
        self._main_window = _MainWindow()
        self._module_manager = _ModuleManager()

    def coreIOManager(self) -> CoreIOManager:  # noqa: N802
        return self._io_manager

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


def build_application(slicer, colour_files: Path | None) -> tuple[Application, SimpleNamespace]:
    """The scene, application logic, module logics and ``slicer.app`` over slicer-core, as Slicer sets them up.

    Args:
        slicer: the ``slicer`` package with slicer-core's classes in it.
        colour_files: Slicer's ``ColorFiles`` folder, loaded as the colour logic does at start-up; ``None``
            for a Slicer whose colour files are missing.

    Returns:
        ``slicer.app`` and ``slicer.modules`` entries (``volumes``, ``tables``, ``segmentations``, ``markups``,
        ``colors``, ``sequences``; each with ``logic()``).
    """
    scene = slicer.vtkMRMLScene()
    application_logic = slicer.vtkSlicerApplicationLogic()
    application_logic.SetMRMLScene(scene)
    if colour_files is not None:
        application_logic.SetHomeDirectory(str(share_folder_with_colour_files(colour_files)))
        application_logic.SetShareDirectory("share/Slicer-5.12")
    colors = slicer.vtkSlicerColorLogic()
    application_logic.SetColorLogic(colors)
    logics = {"colors": colors, "volumes": slicer.vtkSlicerVolumesLogic(), "tables": slicer.vtkSlicerTablesLogic(),
              "segmentations": slicer.vtkSlicerSegmentationsModuleLogic(),
              "markups": slicer.vtkSlicerMarkupsLogic(), "sequences": slicer.vtkSlicerSequencesLogic()}
    for name, logic in logics.items():
        application_logic.SetModuleLogic(name.capitalize(), logic)
        logic.SetMRMLApplicationLogic(application_logic)
        logic.SetMRMLScene(scene)
    for layout_name in ("Red", "Yellow", "Green"):
        slice_logic = slicer.vtkMRMLSliceLogic()
        slice_logic.SetMRMLApplicationLogic(application_logic)
        slice_logic.SetMRMLScene(scene)
        slice_logic.AddSliceNode(layout_name)
    slicer.mrmlScene = scene
    app = Application(CoreIOManager(scene, logics["volumes"], logics["tables"]))
    modules = {name: SimpleNamespace(logic=lambda logic=logic: logic) for name, logic in logics.items()}
    return app, SimpleNamespace(**modules, application_logic=application_logic)

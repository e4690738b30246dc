"""Stand-in for ``slicer.util``: arrays, NIfTI save/load through nibabel, a .ui-built widget namespace, dialogs."""

from __future__ import annotations

import contextlib
import csv
import inspect
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np

import slicer

#: What the stand-in dialogs and views recorded (tests read and reset these).
errors: list[str] = []
questions: list[str] = []
pip_installs: list[list[str]] = []
slice_layers: dict[str, object] = {}


def arrayFromVolume(node):  # noqa: N802
    return node.array


def updateVolumeFromArray(node, array) -> None:  # noqa: N802
    node.array = np.asarray(array)


def saveNode(node, path: str) -> bool:  # noqa: N802
    data = np.transpose(node.array, (2, 1, 0))
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), node.ijk_to_ras), path)
    return True


def loadVolume(path: str, properties: dict | None = None):  # noqa: N802
    properties = properties or {}
    image = nib.load(path)
    class_name = "vtkMRMLLabelMapVolumeNode" if properties.get("labelmap") else "vtkMRMLScalarVolumeNode"
    node = slicer.mrmlScene.AddNewNodeByClass(class_name, properties.get("name", Path(path).name.split(".")[0]))
    node.array = np.transpose(np.asarray(image.dataobj), (2, 1, 0))
    node.ijk_to_ras = image.affine.copy()
    return node


def loadTable(path: str):  # noqa: N802
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", Path(path).stem)
    node.columns, node.rows = rows[0], rows[1:]
    return node


def setSliceViewerLayers(background=None, foreground=None, label=None, fit=False) -> None:  # noqa: N802
    slice_layers.update({k: v for k, v in (("background", background), ("foreground", foreground),
                                           ("label", label)) if v is not None})


@contextlib.contextmanager
def tryWithErrorDisplay(message: str | None = None, show: bool = True, waitCursor: bool = False):  # noqa: N802, N803
    try:
        yield
    except Exception as error:
        errors.append(f"{message} {error}")
        raise


def errorDisplay(text: str, **kwargs) -> None:  # noqa: N802
    errors.append(text)


def confirmOkCancelDisplay(text: str, **kwargs) -> bool:  # noqa: N802
    questions.append(text)
    return False


def pip_install(requirements) -> None:
    pip_installs.append(list(requirements))


class FakeWidget:
    """A widget of a .ui file: the properties and slots our code touches; signals are recorded."""

    def __init__(self, name: str, qt_class: str) -> None:
        self.name, self.qt_class = name, qt_class
        self.enabled, self.toolTip, self.text, self.value = True, "", "", 0
        self.signals: dict[str, list] = {}
        self.lines: list[str] = []
        self.table_node = None

    def connect(self, signal: str, slot) -> None:
        self.signals.setdefault(signal, []).append(slot)

    def emit(self, signal: str, *args) -> None:
        """Call the slots like PythonQt: with as many of the signal's arguments as each slot takes."""
        for slot in self.signals.get(signal, []):
            parameters = inspect.signature(slot).parameters.values()
            if not any(p.kind is p.VAR_POSITIONAL for p in parameters):
                args = args[: len([p for p in parameters if p.default is p.empty])]
            slot(*args)

    def setMRMLScene(self, scene) -> None:  # noqa: N802
        pass

    def appendPlainText(self, text: str) -> None:  # noqa: N802
        self.lines.append(text)

    def clear(self) -> None:
        self.lines.clear()

    def setMRMLTableNode(self, node) -> None:  # noqa: N802
        self.table_node = node

    def mrmlTableNode(self):  # noqa: N802
        return self.table_node


def loadUI(path: str) -> FakeWidget:  # noqa: N802
    root = ET.parse(path).getroot()
    top = root.find("widget")
    ui_widget = FakeWidget(top.get("name"), top.get("class"))
    ui_widget.children = {w.get("name"): FakeWidget(w.get("name"), w.get("class")) for w in top.iter("widget")}
    return ui_widget


def childWidgetVariables(ui_widget: FakeWidget) -> SimpleNamespace:  # noqa: N802
    return SimpleNamespace(**ui_widget.children)


class VTKObservationMixin:
    def __init__(self) -> None:
        self.observations: list[tuple] = []

    def addObserver(self, obj, event, method) -> None:  # noqa: N802
        self.observations.append((obj, event, method))

    def removeObserver(self, obj, event, method) -> None:  # noqa: N802
        self.observations = [o for o in self.observations if o[:2] != (obj, event) or o[2] != method]

    def removeObservers(self) -> None:  # noqa: N802
        self.observations.clear()

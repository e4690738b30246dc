"""Stand-in for the ``slicer`` package: MRML nodes holding numpy arrays, a scene, ``app`` and ``modules``."""

from __future__ import annotations

import tempfile
from types import SimpleNamespace

import numpy as np
import vtk


class vtkMRMLNode:  # noqa: N801
    _count = 0

    def __init__(self, name: str = "") -> None:
        vtkMRMLNode._count += 1
        self._id = f"{type(self).__name__}{vtkMRMLNode._count}"
        self._name = name
        self._attributes: dict[str, str] = {}
        self._references: dict[str, str] = {}

    def IsA(self, class_name: str) -> bool:  # noqa: N802
        return any(c.__name__ == class_name for c in type(self).__mro__)

    def GetID(self) -> str:  # noqa: N802
        return self._id

    def GetName(self) -> str:  # noqa: N802
        return self._name

    def SetName(self, name: str) -> None:  # noqa: N802
        self._name = name

    def GetAttribute(self, name: str) -> str | None:  # noqa: N802
        return self._attributes.get(name)

    def SetAttribute(self, name: str, value: str) -> None:  # noqa: N802
        self._attributes[name] = value

    def SetNodeReferenceID(self, role: str, node_id: str) -> None:  # noqa: N802
        self._references[role] = node_id

    def GetNodeReference(self, role: str):  # noqa: N802
        return mrmlScene.GetNodeByID(self._references.get(role))


class vtkMRMLScriptedModuleNode(vtkMRMLNode):  # noqa: N801
    pass


class vtkMRMLScalarVolumeDisplayNode(vtkMRMLNode):  # noqa: N801
    def __init__(self) -> None:
        super().__init__()
        self.color_node_id = "vtkMRMLColorTableNodeGrey"
        self.auto_window_level = True
        self.window_level_min_max: tuple[float, float] | None = None

    def SetAndObserveColorNodeID(self, node_id: str) -> None:  # noqa: N802
        self.color_node_id = node_id

    def GetColorNodeID(self) -> str:  # noqa: N802
        return self.color_node_id

    def AutoWindowLevelOff(self) -> None:  # noqa: N802
        self.auto_window_level = False

    def SetWindowLevelMinMax(self, low: float, high: float) -> None:  # noqa: N802
        self.window_level_min_max = (low, high)


class vtkMRMLVolumeNode(vtkMRMLNode):  # noqa: N801
    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.array: np.ndarray | None = None  # (k, j, i) or (k, j, i, c), as slicer.util.arrayFromVolume
        self.ijk_to_ras = np.eye(4)
        self.display = vtkMRMLScalarVolumeDisplayNode()

    def GetIJKToRASMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:  # noqa: N802
        matrix.elements = self.ijk_to_ras.copy()

    def GetDisplayNode(self) -> vtkMRMLScalarVolumeDisplayNode:  # noqa: N802
        return self.display


class vtkMRMLScalarVolumeNode(vtkMRMLVolumeNode):  # noqa: N801
    pass


class vtkMRMLLabelMapVolumeNode(vtkMRMLScalarVolumeNode):  # noqa: N801
    pass


class vtkMRMLVectorVolumeNode(vtkMRMLScalarVolumeNode):  # noqa: N801
    pass


class vtkMRMLMultiVolumeNode(vtkMRMLScalarVolumeNode):  # noqa: N801
    pass


class vtkMRMLSequenceNode(vtkMRMLNode):  # noqa: N801
    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.index_name, self.index_unit = "time", "s"
        self.items: list[tuple[str, vtkMRMLNode]] = []

    def SetIndexName(self, name: str) -> None:  # noqa: N802
        self.index_name = name

    def SetIndexUnit(self, unit: str) -> None:  # noqa: N802
        self.index_unit = unit

    def GetIndexName(self) -> str:  # noqa: N802
        return self.index_name

    def GetIndexUnit(self) -> str:  # noqa: N802
        return self.index_unit

    def SetDataNodeAtValue(self, node: vtkMRMLNode, value: str) -> None:  # noqa: N802
        self.items.append((value, node))

    def GetNumberOfDataNodes(self) -> int:  # noqa: N802
        return len(self.items)

    def GetNthDataNode(self, n: int) -> vtkMRMLNode:  # noqa: N802
        return self.items[n][1]

    def GetNthIndexValue(self, n: int) -> str:  # noqa: N802
        return self.items[n][0]


class vtkMRMLSegmentationNode(vtkMRMLNode):  # noqa: N801
    """Holds its segments as one label array on the grid of its reference volume (the stand-in's simplification)."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.label_array: np.ndarray | None = None


class vtkMRMLTableNode(vtkMRMLNode):  # noqa: N801
    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.columns: list[str] = []
        self.rows: list[list[str]] = []

    def GetNumberOfRows(self) -> int:  # noqa: N802
        return len(self.rows)

    def GetColumnIndex(self, name: str) -> int:  # noqa: N802
        return self.columns.index(name) if name in self.columns else -1

    def GetCellText(self, row: int, column: int) -> str:  # noqa: N802
        return self.rows[row][column]


class Scene:
    StartCloseEvent, EndCloseEvent = 66000, 66001

    def __init__(self) -> None:
        self.nodes: list[vtkMRMLNode] = []

    def Clear(self, removeSingletons: bool = False) -> None:  # noqa: N802, N803
        self.nodes.clear()

    def AddNode(self, node: vtkMRMLNode) -> vtkMRMLNode:  # noqa: N802
        self.nodes.append(node)
        return node

    def AddNewNodeByClass(self, class_name: str, name: str = "") -> vtkMRMLNode:  # noqa: N802
        return self.AddNode(globals()[class_name](name))

    def RemoveNode(self, node: vtkMRMLNode) -> None:  # noqa: N802
        self.nodes.remove(node)

    def GetFirstNodeByClass(self, class_name: str):  # noqa: N802
        return next((n for n in self.nodes if n.IsA(class_name)), None)

    def GetFirstNodeByName(self, name: str):  # noqa: N802
        return next((n for n in self.nodes if n.GetName() == name), None)

    def GetNodeByID(self, node_id: str | None):  # noqa: N802
        return next((n for n in self.nodes if n.GetID() == node_id), None)


class _MarkupsLogic:
    def __init__(self) -> None:
        self.jumps: list[tuple[float, float, float, bool]] = []

    def JumpSlicesToLocation(self, x: float, y: float, z: float, centered: bool, *view_group) -> None:  # noqa: N802
        self.jumps.append((x, y, z, centered))


class _SegmentationsLogic:
    def ExportVisibleSegmentsToLabelmapNode(self, segmentation, labelmap, reference) -> bool:  # noqa: N802
        if segmentation.label_array is None:
            return False
        labelmap.array = np.asarray(segmentation.label_array, dtype=np.int16)
        labelmap.ijk_to_ras = reference.ijk_to_ras.copy()
        return True


mrmlScene = Scene()  # noqa: N816  (Slicer's name)
app = SimpleNamespace(majorVersion=5, minorVersion=8, temporaryPath=tempfile.gettempdir())
_markups_logic, _segmentations_logic = _MarkupsLogic(), _SegmentationsLogic()
modules = SimpleNamespace(markups=SimpleNamespace(logic=lambda: _markups_logic),
                          segmentations=SimpleNamespace(logic=lambda: _segmentations_logic))

from slicer import util  # noqa: E402  (after the node classes it uses)

__all__ = ["app", "modules", "mrmlScene", "util"]

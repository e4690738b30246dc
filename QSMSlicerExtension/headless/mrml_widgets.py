"""Stand-ins for Slicer's Qt MRML widgets our ``.ui`` files use; they hold real MRML nodes of the real scene."""

from __future__ import annotations

import qt


class qMRMLWidget(qt.QWidget):  # noqa: N801
    SIGNALS = ("mrmlSceneChanged",)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.scene = None

    def setMRMLScene(self, scene) -> None:  # noqa: N802
        self.scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self):  # noqa: N802
        return self.scene


class qMRMLNodeComboBox(qMRMLWidget):  # noqa: N801
    """Selects one node of ``nodeTypes`` from its scene (a node of another class or not in the scene selects
    nothing, as in Qt's)."""

    SIGNALS = ("currentNodeChanged",)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.nodeTypes: list[str] = []
        self._node = None

    def currentNode(self):  # noqa: N802
        return self._node

    def setCurrentNode(self, node) -> None:  # noqa: N802
        if node is not None and not (self.scene is not None and self.scene.IsNodePresent(node)
                                     and any(node.IsA(t) for t in self.nodeTypes)):
            node = None
        if node is not self._node:
            self._node = node
            self.currentNodeChanged.emit(node)


class qMRMLTableView(qMRMLWidget):  # noqa: N801
    SIGNALS = ("clicked",)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._table = None

    def setMRMLTableNode(self, node) -> None:  # noqa: N802
        self._table = node

    def mrmlTableNode(self):  # noqa: N802
        return self._table


class ModelIndex:
    """``QModelIndex`` of a clicked table cell."""

    def __init__(self, row: int) -> None:
        self._row = row

    def row(self) -> int:
        return self._row

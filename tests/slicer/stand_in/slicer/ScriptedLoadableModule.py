# ruff: noqa: N999  (named like the Slicer module it stands in for)
"""Stand-in for ``slicer.ScriptedLoadableModule``: the four template base classes."""

from __future__ import annotations

import os
import sys
import unittest
from types import SimpleNamespace

import slicer


class ScriptedLoadableModule:
    def __init__(self, parent) -> None:
        self.parent = parent


class _Layout:
    def __init__(self) -> None:
        self.widgets: list = []

    def addWidget(self, widget) -> None:  # noqa: N802
        self.widgets.append(widget)


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None) -> None:
        self.parent = parent if parent is not None else SimpleNamespace(isEntered=True)
        self.moduleName = type(self).__name__.removesuffix("Widget")
        self.layout = _Layout()

    def setup(self) -> None:
        pass

    def resourcePath(self, filename: str) -> str:  # noqa: N802
        return os.path.join(os.path.dirname(sys.modules[type(self).__module__].__file__), "Resources", filename)


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None) -> None:
        self.moduleName = type(self).__name__.removesuffix("Logic")

    def getParameterNode(self):  # noqa: N802
        node = slicer.mrmlScene.GetFirstNodeByName(self.moduleName)
        if node is None:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", self.moduleName)
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message: str, msec: int = 1000) -> None:  # noqa: N802
        pass

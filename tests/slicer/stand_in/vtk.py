"""Stand-in for the few ``vtk`` names the modules use."""

from __future__ import annotations

import numpy as np


class vtkCommand:  # noqa: N801
    ModifiedEvent = 33


class vtkMatrix4x4:  # noqa: N801
    def __init__(self) -> None:
        self.elements = np.eye(4)

    def GetElement(self, row: int, column: int) -> float:  # noqa: N802
        return float(self.elements[row, column])

    def SetElement(self, row: int, column: int, value: float) -> None:  # noqa: N802
        self.elements[row, column] = value

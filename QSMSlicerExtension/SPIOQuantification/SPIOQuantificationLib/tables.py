# ruff: noqa: N802  (Slicer's Logic methods are camelCase)
"""Tables the SPIO Quantification Logic reads from its maps, each by a ``lightning_modules`` tool in a child process
as the bundle runs: bench tubes (``tube_reading``, issue 24 session 38) and the per-object report (``object_report``,
session 44: each object's area, level, iron, and how far its level can be trusted). An object table refers to the
map it reports (:data:`OBJECT_MAP_REFERENCE`); a row is a place to jump to (``x_mm, y_mm, z_mm``: RAS mm, the NIfTI
world Slicer's views use; session 45)."""

from __future__ import annotations

import csv

import numpy as np
import slicer
from QSMSlicerCommon.slicer_nodes import write_volume
from QSMSlicerCommon.workspace import TemporaryWorkspace

#: Node reference role from an object table node to the concentration map it reports.
OBJECT_MAP_REFERENCE = "concentrationMap"
#: An object table's centroid columns (RAS mm).
OBJECT_POSITION_COLUMNS = ("x_mm", "y_mm", "z_mm")


class SpioTablesMixin:
    """``readTubes`` and ``reportObjects`` (each also as ``start…`` / ``load…`` for callers that poll the job, as the
    web app does) for a Logic with a ``runner`` and ``notStartedMessage`` (``BundleLogicMixin``)."""

    def readTubes(self, concentrationNode, lumensNode, marginMm: float = 1.2, innerDiameterMm: float | None = None,
                  timeoutSeconds: float | None = 120):
        """Bench phantoms of tubes (issue 24, session 38): each tube's concentration as the iron summed around it
        over its lumen's area, which reads walled tubes far better than the map's mean inside them.

        ``concentrationNode`` is this module's output, ``lumensNode`` a labelmap on its grid (0 outside, 1 … n the
        inside of tube n's wall; e.g. a Segment Editor segmentation exported as a labelmap); ``innerDiameterMm``, the
        tubes' known inner diameter, makes their lumen areas independent of how exactly they were drawn. Runs
        ``lightning_modules.spio.tube_reading`` in a child process, as the bundle runs (:meth:`startTubes`), waits
        for it and returns a new table node "<map> tubes" with one row per tube (µg Fe per mm of tube, µg Fe/mm³;
        :meth:`loadTubes`).

        Raises:
            ValueError: a node is not selected.
            RuntimeError: the tool refused the inputs (its one-line message) or installing packages was declined.
            TimeoutError: it still ran after ``timeoutSeconds`` (it has been stopped).
        """
        job = self.startTubes(concentrationNode, lumensNode, marginMm=marginMm, innerDiameterMm=innerDiameterMm)
        return self.loadTubes(self._waited(job, timeoutSeconds), concentrationNode)

    def startTubes(self, concentrationNode, lumensNode, marginMm: float = 1.2, innerDiameterMm: float | None = None):
        """Start :meth:`readTubes`'s tool without waiting (the caller polls the job, as a bundle run's; the web app
        does); its output ``tubes`` is the CSV. Raises as :meth:`readTubes` does before the tool runs."""
        if concentrationNode is None or lumensNode is None:
            raise ValueError("select a concentration map and a labelmap of the tube lumens")

        def stage(workspace: TemporaryWorkspace):
            concentration = write_volume(concentrationNode, workspace.input_path(concentrationNode.GetName()))
            lumens = write_volume(lumensNode, workspace.input_path(f"lumens_{lumensNode.GetName()}"))
            table = workspace.outputs / "tubes.csv"
            arguments = ["--concentration", str(concentration), "--lumens", str(lumens),
                         "--margin_mm", repr(float(marginMm)), "--out", str(table)]
            if innerDiameterMm:
                arguments += ["--inner_diameter_mm", repr(float(innerDiameterMm))]
            return arguments, {"tubes": table}

        return self._started(self.runner.start_tool("lightning_modules.spio.tube_reading", stage))

    def loadTubes(self, job, concentrationNode):
        """The table node "<map> tubes" from a succeeded :meth:`startTubes` job, whose workspace is then removed."""
        return self._loadTable(job, "tubes", f"{concentrationNode.GetName()} tubes")

    def reportObjects(self, imageNode, concentrationNode, timeoutSeconds: float | None = 120):
        """Per object of ``concentrationNode`` (this module's map of the View Line image ``imageNode``, with the
        shipped weights): centroid, area, level, iron, and from the spread of the six test-time passes the fraction
        of simulated objects like it without iron and the factors within which 50 % / 80 % of them had their level
        (issue 24, session 44). Runs ``lightning_modules.spio.object_report`` in a child process
        (:meth:`startObjects`), waits for it and returns a new table node "<map> objects" (:meth:`loadObjects`).
        Raises as :meth:`readTubes` does."""
        job = self.startObjects(imageNode, concentrationNode)
        return self.loadObjects(self._waited(job, timeoutSeconds), concentrationNode)

    def startObjects(self, imageNode, concentrationNode):
        """Start :meth:`reportObjects`'s tool without waiting; its output ``objects`` is the CSV."""
        if imageNode is None or concentrationNode is None:
            raise ValueError("map a View Line image first: the report needs the image and its concentration map")

        def stage(workspace: TemporaryWorkspace):
            image = write_volume(imageNode, workspace.input_path(imageNode.GetName()))
            concentration = write_volume(concentrationNode, workspace.input_path(f"map_{concentrationNode.GetName()}"))
            table = workspace.outputs / "objects.csv"
            return ["--image", str(image), "--concentration", str(concentration), "--out", str(table)], {
                "objects": table}

        return self._started(self.runner.start_tool("lightning_modules.spio.object_report", stage))

    def loadObjects(self, job, concentrationNode):
        """The table node "<map> objects" from a succeeded :meth:`startObjects` job, whose workspace is then removed;
        it refers to ``concentrationNode`` (:data:`OBJECT_MAP_REFERENCE`, saved with the scene)."""
        tableNode = self._loadTable(job, "objects", f"{concentrationNode.GetName()} objects")
        tableNode.SetNodeReferenceID(OBJECT_MAP_REFERENCE, concentrationNode.GetID())
        return tableNode

    def jumpToObject(self, tableNode, row: int) -> tuple[float, float, float]:
        """Centre every slice view on the object of ``row`` (0-based) of an object table, showing the map it reports
        as the foreground (half opaque); returns the object's RAS position (mm).

        Raises:
            ValueError: ``row`` is not a row of the table, or the table has no ``x_mm, y_mm, z_mm`` columns.
        """
        if not 0 <= row < tableNode.GetNumberOfRows():
            raise ValueError(f"table {tableNode.GetName()!r} has no row {row}")
        indices = [tableNode.GetColumnIndex(column) for column in OBJECT_POSITION_COLUMNS]
        if min(indices) < 0:
            raise ValueError(f"table {tableNode.GetName()!r} has no {', '.join(OBJECT_POSITION_COLUMNS)} columns; "
                             "is it an object report?")
        ras = tuple(float(tableNode.GetCellText(row, index)) for index in indices)
        mapNode = tableNode.GetNodeReference(OBJECT_MAP_REFERENCE)
        if mapNode is not None:
            slicer.util.setSliceViewerLayers(foreground=mapNode, foregroundOpacity=0.5)
        slicer.modules.markups.logic().JumpSlicesToLocation(*ras, True)
        return ras

    def _started(self, job):
        if job is None:
            raise RuntimeError(self.notStartedMessage())
        return job

    @staticmethod
    def _waited(job, timeoutSeconds: float | None):
        result = job.wait(timeout_s=timeoutSeconds)
        if not result.succeeded:
            raise RuntimeError(result.message)
        return job

    @staticmethod
    def _loadTable(job, output: str, name: str):
        """A new table node ``name`` (made unique) from the CSV ``output`` of a succeeded job (its first column, the
        label, as integers); the job's workspace is then removed."""
        try:
            with open(job.result.outputs[output], newline="") as file:
                rows = list(csv.reader(file))
        finally:
            job.close()
        tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName(name))
        columns = [np.array([float(row[k]) for row in rows[1:]]) for k in range(len(rows[0]))]
        columns[0] = columns[0].astype(np.int32)
        slicer.util.updateTableFromArray(tableNode, columns, rows[0])
        return tableNode

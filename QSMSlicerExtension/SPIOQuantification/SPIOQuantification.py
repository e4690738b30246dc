# ruff: noqa: N999  (Slicer module files are named after the module)
"""SPIOQuantification: 2-channel View Line image → SPIO iron concentration with ``spio_quantification``.

The image's layout (one x–z slice, two channels) is checked before staging (``view_line_layout_problem``).
"""

from __future__ import annotations

import SPIOQuantificationLib  # noqa: F401  (first: makes QSMSlicerCommon importable from a source checkout)

# isort: split

from pathlib import Path
from typing import Annotated

import slicer
from QSMSlicerCommon.options import SpioOptions
from QSMSlicerCommon.runner import stage_volumes
from QSMSlicerCommon.slicer_module import BundleLogicMixin, BundleWidgetMixin, describeModule
from QSMSlicerCommon.slicer_nodes import write_volume
from QSMSlicerCommon.workspace import TemporaryWorkspace
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from SPIOQuantificationLib.options import HELP_NOTE, spio_options, view_line_layout_problem


class SPIOQuantification(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(self.parent, SpioOptions.BUNDLE, title="SPIO Quantification", category="SPIO",
                       helpNote=HELP_NOTE)


@parameterNodeWrapper
class SPIOQuantificationParameterNode:
    """Panel state saved with the scene.

    input_image: View Line image, one x–z slice with two channels (even and odd lines).
    object_shrinkage: each object's core pulled this fraction of the way to its median level (0.14.0; 0 for tubes).
    """

    input_image: vtkMRMLScalarVolumeNode
    object_shrinkage: Annotated[float, WithinRange(0.0, 1.0)] = SpioOptions.object_shrinkage  # the bundle's default


class SPIOQuantificationWidget(BundleWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: input, Apply/Cancel, progress and log (behaviour in BundleWidgetMixin), and the "Bench
    tubes" section that reads a map's tubes into a table (:meth:`SPIOQuantificationLogic.readTubes`)."""

    APPLY_TOOLTIP = "Map the SPIO concentration"
    PRESELECT = {"input_image": "vtkMRMLVectorVolumeNode"}

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)

    def setup(self) -> None:
        """Load the .ui file and connect it to the parameter node and the run panel."""
        ScriptedLoadableModuleWidget.setup(self)
        self.loadBundleUI("UI/SPIOQuantification.ui")
        self.ui.readTubesButton.connect("clicked(bool)", self.onReadTubes)
        self.setupBundlePanel(SPIOQuantificationLogic())

    def onResultsLoaded(self, outputs: dict) -> None:
        """The new map is the one the "Bench tubes" section reads."""
        self.ui.tubeMapSelector.setCurrentNode(outputs["concentration"])

    def onReadTubes(self) -> None:
        """Read the selected map's tubes into a new table (``SPIOQuantificationLogic.readTubes``); what went wrong,
        such as lumens on another grid, is the tool's one-line message under the button."""
        mapNode, lumensNode = self.ui.tubeMapSelector.currentNode(), self.ui.tubeLumensSelector.currentNode()
        try:
            table = self.logic.readTubes(mapNode, lumensNode, marginMm=self.ui.tubeMarginSpinBox.value,
                                         innerDiameterMm=self.ui.tubeDiameterSpinBox.value or None)
        except (ValueError, RuntimeError, TimeoutError) as error:
            self.ui.tubesStatusLabel.text = str(error) or "reading the tubes timed out"
            return
        self.ui.tubesStatusLabel.text = f"{table.GetNumberOfRows()} tube(s): table '{table.GetName()}'"


class SPIOQuantificationLogic(BundleLogicMixin, ScriptedLoadableModuleLogic):
    """Runs the ``spio_quantification`` bundle on nodes and reads bench tubes from its maps (:meth:`readTubes`);
    usable without the GUI (see BundleLogicMixin)."""

    BUNDLE = SpioOptions.BUNDLE
    PARAMETER_NODE_CLASS = SPIOQuantificationParameterNode
    REQUIRED_INPUTS = {"input_image": "a View Line image"}
    REQUIREMENTS_FILE = Path(__file__).parent / "Resources" / "Requirements" / "SPIOQuantification.txt"

    def stage(self, parameters: SPIOQuantificationParameterNode, workspace: TemporaryWorkspace) -> SpioOptions:
        """Check the image layout, write it into ``workspace`` and return the bundle options."""
        self.checkInputs(parameters)
        node = parameters.input_image
        problem = view_line_layout_problem(slicer.util.arrayFromVolume(node).shape, node.GetName())
        if problem is not None:
            raise ValueError(problem)
        staged = stage_volumes(workspace, {"image": node}, write_volume, main="image",
                               name_of=lambda volume: volume.GetName())
        return spio_options(staged["image"], object_shrinkage=parameters.object_shrinkage)

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
        result = job.wait(timeout_s=timeoutSeconds)
        if not result.succeeded:
            raise RuntimeError(result.message)
        return self.loadTubes(job, concentrationNode)

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

        job = self.runner.start_tool("lightning_modules.spio.tube_reading", stage)
        if job is None:
            raise RuntimeError(self.notStartedMessage())
        return job

    def loadTubes(self, job, concentrationNode):
        """The table node "<map> tubes" from a succeeded :meth:`startTubes` job, whose workspace is then removed."""
        import csv

        import numpy as np

        try:
            with open(job.result.outputs["tubes"], newline="") as file:
                rows = list(csv.reader(file))
        finally:
            job.close()
        name = slicer.mrmlScene.GenerateUniqueName(f"{concentrationNode.GetName()} tubes")
        tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", name)
        columns = [np.array([float(row[k]) for row in rows[1:]]) for k in range(len(rows[0]))]
        columns[0] = columns[0].astype(np.int32)  # the lumen label
        slicer.util.updateTableFromArray(tableNode, columns, rows[0])
        return tableNode


class SPIOQuantificationTest(ScriptedLoadableModuleTest):
    """Self-test run inside Slicer (Developer mode → Reload and Test)."""

    def setUp(self) -> None:
        """Start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        """Run all tests."""
        self.setUp()
        self.test_SPIOQuantificationUniform()

    def test_SPIOQuantificationUniform(self) -> None:
        """A SPIO-free two-channel image in → a concentration map of the same slice out."""
        import numpy as np

        self.delayDisplay("Creating a View Line image")
        image = np.zeros((1, 128, 128, 2), dtype=np.float32)  # (k, j, i, channel)
        image[0] = 1.0  # both channels
        imageNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "viewline")
        slicer.util.updateVolumeFromArray(imageNode, image)
        logic = SPIOQuantificationLogic()
        parameters = logic.getParameterNode()
        parameters.input_image = imageNode
        outputs = logic.process(parameters, timeoutSeconds=600)
        self.assertEqual(slicer.util.arrayFromVolume(outputs["concentration"]).shape, image.shape[:3])
        self.delayDisplay("Test passed")

# ruff: noqa: N999  (Slicer module files are named after the module)
"""SPIOQuantification: 2-channel View Line image → SPIO iron concentration with ``spio_quantification``.

The image's layout (one x–z slice, two channels) is checked before staging (``view_line_layout_problem``).
"""

from __future__ import annotations

import SPIOQuantificationLib  # noqa: F401  (first: makes QSMSlicerCommon importable from a source checkout)

# isort: split

from pathlib import Path
from typing import Annotated

import numpy as np
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
from SPIOQuantificationLib.tables import SpioTablesMixin


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
    """The module panel: input, Apply/Cancel, progress and log (behaviour in BundleWidgetMixin), the "Objects" section
    that reports the last map's objects in a table whose rows jump the slice views to them
    (:meth:`SPIOQuantificationLogic.reportObjects`, ``jumpToObject``) and the "Bench tubes" section that reads a
    map's tubes into a table (:meth:`SPIOQuantificationLogic.readTubes`)."""

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
        self.ui.reportObjectsButton.connect("clicked(bool)", self.onReportObjects)
        self.ui.objectsTableView.connect("clicked(QModelIndex)", self.onObjectClicked)
        self.lastMap = None  # (image node, its map) of the last Apply, which "Report objects" reads
        self.setupBundlePanel(SPIOQuantificationLogic())

    def onResultsLoaded(self, outputs: dict) -> None:
        """The new map is the one the "Bench tubes" and "Objects" sections read."""
        self.ui.tubeMapSelector.setCurrentNode(outputs["concentration"])
        self.lastMap = (self._parameterNode.input_image, outputs["concentration"])

    def onReportObjects(self) -> None:
        """Report the last map's objects in a new table (``SPIOQuantificationLogic.reportObjects``)."""
        try:
            table = self.logic.reportObjects(*(self.lastMap or (None, None)))
        except (ValueError, RuntimeError, TimeoutError) as error:
            self.ui.objectsStatusLabel.text = str(error) or "the report timed out"
            return
        self.ui.objectsTableView.setMRMLTableNode(table)
        doubtful = int(np.sum(slicer.util.arrayFromTableColumn(table, "p_no_iron") >= 0.5))
        self.ui.objectsStatusLabel.text = (f"{table.GetNumberOfRows()} object(s): table '{table.GetName()}'"
                                           + (f"; {doubtful} as likely no iron as iron" if doubtful else ""))

    def onObjectClicked(self, index) -> None:
        """A row of the object table was clicked: jump the slice views to that object."""
        table = self.ui.objectsTableView.mrmlTableNode()
        if table is not None:
            self.logic.jumpToObject(table, index.row())

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


class SPIOQuantificationLogic(SpioTablesMixin, BundleLogicMixin, ScriptedLoadableModuleLogic):
    """Runs the ``spio_quantification`` bundle on nodes, reads bench tubes from its maps (:meth:`readTubes`) and reports
    their objects (:meth:`reportObjects`; both from ``SpioTablesMixin``); usable without the GUI (BundleLogicMixin)."""

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

# ruff: noqa: N999  (Slicer module files are named after the module)
"""SPIOQuantification: 2-channel View Line image → SPIO iron concentration with ``spio_quantification``.

The image's layout (one x–z slice, two channels) is checked before staging (``view_line_layout_problem``).
"""

from __future__ import annotations

import SPIOQuantificationLib  # noqa: F401  (first: makes QSMSlicerCommon importable from a source checkout)

# isort: split

from pathlib import Path

import slicer
from QSMSlicerCommon.options import SpioOptions
from QSMSlicerCommon.runner import stage_volumes
from QSMSlicerCommon.slicer_module import BundleLogicMixin, BundleWidgetMixin, describeModule
from QSMSlicerCommon.slicer_nodes import write_volume
from QSMSlicerCommon.workspace import TemporaryWorkspace
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from SPIOQuantificationLib.options import spio_options, view_line_layout_problem


class SPIOQuantification(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(self.parent, SpioOptions.BUNDLE, title="SPIO Quantification", category="SPIO",
                       helpNote="The shipped network assumes the acquisition described in the bundle's "
                                "documentation.")


@parameterNodeWrapper
class SPIOQuantificationParameterNode:
    """Panel state saved with the scene.

    input_image: View Line image, one x–z slice with two channels (even and odd lines).
    """

    input_image: vtkMRMLScalarVolumeNode


class SPIOQuantificationWidget(BundleWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: input, Apply/Cancel, progress and log (behaviour in BundleWidgetMixin)."""

    APPLY_TOOLTIP = "Map the SPIO concentration"
    PRESELECT = {"input_image": "vtkMRMLVectorVolumeNode"}

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)

    def setup(self) -> None:
        """Load the .ui file and connect it to the parameter node and the run panel."""
        ScriptedLoadableModuleWidget.setup(self)
        self.loadBundleUI("UI/SPIOQuantification.ui")
        self.setupBundlePanel(SPIOQuantificationLogic())


class SPIOQuantificationLogic(BundleLogicMixin, ScriptedLoadableModuleLogic):
    """Runs the ``spio_quantification`` bundle on nodes; usable without the GUI (see BundleLogicMixin)."""

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
        return spio_options(staged["image"])


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
        image[0, :, :, 0] = 1.0
        image[0, :, :, 1] = 1.0
        imageNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "viewline")
        slicer.util.updateVolumeFromArray(imageNode, image)
        logic = SPIOQuantificationLogic()
        parameters = logic.getParameterNode()
        parameters.input_image = imageNode
        outputs = logic.process(parameters, timeoutSeconds=600)
        self.assertEqual(slicer.util.arrayFromVolume(outputs["concentration"]).shape, image.shape[:3])
        self.delayDisplay("Test passed")

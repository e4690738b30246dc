# ruff: noqa: N999  (Slicer module files are named after the module)
"""SPIOQuantification: 2-channel View Line image → SPIO concentration (µg Fe/mm³) with ``spio_quantification``.

Thin Slicer layer: the parameter node, the panel and the Logic glue. Running the bundle, progress, cancel and
output collection are plain Python in ``QSMSlicerCommon`` (tested by pytest outside Slicer).
"""

from __future__ import annotations

import slicer
import vtk
from QSMSlicerCommon.job import BundleJob, JobResult, JobStatus
from QSMSlicerCommon.options import SpioOptions
from QSMSlicerCommon.runner import BundleRunner, stage_volumes
from QSMSlicerCommon.slicer_nodes import load_job_outputs, slicer_bundle_runner, write_volume
from QSMSlicerCommon.slicer_panel import BundleRunPanel
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
        self.parent.title = "SPIO Quantification"
        self.parent.categories = ["Quantification.SPIO"]
        self.parent.dependencies = []
        self.parent.contributors = ["QSM Slicer Extension developers"]
        self.parent.helpText = (
            "Maps the concentration of superparamagnetic iron oxide (µg Fe/mm³) from a View Line acquisition "
            "(even- and odd-line images as two channels) with DeepSPIO, running the spio_quantification MONAI "
            "bundle in a separate process. The shipped network assumes the acquisition described in the bundle's "
            "documentation (7 T, 128 × 128, 25 view lines)."
        )
        self.parent.acknowledgementText = "Built on MONAI and PyTorch Lightning."


@parameterNodeWrapper
class SPIOQuantificationParameterNode:
    """Panel state saved with the scene.

    input_image: View Line image, one x–z slice with two channels (even and odd lines).
    """

    input_image: vtkMRMLScalarVolumeNode


class SPIOQuantificationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, parameters, Apply/Cancel, progress and log."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: SPIOQuantificationLogic | None = None
        self.panel: BundleRunPanel | None = None
        self._parameterNode: SPIOQuantificationParameterNode | None = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        """Load the .ui file, connect it to the parameter node and the run panel."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SPIOQuantification.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SPIOQuantificationLogic()
        self.panel = BundleRunPanel(self.ui)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Stop a running job and observers when the module is destroyed."""
        self.panel.cancel()
        self.removeObservers()

    def enter(self) -> None:
        """Module opened."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Another module opened: stop updating the GUI from the parameter node."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        """Scene about to close: forget the parameter node."""
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        """Scene closed: make a new parameter node if the module is shown."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Use the logic's parameter node; preselect the first vector volume as View Line image."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.input_image:
            self._parameterNode.input_image = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLVectorVolumeNode")

    def setParameterNode(self, inputParameterNode: SPIOQuantificationParameterNode | None) -> None:
        """Connect the GUI to a parameter node (or to none)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        ready = bool(self._parameterNode and self._parameterNode.input_image) and not self.panel.busy
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = "Map the SPIO concentration" if ready else "Select a View Line image"

    def onApplyButton(self) -> None:
        """Write the inputs, start the bundle and follow it in the panel."""
        self.ui.logTextBox.clear()
        with slicer.util.tryWithErrorDisplay("Failed to start the SPIO quantification.", waitCursor=True):
            job = self.logic.start(self._parameterNode, onLine=self.panel.on_line, onProgress=self.panel.on_progress)
            if job is not None:
                self.panel.track(job, self.onJobFinished)

    def onJobFinished(self, job: BundleJob, result: JobResult) -> None:
        """Load the concentration map, or show the bundle's one-line error."""
        if result.succeeded:
            with slicer.util.tryWithErrorDisplay("Failed to load the concentration map."):
                self.logic.loadResults(job, self._parameterNode.input_image.GetName())
        elif result.status is JobStatus.FAILED:
            slicer.util.errorDisplay(result.message)
        self._checkCanApply()


class SPIOQuantificationLogic(ScriptedLoadableModuleLogic):
    """Runs the ``spio_quantification`` bundle on nodes; usable without the GUI.

    Args:
        runner: runs the bundle (default: PythonSlicer, the shipped bundles, Slicer's installer), created on
            first use so that opening the module never installs or probes anything.
    """

    def __init__(self, runner: BundleRunner | None = None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._runner = runner

    @property
    def runner(self) -> BundleRunner:
        """The bundle runner."""
        if self._runner is None:
            self._runner = slicer_bundle_runner(SpioOptions.BUNDLE)
        return self._runner

    def getParameterNode(self) -> SPIOQuantificationParameterNode:
        """The module's parameter node, wrapped."""
        return SPIOQuantificationParameterNode(super().getParameterNode())

    def stage(self, parameters: SPIOQuantificationParameterNode, workspace: TemporaryWorkspace) -> SpioOptions:
        """Check the image layout, write it into ``workspace`` and return the bundle options."""
        node = parameters.input_image
        if not node:
            raise ValueError("select a View Line image")
        problem = view_line_layout_problem(slicer.util.arrayFromVolume(node).shape, node.GetName())
        if problem is not None:
            raise ValueError(problem)
        staged = stage_volumes(workspace, {"image": node}, write_volume, main="image",
                               name_of=lambda volume: volume.GetName())
        return spio_options(staged["image"])

    def start(self, parameters: SPIOQuantificationParameterNode, onLine=None, onProgress=None) -> BundleJob | None:
        """Start the bundle; ``None`` if the user declined installing its Python packages."""
        return self.runner.start(lambda workspace: self.stage(parameters, workspace), on_line=onLine,
                                 on_progress=onProgress)

    def loadResults(self, job: BundleJob, namePrefix: str) -> dict:
        """Load the concentration map (inferno, 0–28 µg Fe/mm³) and remove the job's temporary files."""
        return load_job_outputs(job, SpioOptions.BUNDLE, namePrefix)

    def process(self, parameters: SPIOQuantificationParameterNode, timeoutSeconds: float | None = None) -> dict:
        """Run to completion without GUI and load the outputs.

        Raises:
            RuntimeError: the user declined installing dependencies, or the bundle failed (its message).
        """
        job = self.start(parameters)
        if job is None:
            raise RuntimeError("the Python packages needed by the SPIO bundle are not installed")
        result = job.wait(timeout_s=timeoutSeconds)
        if not result.succeeded:
            raise RuntimeError(result.message)
        return self.loadResults(job, parameters.input_image.GetName())


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

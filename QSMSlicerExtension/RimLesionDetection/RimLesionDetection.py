# ruff: noqa: N999  (Slicer module files are named after the module)
"""RimLesionDetection: QSM + FLAIR + lesion mask → rim+ probability per lesion with ``rim_lesion_detection``.

Thin Slicer layer: the parameter node, the panel and the Logic glue. Running the bundle, progress, cancel and
output collection are plain Python in ``QSMSlicerCommon`` (tested by pytest outside Slicer). The lesion table
is loaded as a ``vtkMRMLTableNode``, the rim labels (1 rim−, 2 rim+) as a labelmap.
"""

from __future__ import annotations

from typing import Annotated

import slicer
import vtk
from QSMSlicerCommon.job import BundleJob, JobResult, JobStatus
from QSMSlicerCommon.options import RimOptions
from QSMSlicerCommon.runner import BundleRunner, stage_volumes
from QSMSlicerCommon.slicer_nodes import load_job_outputs, slicer_bundle_runner, write_volume
from QSMSlicerCommon.slicer_panel import BundleRunPanel
from QSMSlicerCommon.workspace import TemporaryWorkspace
from RimLesionDetectionLib.options import rim_options, summarize_lesions
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class RimLesionDetection(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Rim Lesion Detection"
        self.parent.categories = ["Quantification.QSM"]
        self.parent.dependencies = []
        self.parent.contributors = ["QSM Slicer Extension developers"]
        self.parent.helpText = (
            "Classifies multiple sclerosis lesions as paramagnetic rim positive or negative from QSM and FLAIR "
            "(QSMRim-Net), running the rim_lesion_detection MONAI bundle in a separate process. Outputs a lesion "
            "table and a labelmap (1 rim−, 2 rim+)."
        )
        self.parent.acknowledgementText = "Built on MONAI and PyTorch Lightning."


@parameterNodeWrapper
class RimLesionDetectionParameterNode:
    """Panel state saved with the scene.

    input_qsm: susceptibility map (ppm). input_flair: FLAIR image. input_lesion_mask: binary or labelled lesion
    mask. threshold: rim+ probability threshold, 0 for the bundle's validated operating point.
    """

    input_qsm: vtkMRMLScalarVolumeNode
    input_flair: vtkMRMLScalarVolumeNode
    input_lesion_mask: vtkMRMLScalarVolumeNode
    threshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.0


class RimLesionDetectionWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, parameters, Apply/Cancel, progress and log."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: RimLesionDetectionLogic | None = None
        self.panel: BundleRunPanel | None = None
        self._parameterNode: RimLesionDetectionParameterNode | None = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        """Load the .ui file, connect it to the parameter node and the run panel."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RimLesionDetection.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RimLesionDetectionLogic()
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
        """Use the logic's parameter node; preselect the first labelmap as lesion mask."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.input_lesion_mask:
            self._parameterNode.input_lesion_mask = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLLabelMapVolumeNode")

    def setParameterNode(self, inputParameterNode: RimLesionDetectionParameterNode | None) -> None:
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
        parameters = self._parameterNode
        ready = bool(parameters and parameters.input_qsm and parameters.input_flair
                     and parameters.input_lesion_mask) and not self.panel.busy
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = "Classify the lesions" if ready else "Select QSM, FLAIR and lesion mask"

    def onApplyButton(self) -> None:
        """Write the inputs, start the bundle and follow it in the panel."""
        self.ui.logTextBox.clear()
        with slicer.util.tryWithErrorDisplay("Failed to start the rim lesion detection.", waitCursor=True):
            job = self.logic.start(self._parameterNode, onLine=self.panel.on_line, onProgress=self.panel.on_progress)
            if job is not None:
                self.panel.track(job, self.onJobFinished)

    def onJobFinished(self, job: BundleJob, result: JobResult) -> None:
        """Load the lesion table and rim labels and log the summary, or show the bundle's one-line error."""
        if result.succeeded:
            with slicer.util.tryWithErrorDisplay("Failed to load the rim lesion results."):
                self.panel.log(summarize_lesions(result.outputs["lesions"]))
                self.logic.loadResults(job, self._parameterNode.input_qsm.GetName())
        elif result.status is JobStatus.FAILED:
            slicer.util.errorDisplay(result.message)
        self._checkCanApply()


class RimLesionDetectionLogic(ScriptedLoadableModuleLogic):
    """Runs the ``rim_lesion_detection`` bundle on nodes; usable without the GUI.

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
            self._runner = slicer_bundle_runner(RimOptions.BUNDLE)
        return self._runner

    def getParameterNode(self) -> RimLesionDetectionParameterNode:
        """The module's parameter node, wrapped."""
        return RimLesionDetectionParameterNode(super().getParameterNode())

    def stage(self, parameters: RimLesionDetectionParameterNode, workspace: TemporaryWorkspace) -> RimOptions:
        """Write QSM, FLAIR and lesion mask into ``workspace`` and return the bundle options."""
        nodes = {"qsm": parameters.input_qsm, "flair": parameters.input_flair,
                 "lesion_mask": parameters.input_lesion_mask}
        unselected = [name for name, node in nodes.items() if not node]
        if unselected:
            raise ValueError(f"select the {', '.join(unselected)} input(s)")
        staged = stage_volumes(workspace, nodes, write_volume, main="qsm", name_of=lambda node: node.GetName())
        return rim_options(staged["qsm"], staged["flair"], staged["lesion_mask"], threshold=parameters.threshold)

    def start(self, parameters: RimLesionDetectionParameterNode, onLine=None, onProgress=None) -> BundleJob | None:
        """Start the bundle; ``None`` if the user declined installing its Python packages."""
        return self.runner.start(lambda workspace: self.stage(parameters, workspace), on_line=onLine,
                                 on_progress=onProgress)

    def loadResults(self, job: BundleJob, namePrefix: str) -> dict:
        """Load the lesion table (``vtkMRMLTableNode``) and the rim labelmap; remove the job's temporary files."""
        return load_job_outputs(job, RimOptions.BUNDLE, namePrefix)

    def process(self, parameters: RimLesionDetectionParameterNode, timeoutSeconds: float | None = None) -> dict:
        """Run to completion without GUI and load the outputs.

        Raises:
            RuntimeError: the user declined installing dependencies, or the bundle failed (its message).
        """
        job = self.start(parameters)
        if job is None:
            raise RuntimeError("the Python packages needed by the rim lesion bundle are not installed")
        result = job.wait(timeout_s=timeoutSeconds)
        if not result.succeeded:
            raise RuntimeError(result.message)
        return self.loadResults(job, parameters.input_qsm.GetName())


class RimLesionDetectionTest(ScriptedLoadableModuleTest):
    """Self-test run inside Slicer (Developer mode → Reload and Test)."""

    def setUp(self) -> None:
        """Start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        """Run all tests."""
        self.setUp()
        self.test_RimLesionDetectionTwoLesions()

    def test_RimLesionDetectionTwoLesions(self) -> None:
        """Two lesions, one with a paramagnetic rim, in → a two-row lesion table and a labelmap out."""
        import numpy as np

        self.delayDisplay("Creating a two-lesion phantom")
        grid = np.mgrid[0:32, 0:32, 0:32].astype(float)  # (k, j, i), 1 mm voxels
        qsm = np.zeros((32, 32, 32), dtype=np.float32)
        mask = np.zeros((32, 32, 32), dtype=np.int16)
        for label, (centre, rim) in enumerate((((16, 10, 10), True), ((16, 22, 22), False)), start=1):
            radius = np.linalg.norm(grid - np.reshape(centre, (3, 1, 1, 1)), axis=0)
            mask[radius <= 4] = label
            if rim:
                qsm[(radius > 3) & (radius <= 4)] = 0.06
        flair = (mask > 0).astype(np.float32) * 2.0 + 1.0
        qsmNode = slicer.util.addVolumeFromArray(qsm, name="rim_qsm")
        flairNode = slicer.util.addVolumeFromArray(flair, name="rim_flair")
        maskNode = slicer.util.addVolumeFromArray(mask, name="rim_lesions", nodeClassName="vtkMRMLLabelMapVolumeNode")
        logic = RimLesionDetectionLogic()
        parameters = logic.getParameterNode()
        parameters.input_qsm = qsmNode
        parameters.input_flair = flairNode
        parameters.input_lesion_mask = maskNode
        outputs = logic.process(parameters, timeoutSeconds=600)
        self.assertEqual(outputs["lesions"].GetNumberOfRows(), 2)
        self.assertTrue(outputs["rim_labels"].IsA("vtkMRMLLabelMapVolumeNode"))
        self.delayDisplay("Test passed")

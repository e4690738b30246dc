# ruff: noqa: N999  (Slicer module files are named after the module)
"""QSMInversion: local field map (+ mask) → susceptibility map χ (ppm) with the ``qsm_dipole_inversion`` bundle.

Thin Slicer layer: the parameter node, the panel and the Logic glue. Running the bundle, progress, cancel and
output collection are plain Python in ``QSMSlicerCommon`` (tested by pytest outside Slicer).
"""

from __future__ import annotations

from typing import Annotated

import slicer
import vtk
from QSMInversionLib.options import FIELD_UNITS, METHOD_CHOICES, qsm_options
from QSMSlicerCommon.job import BundleJob, JobResult, JobStatus
from QSMSlicerCommon.options import QsmOptions
from QSMSlicerCommon.runner import BundleRunner, stage_volumes
from QSMSlicerCommon.slicer_nodes import load_job_outputs, slicer_bundle_runner, write_volume
from QSMSlicerCommon.slicer_panel import BundleRunPanel
from QSMSlicerCommon.workspace import TemporaryWorkspace
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class QSMInversion(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "QSM Inversion"
        self.parent.categories = ["Quantification.QSM"]
        self.parent.dependencies = []
        self.parent.contributors = ["QSM Slicer Extension developers"]
        self.parent.helpText = (
            "Computes a susceptibility map (ppm) from a local field map by dipole inversion (NDI, TKD, and the "
            "learned methods once shipped), running the qsm_dipole_inversion MONAI bundle in a separate process."
        )
        self.parent.acknowledgementText = "Built on MONAI and PyTorch Lightning."


@parameterNodeWrapper
class QSMInversionParameterNode:
    """Panel state saved with the scene.

    input_field: local field map (3-D). input_mask: optional brain mask. field_unit: unit of the field map.
    b0_tesla / te_ms: main field (T) and echo time (ms), used for ``hz`` / ``rad`` fields. method: solver.
    """

    input_field: vtkMRMLScalarVolumeNode
    input_mask: vtkMRMLScalarVolumeNode
    field_unit: Annotated[str, Choice(FIELD_UNITS)] = "ppm"
    b0_tesla: Annotated[float, WithinRange(0.1, 21.0)] = 3.0
    te_ms: Annotated[float, WithinRange(0.1, 500.0)] = 20.0
    method: Annotated[str, Choice(METHOD_CHOICES)] = METHOD_CHOICES[0]


class QSMInversionWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, parameters, Apply/Cancel, progress and log."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: QSMInversionLogic | None = None
        self.panel: BundleRunPanel | None = None
        self._parameterNode: QSMInversionParameterNode | None = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        """Load the .ui file, connect it to the parameter node and the run panel."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/QSMInversion.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = QSMInversionLogic()
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
        """Use the logic's parameter node; preselect the first volume as field map."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.input_field:
            self._parameterNode.input_field = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, inputParameterNode: QSMInversionParameterNode | None) -> None:
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
        ready = bool(self._parameterNode and self._parameterNode.input_field) and not self.panel.busy
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = "Run the dipole inversion" if ready else "Select a field map"

    def onApplyButton(self) -> None:
        """Write the inputs, start the bundle and follow it in the panel."""
        self.ui.logTextBox.clear()
        with slicer.util.tryWithErrorDisplay("Failed to start the QSM inversion.", waitCursor=True):
            job = self.logic.start(self._parameterNode, onLine=self.panel.on_line, onProgress=self.panel.on_progress)
            if job is not None:
                self.panel.track(job, self.onJobFinished)

    def onJobFinished(self, job: BundleJob, result: JobResult) -> None:
        """Load the χ map, or show the bundle's one-line error."""
        if result.succeeded:
            with slicer.util.tryWithErrorDisplay("Failed to load the susceptibility map."):
                self.logic.loadResults(job, self._parameterNode.input_field.GetName())
        elif result.status is JobStatus.FAILED:
            slicer.util.errorDisplay(result.message)
        self._checkCanApply()


class QSMInversionLogic(ScriptedLoadableModuleLogic):
    """Runs the ``qsm_dipole_inversion`` bundle on nodes; usable without the GUI.

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
            self._runner = slicer_bundle_runner(QsmOptions.BUNDLE)
        return self._runner

    def getParameterNode(self) -> QSMInversionParameterNode:
        """The module's parameter node, wrapped."""
        return QSMInversionParameterNode(super().getParameterNode())

    def stage(self, parameters: QSMInversionParameterNode, workspace: TemporaryWorkspace) -> QsmOptions:
        """Write the selected nodes into ``workspace`` and return the bundle options."""
        if not parameters.input_field:
            raise ValueError("select a local field map")
        staged = stage_volumes(workspace, {"field": parameters.input_field, "mask": parameters.input_mask},
                               write_volume, main="field", name_of=lambda node: node.GetName())
        return qsm_options(staged["field"], staged["mask"], field_unit=parameters.field_unit,
                           b0_tesla=parameters.b0_tesla, te_ms=parameters.te_ms, method=parameters.method)

    def start(self, parameters: QSMInversionParameterNode, onLine=None, onProgress=None) -> BundleJob | None:
        """Start the bundle; ``None`` if the user declined installing its Python packages."""
        return self.runner.start(lambda workspace: self.stage(parameters, workspace), on_line=onLine,
                                 on_progress=onProgress)

    def loadResults(self, job: BundleJob, namePrefix: str) -> dict:
        """Load the χ map as a volume node (grey, ±0.15 ppm) and remove the job's temporary files."""
        return load_job_outputs(job, QsmOptions.BUNDLE, namePrefix)

    def process(self, parameters: QSMInversionParameterNode, timeoutSeconds: float | None = None) -> dict:
        """Run to completion without GUI and load the outputs.

        Raises:
            RuntimeError: the user declined installing dependencies, or the bundle failed (its message).
        """
        job = self.start(parameters)
        if job is None:
            raise RuntimeError("the Python packages needed by the QSM bundle are not installed")
        result = job.wait(timeout_s=timeoutSeconds)
        if not result.succeeded:
            raise RuntimeError(result.message)
        return self.loadResults(job, parameters.input_field.GetName())


class QSMInversionTest(ScriptedLoadableModuleTest):
    """Self-test run inside Slicer (Developer mode → Reload and Test)."""

    def setUp(self) -> None:
        """Start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        """Run all tests."""
        self.setUp()
        self.test_QSMInversionSphere()

    def test_QSMInversionSphere(self) -> None:
        """Field of a magnetised sphere in → χ map of the same geometry out."""
        import numpy as np

        self.delayDisplay("Creating a sphere field map")
        grid = np.mgrid[-12:12, -12:12, -12:12].astype(float)  # (k, j, i) voxel offsets, 1 mm
        radius = np.sqrt((grid**2).sum(axis=0)) + 1e-6
        cos2 = (grid[0] / radius) ** 2  # B0 along k (z)
        field = np.where(radius < 6, 0.0, 0.1 / 3 * (6 / radius) ** 3 * (3 * cos2 - 1))  # ppm, χ = 0.1 ppm
        fieldNode = slicer.util.addVolumeFromArray(field.astype(np.float32), name="sphere_field")
        maskNode = slicer.util.addVolumeFromArray(np.ones(field.shape, dtype=np.uint8), name="sphere_mask",
                                                  nodeClassName="vtkMRMLLabelMapVolumeNode")
        logic = QSMInversionLogic()
        parameters = logic.getParameterNode()
        parameters.input_field = fieldNode
        parameters.input_mask = maskNode  # the field is 0 inside the sphere, so the default mask would miss it
        parameters.method = "tkd"
        outputs = logic.process(parameters, timeoutSeconds=600)
        chiArray = slicer.util.arrayFromVolume(outputs["chi"])
        self.assertEqual(chiArray.shape, field.shape)
        self.assertGreater(float(chiArray[12, 12, 12]), 0.0)
        self.delayDisplay("Test passed")

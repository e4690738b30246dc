# ruff: noqa: N999  (Slicer module files are named after the module)
"""IVIMMapping: 4-D diffusion series + b-values → D, f, D* and S0 maps with the ``ivim_mapping`` bundle.

Thin Slicer layer: the parameter node, the panel and the Logic glue. Running the bundle, progress, cancel and
output collection are plain Python in ``QSMSlicerCommon`` (tested by pytest outside Slicer).
"""

from __future__ import annotations

from typing import Annotated

import slicer
import vtk
from IVIMMappingLib.options import (
    FRAME_LABELS_ATTRIBUTE,
    METHODS,
    MODELS,
    MODES,
    ivim_options,
    parse_b_values,
    write_bvals,
)
from QSMSlicerCommon.job import BundleJob, JobResult, JobStatus
from QSMSlicerCommon.options import IvimOptions
from QSMSlicerCommon.runner import BundleRunner, stage_volumes
from QSMSlicerCommon.slicer_nodes import load_job_outputs, slicer_bundle_runner, write_volume
from QSMSlicerCommon.slicer_panel import BundleRunPanel
from QSMSlicerCommon.workspace import TemporaryWorkspace
from slicer import vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


class IVIMMapping(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "IVIM Mapping"
        self.parent.categories = ["Quantification.Diffusion"]
        self.parent.dependencies = []
        self.parent.contributors = ["QSM Slicer Extension developers"]
        self.parent.helpText = (
            "Fits intravoxel incoherent motion (IVIM) maps: D and D* (mm²/s), perfusion fraction f and S0, "
            "bi- or tri-exponential, with IVIM-NET or least squares, running the ivim_mapping MONAI bundle in a "
            "separate process."
        )
        self.parent.acknowledgementText = "Built on MONAI and PyTorch Lightning."


@parameterNodeWrapper
class IVIMMappingParameterNode:
    """Panel state saved with the scene.

    input_dwi: 4-D diffusion-weighted series. input_mask: optional mask. b_values: b-values (s/mm²) as text;
    empty means the node's MultiVolume frame labels. model / mode / method: the bundle's options.
    """

    input_dwi: vtkMRMLScalarVolumeNode
    input_mask: vtkMRMLScalarVolumeNode
    b_values: str = ""
    model: Annotated[str, Choice(MODELS)] = MODELS[0]
    mode: Annotated[str, Choice(MODES)] = MODES[0]
    method: Annotated[str, Choice(METHODS)] = METHODS[0]


class IVIMMappingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, parameters, Apply/Cancel, progress and log."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: IVIMMappingLogic | None = None
        self.panel: BundleRunPanel | None = None
        self._parameterNode: IVIMMappingParameterNode | None = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        """Load the .ui file, connect it to the parameter node and the run panel."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/IVIMMapping.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = IVIMMappingLogic()
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
        """Use the logic's parameter node; preselect the first multi-frame volume as DWI series."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.input_dwi:
            self._parameterNode.input_dwi = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLMultiVolumeNode")

    def setParameterNode(self, inputParameterNode: IVIMMappingParameterNode | None) -> None:
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
        ready = bool(self._parameterNode and self._parameterNode.input_dwi) and not self.panel.busy
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = "Fit the IVIM maps" if ready else "Select a DWI series"

    def onApplyButton(self) -> None:
        """Write the inputs, start the bundle and follow it in the panel."""
        self.ui.logTextBox.clear()
        with slicer.util.tryWithErrorDisplay("Failed to start the IVIM mapping.", waitCursor=True):
            job = self.logic.start(self._parameterNode, onLine=self.panel.on_line, onProgress=self.panel.on_progress)
            if job is not None:
                self.panel.track(job, self.onJobFinished)

    def onJobFinished(self, job: BundleJob, result: JobResult) -> None:
        """Load the IVIM maps, or show the bundle's one-line error."""
        if result.succeeded:
            with slicer.util.tryWithErrorDisplay("Failed to load the IVIM maps."):
                self.logic.loadResults(job, self._parameterNode.input_dwi.GetName())
        elif result.status is JobStatus.FAILED:
            slicer.util.errorDisplay(result.message)
        self._checkCanApply()


class IVIMMappingLogic(ScriptedLoadableModuleLogic):
    """Runs the ``ivim_mapping`` bundle on nodes; usable without the GUI.

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
            self._runner = slicer_bundle_runner(IvimOptions.BUNDLE)
        return self._runner

    def getParameterNode(self) -> IVIMMappingParameterNode:
        """The module's parameter node, wrapped."""
        return IVIMMappingParameterNode(super().getParameterNode())

    def stage(self, parameters: IVIMMappingParameterNode, workspace: TemporaryWorkspace) -> IvimOptions:
        """Write the series, mask and b-value file into ``workspace`` and return the bundle options."""
        if not parameters.input_dwi:
            raise ValueError("select a DWI series")
        if parameters.b_values.strip():
            b_values = parse_b_values(parameters.b_values, source="the b-values field")
        else:
            labels = parameters.input_dwi.GetAttribute(FRAME_LABELS_ATTRIBUTE) or ""
            b_values = parse_b_values(labels, source=f"the frame labels of {parameters.input_dwi.GetName()!r}")
        staged = stage_volumes(workspace, {"dwi": parameters.input_dwi, "mask": parameters.input_mask},
                               write_volume, main="dwi", name_of=lambda node: node.GetName())
        bvals = write_bvals(b_values, workspace.input_path(parameters.input_dwi.GetName(), ".bval"))
        return ivim_options(staged["dwi"], bvals, staged["mask"], model=parameters.model, mode=parameters.mode,
                            method=parameters.method)

    def start(self, parameters: IVIMMappingParameterNode, onLine=None, onProgress=None) -> BundleJob | None:
        """Start the bundle; ``None`` if the user declined installing its Python packages."""
        return self.runner.start(lambda workspace: self.stage(parameters, workspace), on_line=onLine,
                                 on_progress=onProgress)

    def loadResults(self, job: BundleJob, namePrefix: str) -> dict:
        """Load the parameter maps with their colour tables and ranges; remove the job's temporary files."""
        return load_job_outputs(job, IvimOptions.BUNDLE, namePrefix)

    def process(self, parameters: IVIMMappingParameterNode, timeoutSeconds: float | None = None) -> dict:
        """Run to completion without GUI and load the outputs.

        Raises:
            RuntimeError: the user declined installing dependencies, or the bundle failed (its message).
        """
        job = self.start(parameters)
        if job is None:
            raise RuntimeError("the Python packages needed by the IVIM bundle are not installed")
        result = job.wait(timeout_s=timeoutSeconds)
        if not result.succeeded:
            raise RuntimeError(result.message)
        return self.loadResults(job, parameters.input_dwi.GetName())


class IVIMMappingTest(ScriptedLoadableModuleTest):
    """Self-test run inside Slicer (Developer mode → Reload and Test)."""

    def setUp(self) -> None:
        """Start from an empty scene."""
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        """Run all tests."""
        self.setUp()
        self.test_IVIMMappingPhantom()

    def test_IVIMMappingPhantom(self) -> None:
        """Bi-exponential signal with known D, f, D* in → maps of the same grid out (least squares, fast)."""
        import numpy as np

        self.delayDisplay("Creating an IVIM phantom")
        b_values = np.array([0, 10, 20, 50, 100, 200, 400, 800], dtype=float)
        d, f, dstar = 1.0e-3, 0.1, 0.02
        signal = 1000 * (f * np.exp(-b_values * dstar) + (1 - f) * np.exp(-b_values * d))
        series = np.broadcast_to(signal, (4, 8, 8, b_values.size)).astype(np.float32)  # (k, j, i, b)
        dwiNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "ivim_phantom")
        slicer.util.updateVolumeFromArray(dwiNode, np.ascontiguousarray(series))
        logic = IVIMMappingLogic()
        parameters = logic.getParameterNode()
        parameters.input_dwi = dwiNode
        parameters.b_values = " ".join(f"{b:g}" for b in b_values)
        parameters.method = "lsq"
        outputs = logic.process(parameters, timeoutSeconds=600)
        self.assertEqual(set(outputs), {"D", "f", "Dstar", "S0"})
        self.assertEqual(slicer.util.arrayFromVolume(outputs["D"]).shape, series.shape[:3])
        self.delayDisplay("Test passed")

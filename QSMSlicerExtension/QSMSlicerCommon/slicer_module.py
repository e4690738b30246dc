"""What the four modules' Widget and Logic classes share, as mixins: the module files keep only what differs.

A module declares ``class <Module>Widget(BundleWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin)``
and ``class <Module>Logic(BundleLogicMixin, ScriptedLoadableModuleLogic)`` and sets a few class attributes
(bundle, parameter node class, required inputs); the parameter-node wiring, Apply/Cancel, the bundle run and
the loading of its outputs are here, once. ``slicer`` and ``vtk`` are imported inside the methods, so importing
this file is free outside Slicer; tests drive the mixins on slicer-core with Qt stand-ins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from QSMSlicerCommon import capability
from QSMSlicerCommon.job import BundleJob, JobResult, JobStatus
from QSMSlicerCommon.options import BundleOptions
from QSMSlicerCommon.runner import BundleRunner
from QSMSlicerCommon.slicer_nodes import grid_node, load_job_outputs, slicer_bundle_runner
from QSMSlicerCommon.slicer_panel import BundleRunPanel
from QSMSlicerCommon.workspace import TemporaryWorkspace


def describeModule(parent, bundle: str, *, title: str, category: str, helpNote: str = "") -> None:
    """Fill in what Slicer shows about a module: its title, its category under *Quantification*, its help text
    (from the bundle's description, then ``helpNote``), contributors and acknowledgement."""
    parent.title = title
    parent.categories = [f"Quantification.{category}"]
    parent.dependencies = []
    parent.contributors = ["QSM Slicer Extension developers"]
    parent.helpText = " ".join(filter(None, (capability.module_help(bundle), helpNote)))
    parent.acknowledgementText = "Built on MONAI and PyTorch Lightning."


class BundleLogicMixin:
    """Runs one bundle on the nodes of a parameter node; usable without the GUI.

    Class attributes a module sets:
        BUNDLE: bundle name (``QsmOptions.BUNDLE``...).
        PARAMETER_NODE_CLASS: the module's ``@parameterNodeWrapper`` class.
        REQUIRED_INPUTS: parameter name → what to ask the user for when it is unselected; the first one is the
            main input, whose node name prefixes the output node names.
        REQUIREMENTS_FILE: the module's ``Resources/Requirements/<Module>.txt``.

    A module implements ``stage(parameters, workspace) -> options`` (write the nodes, return bundle options)
    and may override :meth:`onOutputsLoaded`.

    Args:
        runner: runs the bundle (default: PythonSlicer, the shipped bundles, Slicer's installer), created on
            first use so that opening the module never installs or probes anything.
    """

    BUNDLE: str
    PARAMETER_NODE_CLASS: type
    REQUIRED_INPUTS: Mapping[str, str]
    REQUIREMENTS_FILE: str | os.PathLike

    def __init__(self, runner: BundleRunner | None = None) -> None:
        super().__init__()
        self._runner = runner

    @property
    def runner(self) -> BundleRunner:
        """The bundle runner."""
        if self._runner is None:
            self._runner = slicer_bundle_runner(self.BUNDLE, self.REQUIREMENTS_FILE)
        return self._runner

    def getParameterNode(self):
        """The module's parameter node, wrapped in the module's parameter node class."""
        return self.PARAMETER_NODE_CLASS(super().getParameterNode())

    def missingInputs(self, parameters) -> list[str]:
        """What the user still has to select (empty when the module can run)."""
        return [ask for name, ask in self.REQUIRED_INPUTS.items() if not getattr(parameters, name)]

    def checkInputs(self, parameters) -> None:
        """Raise ``ValueError("select ...")`` when a required input is unselected."""
        missing = self.missingInputs(parameters)
        if missing:
            raise ValueError(f"select {' and '.join(missing)}")

    def stage(self, parameters, workspace: TemporaryWorkspace) -> BundleOptions:
        """Write the selected nodes into ``workspace`` and return the bundle options (module-specific)."""
        raise NotImplementedError

    def mainInput(self, parameters):
        """The main input node: output node names start with its name, and outputs keep its grid."""
        return getattr(parameters, next(iter(self.REQUIRED_INPUTS)))

    def notStartedMessage(self) -> str:
        """What the panel and :meth:`process` say when the user declined installing the bundle's packages."""
        return f"Not started: installing the Python packages that {self.BUNDLE} needs was declined."

    def start(self, parameters, onLine=None, onProgress=None) -> BundleJob | None:
        """Start the bundle; ``None`` if the user declined installing its Python packages."""
        self.checkInputs(parameters)
        return self.runner.start(lambda workspace: self.stage(parameters, workspace), on_line=onLine,
                                 on_progress=onProgress)

    def loadResults(self, job: BundleJob, mainInput) -> dict:
        """Load a succeeded job's outputs as nodes named after ``mainInput``, on its grid, with their display
        presets; remove the job's temporary files."""
        outputs = load_job_outputs(job, self.BUNDLE, mainInput.GetName(), grid_node(mainInput))
        self.onOutputsLoaded(outputs)
        return outputs

    def onOutputsLoaded(self, outputs: dict) -> None:
        """Hook after loading (the rim module links its table to its labelmap here)."""

    def process(self, parameters, timeoutSeconds: float | None = None) -> dict:
        """Run to completion without GUI and load the outputs.

        Raises:
            RuntimeError: the user declined installing dependencies, or the bundle failed (its message).
        """
        job = self.start(parameters)
        if job is None:
            raise RuntimeError(self.notStartedMessage())
        result = job.wait(timeout_s=timeoutSeconds)
        if not result.succeeded:
            raise RuntimeError(result.message)
        return self.loadResults(job, self.mainInput(parameters))


class BundleWidgetMixin:
    """The module panel's behaviour: parameter node ↔ GUI, Apply/Cancel, progress and log, loading results.

    The module's ``setup()`` loads its ``.ui`` (:meth:`loadBundleUI`) and calls :meth:`setupBundlePanel`. Class
    attributes a module sets: ``APPLY_TOOLTIP`` (what Apply does), ``PRESELECT`` (parameter name → node class
    preselected from the scene when the parameter is empty) and ``PANEL_NOTES`` (option → what the panel adds to
    the option's help, e.g. what its "use the default" value is). A module may override :meth:`onResultsLoaded`.
    """

    APPLY_TOOLTIP = "Run the bundle"
    PRESELECT: Mapping[str, str] = {}
    PANEL_NOTES: Mapping[str, str] = {}

    def loadBundleUI(self, ui_file: str) -> None:
        """Load ``Resources/<ui_file>`` into the panel, expose its widgets as ``self.ui`` and give them the scene."""
        import slicer

        uiWidget = slicer.util.loadUI(self.resourcePath(ui_file))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

    def setupBundlePanel(self, logic: BundleLogicMixin) -> None:
        """Connect the loaded ``.ui`` (``self.ui``) to the logic, the run panel and the scene."""
        import slicer

        self.logic = logic
        self.panel = BundleRunPanel(self.ui)
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.describeOptionWidgets()
        self.initializeParameterNode()

    def describeOptionWidgets(self) -> None:
        """Give each widget bound to a bundle option (``SlicerParameterName``) the option's help from the bundle's
        description as tooltip, plus the module's ``PANEL_NOTES``, and its unit as the spin box suffix."""
        options = capability.describe(self.logic.BUNDLE)["options"]
        for widget in vars(self.ui).values():
            name = widget.property("SlicerParameterName")
            spec = options.get(name) if name else None
            if spec is None:
                continue
            widget.toolTip = " ".join(filter(None, (spec["help"], self.PANEL_NOTES.get(name))))
            if spec.get("unit"):
                widget.suffix = f" {spec['unit']}"

    def cleanup(self) -> None:
        """Stop a running job and observers when the module is destroyed."""
        self.panel.cancel()
        self.removeObservers()

    def enter(self) -> None:
        """Module opened."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Another module opened: stop updating the GUI from the parameter node (a running job goes on)."""
        import vtk

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
        """Use the logic's parameter node; preselect empty inputs from the scene (``PRESELECT``)."""
        import slicer

        self.setParameterNode(self.logic.getParameterNode())
        for name, node_class in self.PRESELECT.items():
            if not getattr(self._parameterNode, name):
                setattr(self._parameterNode, name, slicer.mrmlScene.GetFirstNodeByClass(node_class))

    def setParameterNode(self, inputParameterNode) -> None:
        """Connect the GUI to a parameter node (or to none)."""
        import vtk

        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        """Enable Apply when every required input is selected and no job runs; say what is missing."""
        missing = self.logic.missingInputs(self._parameterNode) if self._parameterNode else ["the inputs"]
        ready = not missing and not self.panel.busy
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = self.APPLY_TOOLTIP if ready else f"Select {' and '.join(missing)}"

    def onApplyButton(self) -> None:
        """Write the inputs, start the bundle and follow it in the panel."""
        import slicer

        self.ui.logTextBox.clear()
        with slicer.util.tryWithErrorDisplay(f"Failed to start {self.logic.BUNDLE}.", waitCursor=True):
            job = self.logic.start(self._parameterNode, onLine=self.panel.on_line, onProgress=self.panel.on_progress)
            if job is None:
                self.panel.not_started(self.logic.notStartedMessage())
                return
            mainInput = self.logic.mainInput(self._parameterNode)  # the selection may change while it runs
            self.panel.track(job, lambda job, result: self.onJobFinished(job, result, mainInput))
            self._checkCanApply()

    def onJobFinished(self, job: BundleJob, result: JobResult, mainInput) -> None:
        """Load the outputs, or show the bundle's one-line error (a cancel needs no dialog)."""
        import slicer

        if result.succeeded:
            with slicer.util.tryWithErrorDisplay(f"Failed to load the outputs of {self.logic.BUNDLE}."):
                self.onResultsLoaded(self.logic.loadResults(job, mainInput))
        elif result.status is JobStatus.FAILED:
            slicer.util.errorDisplay(result.message)
        self._checkCanApply()

    def onResultsLoaded(self, outputs: dict) -> None:
        """Hook after the outputs were loaded (the rim module shows its lesion table here)."""

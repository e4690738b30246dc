# ruff: noqa: N999  (Slicer module files are named after the module)
"""RimLesionDetection: QSM + FLAIR + lesion mask → rim+ probability per lesion with ``rim_lesion_detection``.

The lesion mask may be a labelmap or a segmentation (written as a labelmap on the QSM grid). The lesion table
is loaded as a ``vtkMRMLTableNode`` linked to the rim labelmap (1 rim−, 2 rim+): clicking a row in the panel
jumps the slice views to that lesion.
"""

from __future__ import annotations

import RimLesionDetectionLib  # noqa: F401  (first: makes QSMSlicerCommon importable from a source checkout)

# isort: split

from pathlib import Path
from typing import Annotated, Union

import slicer
from QSMSlicerCommon.options import RimOptions
from QSMSlicerCommon.runner import stage_volumes
from QSMSlicerCommon.slicer_module import BundleLogicMixin, BundleWidgetMixin, describeModule
from QSMSlicerCommon.slicer_nodes import write_volume
from QSMSlicerCommon.workspace import TemporaryWorkspace
from RimLesionDetectionLib.lesion_mask import write_lesion_mask
from RimLesionDetectionLib.lesions import (
    RIM_POSITIVE_COLUMN,
    jump_to_lesion,
    link_table_to_labels,
    summarize_lesions,
    table_column,
)
from RimLesionDetectionLib.options import rim_options
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
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
        describeModule(self.parent, RimOptions.BUNDLE, title="Rim Lesion Detection", category="QSM",
                       helpNote="Classifier: QSMRim-Net.")


@parameterNodeWrapper
class RimLesionDetectionParameterNode:
    """Panel state saved with the scene.

    input_qsm: susceptibility map (ppm). input_flair: FLAIR image. input_lesion_mask: lesion labelmap (binary or
    one label per lesion) or a segmentation (one segment per lesion, or one segment of all lesions).
    threshold: rim+ probability threshold, 0 for the bundle's validated operating point.
    """

    input_qsm: vtkMRMLScalarVolumeNode
    input_flair: vtkMRMLScalarVolumeNode
    # Union, not |, for Slicer's Python 3.9; None in it, or the real wrapper cannot store an empty selection
    input_lesion_mask: Union[vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, None]  # noqa: UP007
    threshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.0


class RimLesionDetectionWidget(BundleWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, threshold, Apply/Cancel, progress, log and the clickable lesion table."""

    APPLY_TOOLTIP = "Classify the lesions"
    PRESELECT = {"input_lesion_mask": "vtkMRMLLabelMapVolumeNode"}
    PANEL_NOTES = {"threshold": "0 leaves it to the bundle."}

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)

    def setup(self) -> None:
        """Load the .ui file and connect it to the parameter node, the run panel and the lesion table view."""
        ScriptedLoadableModuleWidget.setup(self)
        self.loadBundleUI("UI/RimLesionDetection.ui")
        self.ui.lesionTableView.connect("clicked(QModelIndex)", self.onLesionClicked)
        self.setupBundlePanel(RimLesionDetectionLogic())

    def onResultsLoaded(self, outputs: dict) -> None:
        """Show the lesion table in the panel and its summary in the log."""
        self.ui.lesionTableView.setMRMLTableNode(outputs["lesions"])
        self.panel.log(summarize_lesions(table_column(outputs["lesions"], RIM_POSITIVE_COLUMN)))

    def onLesionClicked(self, index) -> None:
        """A row of the lesion table was clicked: jump the slice views to that lesion."""
        table = self.ui.lesionTableView.mrmlTableNode()
        if table is not None:
            jump_to_lesion(table, index.row())


class RimLesionDetectionLogic(BundleLogicMixin, ScriptedLoadableModuleLogic):
    """Runs the ``rim_lesion_detection`` bundle on nodes; usable without the GUI (see BundleLogicMixin).

    Loads the lesion table as a ``vtkMRMLTableNode`` that refers to the rim labelmap (1 rim−, 2 rim+).
    """

    BUNDLE = RimOptions.BUNDLE
    PARAMETER_NODE_CLASS = RimLesionDetectionParameterNode
    REQUIRED_INPUTS = {"input_qsm": "a QSM map", "input_flair": "a FLAIR image",
                       "input_lesion_mask": "a lesion labelmap or segmentation"}
    REQUIREMENTS_FILE = Path(__file__).parent / "Resources" / "Requirements" / "RimLesionDetection.txt"

    def stage(self, parameters: RimLesionDetectionParameterNode, workspace: TemporaryWorkspace) -> RimOptions:
        """Write QSM, FLAIR and lesion mask (a segmentation on the QSM grid) and return the bundle options."""
        self.checkInputs(parameters)
        staged = stage_volumes(workspace, {"qsm": parameters.input_qsm, "flair": parameters.input_flair},
                               write_volume, main="qsm", name_of=lambda node: node.GetName())
        mask = stage_volumes(workspace, {"lesion_mask": parameters.input_lesion_mask},
                             lambda node, path: write_lesion_mask(node, path, reference=parameters.input_qsm),
                             main="qsm", name_of=lambda node: node.GetName())["lesion_mask"]
        return rim_options(staged["qsm"], staged["flair"], mask, threshold=parameters.threshold)

    def onOutputsLoaded(self, outputs: dict) -> None:
        """Link the lesion table to the rim labelmap (clicking a row jumps to the lesion)."""
        link_table_to_labels(outputs["lesions"], outputs["rim_labels"])

    def jumpToLesion(self, tableNode, row: int) -> tuple[float, float, float]:
        """Centre the slice views on the lesion of a table row, showing its rim labelmap; returns its RAS (mm)."""
        return jump_to_lesion(tableNode, row)


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
        self.assertEqual(outputs["lesions"].GetNodeReference("rimLabels"), outputs["rim_labels"])
        logic.jumpToLesion(outputs["lesions"], 0)
        self.delayDisplay("Test passed")

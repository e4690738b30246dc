# ruff: noqa: N999  (Slicer module files are named after the module)
"""QSMInversion: local field map (+ mask) → susceptibility map χ (ppm) with the ``qsm_dipole_inversion`` bundle.

The χ map is loaded as ``<field>_chi_ppm`` in diverging colours; the panel and the run are ``BundleWidgetMixin``'s
and ``BundleLogicMixin``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import slicer
from QSMInversionLib.options import FIELD_UNITS, METHOD_CHOICES, qsm_options
from QSMSlicerCommon import capability
from QSMSlicerCommon.options import QsmOptions
from QSMSlicerCommon.runner import stage_volumes
from QSMSlicerCommon.slicer_module import BundleLogicMixin, BundleWidgetMixin, describeModule
from QSMSlicerCommon.slicer_nodes import write_volume
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
        describeModule(self.parent, QsmOptions.BUNDLE, title="QSM Inversion", category="QSM",
                       helpNote="Method 'default' is the most accurate on real brains against COSMOS; the bundle's "
                                "docs/README.md ranks the methods. Learned NDI, trained on simulations only, is "
                                "offered for comparison.")


@parameterNodeWrapper
class QSMInversionParameterNode:
    """Panel state saved with the scene.

    input_field: local field map (3-D). input_mask: optional brain mask. field_unit: unit of the field map.
    b0_tesla / te_ms: main field (T) and echo time (ms), used for ``hz`` / ``rad`` fields. method: solver.
    """

    input_field: vtkMRMLScalarVolumeNode
    input_mask: vtkMRMLScalarVolumeNode
    field_unit: Annotated[str, Choice(FIELD_UNITS)] = capability.default(QsmOptions.BUNDLE, "field_unit")
    b0_tesla: Annotated[float, WithinRange(0.1, 21.0)] = 3.0
    te_ms: Annotated[float, WithinRange(0.1, 500.0)] = 20.0
    method: Annotated[str, Choice(METHOD_CHOICES)] = METHOD_CHOICES[0]


class QSMInversionWidget(BundleWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, parameters, Apply/Cancel, progress and log (behaviour in BundleWidgetMixin)."""

    APPLY_TOOLTIP = "Run the dipole inversion"
    PRESELECT = {"input_field": "vtkMRMLScalarVolumeNode"}
    PANEL_NOTES = {"method": "Panel choice 'default' leaves it to the bundle."}

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)

    def setup(self) -> None:
        """Load the .ui file and connect it to the parameter node and the run panel."""
        ScriptedLoadableModuleWidget.setup(self)
        self.loadBundleUI("UI/QSMInversion.ui")
        self.setupBundlePanel(QSMInversionLogic())


class QSMInversionLogic(BundleLogicMixin, ScriptedLoadableModuleLogic):
    """Runs the ``qsm_dipole_inversion`` bundle on nodes; usable without the GUI (see BundleLogicMixin)."""

    BUNDLE = QsmOptions.BUNDLE
    PARAMETER_NODE_CLASS = QSMInversionParameterNode
    REQUIRED_INPUTS = {"input_field": "a local field map"}
    REQUIREMENTS_FILE = Path(__file__).parent / "Resources" / "Requirements" / "QSMInversion.txt"

    def stage(self, parameters: QSMInversionParameterNode, workspace: TemporaryWorkspace) -> QsmOptions:
        """Write field map and mask into ``workspace`` and return the bundle options."""
        self.checkInputs(parameters)
        staged = stage_volumes(workspace, {"field": parameters.input_field, "mask": parameters.input_mask},
                               write_volume, main="field", name_of=lambda node: node.GetName())
        return qsm_options(staged["field"], staged["mask"], field_unit=parameters.field_unit,
                           b0_tesla=parameters.b0_tesla, te_ms=parameters.te_ms, method=parameters.method)


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
        """Field of a magnetised sphere in → χ map of the same geometry out, shown in diverging colours."""
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
        self.assertEqual(outputs["chi"].GetName(), "sphere_field_chi_ppm")
        colorNodeId = outputs["chi"].GetDisplayNode().GetColorNodeID()
        self.assertEqual(colorNodeId, "vtkMRMLColorTableNodeFileDivergingBlueRed.txt")
        self.delayDisplay("Test passed")

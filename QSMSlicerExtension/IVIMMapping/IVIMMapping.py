# ruff: noqa: N999  (Slicer module files are named after the module)
"""IVIMMapping: 4-D diffusion series + b-values → IVIM parameter maps with the ``ivim_mapping`` bundle.

The b-values come from a .bval file, typed values or the series itself; the maps are loaded with their unit in
the node name (``<series>_D_mm2_per_s``: each output's ``node_unit`` in the description).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Union

import slicer
from IVIMMappingLib.options import METHODS, MODELS, MODES, choose_b_values, ivim_options, write_bvals
from IVIMMappingLib.series import series_b_value_labels, write_series
from QSMSlicerCommon import capability
from QSMSlicerCommon.options import IvimOptions
from QSMSlicerCommon.runner import stage_volumes
from QSMSlicerCommon.slicer_module import BundleLogicMixin, BundleWidgetMixin, describeModule
from QSMSlicerCommon.workspace import TemporaryWorkspace
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSequenceNode
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
        describeModule(self.parent, IvimOptions.BUNDLE, title="IVIM Mapping", category="Diffusion")


@parameterNodeWrapper
class IVIMMappingParameterNode:
    """Panel state saved with the scene.

    input_dwi: the DWI series, a 4-D volume (MultiVolume, vector volume) or a sequence of 3-D volumes.
    input_mask: optional mask. b_values_file: FSL-style .bval file; b_values: b-values (s/mm²) typed instead;
    with neither, the b-values stored with the series. model / mode / method: the bundle's options.
    """

    # Union, not |, for Slicer's Python 3.9; None in it, or the real wrapper cannot store an empty selection
    input_dwi: Union[vtkMRMLScalarVolumeNode, vtkMRMLSequenceNode, None]  # noqa: UP007
    input_mask: vtkMRMLScalarVolumeNode
    b_values_file: Path
    b_values: str = ""
    model: Annotated[str, Choice(MODELS)] = capability.default(IvimOptions.BUNDLE, "model")
    mode: Annotated[str, Choice(MODES)] = capability.default(IvimOptions.BUNDLE, "mode")
    method: Annotated[str, Choice(METHODS)] = capability.default(IvimOptions.BUNDLE, "method")


class IVIMMappingWidget(BundleWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, parameters, Apply/Cancel, progress and log (behaviour in BundleWidgetMixin)."""

    APPLY_TOOLTIP = "Fit the IVIM maps"
    PRESELECT = {"input_dwi": "vtkMRMLMultiVolumeNode"}

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)

    def setup(self) -> None:
        """Load the .ui file and connect it to the parameter node and the run panel."""
        ScriptedLoadableModuleWidget.setup(self)
        self.loadBundleUI("UI/IVIMMapping.ui")
        self.setupBundlePanel(IVIMMappingLogic())


class IVIMMappingLogic(BundleLogicMixin, ScriptedLoadableModuleLogic):
    """Runs the ``ivim_mapping`` bundle on nodes; usable without the GUI (see BundleLogicMixin)."""

    BUNDLE = IvimOptions.BUNDLE
    PARAMETER_NODE_CLASS = IVIMMappingParameterNode
    REQUIRED_INPUTS = {"input_dwi": "a DWI series"}
    REQUIREMENTS_FILE = Path(__file__).parent / "Resources" / "Requirements" / "IVIMMapping.txt"

    def stage(self, parameters: IVIMMappingParameterNode, workspace: TemporaryWorkspace) -> IvimOptions:
        """Write the series, mask and b-value file into ``workspace`` and return the bundle options."""
        self.checkInputs(parameters)
        series = parameters.input_dwi
        b_values = choose_b_values(file_path=parameters.b_values_file, typed=parameters.b_values,
                                   series_labels=series_b_value_labels(series), series_name=series.GetName())
        staged = stage_volumes(workspace, {"dwi": series, "mask": parameters.input_mask}, write_series, main="dwi",
                               name_of=lambda node: node.GetName())  # write_series writes a mask as a volume
        bvals = write_bvals(b_values, workspace.input_path(series.GetName(), ".bval"))
        return ivim_options(staged["dwi"], bvals, staged["mask"], model=parameters.model, mode=parameters.mode,
                            method=parameters.method)


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
        self.assertEqual(outputs["D"].GetName(), "ivim_phantom_D_mm2_per_s")
        self.assertEqual(slicer.util.arrayFromVolume(outputs["D"]).shape, series.shape[:3])
        self.delayDisplay("Test passed")

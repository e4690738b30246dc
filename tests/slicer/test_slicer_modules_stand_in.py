"""The four module files driven through their Widget and Logic classes, with a stand-in ``slicer`` package.

``stand_in/`` models the Slicer calls our code makes (nodes holding numpy arrays, NIfTI through nibabel, a
``.ui``-built widget namespace, a hand-fired ``qt.QTimer``). The bundles run for real, as child processes.
What this proves: the module files import the way Slicer imports them, their parameter nodes are valid, the
panels enable Apply, start, poll, cancel and load results as the code says, and the outputs come back as named,
coloured, linked nodes. What it cannot prove: that real Slicer behaves like the stand-in.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from slicer_test_support import EXTENSION_DIR, MODULES, run_with_only

STAND_IN = Path(__file__).resolve().parent / "stand_in"
TIMEOUT_S = 180


@pytest.fixture(scope="module")
def slicer():
    """The stand-in ``slicer`` package, importable for this file's tests only."""
    sys.path.insert(0, str(STAND_IN))
    import slicer as stand_in

    yield stand_in
    sys.path.remove(str(STAND_IN))
    for name in [n for n in sys.modules if n.split(".")[0] in ("slicer", "vtk", "qt", *MODULES)]:
        del sys.modules[name]


@pytest.fixture
def scene(slicer, tmp_path: Path):
    """An empty scene, Slicer's temp folder in ``tmp_path`` and cleared dialog/view records."""
    slicer.mrmlScene.Clear()
    slicer.app.temporaryPath = str(tmp_path)
    for record in (slicer.util.errors, slicer.util.questions, slicer.util.pip_installs):
        record.clear()
    slicer.util.slice_layers.clear()
    slicer.modules.markups.logic().jumps.clear()
    return slicer.mrmlScene


def module(name: str):
    return importlib.import_module(name)


def volume(slicer, name: str, array_ijk: np.ndarray, affine: np.ndarray, class_name="vtkMRMLScalarVolumeNode"):
    """A volume node from an (i, j, k[, c]) array, as Slicer would hold it ((k, j, i[, c]))."""
    node = slicer.mrmlScene.AddNewNodeByClass(class_name, name)
    node.array = np.ascontiguousarray(np.transpose(array_ijk, (2, 1, 0, *range(3, array_ijk.ndim))))
    node.ijk_to_ras = np.asarray(affine, dtype=float)
    return node


def run_panel(widget, slicer) -> None:
    """Click Apply, then fire the panel's timer until the job has ended (what Qt does every 200 ms)."""
    import time

    widget.ui.applyButton.emit("clicked(bool)", True)
    assert widget.panel.busy, f"Apply did not start a job: {slicer.util.errors}"
    assert not widget.ui.applyButton.enabled and widget.ui.cancelButton.enabled
    deadline = time.monotonic() + TIMEOUT_S
    while widget.panel.busy:
        assert time.monotonic() < deadline, "bundle run timed out"
        widget.panel.timer.fire()
        time.sleep(0.2)


def new_widget(name: str):
    widget = getattr(module(name), f"{name}Widget")()
    widget.setup()
    return widget


@pytest.mark.parametrize("name", MODULES)
def test_module_file_imports_like_slicer_imports_it(name: str) -> None:
    """Only the module's folder and the stand-in on sys.path (Slicer adds the module folder): imports succeed."""
    done = run_with_only([STAND_IN, EXTENSION_DIR / name], f"import {name}; print({name}.{name}Logic.BUNDLE)",
                         drop=("QSMSlicerExtension", "tests"))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", MODULES)
def test_panel_enables_apply_only_with_the_required_inputs(name: str, scene, slicer) -> None:
    widget = new_widget(name)
    logic = widget.logic
    assert not widget.ui.applyButton.enabled and widget.ui.applyButton.toolTip.startswith("Select ")
    assert Path(logic.REQUIREMENTS_FILE).is_file()
    for parameter in logic.REQUIRED_INPUTS:
        node_class = "vtkMRMLSegmentationNode" if parameter == "input_lesion_mask" else "vtkMRMLScalarVolumeNode"
        setattr(widget._parameterNode, parameter, scene.AddNewNodeByClass(node_class, parameter))
    widget._checkCanApply()
    assert widget.ui.applyButton.enabled and widget.ui.applyButton.toolTip == widget.APPLY_TOOLTIP
    widget.cleanup()


def test_qsm_panel_runs_the_bundle_and_shows_chi_in_diverging_colours(qsm_phantom: Path, scene, slicer,
                                                                      tmp_path: Path) -> None:
    image = nib.load(str(qsm_phantom))
    field = volume(slicer, "sphere_field", np.asarray(image.dataobj), image.affine)
    widget = new_widget("QSMInversion")
    assert widget._parameterNode.input_field is field, "the first volume is preselected"
    widget._parameterNode.method = "tkd"
    run_panel(widget, slicer)
    assert slicer.util.errors == [] and slicer.util.questions == [], "nothing to install in the test venv"
    chi = scene.GetFirstNodeByName("sphere_field_chi_ppm")
    assert chi is not None and chi.array.shape == field.array.shape
    np.testing.assert_allclose(chi.ijk_to_ras, field.ijk_to_ras, atol=1e-6)
    assert chi.GetDisplayNode().GetColorNodeID() == "vtkMRMLColorTableNodeFileDivergingBlueRed.txt"
    low, high = chi.GetDisplayNode().window_level_min_max
    assert low == -high and 0 < high < 1, "a symmetric window around χ = 0 ppm"
    assert slicer.util.slice_layers["background"] is chi
    assert widget.ui.progressBar.value == 100 and any("[progress]" in line for line in widget.ui.logTextBox.lines)
    assert widget.ui.applyButton.enabled and not widget.ui.cancelButton.enabled
    assert list(tmp_path.iterdir()) == [], "the run's temporary files are removed"


def test_cancel_in_the_panel_stops_the_run_without_an_error(qsm_phantom: Path, scene, slicer, tmp_path: Path) -> None:
    image = nib.load(str(qsm_phantom))
    volume(slicer, "sphere_field", np.asarray(image.dataobj), image.affine)
    widget = new_widget("QSMInversion")
    widget.ui.applyButton.emit("clicked(bool)", True)
    process = widget.panel.job.process
    widget.ui.cancelButton.emit("clicked(bool)", True)
    assert not widget.panel.busy and process._process.poll() is not None
    assert widget.ui.statusLabel.text == "cancelled by the user" and slicer.util.errors == []
    assert scene.GetFirstNodeByName("sphere_field_chi_ppm") is None and list(tmp_path.iterdir()) == []


def test_a_bad_input_shows_the_bundles_one_line_error(scene, slicer, tmp_path: Path) -> None:
    volume(slicer, "flat field", np.zeros((8, 8, 4), dtype=np.float32), np.eye(4))  # all zero: empty mask
    widget = new_widget("QSMInversion")
    run_panel(widget, slicer)
    assert len(slicer.util.errors) == 1 and "\n" not in slicer.util.errors[0]
    assert "flat_field" in slicer.util.errors[0] and list(tmp_path.iterdir()) == []


def test_ivim_logic_takes_a_sequence_and_a_b_value_file(scene, slicer, tmp_path: Path) -> None:
    b_values = np.array([0, 10, 20, 50, 100, 200, 400, 800], dtype=float)
    signal = 1000 * (0.1 * np.exp(-b_values * 0.02) + 0.9 * np.exp(-b_values * 1.0e-3))
    affine = np.diag([2.0, 2.0, 4.0, 1.0])
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "ivim dwi")
    for b, s in zip(b_values, signal):
        frame = volume(slicer, f"frame {b:g}", np.full((6, 5, 3), s, dtype=np.float32), affine)
        sequence.SetDataNodeAtValue(frame, str(int(b)))  # index "time" in s: not b-values, so a file is needed
    logic = module("IVIMMapping").IVIMMappingLogic()
    parameters = logic.getParameterNode()
    parameters.input_dwi = sequence
    parameters.method = "lsq"
    with pytest.raises(ValueError, match="choose a b-value file or type the b-values"):
        logic.process(parameters, timeoutSeconds=TIMEOUT_S)
    bval = tmp_path / "scheme.bval"
    bval.write_text(" ".join(f"{b:g}" for b in b_values) + "\n")
    parameters.b_values_file = bval
    outputs = logic.process(parameters, timeoutSeconds=TIMEOUT_S)
    assert {name: node.GetName() for name, node in outputs.items()} == {
        "D": "ivim dwi_D_mm2_per_s", "f": "ivim dwi_f_fraction", "Dstar": "ivim dwi_Dstar_mm2_per_s",
        "S0": "ivim dwi_S0"}
    assert outputs["D"].array.shape == (3, 5, 6)
    np.testing.assert_allclose(outputs["D"].ijk_to_ras, affine)
    np.testing.assert_allclose(np.median(outputs["D"].array), 1.0e-3, rtol=0.05)
    np.testing.assert_allclose(np.median(outputs["f"].array), 0.1, atol=0.02)


def test_rim_panel_takes_a_segmentation_and_links_the_table_to_the_labelmap(scene, slicer) -> None:
    grid = np.indices((32, 32, 32)).astype(float)
    qsm = np.zeros((32, 32, 32), dtype=np.float32)
    lesions = np.zeros((32, 32, 32), dtype=np.int16)
    centres = ((10, 10, 16), (22, 22, 16))
    for label, centre in enumerate(centres, start=1):
        radius = np.linalg.norm(grid - np.reshape(centre, (3, 1, 1, 1)), axis=0)
        lesions[radius <= 4] = label
        if label == 1:
            qsm[(radius > 3) & (radius <= 4)] = 0.06
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-16.0, -16.0, -16.0)
    volume(slicer, "rim qsm", qsm, affine)
    volume(slicer, "rim flair", (lesions > 0) * 2.0 + 1.0, affine)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "lesions")
    segmentation.label_array = np.transpose(lesions, (2, 1, 0))
    widget = new_widget("RimLesionDetection")
    parameters = widget._parameterNode
    parameters.input_qsm = scene.GetFirstNodeByName("rim qsm")
    parameters.input_flair = scene.GetFirstNodeByName("rim flair")
    parameters.input_lesion_mask = segmentation
    run_panel(widget, slicer)
    assert slicer.util.errors == [], "\n".join(line for line in widget.ui.logTextBox.lines if "Error" in line)
    table = widget.ui.lesionTableView.mrmlTableNode()
    labels = scene.GetFirstNodeByName("rim qsm_rim_labels")
    assert table.GetName() == "rim qsm_lesions" and table.GetNumberOfRows() == 2
    assert table.GetNodeReference("rimLabels") is labels and labels.IsA("vtkMRMLLabelMapVolumeNode")
    assert scene.GetFirstNodeByName("lesions_labels") is None, "the exported labelmap is removed after writing"
    assert widget.ui.logTextBox.lines[-1].startswith("2 lesion(s), ")
    slicer.util.slice_layers.clear()
    second_row = type("Index", (), {"row": lambda self: 1})()
    widget.ui.lesionTableView.emit("clicked(QModelIndex)", second_row)
    x, y, z, centred = slicer.modules.markups.logic().jumps[-1]
    np.testing.assert_allclose((x, y, z), np.add(centres[1], -16.0), atol=1e-6)  # RAS of the second lesion
    assert centred and slicer.util.slice_layers["label"] is labels


def test_spio_logic_rejects_an_image_that_is_not_a_view_line_slice(scene, slicer) -> None:
    logic = module("SPIOQuantification").SPIOQuantificationLogic()
    parameters = logic.getParameterNode()
    parameters.input_image = volume(slicer, "t2", np.ones((16, 16, 4), dtype=np.float32), np.eye(4))
    with pytest.raises(ValueError, match="'t2' has array shape \\(4, 16, 16\\); a View Line image is one slice"):
        logic.process(parameters)
    parameters.input_image = None
    with pytest.raises(ValueError, match="select a View Line image"):
        logic.process(parameters)


def test_declining_the_install_dialog_starts_nothing(scene, slicer, monkeypatch) -> None:
    import importlib.metadata

    real_version = importlib.metadata.version

    def version(name: str) -> str:
        if name == "monai":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    volume(slicer, "field", np.ones((4, 4, 4), dtype=np.float32), np.eye(4))
    widget = new_widget("QSMInversion")
    widget.ui.applyButton.emit("clicked(bool)", True)
    assert not widget.panel.busy and slicer.util.pip_installs == []
    assert len(slicer.util.questions) == 1 and "monai>=1.4" in slicer.util.questions[0]

"""The four modules on real Slicer code (``headless_slicer``), with the real bundles as child processes.

Slicer's own Python layer registers each module, runs its self-test (``slicer.selfTests``), builds its panel from
the ``.ui`` file and binds it to the real ``@parameterNodeWrapper`` parameter node; MRML nodes, their I/O and the
module logics are slicer-core's. Only Qt is a stand-in: a test clicks Apply and fires the panel's timer where Qt's
event loop would, and answers dialogs through ``qt.dialog_answers``.
"""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from slicer_test_support import (
    MODULES,
    add_volume,
    ijk_to_ras_array,
    new_module_widget,
    register_module,
    scene_node_ids,
)

TIMEOUT_S = 300
LEFT_HANDED = np.array([[-1.0, 0, 0, 12.0], [0, 1.0, 0, -12.0], [0, 0, 1.2, -14.4], [0, 0, 0, 1]])


def run_panel(widget) -> None:
    """Click Apply, then fire the panel's timer until the job has ended (what Qt does every 200 ms)."""
    import qt

    widget.ui.applyButton.click()
    assert widget.panel.busy, f"Apply did not start a job: {qt.dialogs} {widget.ui.logTextBox.lines}"
    assert not widget.ui.applyButton.enabled and widget.ui.cancelButton.enabled
    deadline = time.monotonic() + TIMEOUT_S
    while widget.panel.busy:
        assert time.monotonic() < deadline, "bundle run timed out"
        widget.panel.timer.fire()
        time.sleep(0.2)


def added_nodes(scene, before: set[str]) -> list:
    return [scene.GetNodeByID(i) for i in sorted(scene_node_ids(scene) - before)]


def hide_distribution(monkeypatch, name: str) -> None:
    """Make ``name`` look uninstalled to both our installer and Slicer's ``pip_ensure``."""
    real_version = importlib.metadata.version

    def version(distribution: str) -> str:
        if distribution == name:
            raise importlib.metadata.PackageNotFoundError(distribution)
        return real_version(distribution)

    monkeypatch.setattr(importlib.metadata, "version", version)


@pytest.mark.parametrize("name", MODULES)
def test_module_self_test_passes(name: str, scene, slicer, tmp_path: Path) -> None:
    """The module's own ``<Module>Test`` through Slicer's ``slicer.selfTests``, the real bundle in a child."""
    import qt

    register_module(name)
    slicer.selfTests[name](msec=0)
    assert qt.dialogs == [], "no install question, no error"
    assert list(tmp_path.iterdir()) == [], "the run's temporary files are removed"


@pytest.mark.parametrize("name", MODULES)
def test_panel_enables_apply_only_with_the_required_inputs(name: str, scene, slicer) -> None:
    widget = new_module_widget(name)
    assert not widget.ui.applyButton.enabled and widget.ui.applyButton.toolTip.startswith("Select ")
    selectors = {w.property("SlicerParameterName"): w for w in vars(widget.ui).values()
                 if w.property("SlicerParameterName")}
    for parameter in widget.logic.REQUIRED_INPUTS:
        node_class = "vtkMRMLSegmentationNode" if parameter == "input_lesion_mask" else "vtkMRMLScalarVolumeNode"
        selectors[parameter].setCurrentNode(scene.AddNewNodeByClass(node_class, parameter))  # chosen in the panel
        assert getattr(widget._parameterNode, parameter) is selectors[parameter].currentNode()
    assert widget.ui.applyButton.enabled and widget.ui.applyButton.toolTip == widget.APPLY_TOOLTIP
    widget.cleanup()


def test_panel_option_tooltips_units_and_defaults_come_from_the_description(scene, slicer) -> None:
    from QSMSlicerCommon.capability import describe

    widget = new_module_widget("QSMInversion")
    bound = {w.property("SlicerParameterName"): w for w in vars(widget.ui).values()
             if w.property("SlicerParameterName")}
    options = describe("qsm_dipole_inversion")["options"]
    assert bound["field_unit"].toolTip == options["field_unit"]["help"]
    assert bound["method"].toolTip == f"{options['method']['help']} {widget.PANEL_NOTES['method']}"
    assert (bound["b0_tesla"].suffix, bound["te_ms"].suffix) == (" T", " ms")
    assert widget._parameterNode.field_unit == options["field_unit"]["default"]
    widget.cleanup()


def test_qsm_panel_runs_on_a_left_handed_field_and_shows_chi_on_its_grid(qsm_phantom: Path, scene, slicer,
                                                                         tmp_path: Path) -> None:
    """LAS input (FSL, dcm2niix): χ comes back voxel for voxel on the field's grid, in diverging colours."""
    import qt

    field = add_volume(slicer, "sphere_field", np.asarray(nib.load(str(qsm_phantom)).dataobj), LEFT_HANDED)
    widget = new_module_widget("QSMInversion")
    assert widget._parameterNode.input_field is field, "the first volume is preselected"
    widget.ui.methodComboBox.currentIndex = widget.ui.methodComboBox.items.index("tkd")
    assert widget._parameterNode.method == "tkd"
    run_panel(widget)
    assert qt.dialogs == [], "nothing to install in the test venv, no error"
    chi = scene.GetFirstNodeByName("sphere_field_chi_ppm")
    np.testing.assert_allclose(ijk_to_ras_array(chi), LEFT_HANDED, atol=1e-5)
    chi_array, field_array = slicer.util.arrayFromVolume(chi), slicer.util.arrayFromVolume(field)
    assert chi_array.shape == field_array.shape
    assert np.mean(chi_array[9:15, 8:16, 8:16]) > 0.05, "χ = 0.1 ppm in the phantom's cube, (k, j, i) order"
    display = chi.GetDisplayNode()
    assert display.GetColorNode().GetName() == "DivergingBlueRed"
    assert display.GetWindowLevelMin() == -display.GetWindowLevelMax() and 0 < display.GetWindowLevelMax() < 1
    composite = scene.GetFirstNodeByClass("vtkMRMLSliceCompositeNode")
    assert composite.GetBackgroundVolumeID() == chi.GetID()
    assert widget.ui.progressBar.value == 100 and any("[progress]" in line for line in widget.ui.logTextBox.lines)
    assert widget.ui.applyButton.enabled and not widget.ui.cancelButton.enabled
    assert list(tmp_path.iterdir()) == [], "the run's temporary files are removed"


def test_cancel_in_the_panel_stops_the_run_without_an_error(qsm_phantom: Path, scene, slicer, tmp_path: Path) -> None:
    import qt

    slicer.util.loadVolume(str(qsm_phantom))
    widget = new_module_widget("QSMInversion")
    widget.ui.applyButton.click()
    process = widget.panel.job.process
    widget.ui.cancelButton.click()
    assert not widget.panel.busy and process._process.poll() is not None
    assert widget.ui.statusLabel.text == "cancelled by the user" and qt.dialogs == []
    assert scene.GetFirstNodeByName("sphere_field_chi_ppm") is None and list(tmp_path.iterdir()) == []


def test_a_bad_input_shows_the_bundles_one_line_error(scene, slicer, tmp_path: Path) -> None:
    import qt

    add_volume(slicer, "flat field", np.zeros((8, 8, 4), dtype=np.float32), np.eye(4))  # all zero: empty mask
    widget = new_module_widget("QSMInversion")
    run_panel(widget)
    assert len(qt.dialogs) == 1 and "\n" not in qt.dialogs[0] and "flat_field" in qt.dialogs[0]
    assert list(tmp_path.iterdir()) == []


def test_ivim_logic_takes_a_sequence_and_a_b_value_file(scene, slicer, tmp_path: Path) -> None:
    b_values = np.array([0, 10, 20, 50, 100, 200, 400, 800], dtype=float)
    signal = 1000 * (0.1 * np.exp(-b_values * 0.02) + 0.9 * np.exp(-b_values * 1.0e-3))
    affine = np.diag([2.0, 2.0, 4.0, 1.0])
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "ivim dwi")  # index "time" in s: not b-values
    for b, s in zip(b_values, signal):
        frame = add_volume(slicer, f"frame {b:g}", np.full((6, 5, 3), s, dtype=np.float32), affine)
        sequence.SetDataNodeAtValue(frame, str(int(b)))
        scene.RemoveNode(frame)  # the sequence keeps its own copy
    logic = register_module("IVIMMapping").IVIMMappingLogic()
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
    d_map = slicer.util.arrayFromVolume(outputs["D"])
    assert d_map.shape == (3, 5, 6)
    np.testing.assert_allclose(ijk_to_ras_array(outputs["D"]), affine)
    np.testing.assert_allclose(np.median(d_map), 1.0e-3, rtol=0.05)
    np.testing.assert_allclose(np.median(slicer.util.arrayFromVolume(outputs["f"])), 0.1, atol=0.02)
    assert outputs["D"].GetDisplayNode().GetColorNode().GetName() == "Viridis"


def rim_phantom(slicer, scene):
    """QSM, FLAIR and a two-segment segmentation: lesion 1 with a paramagnetic rim, lesion 2 without."""
    grid = np.indices((32, 32, 32)).astype(float)
    qsm = np.zeros((32, 32, 32), dtype=np.float32)
    lesions = np.zeros((32, 32, 32), dtype=np.int16)
    centres = ((10, 10, 16), (22, 22, 16))
    for label, centre in enumerate(centres, start=1):
        radius = np.linalg.norm(grid - np.reshape(centre, (3, 1, 1, 1)), axis=0)
        lesions[radius <= 4] = label
        if label == 1:
            qsm[(radius > 3) & (radius <= 4)] = 0.06
    affine = np.eye(4)
    affine[:3, 3] = (-16.0, -16.0, -16.0)
    qsm_node = add_volume(slicer, "rim qsm", qsm, affine)
    flair_node = add_volume(slicer, "rim flair", (lesions > 0) * 2.0 + 1.0, affine)
    drawn = add_volume(slicer, "drawn", lesions, affine, "vtkMRMLLabelMapVolumeNode")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "lesions")
    slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(drawn, segmentation)
    scene.RemoveNode(drawn)
    return qsm_node, flair_node, segmentation, [np.add(c, -16.0) for c in centres]


def test_rim_panel_adds_only_its_results_names_reruns_alike_and_jumps_to_a_lesion(scene, slicer) -> None:
    import mrml_widgets
    import qt

    qsm, flair, segmentation, centres_ras = rim_phantom(slicer, scene)
    widget = new_module_widget("RimLesionDetection")
    widget.ui.inputQsmSelector.setCurrentNode(qsm)
    widget.ui.inputFlairSelector.setCurrentNode(flair)
    widget.ui.inputLesionMaskSelector.setCurrentNode(segmentation)
    for run, prefix in ((1, "rim qsm"), (2, "rim qsm_run2")):
        before = scene_node_ids(scene)
        run_panel(widget)
        assert qt.dialogs == [], "\n".join(line for line in widget.ui.logTextBox.lines if "rror" in line)
        table = widget.ui.lesionTableView.mrmlTableNode()
        labels = table.GetNodeReference("rimLabels")
        assert (table.GetName(), labels.GetName()) == (f"{prefix}_lesions", f"{prefix}_rim_labels"), f"run {run}"
        results = {table.GetID(), labels.GetID(), *(labels.GetNthDisplayNodeID(i)
                                                    for i in range(labels.GetNumberOfDisplayNodes())),
                   labels.GetStorageNodeID(), table.GetStorageNodeID()}
        extra = [n.GetClassName() for n in added_nodes(scene, before) if n.GetID() not in results]
        assert extra == [], f"run {run} left {extra} in the scene"
    assert table.GetNumberOfRows() == 2 and labels.IsA("vtkMRMLLabelMapVolumeNode")
    assert widget.ui.logTextBox.lines[-1].startswith("2 lesion(s), ")
    slicer.util.setSliceViewerLayers(label=None)
    widget.ui.lesionTableView.clicked.emit(mrml_widgets.ModelIndex(1))
    red = scene.GetNodeByID("vtkMRMLSliceNodeRed")
    np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(red.GetSliceToRAS())[:3, 3], centres_ras[1], atol=0.6)
    assert scene.GetFirstNodeByClass("vtkMRMLSliceCompositeNode").GetLabelVolumeID() == labels.GetID()


def test_spio_help_says_how_accurate_the_maps_are(scene, slicer) -> None:
    """The panel's help carries the bundle's description and the accuracy caveat a user needs before trusting a
    level (the bundle's docs, "Accuracy")."""
    register_module("SPIOQuantification")
    help_text = slicer.modules.spioquantification.helpText
    assert help_text.startswith("SPIO quantification: View Line image")
    assert "NMAE ≈ 0.35" in help_text and "not yet for quantitative levels" in help_text


def test_spio_logic_rejects_an_image_that_is_not_a_view_line_slice(scene, slicer) -> None:
    logic = register_module("SPIOQuantification").SPIOQuantificationLogic()
    parameters = logic.getParameterNode()
    parameters.input_image = add_volume(slicer, "t2", np.ones((16, 16, 4), dtype=np.float32), np.eye(4))
    with pytest.raises(ValueError, match="'t2' has array shape \\(4, 16, 16\\); a View Line image is one slice"):
        logic.process(parameters)
    parameters.input_image = None
    with pytest.raises(ValueError, match="select a View Line image"):
        logic.process(parameters)


def test_spio_panel_one_level_per_object_reaches_the_bundle(scene, slicer, tmp_path: Path) -> None:
    """Session 41: the panel's "One level per object" spin box is the parameter node's ``object_shrinkage`` (default and
    tooltip from the bundle's description) and what the staged bundle options carry (0 for bench tubes)."""
    from QSMSlicerCommon.capability import describe
    from QSMSlicerCommon.workspace import TemporaryWorkspace

    widget = new_module_widget("SPIOQuantification")
    option = describe("spio_quantification")["options"]["object_shrinkage"]
    spin = widget.ui.objectShrinkageSpinBox
    assert widget._parameterNode.object_shrinkage == option["default"] == 0.5 and spin.toolTip == option["help"]
    spin.value = 0.0  # as a user sets it
    assert widget._parameterNode.object_shrinkage == 0.0
    widget._parameterNode.input_image = add_volume(slicer, "viewline", np.ones((128, 128, 1, 2), dtype=np.float32),
                                                   np.eye(4), "vtkMRMLVectorVolumeNode")
    with TemporaryWorkspace(tmp_path) as workspace:
        options = widget.logic.stage(widget._parameterNode, workspace)
    assert options.object_shrinkage == 0.0 and options.image.name.startswith("viewline")
    widget.cleanup()


def test_spio_logic_reads_tubes_into_a_table_and_relays_the_tools_error(scene, slicer, tmp_path: Path) -> None:
    """Session 38: ``readTubes`` runs ``lightning_modules.spio.tube_reading`` in a child on the nodes as Slicer
    writes them (a scalar map and a labelmap on its grid) and returns a table node; two tubes whose iron is spread
    over a 1-pixel ring read their true levels (4 and 1 µg Fe/mm³) where the lumen mean reads 100/144 of them."""
    logic = register_module("SPIOQuantification").SPIOQuantificationLogic()
    lumens = np.zeros((64, 64, 1), dtype=np.int16)
    lumens[20:30, 20:30], lumens[20:30, 33:43] = 1, 2
    concentration = np.zeros((64, 64, 1), dtype=np.float32)
    concentration[19:31, 19:31], concentration[19:31, 32:44] = 4.0 * 100 / 144, 1.0 * 100 / 144
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    mapNode = add_volume(slicer, "V_concentration", concentration, affine)
    lumenNode = add_volume(slicer, "lumens", lumens, affine, "vtkMRMLLabelMapVolumeNode")
    before = scene_node_ids(scene)
    table = logic.readTubes(mapNode, lumenNode, marginMm=1.5)
    assert [n.GetName() for n in added_nodes(scene, before)] == ["V_concentration tubes"]
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "label"), [1, 2])
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(table, "concentration_ug_per_mm3"), [4.0, 1.0],
                               rtol=1e-5)
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(table, "lumen_mean_ug_per_mm3"),
                               [4.0 * 100 / 144, 100 / 144], rtol=1e-5)
    rough = logic.readTubes(mapNode, lumenNode, marginMm=1.5, innerDiameterMm=2 * np.sqrt(16 / np.pi))
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(rough, "lumen_area_mm2"), [16.0, 16.0], rtol=1e-6)
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(rough, "concentration_ug_per_mm3"),
                               [4.0 * 25 / 16, 25 / 16], rtol=1e-5)
    assert list(tmp_path.iterdir()) == [], "the run's temporary files are removed"
    small = add_volume(slicer, "small", lumens[:32], affine, "vtkMRMLLabelMapVolumeNode")
    with pytest.raises(RuntimeError, match="the lumen labels' shape \\(32, 64\\) is not the concentration map's"):
        logic.readTubes(mapNode, small)
    assert list(tmp_path.iterdir()) == []


def test_spio_panel_reads_the_tubes_of_the_map_it_made(scene, slicer, tmp_path: Path) -> None:
    """The panel's "Bench tubes" section: after Apply its map selector holds the new map; "Read tubes" with a
    labelmap on that map's grid adds a table and says so; lumens on another grid show the tool's one-line message."""
    widget = new_module_widget("SPIOQuantification")
    widget.ui.readTubesButton.click()
    assert widget.ui.tubesStatusLabel.text == "select a concentration map and a labelmap of the tube lumens"
    image = np.ones((128, 128, 1, 2), dtype=np.float32)  # no iron: a map of zeros
    widget.ui.inputImageSelector.setCurrentNode(
        add_volume(slicer, "viewline", image, np.diag([0.390625, 0.390625, 1.0, 1.0]), "vtkMRMLVectorVolumeNode"))
    run_panel(widget)
    mapNode = widget.ui.tubeMapSelector.currentNode()
    assert mapNode is not None and mapNode.GetName().startswith("viewline")
    lumens = np.zeros((128, 128, 1), dtype=np.int16)
    lumens[50:60, 50:60] = 1
    widget.ui.tubeLumensSelector.setCurrentNode(
        add_volume(slicer, "lumens", lumens, ijk_to_ras_array(mapNode), "vtkMRMLLabelMapVolumeNode"))
    before = scene_node_ids(scene)
    widget.ui.readTubesButton.click()
    (table,) = added_nodes(scene, before)
    assert widget.ui.tubesStatusLabel.text == f"1 tube(s): table '{table.GetName()}'"
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(table, "concentration_ug_per_mm3"), [0.0])
    widget.ui.tubeLumensSelector.setCurrentNode(
        add_volume(slicer, "moved", lumens, np.diag([0.5, 0.5, 1.0, 1.0]), "vtkMRMLLabelMapVolumeNode"))
    widget.ui.readTubesButton.click()
    assert "the lumen labels' affine is not the concentration map's" in widget.ui.tubesStatusLabel.text
    widget.cleanup()


def test_spio_panel_reports_the_objects_of_the_map_it_made(scene, slicer, tmp_path: Path) -> None:
    """Session 44: "Report objects" before any map says what it needs; after Apply on a simulated rod (6.98 µg Fe/mm³,
    r = 3 mm, in agar at 19 dB) it runs ``lightning_modules.spio.object_report`` on the image and the map as Slicer
    writes them and adds a table "<map> objects" whose largest object is the rod, its level within its 80 % factor;
    the panel shows that table, and clicking the rod's row centres the slice views on the rod (session 45)."""
    import mrml_widgets
    import torch

    from lightning_modules.spio.phantoms import agar_disk, cylinder
    from lightning_modules.spio.viewline import PIXEL_MM, simulate_viewline

    widget = new_module_widget("SPIOQuantification")
    widget.ui.reportObjectsButton.click()
    assert widget.ui.objectsStatusLabel.text.startswith("map a View Line image first")
    concentration = 6.98 * cylinder((0.0, 0.0, 0.0), 3.0, np.array([0.0, 1.0, 0.0])).float()
    image, _ = simulate_viewline(agar_disk(radius_mm=22.0), concentration, snr_db=19.0,
                                 generator=torch.Generator().manual_seed(3))
    array = np.moveaxis(image.numpy(), 0, -1)[:, :, None, :].astype(np.float32)  # (i, j, k, channel)
    widget.ui.inputImageSelector.setCurrentNode(
        add_volume(slicer, "rod", array, np.diag([*PIXEL_MM, 1.0, 1.0]), "vtkMRMLVectorVolumeNode"))
    run_panel(widget)
    before = scene_node_ids(scene)
    widget.ui.reportObjectsButton.click()
    (table,) = added_nodes(scene, before)
    assert table.GetName() == f"{widget.ui.tubeMapSelector.currentNode().GetName()} objects"
    status = widget.ui.objectsStatusLabel.text
    assert status.startswith(f"{table.GetNumberOfRows()} object(s): table '{table.GetName()}'"), status
    rod = int(np.argmax(slicer.util.arrayFromTableColumn(table, "iron_ug_per_mm")))
    level = slicer.util.arrayFromTableColumn(table, "level_ug_per_mm3")[rod]
    assert abs(np.log(level / 6.98)) <= np.log(slicer.util.arrayFromTableColumn(table, "level_factor_80")[rod])
    assert slicer.util.arrayFromTableColumn(table, "p_no_iron")[rod] <= 0.1
    assert list(tmp_path.iterdir()) == [], "the run's temporary files are removed"
    # session 45: the panel shows the table; a click on the rod's row centres the views on the rod, over its map
    assert widget.ui.objectsTableView.mrmlTableNode() is table
    mapNode = table.GetNodeReference("concentrationMap")
    assert mapNode is widget.ui.tubeMapSelector.currentNode()
    slicer.util.setSliceViewerLayers(foreground=None)
    widget.ui.objectsTableView.clicked.emit(mrml_widgets.ModelIndex(rod))
    centre_ras = (63.5 * PIXEL_MM[0], 63.5 * PIXEL_MM[1], 0.0)  # the rod's axis: the image's centre, index 63.5
    for name in ("Red", "Green", "Yellow"):
        slice_to_ras = slicer.util.arrayFromVTKMatrix(scene.GetNodeByID(f"vtkMRMLSliceNode{name}").GetSliceToRAS())
        np.testing.assert_allclose(slice_to_ras[:3, 3], centre_ras, atol=PIXEL_MM[0])
    assert scene.GetFirstNodeByClass("vtkMRMLSliceCompositeNode").GetForegroundVolumeID() == mapNode.GetID()
    with pytest.raises(ValueError, match="has no row 99"):
        widget.logic.jumpToObject(table, 99)
    widget.cleanup()


def test_declining_pip_ensure_starts_nothing_and_says_so(scene, slicer, monkeypatch, tmp_path: Path) -> None:
    """Slicer 5.12: ``pip_ensure`` asks; Cancel → no process, no error dialog, the panel says why."""
    import qt
    import slicer.packaging

    hide_distribution(monkeypatch, "monai")
    installs = []
    monkeypatch.setattr(slicer.packaging, "pip_install", lambda *args, **kwargs: installs.append(args))
    add_volume(slicer, "field", np.ones((4, 4, 4), dtype=np.float32), np.eye(4))
    widget = new_module_widget("QSMInversion")
    qt.dialog_answers.append(qt.QMessageBox.Cancel)
    widget.ui.applyButton.click()
    assert not widget.panel.busy and installs == [] and list(tmp_path.iterdir()) == []
    assert len(qt.dialogs) == 1 and "1 Python package needs to be installed" in qt.dialogs[0], qt.dialogs
    assert widget.ui.statusLabel.text.startswith("Not started: installing the Python packages")
    assert widget.ui.applyButton.enabled, "the user can try again"


def test_slicer_5_11_without_pip_ensure_asks_and_declining_starts_nothing(scene, slicer, monkeypatch,
                                                                         tmp_path: Path) -> None:
    import qt
    import slicer.packaging

    hide_distribution(monkeypatch, "monai")
    monkeypatch.setattr(slicer.app, "minorVersion", 11)
    monkeypatch.delattr(slicer.packaging, "pip_ensure")
    installs = []
    monkeypatch.setattr(slicer.util, "pip_install", lambda *args, **kwargs: installs.append(args))
    logic = register_module("QSMInversion").QSMInversionLogic()
    parameters = logic.getParameterNode()
    parameters.input_field = add_volume(slicer, "field", np.ones((4, 4, 4), dtype=np.float32), np.eye(4))
    qt.dialog_answers.append(qt.QMessageBox.Cancel)
    with pytest.raises(RuntimeError, match="Not started: installing the Python packages"):
        logic.process(parameters)
    assert len(qt.dialogs) == 1 and "monai>=1.4" in qt.dialogs[0] and installs == []
    assert list(tmp_path.iterdir()) == []

"""Our node ↔ NIfTI code on real Slicer code (``headless_slicer``), without a bundle run (each test takes < 1 s).

Inputs are written the way a run stages them; "outputs" are NIfTI files made here with the input's affine, as the
bundles' contract says, and loaded back the way a run loads them. The parameter nodes, the colour tables, the
installer paths and the scene bookkeeping are checked on the same real code.
"""

from __future__ import annotations

import csv
import importlib
import typing
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from QSMSlicerCommon.display import PRESETS, VIRIDIS
from QSMSlicerCommon.slicer_nodes import apply_preset, load_outputs, write_volume
from slicer_test_support import (
    EXTENSION_DIR,
    HEADLESS_DIR,
    MODULES,
    add_volume,
    ijk_to_ras_array,
    run_with_only,
    scene_node_ids,
)


def rotation(degrees: float, axis: int) -> np.ndarray:
    angle = np.deg2rad(degrees)
    c, s = np.cos(angle), np.sin(angle)
    i, j = [a for a in range(3) if a != axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def affine(linear: np.ndarray, origin) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = linear, origin
    return matrix


OBLIQUE = affine(rotation(20, 0) @ rotation(-12, 2) @ np.diag([0.9, 1.1, 2.0]), (-30.0, 12.5, 4.0))
LEFT_HANDED = affine(np.diag([-2.0, 1.5, 3.0]), (10.0, -3.0, 5.0))  # LAS, as FSL and dcm2niix write
SHAPE = (7, 6, 5)  # (i, j, k)


def ramp(shape=SHAPE) -> np.ndarray:
    """Distinct voxel values, so a flipped or transposed volume cannot pass for the original."""
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def bundle_output(path: Path, data_ijk: np.ndarray, input_file: Path) -> Path:
    """What a bundle writes: a NIfTI with exactly the input's affine."""
    nib.save(nib.Nifti1Image(data_ijk, nib.load(str(input_file)).affine), str(path))
    return path


@pytest.mark.parametrize("grid", [OBLIQUE, LEFT_HANDED], ids=["oblique", "left-handed"])
def test_volume_round_trip_keeps_voxels_and_geometry(grid: np.ndarray, scene, slicer, tmp_path: Path) -> None:
    """Node → NIfTI (Slicer's writer) → bundle output on that affine → node (Slicer's reader) lines up voxel for
    voxel with the input node. Left-handed: ITK's reader reverses the k axis, which the loader undoes."""
    node = add_volume(slicer, "field", ramp(), grid)
    written = write_volume(node, tmp_path / "field.nii.gz")
    image = nib.load(str(written))
    np.testing.assert_allclose(image.affine, grid, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(image.dataobj), ramp())
    output = bundle_output(tmp_path / "field_chi.nii.gz", 2 * ramp(), written)
    chi = load_outputs({"chi": output}, "qsm_dipole_inversion", "field", node)["chi"]
    np.testing.assert_allclose(ijk_to_ras_array(chi), ijk_to_ras_array(node), atol=1e-5)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(chi), 2 * slicer.util.arrayFromVolume(node))
    assert chi.GetModifiedSinceRead(), "its file goes with the run's workspace: Slicer's Save must write it"


def test_writing_an_input_leaves_no_node_and_no_file_name_behind(scene, slicer, tmp_path: Path) -> None:
    node = add_volume(slicer, "field", ramp(), OBLIQUE)
    before = scene_node_ids(scene)
    write_volume(node, tmp_path / "field.nii.gz")
    assert scene_node_ids(scene) == before, "no storage node pointing into the run's temporary folder"
    assert node.GetStorageNodeID() is None, "and no reference to the removed one"
    node.AddDefaultStorageNode()
    node.GetStorageNode().SetFileName(str(tmp_path / "saved_by_the_user.nrrd"))
    write_volume(node, tmp_path / "again.nii.gz")
    assert node.GetStorageNode().GetFileName() == str(tmp_path / "saved_by_the_user.nrrd")


def test_dwi_sequence_and_vector_volume_become_one_4d_nifti(scene, slicer, tmp_path: Path) -> None:
    series = importlib.import_module("IVIMMappingLib.series")
    frames = [ramp() + 1000 * b for b in range(3)]
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "dwi")
    sequence.SetIndexName("b-value")
    sequence.SetIndexUnit("s/mm2")
    for b, frame in zip((0, 100, 800), frames):
        sequence.SetDataNodeAtValue(add_volume(slicer, f"b{b}", frame, OBLIQUE), str(b))
    written = nib.load(str(series.write_series(sequence, tmp_path / "dwi.nii.gz")))
    assert written.shape == (*SHAPE, 3)
    np.testing.assert_allclose(written.affine, OBLIQUE, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.stack(frames, axis=-1))
    assert series.series_b_value_labels(sequence) == "0 100 800"
    vector = add_volume(slicer, "dwi4d", np.stack(frames, axis=-1), OBLIQUE, "vtkMRMLVectorVolumeNode")
    written = nib.load(str(series.write_series(vector, tmp_path / "dwi4d.nii.gz")))
    np.testing.assert_allclose(written.affine, OBLIQUE, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.stack(frames, axis=-1))


def test_segmentation_becomes_a_labelmap_on_the_qsm_grid_and_leaves_no_node(scene, slicer, tmp_path: Path) -> None:
    lesion_mask = importlib.import_module("RimLesionDetectionLib.lesion_mask")
    labels = np.zeros(SHAPE, dtype=np.int16)
    labels[1:3, 1:3, 1:3] = 1
    labels[4:6, 3:5, 2:4] = 2
    qsm = add_volume(slicer, "qsm", ramp(), OBLIQUE)
    labelmap = add_volume(slicer, "drawn", labels, OBLIQUE, "vtkMRMLLabelMapVolumeNode")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "lesions")
    assert slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmap, segmentation)
    scene.RemoveNode(labelmap)
    before = scene_node_ids(scene)
    written = nib.load(str(lesion_mask.write_lesion_mask(segmentation, tmp_path / "mask.nii.gz", reference=qsm)))
    np.testing.assert_allclose(written.affine, OBLIQUE, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(written.dataobj), labels)
    added = [scene.GetNodeByID(i).GetClassName() for i in scene_node_ids(scene) - before]
    assert added == [], f"the export left {added} in the scene"


def write_lesion_table(path: Path, rows: list[dict]) -> Path:
    columns = ["lesion_id", "n_voxels", "volume_mm3", "centroid_x", "centroid_y", "centroid_z",
               "rim_probability", "rim_positive"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_lesion_table_loads_linked_to_its_labelmap_and_a_row_jumps_the_views(scene, slicer, tmp_path: Path) -> None:
    lesions = importlib.import_module("RimLesionDetectionLib.lesions")
    qsm = add_volume(slicer, "qsm", ramp(), OBLIQUE)
    qsm_file = write_volume(qsm, tmp_path / "qsm.nii.gz")
    rows = [{"lesion_id": 1, "n_voxels": 8, "volume_mm3": 15.8, "centroid_x": -20.5, "centroid_y": 3.25,
             "centroid_z": 7.0, "rim_probability": 0.91, "rim_positive": 1},
            {"lesion_id": 2, "n_voxels": 8, "volume_mm3": 15.8, "centroid_x": 4.0, "centroid_y": -8.5,
             "centroid_z": 11.75, "rim_probability": 0.12, "rim_positive": 0}]
    outputs = {"lesions": write_lesion_table(tmp_path / "qsm_lesions.csv", rows),
               "rim_labels": bundle_output(tmp_path / "qsm_rim_labels.nii.gz", np.ones(SHAPE, np.int16), qsm_file)}
    nodes = load_outputs(outputs, "rim_lesion_detection", "qsm", qsm)
    table, labels = nodes["lesions"], nodes["rim_labels"]
    assert table.IsA("vtkMRMLTableNode") and table.GetName() == "qsm_lesions" and table.GetNumberOfRows() == 2
    assert labels.IsA("vtkMRMLLabelMapVolumeNode") and labels.GetName() == "qsm_rim_labels"
    assert table.GetModifiedSinceRead() and labels.GetModifiedSinceRead()
    assert lesions.summarize_lesions(lesions.table_column(table, "rim_positive")) == "2 lesion(s), 1 rim+"
    lesions.link_table_to_labels(table, labels)
    slicer.util.setSliceViewerLayers(label=None)
    assert lesions.jump_to_lesion(table, 1) == (4.0, -8.5, 11.75)
    for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceNode")):
        slice_to_ras = slicer.util.arrayFromVTKMatrix(scene.GetNthNodeByClass(i, "vtkMRMLSliceNode").GetSliceToRAS())
        np.testing.assert_allclose(slice_to_ras[:3, 3], (4.0, -8.5, 11.75))
    composites = [scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode") for i in range(3)]
    assert all(c.GetLabelVolumeID() == labels.GetID() for c in composites)


def test_every_colour_table_the_modules_use_exists_in_a_slicer_scene(scene, slicer) -> None:
    """Slicer's colour files loaded as Slicer loads them: every preset's colour node ID resolves."""
    ids = {preset.color_node_id for outputs in PRESETS.values() for preset in outputs.values()}
    assert {i for i in ids if scene.GetNodeByID(i) is None} == set()


def test_without_colour_files_the_maps_still_get_a_colour_table(slicer) -> None:
    """A Slicer whose colour files are missing has no file tables: the map falls back to a built-in table."""
    statement = (
        "import headless_slicer, numpy as np; slicer = headless_slicer.load(colour_files=False); "
        "from QSMSlicerCommon.display import PRESETS; from QSMSlicerCommon.slicer_nodes import apply_preset; "
        "node = slicer.util.addVolumeFromArray(np.zeros((2, 3, 4), np.float32), name='chi'); "
        "assert slicer.mrmlScene.GetNodeByID(PRESETS['qsm_dipole_inversion']['chi'].color_node_id) is None; "
        "[apply_preset(node, p) or print(node.GetDisplayNode().GetColorNodeID(), node.GetDisplayNode().GetColorNode()"
        " is not None) for p in (PRESETS['qsm_dipole_inversion']['chi'], PRESETS['ivim_mapping']['D'])]"
    )
    done = run_with_only([HEADLESS_DIR, EXTENSION_DIR], statement, drop=("QSMSlicerExtension", "tests"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line.split() for line in done.stdout.splitlines() if line.startswith("vtkMRML")] == [
        ["vtkMRMLColorTableNodefMRI", "True"], ["vtkMRMLColorTableNodeIron", "True"]]


def test_a_colour_table_found_by_name_is_used(scene, slicer) -> None:
    node = add_volume(slicer, "D", ramp(), OBLIQUE)
    apply_preset(node, PRESETS["ivim_mapping"]["D"])
    assert node.GetDisplayNode().GetColorNodeID() == VIRIDIS
    assert node.GetDisplayNode().GetColorNode().GetName() == "Viridis"


@pytest.mark.parametrize("name", MODULES)
def test_module_file_imports_like_slicer_imports_it(name: str, slicer) -> None:
    """Only the module's folder on sys.path (Slicer adds the module folder), real Slicer code: imports succeed."""
    statement = f"import headless_slicer; headless_slicer.load(); import {name}; print({name}.{name}Logic.BUNDLE)"
    done = run_with_only([HEADLESS_DIR, EXTENSION_DIR / name], statement, drop=("QSMSlicerExtension", "tests"))
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("name", MODULES)
def test_parameter_node_takes_every_input_and_none(name: str, scene, slicer) -> None:
    """The real ``@parameterNodeWrapper``: a fresh parameter node (all inputs empty) is written, and every node
    type a parameter names can be selected and unselected. A ``Union`` of node types needs ``None`` in it."""
    module = importlib.import_module(name)
    parameter_class = getattr(module, f"{name}ParameterNode")
    for parameter, info in parameter_class.allParameters.items():
        hint = info.unalteredType
        if typing.get_origin(hint) is typing.Union:
            assert type(None) in typing.get_args(hint), f"{name}.{parameter}: Union without None"
    parameters = getattr(module, f"{name}Logic")().getParameterNode()
    for parameter, info in parameter_class.allParameters.items():
        members = typing.get_args(info.unalteredType) or (info.unalteredType,)
        for node_class in [m for m in members if isinstance(m, type) and issubclass(m, slicer.vtkMRMLNode)]:
            node = scene.AddNewNodeByClass(node_class.__name__, f"{parameter} {node_class.__name__}")
            setattr(parameters, parameter, node)
            assert getattr(parameters, parameter) is node
            setattr(parameters, parameter, None)
            assert getattr(parameters, parameter) is None


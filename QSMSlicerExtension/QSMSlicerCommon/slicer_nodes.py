"""Slicer calls on nodes: nodes to NIfTI, outputs back to nodes (named with units, coloured), Slicer collaborators.

``slicer`` (and ``vtk``, ``nibabel``) are imported inside the functions, so importing this file is free
outside Slicer (numpy only). Tested on slicer-core and Slicer's Python layer, not in a Slicer window (see the README).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from QSMSlicerCommon.display import (
    BUILT_IN_FALLBACK,
    GREY,
    DisplayPreset,
    color_table_name,
    output_node_name,
    preset_for,
    run_name_prefix,
)
from QSMSlicerCommon.install import DependencyInstaller, backend_for_version, read_requirements
from QSMSlicerCommon.job import BundleJob
from QSMSlicerCommon.locations import locate_extension_paths
from QSMSlicerCommon.runner import BundleRunner


def ijk_to_ras(node: object) -> np.ndarray:
    """A volume node's IJK→RAS matrix as a 4×4 array (the NIfTI affine of its voxels)."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def write_array(array_kji: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    """Write a Slicer-ordered array, (k, j, i) or (k, j, i, c), as a NIfTI (i, j, k[, c]) float32 image."""
    import nibabel

    data = np.asarray(array_kji, dtype=np.float32)
    data = np.ascontiguousarray(np.transpose(data, (2, 1, 0, *range(3, data.ndim))))
    nibabel.save(nibabel.Nifti1Image(data, affine), str(path))
    return path


def write_volume(node: object, path: Path) -> Path:
    """Write a volume node as NIfTI: 3-D volumes with ``slicer.util.saveNode``, multi-frame ones with nibabel.

    Multi-component and multi-frame nodes (MultiVolume DWI series, 2-channel View Line images) are written as
    (i, j, k, c) arrays with the node's IJK→RAS matrix as the NIfTI affine.

    Raises:
        RuntimeError: Slicer could not write the file.
    """
    import slicer

    array = slicer.util.arrayFromVolume(node)  # (k, j, i) or (k, j, i, c)
    if array.ndim == 3:
        storage = node.GetStorageNode()
        file_name = storage.GetFileName() if storage is not None else None
        with temporary_nodes(slicer.mrmlScene):  # the storage node saveNode adds to a node that had none
            saved = slicer.util.saveNode(node, str(path))
        if storage is not None:
            storage.SetFileName(file_name)  # the node is still saved where it was, not in the run's workspace
        if not saved:
            raise RuntimeError(f"could not write {node.GetName()!r} to {path}; check free disk space")
        return path
    return write_array(array, ijk_to_ras(node), path)


def resolve_color_node_id(scene: object, color_node_id: str) -> str:
    """The ID of a colour node present in ``scene``: the preset's, else the same table found by name, else its
    built-in stand-in (a Slicer whose colour files are not installed has no file tables)."""
    if scene.GetNodeByID(color_node_id) is not None:
        return color_node_id
    by_name = scene.GetFirstNodeByName(color_table_name(color_node_id))
    if by_name is not None and by_name.IsA("vtkMRMLColorNode"):
        return by_name.GetID()
    return BUILT_IN_FALLBACK.get(color_node_id, GREY)


def apply_preset(volume_node: object, preset: DisplayPreset) -> None:
    """Colour table and display range of a loaded output."""
    display = volume_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(resolve_color_node_id(volume_node.GetScene(), preset.color_node_id))
    if preset.display_range is not None:
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(*preset.display_range)


def grid_node(node: object) -> object:
    """The volume whose grid a bundle's outputs keep: the node itself, or a sequence's first frame."""
    return node.GetNthDataNode(0) if node.IsA("vtkMRMLSequenceNode") else node


def align_to_grid(volume_node: object, reference: object) -> None:
    """Put a loaded output back on the voxel grid of the input it was computed from.

    The bundles keep the input's affine exactly, but Slicer's NIfTI reader (ITK) turns a left-handed affine
    (LAS, common from FSL and dcm2niix) into a right-handed one by reversing an axis, so the loaded output
    covers the same space with its voxels in another order. This reverses those axes back and gives the
    output the input's IJK→RAS matrix; an output on another grid is left as it is.
    """
    import slicer

    reference_matrix = ijk_to_ras(reference)
    to_reference_ijk = np.linalg.solve(reference_matrix, ijk_to_ras(volume_node))
    signs = np.diag(to_reference_ijk)[:3]
    if not np.allclose(np.abs(to_reference_ijk[:3, :3]), np.eye(3), atol=1e-4) or np.all(signs > 0):
        return
    array = slicer.util.arrayFromVolume(volume_node)  # (k, j, i): IJK axis a is array axis 2 - a
    flipped = np.flip(array, axis=tuple(2 - axis for axis in range(3) if signs[axis] < 0))
    slicer.util.updateVolumeFromArray(volume_node, np.ascontiguousarray(flipped))
    volume_node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(reference_matrix))


def _free_name_prefix(scene: object, outputs: dict[str, Path], bundle: str, name_prefix: str) -> str:
    """The first run prefix (:func:`run_name_prefix`) for which no output node name is taken in the scene."""
    run = 1
    while any(scene.GetFirstNodeByName(output_node_name(run_name_prefix(name_prefix, run), name,
                                                        preset_for(bundle, name))) for name in outputs):
        run += 1
    return run_name_prefix(name_prefix, run)


def load_outputs(outputs: dict[str, Path], bundle: str, name_prefix: str, reference: object | None = None,
                 ) -> dict[str, object]:
    """Load a job's outputs as nodes (:func:`~QSMSlicerCommon.display.output_node_name`): volumes with presets,
    CSV files as tables.

    A re-run on the same input names all its nodes with the same ``_run<N>`` (:func:`run_name_prefix`), so no
    name is taken twice. Volumes are put back on the grid of ``reference`` (:func:`align_to_grid`). Every node
    counts as modified since read, so Slicer's *Save* writes it (its file is deleted with the workspace). The
    first volume is shown in the slice views (a labelmap as the label layer).
    """
    import slicer

    prefix = _free_name_prefix(slicer.mrmlScene, outputs, bundle, name_prefix)
    nodes: dict[str, object] = {}
    for name, path in outputs.items():
        preset = preset_for(bundle, name)
        node_name = output_node_name(prefix, name, preset)
        if path.suffix == ".csv":
            node = slicer.util.loadTable(str(path))
        else:
            preset = preset or DisplayPreset(GREY)
            node = slicer.util.loadVolume(str(path), {"name": node_name, "labelmap": preset.labelmap,
                                                      "show": False})
            if reference is not None:
                align_to_grid(node, reference)
            apply_preset(node, preset)
        node.SetName(node_name)
        node.StorableModified()  # read from the run's workspace, which is deleted next: save it with the scene
        nodes[name] = node
    volumes = [n for n in nodes.values() if n.IsA("vtkMRMLVolumeNode")]
    if volumes:
        first = volumes[0]
        key = "label" if first.IsA("vtkMRMLLabelMapVolumeNode") else "background"
        slicer.util.setSliceViewerLayers(**{key: first}, fit=True)
    return nodes


@contextlib.contextmanager
def temporary_nodes(scene: object) -> Iterator[None]:
    """Remove every node added to ``scene`` inside the block when it ends: an exported labelmap comes with a
    display node, a storage node (once written) and a colour table, which would otherwise stay in the scene."""
    before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    try:
        yield
    finally:
        added = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
        for node in added:
            if node.GetID() not in before and scene.IsNodePresent(node):
                scene.RemoveNode(node)


def _install_torch() -> bool:
    import PyTorchUtils

    logic = PyTorchUtils.PyTorchUtilsLogic()
    return bool(logic.torchInstalled() or logic.installTorch(askConfirmation=True))


def slicer_installer() -> DependencyInstaller:
    """The installer for this Slicer: ``slicer.packaging.pip_ensure`` where the build has it (5.12; some 5.11
    builds), else a confirmation dialog and ``slicer.util.pip_install``."""
    import slicer

    version = (int(slicer.app.majorVersion), int(slicer.app.minorVersion))
    pip_ensure = None
    if version >= (5, 11):
        try:
            import slicer.packaging

            pip_ensure = getattr(slicer.packaging, "pip_ensure", None)
        except ImportError:
            pip_ensure = None
    backend = backend_for_version(version, pip_ensure=pip_ensure, pip_install=slicer.util.pip_install)
    return DependencyInstaller(backend, confirm=slicer.util.confirmOkCancelDisplay, install_torch=_install_torch)


def slicer_bundle_runner(bundle: str, requirements_file: str | os.PathLike) -> BundleRunner:
    """A runner using ``PythonSlicer``, the extension's bundles, Slicer's temp folder and the Slicer installer.

    Args:
        bundle: bundle name.
        requirements_file: the module's ``Resources/Requirements/<Module>.txt``.
    """
    import slicer

    python = shutil.which("PythonSlicer") or sys.executable
    return BundleRunner(bundle, python=python, paths=locate_extension_paths(), installer=slicer_installer(),
                        requirements=read_requirements(requirements_file), workspace_dir=slicer.app.temporaryPath)


def load_job_outputs(job: BundleJob, bundle: str, name_prefix: str, reference: object | None = None,
                     ) -> dict[str, object]:
    """Load a succeeded job's outputs (see :func:`load_outputs`), then remove its workspace."""
    try:
        assert job.result is not None and job.result.succeeded
        return load_outputs(job.result.outputs, bundle, name_prefix, reference)
    finally:
        job.close()

"""Slicer calls on nodes: nodes to NIfTI, outputs back to nodes (named with units, coloured), Slicer collaborators.

``slicer`` (and ``vtk``, ``nibabel``) are imported inside the functions, so importing this file is free
outside Slicer (numpy only). Nothing here has been run inside Slicer by us (see QSMSlicerExtension/README.md).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np

from QSMSlicerCommon.display import GREY, DisplayPreset, output_node_name, preset_for
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
        if not slicer.util.saveNode(node, str(path)):
            raise RuntimeError(f"could not write {node.GetName()!r} to {path}; check free disk space")
        return path
    return write_array(array, ijk_to_ras(node), path)


def apply_preset(volume_node: object, preset: DisplayPreset) -> None:
    """Colour table and display range of a loaded output."""
    display = volume_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(preset.color_node_id)
    if preset.display_range is not None:
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(*preset.display_range)


def load_outputs(outputs: dict[str, Path], bundle: str, name_prefix: str) -> dict[str, object]:
    """Load a job's outputs as nodes (:func:`~QSMSlicerCommon.display.output_node_name`): volumes with presets,
    CSV files as tables.

    The first volume is shown in the slice views (a labelmap as the label layer).
    """
    import slicer

    nodes: dict[str, object] = {}
    for name, path in outputs.items():
        preset = preset_for(bundle, name)
        node_name = output_node_name(name_prefix, name, preset)
        if path.suffix == ".csv":
            node = slicer.util.loadTable(str(path))
            node.SetName(node_name)
        else:
            preset = preset or DisplayPreset(GREY)
            node = slicer.util.loadVolume(str(path), {"name": node_name, "labelmap": preset.labelmap,
                                                      "show": False})
            apply_preset(node, preset)
        nodes[name] = node
    volumes = [n for n in nodes.values() if n.IsA("vtkMRMLVolumeNode")]
    if volumes:
        first = volumes[0]
        key = "label" if first.IsA("vtkMRMLLabelMapVolumeNode") else "background"
        slicer.util.setSliceViewerLayers(**{key: first}, fit=True)
    return nodes


def _install_torch() -> bool:
    import PyTorchUtils

    logic = PyTorchUtils.PyTorchUtilsLogic()
    return bool(logic.torchInstalled() or logic.installTorch(askConfirmation=True))


def slicer_installer() -> DependencyInstaller:
    """The installer for this Slicer: ``slicer.packaging.pip_ensure`` on ≥ 5.11, else ``pip_install``."""
    import slicer

    version = (int(slicer.app.majorVersion), int(slicer.app.minorVersion))
    pip_ensure = make_requirement = None
    if version >= (5, 11):
        import slicer.packaging
        from packaging.requirements import Requirement

        pip_ensure, make_requirement = slicer.packaging.pip_ensure, Requirement
    backend = backend_for_version(version, pip_ensure=pip_ensure, make_requirement=make_requirement,
                                  pip_install=slicer.util.pip_install)
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


def load_job_outputs(job: BundleJob, bundle: str, name_prefix: str) -> dict[str, object]:
    """Load a succeeded job's outputs (see :func:`load_outputs`), then remove its workspace."""
    try:
        assert job.result is not None and job.result.succeeded
        return load_outputs(job.result.outputs, bundle, name_prefix)
    finally:
        job.close()

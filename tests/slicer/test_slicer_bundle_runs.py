"""Real bundle runs through the Slicer layer's runner, the way a module panel drives them (polling).

Each bundle process needs ~10 s to start (MONAI imports), so there are few runs: one good and one bad QSM
case and the SPIO case (when its weights exist) here; the IVIM and rim bundles run through their modules'
Logic and Widget in ``test_slicer_modules_real.py``.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from QSMSlicerCommon.job import BundleJob, JobResult, JobStatus
from QSMSlicerCommon.locations import locate_extension_paths
from QSMSlicerCommon.options import BundleOptions, QsmOptions, SpioOptions
from QSMSlicerCommon.runner import BundleRunner
from QSMSlicerCommon.workspace import TemporaryWorkspace

PATHS = locate_extension_paths()
TIMEOUT_S = 180


def runner(bundle: str, workspace_dir: Path) -> BundleRunner:
    return BundleRunner(bundle, python=sys.executable, paths=PATHS, workspace_dir=workspace_dir)


def poll_until_done(job: BundleJob) -> JobResult:
    """What the module's qt.QTimer does, every 200 ms."""
    deadline = time.monotonic() + TIMEOUT_S
    while (result := job.poll()) is None:
        assert time.monotonic() < deadline, "bundle run timed out"
        time.sleep(0.2)
    return result


def copy_in(source: Path, make_options):
    """A stage function that copies prepared NIfTI files into the workspace (``write_volume`` in Slicer)."""

    def stage(workspace: TemporaryWorkspace) -> BundleOptions:
        return make_options(Path(shutil.copy(source, workspace.inputs / source.name)), workspace)

    return stage


def require_bundle(name: str, *, needs_weights: bool) -> None:
    bundle = PATHS.bundles_dir / name
    if not (bundle / "configs" / "inference.json").is_file():
        pytest.skip(f"{name} has no configs/inference.json yet (bundle under construction)")
    if needs_weights and not (bundle / "models" / "model.pt").is_file():
        pytest.skip(f"{name} has no trained weights models/model.pt yet")


def assert_same_grid(output: Path, reference: Path, shape: tuple[int, ...]) -> None:
    out, ref = nib.load(str(output)), nib.load(str(reference))
    assert out.shape == shape
    np.testing.assert_allclose(out.affine, ref.affine, atol=1e-6)


def test_qsm_bundle_runs_to_completion_with_progress(qsm_phantom: Path, tmp_path: Path) -> None:
    progress, lines = [], []
    job = runner(QsmOptions.BUNDLE, tmp_path).start(
        copy_in(qsm_phantom, lambda field, ws: QsmOptions(field=field, method="tkd")),
        on_line=lambda stream, line: lines.append(line), on_progress=lambda f, m: progress.append(f),
    )
    result = poll_until_done(job)
    assert result.succeeded, f"{result.message}\n" + "\n".join(lines)
    assert progress[-1] == 1.0 and progress == sorted(progress)
    chi_path = result.outputs["chi"]
    assert chi_path.name == "sphere_field_chi.nii.gz" and chi_path.parent == job.workspace.outputs
    assert_same_grid(chi_path, qsm_phantom, (24, 24, 24))
    chi = np.asarray(nib.load(str(chi_path)).dataobj)
    assert chi[10:14, 10:14, 10:13].mean() > 0.03, "the cube's susceptibility should come out positive"
    job.close()
    assert list(tmp_path.iterdir()) == []


def test_bad_input_surfaces_the_bundles_one_line_error(tmp_path: Path) -> None:
    flat = tmp_path / "inputs_prepared" / "slice_field.nii.gz"
    flat.parent.mkdir()
    nib.save(nib.Nifti1Image(np.ones((8, 8), dtype=np.float32), np.eye(4)), str(flat))
    workspaces = tmp_path / "workspaces"
    workspaces.mkdir()
    job = runner(QsmOptions.BUNDLE, workspaces).start(copy_in(flat, lambda field, ws: QsmOptions(field=field)))
    result = poll_until_done(job)
    assert result.status is JobStatus.FAILED and result.returncode == 2
    assert "\n" not in result.message and "slice_field.nii.gz" in result.message and "3-D" in result.message
    assert not result.outputs and list(workspaces.iterdir()) == []


def test_spio_bundle_run(tmp_path: Path) -> None:
    require_bundle(SpioOptions.BUNDLE, needs_weights=True)
    image = np.ones((128, 128, 1, 2), dtype=np.float32)  # DESIGN.md: 128 × 128 pixels over 50 mm × 50 mm
    pixel_mm = 50.0 / 128
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    path = prepared / "viewline.nii.gz"
    nib.save(nib.Nifti1Image(image, np.diag([pixel_mm, pixel_mm, 1.0, 1.0])), str(path))
    workspaces = tmp_path / "workspaces"
    workspaces.mkdir()
    job = runner(SpioOptions.BUNDLE, workspaces).start(copy_in(path, lambda p, ws: SpioOptions(image=p)))
    result = poll_until_done(job)
    assert result.succeeded, result.message
    assert_same_grid(result.outputs["concentration"], path, (128, 128, 1))
    job.close()

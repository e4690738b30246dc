"""Real bundle runs through the Slicer layer's runner, the way a module panel drives them (polling).

Each bundle process needs ~10 s to start (MONAI imports), so there are few runs: one good and one bad QSM
case, and one case per further bundle whose inference config (and, where needed, weights) exists.
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
from QSMSlicerCommon.options import BundleOptions, IvimOptions, QsmOptions, RimOptions, SpioOptions
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


def test_ivim_bundle_run(tmp_path: Path) -> None:
    require_bundle(IvimOptions.BUNDLE, needs_weights=False)
    b_values = np.array([0, 10, 20, 50, 100, 200, 400, 800], dtype=float)
    signal = 1000 * (0.1 * np.exp(-b_values * 0.02) + 0.9 * np.exp(-b_values * 1.0e-3))
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    dwi = prepared / "ivim_dwi.nii.gz"
    nib.save(nib.Nifti1Image(np.broadcast_to(signal, (6, 6, 3, 8)).astype(np.float32), np.diag([2.0, 2, 4, 1])),
             str(dwi))

    def options(dwi_path: Path, workspace: TemporaryWorkspace) -> IvimOptions:
        bvals = workspace.input_path("ivim_dwi", ".bval")
        bvals.write_text(" ".join(f"{b:g}" for b in b_values) + "\n")
        return IvimOptions(dwi=dwi_path, bvals=bvals, method="lsq")

    workspaces = tmp_path / "workspaces"
    workspaces.mkdir()
    job = runner(IvimOptions.BUNDLE, workspaces).start(copy_in(dwi, options))
    result = poll_until_done(job)
    assert result.succeeded, result.message
    assert set(result.outputs) == {"D", "f", "Dstar", "S0"}
    for path in result.outputs.values():
        assert_same_grid(path, dwi, (6, 6, 3))
    job.close()


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


def test_rim_bundle_run(tmp_path: Path) -> None:
    require_bundle(RimOptions.BUNDLE, needs_weights=True)
    grid = np.indices((32, 32, 32)).astype(float)
    qsm = np.zeros((32, 32, 32), dtype=np.float32)
    mask = np.zeros((32, 32, 32), dtype=np.int16)
    for label, centre in enumerate(((10, 10, 16), (22, 22, 16)), start=1):
        radius = np.linalg.norm(grid - np.reshape(centre, (3, 1, 1, 1)), axis=0)
        mask[radius <= 4] = label
        if label == 1:
            qsm[(radius > 3) & (radius <= 4)] = 0.06  # paramagnetic rim, ppm
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    files = {}
    for name, data in (("rim_qsm", qsm), ("rim_flair", (mask > 0) * 2.0 + 1.0), ("rim_lesions", mask)):
        files[name] = prepared / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4)), str(files[name]))

    def options(qsm_path: Path, workspace: TemporaryWorkspace) -> RimOptions:
        others = {n: Path(shutil.copy(files[n], workspace.inputs / files[n].name))
                  for n in ("rim_flair", "rim_lesions")}
        return RimOptions(qsm=qsm_path, flair=others["rim_flair"], lesion_mask=others["rim_lesions"])

    workspaces = tmp_path / "workspaces"
    workspaces.mkdir()
    job = runner(RimOptions.BUNDLE, workspaces).start(copy_in(files["rim_qsm"], options))
    result = poll_until_done(job)
    assert result.succeeded, result.message
    header = result.outputs["lesions"].read_text().splitlines()[0].split(",")
    assert header == ["lesion_id", "n_voxels", "volume_mm3", "centroid_x", "centroid_y", "centroid_z",
                      "rim_probability", "rim_positive"]
    assert_same_grid(result.outputs["rim_labels"], files["rim_qsm"], (32, 32, 32))
    job.close()

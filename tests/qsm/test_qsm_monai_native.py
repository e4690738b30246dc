"""The ``qsm_dipole_inversion`` bundle as a MONAI user runs it (issue 26): MONAI's ``verify_net_in_out`` on the
``network_def`` of every method, ``ConfigWorkflow(...).check_properties() == []`` with the metadata, overriding
``network_def`` / ``inferer`` / QSMGAN's ``window_inferer`` changes what runs, and each case is read once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.bundle import run as bundle_run
from monai.inferers import Inferer, SlidingWindowInferer

from lightning_modules.physics.dipole import b0_direction_from_affine
from lightning_modules.qsm.methods import DipoleInversion, build_network, invert_field, learned_ndi_network
from lightning_modules.qsm.qsmgan_inference import ValidCentreWindowInferer
from lightning_modules.qsm.simulate import head_phantom, simulate_field
from lightning_modules.qsm.solvers import Tkd

BUNDLE = Path(__file__).resolve().parents[2] / "monai_bundles" / "qsm_dipole_inversion"
CONFIG, META = BUNDLE / "configs" / "inference.json", BUNDLE / "configs" / "metadata.json"
SHAPE, VOXEL_MM = (24, 24, 20), (2.0, 2.0, 2.5)


def _affine() -> np.ndarray:
    affine = np.diag([*VOXEL_MM, 1.0])
    affine[:3, 3] = (-24.0, -24.0, -25.0)
    return affine


def _case(folder: Path, name: str = "s") -> dict[str, str]:
    chi, brain = head_phantom(SHAPE, VOXEL_MM, seed=5)
    field = simulate_field(chi, brain, VOXEL_MM, b0_direction_from_affine(_affine())).field_ppm
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(field.astype(np.float32), _affine()), str(folder / f"{name}.nii.gz"))
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), _affine()), str(folder / f"{name}_mask.nii.gz"))
    return {"field": str(folder / f"{name}.nii.gz"), "mask": str(folder / f"{name}_mask.nii.gz")}


def _chi(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float64)


# ----------------------------------------------------------------------------------- the network interface

@pytest.mark.parametrize("method", ["qsmgan", "learned_ndi", "tv", "ndi", "tkd"])
def test_verify_net_in_out_passes(method: str) -> None:
    from monai.bundle import verify_net_in_out

    verify_net_in_out(net_id="network_def", meta_file=str(META), config_file=str(CONFIG), device="cpu",
                      method=method)


def test_verify_net_in_out_on_the_command_line() -> None:
    result = subprocess.run([sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def", "--meta_file",
                             str(META), "--config_file", str(CONFIG), "--device", "cpu", "--any", "8"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "data shape of network is verified with no error" in result.stdout + result.stderr


def test_config_with_metadata_passes_monai_property_check() -> None:
    workflow = ConfigWorkflow(config_file=str(CONFIG), meta_file=str(META), workflow_type="infer")
    workflow.initialize()
    assert workflow.check_properties() == []


def test_network_takes_one_tensor_and_geometry_as_keywords() -> None:
    chi, brain = head_phantom(SHAPE, VOXEL_MM, seed=5)
    b0 = np.array([0.0, 0.3, 1.0]) / np.linalg.norm([0.0, 0.3, 1.0])
    field = torch.as_tensor(simulate_field(chi, brain, VOXEL_MM, b0).field_ppm, dtype=torch.float32)
    mask = torch.as_tensor(brain, dtype=torch.float32)
    network = DipoleInversion(Tkd()).eval()
    with torch.no_grad():
        out = network(field[None, None], mask=mask[None, None], voxel_size_mm=torch.tensor([VOXEL_MM]),
                      b0_direction=torch.as_tensor(b0[None]))
        assert out.shape == (1, 1, *SHAPE)
        torch.testing.assert_close(out[0, 0], invert_field(Tkd(), field, mask, VOXEL_MM, b0), rtol=0, atol=1e-7)
        # the defaults (what verify_net_in_out uses): no mask, 1 mm isotropic, B0 along the last axis
        alone = network(field[None, None])
        torch.testing.assert_close(alone[0, 0], invert_field(Tkd(), field, None, (1.0, 1.0, 1.0), (0, 0, 1)),
                                   rtol=0, atol=1e-7)


def test_network_loads_the_shipped_solver_weights_and_its_own_state_dict() -> None:
    shipped = build_network("learned_ndi", str(BUNDLE))
    network = DipoleInversion(learned_ndi_network())
    network.load_state_dict(torch.load(BUNDLE / "models" / "model.pt", weights_only=True))  # the solver's keys
    again = DipoleInversion(learned_ndi_network())
    again.load_state_dict(network.state_dict())  # its own keys, under "solver."
    for name, value in shipped.state_dict().items():
        torch.testing.assert_close(again.state_dict()[f"solver.{name}"], value, rtol=0, atol=0)


def test_qsmgan_windows_are_a_monai_sliding_window_inferer() -> None:
    network = build_network("qsmgan", str(BUNDLE))
    assert isinstance(network.window_inferer, SlidingWindowInferer)
    inferer = network.window_inferer
    margin = network.generator.crop_voxels
    windows, overlap = inferer.windows_for([160 + 2 * margin, 20 + 2 * margin, 237 + 2 * margin])
    assert windows == [96, 64, 96]
    # MONAI's step int(window · (1 − overlap)) is the valid centre
    assert [int(w * (1 - o)) for w, o in zip(windows, overlap)] == [w - 2 * margin for w in windows]
    fixed = ValidCentreWindowInferer(margin=margin, roi_size=[64, 64, 64])
    assert fixed.windows_for([100, 100, 100])[0] == [64, 64, 64]


# ----------------------------------------------------------------------------- overrides change what runs

class NegatedField(Inferer):
    """An inferer that inverts the negated field (TKD is linear: χ comes out negated)."""

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        return network(-inputs, *args, **kwargs)


def test_overriding_the_inferer_changes_what_runs(tmp_path: Path) -> None:
    case = _case(tmp_path / "in")
    bundle_run(config_file=str(CONFIG), output_dir=str(tmp_path / "a"), method="tkd", device="cpu", **case)
    bundle_run(config_file=str(CONFIG), output_dir=str(tmp_path / "b"), method="tkd", device="cpu",
               inferer=NegatedField(), **case)
    shipped, negated = _chi(tmp_path / "a" / "s_chi.nii.gz"), _chi(tmp_path / "b" / "s_chi.nii.gz")
    assert np.abs(shipped).max() > 0
    np.testing.assert_allclose(negated, -shipped, atol=1e-6 * np.abs(shipped).max())


def _cli(case: dict[str, str], output_dir: Path, *extra: str) -> np.ndarray:
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIG), "--device", "cpu",
               "--output_dir", str(output_dir), *[a for k, v in case.items() for a in (f"--{k}", v)], *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return _chi(output_dir / "s_chi.nii.gz")


def test_network_def_override_on_the_command_line(tmp_path: Path) -> None:
    """``--network_def`` with another TKD threshold (and no weights) runs instead of the method's network."""
    case = _case(tmp_path / "in")
    shipped = _cli(case, tmp_path / "a", "--method", "tkd")
    other = _cli(case, tmp_path / "b", "--method", "tkd", "--network_def",
                 "$lightning_modules.qsm.methods.DipoleInversion(lightning_modules.qsm.solvers.Tkd(threshold=0.4))")
    reference = build_network("tkd")
    field = torch.as_tensor(np.asarray(nib.load(case["field"]).dataobj), dtype=torch.float32)
    mask = torch.as_tensor(np.asarray(nib.load(case["mask"]).dataobj) > 0, dtype=torch.float32)
    expected = invert_field(Tkd(threshold=0.4), field, mask, VOXEL_MM, (0.0, 0.0, 1.0)).numpy()
    np.testing.assert_allclose(other, expected, atol=1e-6 * np.abs(expected).max())
    assert not np.allclose(other, shipped, atol=1e-3 * np.abs(shipped).max())
    assert isinstance(reference, Tkd) and reference.threshold != 0.4


def test_qsmgan_window_override_on_the_command_line(tmp_path: Path) -> None:
    """QSMGAN's sliding windows are the config's ``window_inferer``: fixed 40³ windows give other numbers than the
    automatic ones (one window per axis here)."""
    case = _case(tmp_path / "in")
    shipped = _cli(case, tmp_path / "a", "--method", "qsmgan")
    windowed = _cli(case, tmp_path / "b", "--method", "qsmgan", "--window_inferer#roi_size", "[40,40,40]")
    assert not np.array_equal(shipped, windowed)
    brain = np.asarray(nib.load(case["mask"]).dataobj) > 0
    assert np.all(windowed[~brain] == 0)


# ----------------------------------------------------------------------------------- each case read once

def test_each_case_is_read_once(tmp_path: Path, monkeypatch) -> None:
    import lightning_modules.bundle_workflow as workflow
    import lightning_modules.io as io

    loaded: list[str] = []

    def counting(function):
        def wrapper(path, *args, **kwargs):
            loaded.append(str(path))
            return function(path, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(workflow, "load_nifti", counting(workflow.load_nifti))
    monkeypatch.setattr(io, "load_nifti", counting(io.load_nifti))
    cases = [_case(tmp_path, name) for name in ("a", "b")]
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps(cases))
    bundle_run(config_file=str(CONFIG), datalist=str(datalist), output_dir=str(tmp_path / "out"), method="tkd",
               device="cpu")
    assert sorted(loaded) == sorted(path for case in cases for path in case.values())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_chi.nii.gz", "b_chi.nii.gz"]


def test_dataset_dir_is_where_relative_inputs_are_read_from(tmp_path: Path) -> None:
    case = _case(tmp_path / "data")
    bundle_run(config_file=str(CONFIG), dataset_dir=str(tmp_path / "data"), field="s.nii.gz", mask="s_mask.nii.gz",
               output_dir=str(tmp_path / "out"), method="tkd", device="cpu")
    bundle_run(config_file=str(CONFIG), output_dir=str(tmp_path / "ref"), method="tkd", device="cpu", **case)
    np.testing.assert_array_equal(_chi(tmp_path / "out" / "s_chi.nii.gz"), _chi(tmp_path / "ref" / "s_chi.nii.gz"))

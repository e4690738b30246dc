"""The ``rim_lesion_detection`` bundle as a MONAI user runs it (issue 26): MONAI's ``verify_net_in_out`` on the
``network_def``, overriding ``network_def`` / ``inferer`` changes what runs, each case is read, resampled and
labelled once, and MONAI's ``ResampleToMatch`` gives the numbers of the SimpleITK resampling used before.
``ConfigWorkflow(...).check_properties() == []`` is in ``test_rim_bundle.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import run as bundle_run
from monai.inferers import Inferer
from scipy.spatial.transform import Rotation

from lightning_modules.rim import transforms
from lightning_modules.rim.ensemble import LesionRimClassifier, QsmRimNetEnsemble

BUNDLE = Path(__file__).resolve().parents[2] / "monai_bundles" / "rim_lesion_detection"
CONFIG, META = BUNDLE / "configs" / "inference.json", BUNDLE / "configs" / "metadata.json"
needs_weights = pytest.mark.skipif(not (BUNDLE / "models" / "model.pt").is_file(), reason="no shipped weights")


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> str:
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), str(path))
    return str(path)


def _case(folder: Path, name: str = "q", *, flair_shift_mm: float = 0.0) -> dict[str, str]:
    """A 24³ case with one cubic lesion (optionally the FLAIR on a shifted grid, so it is resampled)."""
    qsm = np.zeros((24, 24, 24))
    qsm[4:20, 4:20, 4:20] = 0.01
    lesion = np.zeros_like(qsm)
    lesion[9:15, 9:15, 9:15] = 1
    flair_affine = np.eye(4)
    flair_affine[0, 3] = flair_shift_mm
    folder.mkdir(parents=True, exist_ok=True)
    return {"qsm": _save(qsm, np.eye(4), folder / f"{name}.nii.gz"),
            "flair": _save(1.0 + lesion, flair_affine, folder / f"{name}_flair.nii.gz"),
            "lesion_mask": _save(lesion, np.eye(4), folder / f"{name}_lesion_mask.nii.gz")}


def _probabilities(table: Path) -> list[float]:
    rows = table.read_text().splitlines()
    column = rows[0].split(",").index("rim_probability")
    return [float(row.split(",")[column]) for row in rows[1:]]


# ----------------------------------------------------------------------------------- the network interface

def test_verify_net_in_out_passes() -> None:
    from monai.bundle import verify_net_in_out

    verify_net_in_out(net_id="network_def", meta_file=str(META), config_file=str(CONFIG), device="cpu")


def test_network_def_takes_one_tensor_and_a_case_of_lesions() -> None:
    torch.manual_seed(0)
    network = LesionRimClassifier(2, n_radiomics=5).eval()
    patches, radiomics = torch.randn(4, 3, 24, 24, 24), torch.randn(4, 5)
    reference = QsmRimNetEnsemble(2, n_radiomics=5).eval()
    reference.load_state_dict(network.state_dict())  # the same weights file fits both
    with torch.no_grad():
        assert network(patches).shape == (4, 1)
        np.testing.assert_array_equal(network(patches).numpy()[:, 0], reference(patches, torch.zeros(4, 5)).numpy())
        case = network(patches[None], radiomics=radiomics[None])  # one case of 4 lesions, as the evaluator runs it
        assert case.shape == (1, 4, 1)
        np.testing.assert_array_equal(case.numpy()[0, :, 0], reference(patches, radiomics).numpy())


# ----------------------------------------------------------------------------- overrides change what runs

class ConstantLogit(Inferer):
    """An inferer that ignores the network: logit ``value`` for every lesion."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        return torch.full((*inputs.shape[:-4], 1), self.value)


class ConstantNet(torch.nn.Module):
    """A network_def whose rim+ logit is 2 for every lesion (no weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("threshold", torch.tensor(0.5))

    def forward(self, patches: torch.Tensor, radiomics: torch.Tensor | None = None) -> torch.Tensor:
        return torch.full((*patches.shape[:-4], 1), 2.0)


@needs_weights
def test_overriding_inferer_or_network_def_changes_what_runs(tmp_path: Path) -> None:
    case = _case(tmp_path)
    bundle_run(config_file=str(CONFIG), output_dir=str(tmp_path / "shipped"), device="cpu", **case)
    shipped = _probabilities(tmp_path / "shipped" / "q_lesions.csv")
    bundle_run(config_file=str(CONFIG), output_dir=str(tmp_path / "inferer"), device="cpu",
               inferer=ConstantLogit(0.0), **case)
    assert _probabilities(tmp_path / "inferer" / "q_lesions.csv") == [0.5]
    bundle_run(config_file=str(CONFIG), output_dir=str(tmp_path / "network"), device="cpu",
               network_def=ConstantNet(), model_path="", **case)
    assert _probabilities(tmp_path / "network" / "q_lesions.csv") == [round(1 / (1 + np.exp(-2.0)), 6)]
    assert shipped != [0.5] and shipped != [round(1 / (1 + np.exp(-2.0)), 6)]


@needs_weights
def test_network_def_override_on_the_command_line(tmp_path: Path) -> None:
    """``--network_def#n_members 1 --model_path ''``: a one-member, untrained network runs instead of the shipped
    five-member ensemble (other probabilities)."""
    case = _case(tmp_path)
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIG), "--device", "cpu",
               *[a for k, v in case.items() for a in (f"--{k}", v)]]
    shipped = subprocess.run([*command, "--output_dir", str(tmp_path / "a")], capture_output=True, text=True,
                             timeout=600)
    assert shipped.returncode == 0, shipped.stderr[-2000:]
    other = subprocess.run([*command, "--output_dir", str(tmp_path / "b"), "--network_def#n_members", "1",
                            "--model_path", ""], capture_output=True, text=True, timeout=600)
    assert other.returncode == 0, other.stderr[-2000:]
    assert _probabilities(tmp_path / "a" / "q_lesions.csv") != _probabilities(tmp_path / "b" / "q_lesions.csv")


@needs_weights
def test_dataset_dir_is_where_relative_inputs_are_read_from(tmp_path: Path, monkeypatch) -> None:
    case = _case(tmp_path / "data")
    monkeypatch.chdir(tmp_path)  # the relative names do not exist here
    bundle_run(config_file=str(CONFIG), output_dir=str(tmp_path / "out"), device="cpu",
               dataset_dir=str(tmp_path / "data"), **{k: Path(v).name for k, v in case.items()})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["q_lesions.csv", "q_rim_labels.nii.gz"]


# ----------------------------------------------------------------------------------- each case read once

@needs_weights
def test_each_case_is_read_resampled_and_labelled_once(tmp_path: Path, monkeypatch) -> None:
    import lightning_modules.bundle_workflow as workflow
    import lightning_modules.io as io

    calls: dict[str, list] = {"load": [], "resample": [], "label": []}

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name].append(args[0] if name == "load" else None)
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(workflow, "load_nifti", counting("load", workflow.load_nifti))
    monkeypatch.setattr(io, "load_nifti", counting("load", io.load_nifti))
    monkeypatch.setattr(transforms, "resample_to_match", counting("resample", transforms.resample_to_match))
    monkeypatch.setattr(transforms, "label_lesions", counting("label", transforms.label_lesions))
    cases = [_case(tmp_path, name, flair_shift_mm=0.4) for name in ("a", "b")]
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps(cases))
    bundle_run(config_file=str(CONFIG), datalist=str(datalist), output_dir=str(tmp_path / "out"), device="cpu")
    assert sorted(map(str, calls["load"])) == sorted(path for case in cases for path in case.values())
    assert len(calls["resample"]) == 2 and len(calls["label"]) == 2  # the FLAIR of each case; its lesions
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a_lesions.csv", "a_rim_labels.nii.gz", "b_lesions.csv", "b_rim_labels.nii.gz"]


# ------------------------------------------------------------- MONAI resampling = the previous SimpleITK one

def _to_sitk(data: np.ndarray, affine: np.ndarray):
    """The bundle's SimpleITK image of a NIfTI array and RAS affine, as in version 0.4.0 (SimpleITK is LPS)."""
    import SimpleITK as sitk  # noqa: N813

    lps = np.diag([-1.0, -1.0, 1.0]) @ np.asarray(affine, dtype=np.float64)[:3]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(lps[:, 3].tolist())
    image.SetDirection((lps[:, :3] / spacing).flatten().tolist())
    return image


def _sitk_resample(data: np.ndarray, affine: np.ndarray, ref_shape: tuple[int, ...], ref_affine: np.ndarray, *,
                   nearest: bool) -> np.ndarray:
    """The resampling of version 0.4.0 (``lightning_modules.rim.app.resample_to_grid``), kept as the reference."""
    import SimpleITK as sitk  # noqa: N813

    moving = _to_sitk(np.asarray(data, dtype=np.float32), affine)
    reference = _to_sitk(np.zeros(ref_shape, dtype=np.float32), ref_affine)
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(moving, reference, sitk.Transform(), interpolator, 0.0)
    return np.transpose(sitk.GetArrayFromImage(out), (2, 1, 0)).astype(np.float64)


def _oblique(voxel_mm, angles_deg, origin_mm) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix() @ np.diag(voxel_mm)
    affine[:3, 3] = origin_mm
    return affine


def test_monai_resampling_gives_the_numbers_of_the_previous_simpleitk_resampling_on_an_oblique_case() -> None:
    rng = np.random.default_rng(4)
    qsm_affine, qsm_shape = _oblique((1.0, 1.1, 1.3), (12, -8, 25), (-18, -20, -15)), (36, 36, 30)
    flair_affine, flair_shape = _oblique((0.8, 0.8, 1.0), (-5, 10, 5), (-20, -24, -14)), (40, 44, 34)
    flair = (100 + 50 * rng.random(flair_shape)).astype(np.float32)
    labels = rng.integers(0, 4, flair_shape).astype(np.float32)
    for values, mode in ((flair, "bilinear"), (labels, "nearest")):
        old = _sitk_resample(values, flair_affine, qsm_shape, qsm_affine, nearest=mode == "nearest")
        new = transforms.resample_to_match(values.astype(np.float64), flair_affine, qsm_shape, qsm_affine, mode=mode)
        assert 0 < np.count_nonzero(old) < old.size  # the grids overlap in part: the border rule matters
        np.testing.assert_array_equal(new, old, err_msg=mode)

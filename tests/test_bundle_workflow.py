"""The shared MONAI-native workflow pieces (lightning_modules.bundle_workflow) on a tiny pipeline whose answer is
known: a network that doubles its input must write twice the input, on the input's exact grid and header."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.inferers import SimpleInferer
from monai.transforms import Compose, EnsureChannelFirstd

from lightning_modules.bundle_workflow import (
    BundleEvaluator,
    LoadNiftid,
    SaveOutputsd,
    checked_device,
    in_dataset_dir,
    load_weights,
    read_nifti_header,
)
from lightning_modules.io import InputError
from lightning_modules.monai_trust import BUNDLE_NAMES


class Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x


def _nifti(path, data, affine=None):
    affine = np.diag([-1.0, 1.2, 2.0, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))
    return path


def _degenerate(path):
    """A NIfTI whose sform is all zero (code 1) and that has no qform."""
    header = nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), np.eye(4)).header
    for row in ("srow_x", "srow_y", "srow_z"):
        header[row][:] = 0.0
    header["sform_code"], header["qform_code"] = 1, 0
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), None, header=header), str(path))
    return path


def _evaluator(cases, output_dir):
    pre = Compose([LoadNiftid("image", what={"image": "test image"}, ndim=3),
                   EnsureChannelFirstd("image", channel_dim="no_channel")])
    post = SaveOutputsd({"pred": "doubled.nii.gz"}, main_input="image", output_dir=output_dir)
    loader = DataLoader(Dataset(cases, transform=pre), batch_size=1, num_workers=0)
    return BundleEvaluator(device=torch.device("cpu"), val_data_loader=loader, network=Double(),
                           inferer=SimpleInferer(), postprocessing=post, label="double", main_input="image")


def test_evaluator_writes_the_network_output_on_the_input_grid(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(5, 6, 7)) for _ in range(2)]
    cases = [{"image": str(_nifti(tmp_path / f"case{i}.nii.gz", d))} for i, d in enumerate(data)]
    _evaluator(cases, tmp_path / "out").run()
    for i, d in enumerate(data):
        out = nib.load(str(tmp_path / "out" / f"case{i}_doubled.nii.gz"))
        ref = nib.load(cases[i]["image"])
        np.testing.assert_array_equal(out.affine, ref.affine)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out.get_fdata(), 2 * d.astype(np.float32), rtol=1e-6)
    printed = capsys.readouterr().out
    assert "[progress] 0% double: case0.nii.gz" in printed and "[progress] 50% double: case1.nii.gz" in printed
    assert "[progress] 100% done" in printed


def test_bad_input_inside_a_transform_is_one_line_and_exit_2(tmp_path, capsys):
    good = _nifti(tmp_path / "good.nii.gz", np.ones((4, 4, 4)))
    bad = _nifti(tmp_path / "bad.nii.gz", np.full((4, 4, 4), np.nan))
    with pytest.raises(SystemExit) as exit_info:
        _evaluator([{"image": str(good)}, {"image": str(bad)}], tmp_path / "out").run()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: test image file") and "NaN" in err[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_doubled.nii.gz"]


def test_read_nifti_header_checks_without_reading_data(tmp_path):
    path = _nifti(tmp_path / "a.nii.gz", np.zeros((3, 4, 5, 1)))
    shape, affine = read_nifti_header(path, ndim=3)
    assert shape == (3, 4, 5)
    np.testing.assert_array_equal(affine, nib.load(str(path)).affine)
    with pytest.raises(InputError, match="degenerate affine"):
        read_nifti_header(_degenerate(tmp_path / "d.nii.gz"), ndim=3)
    with pytest.raises(InputError, match="expected 4-D"):
        read_nifti_header(_nifti(tmp_path / "b.nii.gz", np.zeros((3, 3, 3))), ndim=4)


def test_outputs_take_the_input_header_or_a_fresh_one(tmp_path):
    image = nib.Nifti1Image(np.ones((4, 5, 6), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
    image.header["descrip"] = b"scanner QSM"
    image.header["cal_min"], image.header["cal_max"] = -0.2, 0.2
    source = tmp_path / "qsm.nii.gz"
    nib.save(image, str(source))
    save = SaveOutputsd({"map": "map.nii.gz", "labels": "labels.nii.gz"}, main_input="qsm", output_dir=tmp_path,
                        dtype={"labels": "uint8"}, input_header={"labels": False})
    save({"qsm": str(source), "map": torch.zeros(1, 4, 5, 6), "labels": torch.ones(1, 4, 5, 6)})
    kept, fresh = (nib.load(str(tmp_path / f"qsm_{name}.nii.gz")) for name in ("map", "labels"))
    assert kept.header["descrip"].tobytes().startswith(b"scanner QSM")
    assert float(kept.header["cal_max"]) == pytest.approx(0.2)
    assert float(fresh.header["cal_max"]) == 0.0 and fresh.get_data_dtype() == np.uint8
    for out in (kept, fresh):
        np.testing.assert_array_equal(out.affine, nib.load(str(source)).affine)
        assert out.shape == (4, 5, 6)


# ------------------------------------------------------------------ config-time helpers every bundle shares

@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_every_bundle_refuses_a_run_without_input_in_one_line(bundle, tmp_path, capsys):
    from monai.bundle import run as bundle_run

    from lightning_modules.bundle_app import bundle_root
    from lightning_modules.capability import main_input

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        bundle_run(config_file=f"{bundle_root(bundle)}/configs/inference.json", output_dir=str(tmp_path / "o"),
                   device="cpu")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (f"error: no input given; pass --{main_input(bundle)} FILE.nii.gz or "
                                               "--datalist FILE.json")
    assert not (tmp_path / "o").exists()


def test_checked_device_and_load_weights_are_one_line_errors(tmp_path, capsys):
    assert checked_device(None) == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert checked_device("cpu") == torch.device("cpu")
    with pytest.raises(SystemExit) as exit_info:
        checked_device("gpu0")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --device 'gpu0' is not a device; use cpu or cuda (cuda:0, ...)"
    network = load_weights(torch.nn.Linear(2, 1).train(), None, "cpu")
    assert not network.training  # no weights (a classical method): the network as it is, in eval mode
    with pytest.raises(SystemExit):
        load_weights(torch.nn.Linear(2, 1), tmp_path / "absent.pt", hint="use --method ndi")
    assert capsys.readouterr().err.strip().endswith("does not exist; use --method ndi")


def test_in_dataset_dir_takes_only_relative_given_paths_from_it():
    assert in_dataset_dir("a.nii.gz", "/data") == "/data/a.nii.gz"
    assert in_dataset_dir("/abs/a.nii.gz", "/data") == "/abs/a.nii.gz"
    assert in_dataset_dir("a.nii.gz", ".") == "a.nii.gz"
    assert in_dataset_dir(None, "/data") is None and in_dataset_dir("", "/data") == ""

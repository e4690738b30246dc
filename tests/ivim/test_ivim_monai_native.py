"""The ``ivim_mapping`` bundle as MONAI runs it (issue 26): MONAI's own checks pass, what ``inference.json`` names is
what runs (overriding ``network_def`` or ``inferer`` changes the maps), and each case is read once."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.testing as npt
import pytest
import torch
from monai.bundle import ConfigWorkflow, verify_net_in_out
from torch import nn

from lightning_modules.ivim.simulate import IVIMNET_B_VALUES
from tests.ivim.test_ivim_bundle import BIEXP_MAPS, BUNDLE, check_maps, run_bundle, write_case

CONFIGS = BUNDLE / "configs"
#: The parameters :class:`ConstantIvimNet` returns for every voxel (D, f, D* in mm²/s, S0 / S(b_min)).
CONSTANT = (0.0011, 0.125, 0.0375, 1.0)


class ConstantIvimNet(nn.Module):
    """A stand-in ``network_def``: the same parameters for every voxel, for the b-values it is built with."""

    def __init__(self, b_values_s_per_mm2, model: str = "biexp") -> None:
        super().__init__()
        self.model = model
        self.register_buffer("b_values", torch.as_tensor(list(b_values_s_per_mm2), dtype=torch.float32))
        self.bias = nn.Parameter(torch.zeros(1))  # a module with parameters, as a network has

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        return torch.tensor(CONSTANT, dtype=signal.dtype).expand(signal.shape[0], -1) + 0 * self.bias


def maps(folder: Path, stem: str = "sub-01_dwi") -> dict[str, np.ndarray]:
    return {name: np.asarray(nib.load(folder / f"{stem}_{name}.nii.gz").dataobj) for name in BIEXP_MAPS}


def test_monai_verify_net_in_out_passes_on_the_described_input_and_output() -> None:
    verify_net_in_out(net_id="network_def", meta_file=str(CONFIGS / "metadata.json"),
                      config_file=str(CONFIGS / "inference.json"), device="cpu")
    meta = json.loads((CONFIGS / "metadata.json").read_text(encoding="utf-8"))["network_data_format"]
    assert meta["inputs"]["image"]["num_channels"] == len(IVIMNET_B_VALUES)
    assert meta["outputs"]["pred"]["num_channels"] == len(BIEXP_MAPS)


def test_inference_config_passes_monai_workflow_checks() -> None:
    workflow = ConfigWorkflow(config_file=str(CONFIGS / "inference.json"), meta_file=str(CONFIGS / "metadata.json"),
                              logging_file=str(CONFIGS / "logging.conf"), workflow_type="infer")
    workflow.initialize()
    assert workflow.check_properties() == []


def test_overriding_network_def_changes_what_pretrained_mode_runs(tmp_path: Path) -> None:
    case = write_case(tmp_path / "in")
    run_bundle(**case, mode="pretrained", output_dir=str(tmp_path / "shipped"))
    run_bundle(**case, mode="pretrained", output_dir=str(tmp_path / "constant"), model_path="",
               network_def={"_target_": f"{__name__}.ConstantIvimNet", "b_values_s_per_mm2": list(IVIMNET_B_VALUES)})
    shipped, constant = check_maps(tmp_path / "shipped", "sub-01_dwi"), check_maps(tmp_path / "constant", "sub-01_dwi")
    for k, name in enumerate(BIEXP_MAPS[:3]):
        npt.assert_array_equal(constant[name], np.float32(CONSTANT[k]))
        assert not np.allclose(shipped[name], CONSTANT[k])


def test_overriding_the_inferer_changes_the_estimator(tmp_path: Path) -> None:
    case = write_case(tmp_path / "in")
    run_bundle(**case, method="lsq", output_dir=str(tmp_path / "lsq"))
    run_bundle(**case, method="lsq", inferer="$@inferers['pretrained']", output_dir=str(tmp_path / "override"))
    run_bundle(**case, mode="pretrained", output_dir=str(tmp_path / "pretrained"))
    lsq, override, pretrained = (maps(tmp_path / name) for name in ("lsq", "override", "pretrained"))
    for name in BIEXP_MAPS:
        npt.assert_array_equal(override[name], pretrained[name])
    assert not np.array_equal(override["D"], lsq["D"])


def test_each_case_is_read_once(tmp_path: Path, nifti_data_reads: list[str]) -> None:
    cases = [write_case(tmp_path / "in", name=f"sub-0{i}_dwi", seed=i) for i in (1, 2)]
    datalist = tmp_path / "in" / "datalist.json"
    datalist.write_text(json.dumps(cases))
    run_bundle(datalist=str(datalist), method="lsq", output_dir=str(tmp_path / "out"))
    expected = [Path(c[key]).name for c in cases for key in ("dwi", "mask")]
    # every image's voxels read exactly once, headers aside
    assert sorted(nifti_data_reads) == sorted(expected), nifti_data_reads
    for i in (1, 2):
        check_maps(tmp_path / "out", f"sub-0{i}_dwi")


def test_a_batch_whose_second_case_is_bad_in_its_headers_writes_nothing(tmp_path: Path, capsys) -> None:
    good = write_case(tmp_path / "in", name="a_dwi", seed=1)
    bad = write_case(tmp_path / "in", name="b_dwi", seed=2)
    Path(bad["bvals"]).write_text("0 10 20 50 100 200 400 600 800\n")  # 9 b-values for 11 volumes
    datalist = tmp_path / "in" / "datalist.json"
    datalist.write_text(json.dumps([good, bad]))
    with pytest.raises(SystemExit) as exit_info:
        run_bundle(datalist=str(datalist), method="lsq", output_dir=str(tmp_path / "out"))
    assert exit_info.value.code == 2
    assert "has 9 b-values but the DWI has 11 volumes" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

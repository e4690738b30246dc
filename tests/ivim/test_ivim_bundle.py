"""The ``ivim_mapping`` bundle end to end: command-line contract, exact grids, zeros, batch mode and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.testing as npt
import pytest
from monai.bundle import run

from lightning_modules.ivim.simulate import IVIMNET_B_VALUES, simulate_ivim

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "monai_bundles" / "ivim_mapping"
SHAPE = (6, 5, 4)
AFFINE = np.array([[1.9, 0.2, 0.0, -10.0], [-0.2, 1.9, 0.1, 5.0], [0.0, -0.1, 4.0, 2.5], [0.0, 0.0, 0.0, 1.0]])
BIEXP_MAPS = ("D", "f", "Dstar", "S0")


def run_bundle(**options) -> None:
    """Run the bundle's real ``inference.json`` in this process, as ``python -m monai.bundle run`` does."""
    run(config_file=str(BUNDLE / "configs" / "inference.json"), **options)


def write_case(folder: Path, *, b_values=IVIMNET_B_VALUES, name: str = "sub-01_dwi", seed: int = 0) -> dict:
    """A small oblique DWI (S0 = 800) with a mask that leaves out a corner and zero-signal voxels inside it."""
    b = np.asarray(b_values, dtype=np.float64)
    signal, _ = simulate_ivim(b, int(np.prod(SHAPE)), snr=40, seed=seed)
    dwi = (800.0 * signal).reshape(*SHAPE, b.size)
    dwi[0, 0, :] = 0.0
    mask = np.ones(SHAPE, dtype=np.uint8)
    mask[-2:, -2:, :] = 0
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(dwi.astype(np.float32), AFFINE), folder / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(mask, AFFINE), folder / f"{name}_mask.nii.gz")
    (folder / f"{name}.bval").write_text(" ".join(f"{v:g}" for v in b) + "\n")
    return {"dwi": str(folder / f"{name}.nii.gz"), "bvals": str(folder / f"{name}.bval"),
            "mask": str(folder / f"{name}_mask.nii.gz")}


def check_maps(output_dir: Path, stem: str, names=BIEXP_MAPS) -> dict[str, np.ndarray]:
    mask = np.ones(SHAPE, dtype=bool)
    mask[-2:, -2:, :] = False
    mask[0, 0, :] = False
    maps = {}
    for name in names:
        img = nib.load(output_dir / f"{stem}_{name}.nii.gz")
        assert img.shape == SHAPE
        npt.assert_array_equal(img.affine, AFFINE.astype(np.float32).astype(np.float64))
        data = np.asarray(img.dataobj)
        assert np.all(np.isfinite(data))
        npt.assert_array_equal(data[~mask], 0.0)
        maps[name] = data[mask]
    assert np.all((maps["f"] >= 0) & (maps["f"] <= 1)) if "f" in maps else True
    return maps


def test_command_line_least_squares_run_keeps_grid_and_zeros(tmp_path: Path) -> None:
    case = write_case(tmp_path / "in")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLE / "configs" / "inference.json"),
           "--dwi", case["dwi"], "--bvals", case["bvals"], "--mask", case["mask"], "--method", "lsq",
           "--output_dir", str(out), "--device", "cpu"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[progress] 100% done" in result.stdout
    maps = check_maps(out, "sub-01_dwi")
    assert 0.0005 < np.median(maps["D"]) < 0.003
    npt.assert_allclose(np.median(maps["S0"]), 800.0, rtol=0.05)


def test_pretrained_net_and_batch_mode(tmp_path: Path) -> None:
    cases = [write_case(tmp_path / "in", name=f"sub-0{i}_dwi", seed=i) for i in (1, 2)]
    datalist = tmp_path / "in" / "datalist.json"
    datalist.write_text(json.dumps([{k: Path(v).name for k, v in c.items()} for c in cases]))
    run_bundle(datalist=str(datalist), mode="pretrained", output_dir=str(tmp_path / "out"))
    for i in (1, 2):
        maps = check_maps(tmp_path / "out", f"sub-0{i}_dwi")
        assert 0.0005 < np.median(maps["D"]) < 0.003


def test_fit_mode_trains_on_the_data_and_triexp_lsq_writes_six_maps(tmp_path: Path) -> None:
    case = write_case(tmp_path / "in")
    run_bundle(**case, mode="fit", posterior_simulations=4096,
               output_dir=str(tmp_path / "fit"))  # the default posterior-mean fit, on fewer simulations
    check_maps(tmp_path / "fit", "sub-01_dwi")
    run_bundle(**case, model="triexp", method="lsq", output_dir=str(tmp_path / "tri"))
    check_maps(tmp_path / "tri", "sub-01_dwi", names=("D", "f1", "Dstar1", "f2", "Dstar2", "S0"))


@pytest.mark.parametrize("posterior_mean", [True, False])
def test_fit_mode_twice_on_the_same_study_gives_identical_maps_and_the_seed_changes_them(
        tmp_path: Path, posterior_mean: bool) -> None:
    case = write_case(tmp_path / "in")
    options = {"posterior_mean": posterior_mean, "posterior_simulations": 4096, "max_epochs": 2,
               "batches_per_epoch": 10}
    maps = []
    for name, seed in (("a", 0), ("b", 0), ("c", 5)):
        run_bundle(**case, **options, seed=seed, output_dir=str(tmp_path / name))
        maps.append(check_maps(tmp_path / name, "sub-01_dwi"))
    for name in BIEXP_MAPS:
        npt.assert_array_equal(maps[0][name], maps[1][name])
    assert any(not np.array_equal(maps[0][name], maps[2][name]) for name in BIEXP_MAPS)


def test_triexp_fit_mode_writes_six_maps(tmp_path: Path) -> None:
    case = write_case(tmp_path / "in")
    run_bundle(**case, model="triexp", posterior_simulations=4096, output_dir=str(tmp_path / "fit"))
    check_maps(tmp_path / "fit", "sub-01_dwi", names=("D", "f1", "Dstar1", "f2", "Dstar2", "S0"))


def _break(case: dict, problem: str, folder: Path) -> dict:
    img = nib.load(case["dwi"])
    dwi = np.asarray(img.dataobj, dtype=np.float32)
    if problem == "count":
        Path(case["bvals"]).write_text("0 10 20 50 100 200 400 600 800\n")
    elif problem == "negative":
        Path(case["bvals"]).write_text(" ".join(["-5"] + [f"{v:g}" for v in IVIMNET_B_VALUES[1:]]))
    elif problem == "3d":
        nib.save(nib.Nifti1Image(dwi[..., 0], AFFINE), case["dwi"])
    elif problem == "nan":
        dwi[1, 1, 1, 3] = np.nan
        nib.save(nib.Nifti1Image(dwi, AFFINE), case["dwi"])
    elif problem == "all_zero":
        nib.save(nib.Nifti1Image(np.zeros_like(dwi), AFFINE), case["dwi"])
    elif problem == "empty_mask":
        nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.uint8), AFFINE), case["mask"])
    elif problem == "mask_grid":
        nib.save(nib.Nifti1Image(np.ones((6, 5, 3), np.uint8), AFFINE), case["mask"])
    elif problem == "scheme":
        Path(case["bvals"]).write_text(" ".join(f"{v + 1:g}" for v in IVIMNET_B_VALUES))
        return {**case, "mode": "pretrained"}
    elif problem == "triexp_pretrained":
        return {**case, "mode": "pretrained", "model": "triexp"}
    return case


@pytest.mark.parametrize(
    ("problem", "words"),
    [("count", "has 9 b-values but the DWI has 11 volumes"), ("negative", "negative b-values"),
     ("3d", "is 3-D"), ("nan", "NaN"), ("all_zero", "no voxel with a positive signal"), ("empty_mask", "is empty"),
     ("mask_grid", "has shape"), ("scheme", "use --mode fit"), ("triexp_pretrained", "no weights for --model")],
)
def test_bad_input_is_one_line_error_without_output(tmp_path: Path, capsys, problem: str, words: str) -> None:
    case = _break(write_case(tmp_path / "in"), problem, tmp_path)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        run_bundle(**case, output_dir=str(out))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and words in err, err
    assert not out.exists() or not any(out.iterdir())

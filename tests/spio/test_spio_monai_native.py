"""The ``spio_quantification`` bundle as a MONAI user runs it (issue 26): MONAI's ``verify_net_in_out`` on the
``network_def``, ``ConfigWorkflow(...).check_properties() == []`` with the metadata, the config's ``inferer``,
``network_def`` and post-processing are what runs (overriding them, in this process and on the command line,
changes the map), and the map is bit-identical to ``predict_concentration`` (the benchmarks' entry point) on the
input's exact grid and header; with the shift average overridden away it is bit-identical to the 0.3.4 app's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.bundle import run as bundle_run
from monai.inferers import SimpleInferer

from lightning_modules.io import load_nifti
from lightning_modules.spio.app import load_network, predict_concentration
from lightning_modules.spio.inferers import SHIFT_AVERAGE_PX, FlipAverageInferer, ShiftAverageInferer
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.spio.simulation_refiner import SimulationRefined, SimulationRefiner, load_refiner
from lightning_modules.spio.transforms import (
    CONCENTRATION_FLOOR_UG_PER_MM3,
    OBJECT_CORE_FRACTION,
    OBJECT_LEVEL_SHRINKAGE,
    ConcentrationFloord,
    ObjectLevelShrinkd,
    shrink_object_levels,
)

BUNDLE = Path(__file__).resolve().parents[2] / "monai_bundles" / "spio_quantification"
CONFIG, META, MODEL = BUNDLE / "configs" / "inference.json", BUNDLE / "configs" / "metadata.json", \
    BUNDLE / "models" / "model.pt"
REFINER = BUNDLE / "models" / "refiner.pt"
needs_weights = pytest.mark.skipif(not MODEL.is_file(), reason="shipped weights not present")
FLOOR_0_3_4 = 0.1  # µg Fe/mm³, the floor of 0.3.3–0.4.0 (0.5.0: CONCENTRATION_FLOOR_UG_PER_MM3)


def _map(folder: Path, stem: str = "viewline_cyl") -> np.ndarray:
    return np.asarray(nib.load(str(folder / f"{stem}_concentration.nii.gz")).dataobj)


def _run(image: Path, output_dir: Path, **overrides) -> np.ndarray:
    bundle_run(config_file=str(CONFIG), image=str(image), output_dir=str(output_dir), device="cpu", **overrides)
    return _map(output_dir, image.name.removesuffix(".nii.gz"))


def _cli(image: Path, output_dir: Path, *extra: str) -> np.ndarray:
    result = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIG), "--device",
                             "cpu", "--image", str(image), "--output_dir", str(output_dir), *extra],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return _map(output_dir, image.name.removesuffix(".nii.gz"))


def _network_input(path: Path) -> np.ndarray:
    data, _, _ = load_nifti(path)
    return np.moveaxis(data[:, :, 0, :], -1, 0)


def _bits(array: np.ndarray) -> np.ndarray:
    assert array.dtype == np.float32
    return np.ascontiguousarray(array).view(np.uint32)


def _map_of_the_0_3_4_app(network: DeepSpio, path: Path) -> np.ndarray:
    """The map the bundle's 0.3.4 app wrote (``SpioQuantificationApp``, removed in 0.4.0), its steps kept here
    verbatim: float64 image → (2, nx, nz) float32, x and x-mirrored in one batch, mean of the map and the mirrored
    map, clamp at 0, the floor, (nx, nz, 1)."""
    x = torch.as_tensor(_network_input(path), dtype=torch.float32)[None]
    with torch.no_grad():
        both = network(torch.cat([x, x.flip(-2)]))
        concentration = 0.5 * (both[0, 0] + both[1, 0].flip(-2))
    concentration = concentration.clamp_min(0.0).numpy()
    floored = np.where(concentration < FLOOR_0_3_4, np.zeros((), concentration.dtype), concentration)
    return floored[:, :, None].astype(np.float32)


# ----------------------------------------------------------------------------------- the network interface

def test_verify_net_in_out_passes() -> None:
    from monai.bundle import verify_net_in_out

    verify_net_in_out(net_id="network_def", meta_file=str(META), config_file=str(CONFIG), device="cpu")


def test_config_with_metadata_passes_monai_property_check_without_input() -> None:
    workflow = ConfigWorkflow(config_file=str(CONFIG), meta_file=str(META), workflow_type="infer")
    workflow.initialize()
    assert workflow.check_properties() == []
    data_format = workflow.parser.get("_meta_#network_data_format")
    assert data_format["inputs"]["image"]["num_channels"] == 2
    assert data_format["inputs"]["image"]["spatial_shape"] == [128, 128]
    assert "ug Fe/mm3" in data_format["outputs"]["pred"]["channel_def"]["0"]
    assert workflow.parser.get("_meta_#version") == "0.14.1"


@needs_weights
def test_the_config_names_what_runs() -> None:
    parser = ConfigParser.load_config_file(str(CONFIG))
    config = ConfigParser(parser)
    inferer = config.get_parsed_content("inferer")
    assert isinstance(inferer, FlipAverageInferer) and isinstance(inferer.inferer, ShiftAverageInferer)
    assert isinstance(inferer.inferer.inferer, SimpleInferer)
    assert inferer.spatial_axis == 0 and inferer.inferer.spatial_axis == 0
    assert inferer.inferer.shifts == SHIFT_AVERAGE_PX == (-1, 0, 1)
    assert isinstance(config.get_parsed_content("network_def"), DeepSpio)
    steps = config.get_parsed_content("postprocessing").transforms
    floors = [t for t in steps if isinstance(t, ConcentrationFloord)]
    assert [t.floor_ug_per_mm3 for t in floors] == [CONCENTRATION_FLOOR_UG_PER_MM3] * 2
    # 0.9.0: the floored map is refined by simulate-and-compare (models/refiner.pt), then floored again
    refined = [i for i, t in enumerate(steps) if isinstance(t, SimulationRefined)]
    assert refined == [steps.index(floors[0]) + 1] and steps.index(floors[1]) == refined[0] + 1
    assert isinstance(steps[refined[0]].refiner, SimulationRefiner) and not steps[refined[0]].refiner.training
    assert steps[refined[0]].refiner is config.get_parsed_content("refiner")
    assert steps[refined[0]].refiner.lifts == tuple(config.get_parsed_content("refiner_lifts")) == ("ball",)
    # 0.14.0: the last step before the file, one level per object (session 41)
    shrinks = [i for i, t in enumerate(steps) if isinstance(t, ObjectLevelShrinkd)]
    assert shrinks == [steps.index(floors[1]) + 1]
    assert steps[shrinks[0]].strength == OBJECT_LEVEL_SHRINKAGE == config.get_parsed_content("object_shrinkage") == 0.5
    assert steps[shrinks[0]].core_fraction == OBJECT_CORE_FRACTION == 0.5
    evaluator = config.get_parsed_content("evaluator")
    # 0.11.0: the weights are chosen per image by its noise model around the inferer (tests/spio/test_noise_adaptive.py)
    assert evaluator.inferer.inferer is config.get_parsed_content("inferer")
    assert evaluator.network is config.get_parsed_content("network")


def test_without_input_the_run_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bundle_run(config_file=str(CONFIG), output_dir=str(tmp_path / "o"), device="cpu")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: no input given; pass --image FILE.nii.gz or --datalist FILE.json"
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------ the map, bit for bit

@needs_weights
def test_map_is_predict_concentrations_bit_for_bit_and_the_0_3_4_apps_without_the_shift_average(
        cylinder_image, tmp_path) -> None:
    path, affine, _ = cylinder_image
    source = nib.load(str(path))
    source.header["descrip"] = b"View Line phantom, scanner units"
    source.header.set_xyzt_units("mm", "sec")
    nib.save(nib.Nifti1Image(np.asarray(source.dataobj), affine, header=source.header), str(path))
    written = _run(path, tmp_path / "out")
    network = load_network(DeepSpio(), MODEL)
    assert written.shape == (128, 128, 1) and written.dtype == np.float32
    assert written.max() > 1.0 and np.count_nonzero(written) > 0
    refiner = load_refiner(str(REFINER))
    np.testing.assert_array_equal(_bits(predict_concentration(network, _network_input(path),
                                                              refiner=refiner)[:, :, None]),
                                  _bits(written))  # the benchmarks' entry point is the same computation
    unrefined = _run(path, tmp_path / "unrefined", refine=False, object_shrinkage=0)
    np.testing.assert_array_equal(_bits(predict_concentration(network, _network_input(path),
                                                              object_shrinkage=0.0)[:, :, None]),
                                  _bits(unrefined))  # --refine false --object_shrinkage 0: 0.8.x's map
    assert np.abs(unrefined - written).max() > 1e-3  # the refinement changes the map
    unshrunk = _run(path, tmp_path / "unshrunk", object_shrinkage=0)  # 0.13.0's map
    np.testing.assert_array_equal(_bits(predict_concentration(network, _network_input(path), refiner=refiner,
                                                              object_shrinkage=0.0)[:, :, None]), _bits(unshrunk))
    np.testing.assert_array_equal(_bits(shrink_object_levels(unshrunk[:, :, 0])[:, :, None]), _bits(written))
    assert np.abs(unshrunk - written).max() > 1e-3  # 0.14.0: one level per object changes the map
    np.testing.assert_array_equal(written > 0, unshrunk > 0)  # … but not its support
    flip_only = _run(path, tmp_path / "flip_only", floor_ug_per_mm3=FLOOR_0_3_4, refine=False, object_shrinkage=0,
                     **{"inferer#inferer": SimpleInferer()})
    np.testing.assert_array_equal(_bits(flip_only), _bits(_map_of_the_0_3_4_app(network, path)))
    assert np.abs(flip_only - unrefined).max() > 1e-3  # the shift average changes the map
    output = nib.load(str(tmp_path / "out" / "viewline_cyl_concentration.nii.gz"))
    source = nib.load(str(path))
    assert np.array_equal(output.affine, source.affine) and np.array_equal(output.get_sform(), source.affine)
    np.testing.assert_allclose(output.get_qform(), source.affine, atol=1e-6)
    for field in ("srow_x", "srow_y", "srow_z", "xyzt_units", "descrip"):  # the input's header, not a fresh one
        assert np.array_equal(output.header[field], source.header[field]), field
    np.testing.assert_array_equal(output.header["pixdim"][1:4], source.header["pixdim"][1:4])


@needs_weights
def test_predict_concentration_is_the_inferer_and_the_floor() -> None:
    from lightning_modules.spio.data import random_sample

    network = load_network(DeepSpio(), MODEL)
    image = random_sample(987, 3)[0].numpy()
    x = torch.as_tensor(image)[None]
    with torch.no_grad():
        averaged = FlipAverageInferer(ShiftAverageInferer(SimpleInferer(), shifts=(-1, 0, 1)))(x, network)
        flipped = FlipAverageInferer(SimpleInferer())(x, network)
        single = SimpleInferer()(x, network)
    floor = ConcentrationFloord("pred")
    np.testing.assert_array_equal(_bits(predict_concentration(network, image)),
                                  _bits(shrink_object_levels(floor({"pred": averaged})["pred"][0, 0].numpy())))
    np.testing.assert_array_equal(_bits(predict_concentration(network, image, shifts_px=(0,), object_shrinkage=0.0)),
                                  _bits(floor({"pred": flipped})["pred"][0, 0].numpy()))
    np.testing.assert_array_equal(_bits(predict_concentration(network, image, flip_average=False, shifts_px=(0,),
                                                              floor_ug_per_mm3=0.0, object_shrinkage=0.0)),
                                  _bits(single[0, 0].clamp_min(0.0).numpy()))


# ----------------------------------------------------------------------------- overrides change what runs

@needs_weights
def test_overriding_the_inferer_changes_what_runs(cylinder_image, tmp_path: Path) -> None:
    path, _, _ = cylinder_image
    network = load_network(DeepSpio(), MODEL)
    image = _network_input(path)
    shipped = _run(path, tmp_path / "a")
    plain = _run(path, tmp_path / "b", inferer=SimpleInferer())
    z_mirror = _run(path, tmp_path / "c", **{"inferer#spatial_axis": 1})
    np.testing.assert_array_equal(_bits(plain[:, :, 0]), _bits(predict_concentration(network, image,
                                                                                     flip_average=False,
                                                                                     shifts_px=(0,),
                                                                                     refiner=load_refiner(
                                                                                         str(REFINER)))))
    assert np.abs(plain - shipped).max() > 1e-3
    assert np.abs(z_mirror - shipped).max() > 1e-3 and np.abs(z_mirror - plain).max() > 1e-3
    cli = _cli(path, tmp_path / "d", "--inferer", "{'_target_': 'SimpleInferer'}")
    # the command line is another process, whose thread count may differ from this one's: the refiner's convolutions
    # then sum in another order (a few pixels 1-8 ulp apart, measured under `make test`); same map otherwise
    np.testing.assert_allclose(cli, plain, rtol=1e-6, atol=0)
    assert np.abs(cli - shipped).max() > 1e-3


class DoubledDeepSpio(DeepSpio):
    """DeepSPIO (the shipped weights fit it) whose map is doubled: an overriding network that is easy to predict."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return 2.0 * super().forward(image)


@needs_weights
def test_overriding_the_network_def_changes_what_runs(cylinder_image, tmp_path: Path) -> None:
    path, _, _ = cylinder_image
    shipped = _run(path, tmp_path / "a")
    doubled = _run(path, tmp_path / "b", network_def=DoubledDeepSpio())
    expected = predict_concentration(load_network(DoubledDeepSpio(), MODEL), _network_input(path),
                                     refiner=load_refiner(str(REFINER)))
    np.testing.assert_array_equal(_bits(doubled[:, :, 0]), _bits(expected))
    assert not np.array_equal(doubled, shipped)


def test_network_def_override_on_the_command_line(cylinder_image, tmp_path: Path) -> None:
    """A 1×1 convolution averaging the two channels, without weights, replaces DeepSPIO: the map is the floored
    channel mean (the flip average of a mirror-symmetric operation is itself; `--refine false`: no refinement;
    `--object_shrinkage 0`: no level per object)."""
    path, _, _ = cylinder_image
    mean = "$torch.nn.Conv2d(2, 1, 1, bias=False).apply(lambda m: torch.nn.init.constant_(m.weight, 0.5))"
    written = _cli(path, tmp_path / "o", "--network_def", mean, "--model_path", "", "--refine", "false",
                   "--object_shrinkage", "0")
    x = torch.as_tensor(_network_input(path), dtype=torch.float32)
    expected = torch.where(0.5 * x[0] + 0.5 * x[1] < CONCENTRATION_FLOOR_UG_PER_MM3, 0.0, 0.5 * x[0] + 0.5 * x[1])
    np.testing.assert_allclose(written[:, :, 0], expected.numpy(), rtol=1e-6)
    assert written.max() > 100  # image intensities (×1234), not concentrations: the override ran


def test_a_bad_object_shrinkage_is_refused_in_one_line(cylinder_image, tmp_path: Path, capsys) -> None:
    path, _, _ = cylinder_image
    for value, expected in (("1.5", "outside 0 ≤ value ≤ 1"), ("half", "is not a number")):
        with pytest.raises(SystemExit) as exit_info:
            bundle_run(config_file=str(CONFIG), image=str(path), output_dir=str(tmp_path / "o"), device="cpu",
                       object_shrinkage=value)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --object_shrinkage") and expected in err and "\n" not in err
    assert not list((tmp_path / "o").glob("*.nii.gz"))


def test_dataset_dir_is_where_relative_inputs_are_read_from(cylinder_image, tmp_path: Path) -> None:
    path, _, _ = cylinder_image
    bundle_run(config_file=str(CONFIG), dataset_dir=str(path.parent), image=path.name, device="cpu",
               output_dir=str(tmp_path / "out"), network_def=DeepSpio(), model_path="")
    assert _map(tmp_path / "out").shape == (128, 128, 1)


# ---------------------------------------------------------------------------------------- the inferer alone

def test_flip_average_inferer_mirrors_the_named_axis() -> None:
    x = torch.arange(24.0).reshape(1, 2, 3, 4)
    first = lambda t: t[:, :1] * torch.arange(1.0, 5.0)  # noqa: E731  (weights along the last axis: not symmetric)
    np.testing.assert_array_equal(FlipAverageInferer(spatial_axis=0)(x, first).numpy(), first(x).numpy())
    along_z = FlipAverageInferer(spatial_axis=1)(x, first)
    np.testing.assert_allclose(along_z.numpy(), (0.5 * (first(x) + first(x.flip(3)).flip(3))).numpy())
    assert not torch.equal(along_z, first(x))
    with pytest.raises(ValueError, match="spatial_axis 2 does not exist"):
        FlipAverageInferer(spatial_axis=2)(x, first)

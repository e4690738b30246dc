"""Bundle command lines, output names and the modules' option helpers, against DESIGN.md's contracts."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
from IVIMMappingLib.options import (
    b_values_from_sequence_index,
    choose_b_values,
    parse_b_values,
    stack_frames,
    write_bvals,
)
from QSMInversionLib.options import qsm_options
from QSMSlicerCommon.capability import describe
from QSMSlicerCommon.display import DIVERGING, PRESETS, output_node_name, preset_for
from QSMSlicerCommon.install import read_requirements
from QSMSlicerCommon.options import (
    IvimOptions,
    QsmOptions,
    RimOptions,
    SpioOptions,
    build_command,
    expected_outputs,
    input_stem,
)
from QSMSlicerCommon.runner import stage_volumes
from QSMSlicerCommon.workspace import TemporaryWorkspace
from RimLesionDetectionLib.lesions import lesion_centroid_ras, read_lesion_table, summarize_lesions
from RimLesionDetectionLib.options import rim_options
from slicer_test_support import EXTENSION_DIR, MODULES, REPO
from SPIOQuantificationLib.options import view_line_layout_problem

PY, BUNDLES, OUT = "PythonSlicer", Path("/ext/monai_bundles"), Path("/tmp/run/outputs")


def head(bundle: str) -> list[str]:
    return [PY, "-m", "monai.bundle", "run", "--config_file", str(BUNDLES / bundle / "configs" / "inference.json")]


def test_qsm_command_has_exactly_the_contract_options() -> None:
    options = QsmOptions(field=Path("/in/sub-01_field.nii.gz"), mask=Path("/in/mask_brain.nii.gz"), field_unit="rad",
                         b0_tesla=3.0, te_ms=20.0, b0_dir=(0.0, 0.1, 1.0), method="tkd")
    assert build_command(options, python=PY, bundles_dir=BUNDLES, output_dir=OUT) == head("qsm_dipole_inversion") + [
        "--field", "/in/sub-01_field.nii.gz", "--output_dir", str(OUT), "--mask", "/in/mask_brain.nii.gz",
        "--field_unit", "rad", "--b0_tesla", "3.0", "--te_ms", "20.0", "--b0_dir", "[0.0,0.1,1.0]",
        "--method", "tkd",
    ]
    minimal = QsmOptions(field=Path("/in/f.nii"))
    assert build_command(minimal, python=PY, bundles_dir=BUNDLES, output_dir=OUT)[6:] == [
        "--field", "/in/f.nii", "--output_dir", str(OUT), "--field_unit", "ppm"]
    assert expected_outputs(options, OUT) == {"chi": OUT / "sub-01_field_chi.nii.gz"}


def test_ivim_command_and_outputs_per_model() -> None:
    options = IvimOptions(dwi=Path("/in/dwi.nii.gz"), bvals=Path("/in/dwi.bval"), model="triexp", method="lsq")
    assert build_command(options, python=PY, bundles_dir=BUNDLES, output_dir=OUT) == head("ivim_mapping") + [
        "--dwi", "/in/dwi.nii.gz", "--output_dir", str(OUT), "--bvals", "/in/dwi.bval", "--model", "triexp",
        "--mode", "fit", "--method", "lsq",
    ]
    assert [p.name for p in expected_outputs(options, OUT).values()] == [
        "dwi_D.nii.gz", "dwi_f1.nii.gz", "dwi_Dstar1.nii.gz", "dwi_f2.nii.gz", "dwi_Dstar2.nii.gz", "dwi_S0.nii.gz"]
    biexp = IvimOptions(dwi=Path("/in/dwi.nii"), bvals=Path("/in/b.bval"))
    assert [p.name for p in expected_outputs(biexp, OUT).values()] == [
        "dwi_D.nii.gz", "dwi_f.nii.gz", "dwi_Dstar.nii.gz", "dwi_S0.nii.gz"]
    with pytest.raises(ValueError, match="unknown model 'mono' for ivim_mapping; use one of biexp, triexp"):
        expected_outputs(IvimOptions(dwi=Path("d.nii"), bvals=Path("b.bval"), model="mono"), OUT)


def test_spio_and_rim_commands_and_outputs() -> None:
    spio = SpioOptions(image=Path("/in/viewline.nii.gz"))
    assert build_command(spio, python=PY, bundles_dir=BUNDLES, output_dir=OUT) == head("spio_quantification") + [
        "--image", "/in/viewline.nii.gz", "--output_dir", str(OUT), "--object_shrinkage", "0.5"]  # the bundle's default
    tubes = SpioOptions(image=Path("/in/viewline.nii.gz"), object_shrinkage=0.0)  # 0.13.0's map, for bench tubes
    assert build_command(tubes, python=PY, bundles_dir=BUNDLES, output_dir=OUT)[-2:] == ["--object_shrinkage", "0.0"]
    assert expected_outputs(spio, OUT) == {"concentration": OUT / "viewline_concentration.nii.gz"}
    rim = RimOptions(qsm=Path("/in/qsm.nii.gz"), flair=Path("/in/flair.nii.gz"), lesion_mask=Path("/in/les.nii.gz"),
                     threshold=0.4)
    assert build_command(rim, python=PY, bundles_dir=BUNDLES, output_dir=OUT) == head("rim_lesion_detection") + [
        "--qsm", "/in/qsm.nii.gz", "--output_dir", str(OUT), "--flair", "/in/flair.nii.gz",
        "--lesion_mask", "/in/les.nii.gz", "--threshold", "0.4"]
    assert expected_outputs(rim, OUT) == {"lesions": OUT / "qsm_lesions.csv",
                                          "rim_labels": OUT / "qsm_rim_labels.nii.gz"}


@pytest.mark.parametrize("name", ["a.nii.gz", "a.b.nii", "sub-01_T2*.nii.gz", "noext", "x.mgz"])
def test_input_stem_follows_the_bundles_rule(name: str) -> None:
    from lightning_modules.io import nifti_stem

    assert input_stem(f"/d/{name}") == nifti_stem(f"/d/{name}")


def test_module_requirements_are_the_pyproject_specs() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    declared = set(pyproject["project"]["dependencies"])
    per_module = {m: set(read_requirements(EXTENSION_DIR / m / "Resources" / "Requirements" / f"{m}.txt"))
                  for m in MODULES}
    for module, specs in per_module.items():
        assert specs <= declared, f"{module}: not in pyproject.toml: {sorted(specs - declared)}"
        assert not any(s.startswith(("torch", "SimpleITK")) for s in specs), "Slicer provides torch and SimpleITK"
    common = set.intersection(*per_module.values())
    assert {"monai>=1.4", "nibabel>=5", "pytorch-lightning>=2.2", "fire>=0.5"} <= common
    assert per_module["SPIOQuantification"] - common == {"PyWavelets>=1.4"}
    assert per_module["RimLesionDetection"] - common == {"pyradiomics>=3.0", "scikit-image>=0.21"}
    left_out = {d.split(">")[0].split("=")[0] for d in declared - set.union(*per_module.values())}
    # scikit-learn: rim training and scoring only (the shipped calibration is two numbers in the weights)
    assert left_out <= {"torch", "SimpleITK", "nilearn", "matplotlib", "scikit-learn"}, left_out


def test_every_volume_output_has_a_display_preset() -> None:
    assert set(PRESETS) == {options.BUNDLE for options in (QsmOptions, IvimOptions, SpioOptions, RimOptions)}
    for bundle in PRESETS:
        volume_outputs = {name for name, spec in describe(bundle)["outputs"].items()
                          if spec["suffix"].endswith(".nii.gz")}
        assert set(PRESETS[bundle]) == volume_outputs
    assert preset_for("rim_lesion_detection", "rim_labels").labelmap
    assert preset_for("rim_lesion_detection", "lesions") is None
    chi = preset_for("qsm_dipole_inversion", "chi")
    assert chi.color_node_id == DIVERGING and chi.display_range[0] == -chi.display_range[1] < 0
    assert chi.unit == "ppm"


def test_ivim_node_names_carry_units() -> None:
    names = {o: output_node_name("dwi", o, preset_for("ivim_mapping", o))
             for o in ("D", "f", "Dstar", "f1", "Dstar1", "f2", "Dstar2", "S0")}
    assert names == {"D": "dwi_D_mm2_per_s", "f": "dwi_f_fraction", "Dstar": "dwi_Dstar_mm2_per_s",
                     "f1": "dwi_f1_fraction", "Dstar1": "dwi_Dstar1_mm2_per_s", "f2": "dwi_f2_fraction",
                     "Dstar2": "dwi_Dstar2_mm2_per_s", "S0": "dwi_S0"}
    assert output_node_name("qsm", "rim_labels", preset_for("rim_lesion_detection", "rim_labels")) == "qsm_rim_labels"


def test_qsm_panel_options() -> None:
    hz = qsm_options(Path("f.nii.gz"), None, field_unit="hz", b0_tesla=7.0, te_ms=10.0, method="default")
    assert (hz.b0_tesla, hz.te_ms, hz.method) == (7.0, None, None)
    ppm = qsm_options(Path("f.nii.gz"), Path("m.nii.gz"), field_unit="ppm", b0_tesla=3.0, te_ms=10.0, method="ndi")
    assert (ppm.b0_tesla, ppm.te_ms, ppm.method, ppm.mask) == (None, None, "ndi", Path("m.nii.gz"))
    with pytest.raises(ValueError, match="unknown field unit"):
        qsm_options(Path("f.nii.gz"), None, field_unit="tesla", b0_tesla=3.0, te_ms=1.0, method="ndi")


def test_b_values_parsing_and_file(tmp_path: Path) -> None:
    values = parse_b_values(" 0,10  20\n50 ", source="the b-values field")
    assert values == [0.0, 10.0, 20.0, 50.0]
    assert write_bvals(values, tmp_path / "x.bval").read_text() == "0 10 20 50\n"
    with pytest.raises(ValueError, match="the b-values field: 'ten' is not a number"):
        parse_b_values("0 ten", source="the b-values field")
    with pytest.raises(ValueError, match="negative"):
        parse_b_values("0 -5", source="labels")
    with pytest.raises(ValueError, match="holds no b-values"):
        parse_b_values("  ", source="labels")


def test_view_line_layout_and_rim_helpers(tmp_path: Path) -> None:
    assert view_line_layout_problem((1, 128, 128, 2), "v") is None
    assert "2 channels" in view_line_layout_problem((1, 128, 128, 3), "v")
    assert rim_options(Path("q"), Path("f"), Path("l"), threshold=0.0).threshold is None
    assert rim_options(Path("q"), Path("f"), Path("l"), threshold=0.3).threshold == 0.3
    table = tmp_path / "qsm_lesions.csv"
    table.write_text("lesion_id,n_voxels,volume_mm3,centroid_x,centroid_y,centroid_z,rim_probability,rim_positive\n"
                     "1,10,10.0,0,0,0,0.9,1\n2,12,12.0,1.5,-2,3.25,0.1,0\n3,8,8.0,2,2,2,0.7,True\n")
    cell_text, n_rows = read_lesion_table(table)
    assert summarize_lesions([cell_text(r, "rim_positive") for r in range(n_rows)]) == "3 lesion(s), 2 rim+"
    assert lesion_centroid_ras(cell_text, 1) == (1.5, -2.0, 3.25)
    with pytest.raises(ValueError, match="row 0 of the lesion table has no numeric"):
        lesion_centroid_ras(lambda row, column: "n/a", 0)
    bad = tmp_path / "other.csv"
    bad.write_text("lesion_id,rim_positive\n1,0\n")
    with pytest.raises(ValueError, match="has no centroid_x, centroid_y, centroid_z column"):
        read_lesion_table(bad)


def test_b_values_come_from_the_file_then_the_typed_text_then_the_series(tmp_path: Path) -> None:
    bval = tmp_path / "dwi.bval"
    bval.write_text("0 50\n800\n")
    assert choose_b_values(file_path=bval, typed="1 2 3", series_labels="4 5", series_name="dwi") == [0, 50, 800]
    assert choose_b_values(file_path=Path(), typed="1, 2", series_labels="4 5", series_name="dwi") == [1, 2]
    assert choose_b_values(file_path=None, typed=" ", series_labels="4 5", series_name="dwi") == [4, 5]
    with pytest.raises(ValueError, match="'dwi' has no b-values stored with it; choose a b-value file"):
        choose_b_values(file_path=Path(), typed="", series_labels=None, series_name="dwi")
    with pytest.raises(ValueError, match="b-value file .*missing.bval' does not exist"):
        choose_b_values(file_path=tmp_path / "missing.bval", typed="", series_labels=None, series_name="dwi")
    assert b_values_from_sequence_index("bvalue", "", ["0", "800"]) == "0 800"
    assert b_values_from_sequence_index("frame", "s/mm2", ["0", "800"]) == "0 800"
    assert b_values_from_sequence_index("time", "s", ["0", "1"]) is None
    assert b_values_from_sequence_index("frame", "", ["0", "1"]) is None


def test_sequence_frames_stack_along_the_last_axis() -> None:
    import numpy as np

    frames = [np.full((2, 3, 4), b, dtype=np.float32) for b in (0.0, 1.0, 2.0)]
    stacked = stack_frames(frames, "dwi")
    assert stacked.shape == (2, 3, 4, 3) and stacked[1, 2, 3].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="have shapes"):
        stack_frames([np.zeros((2, 3, 4)), np.zeros((2, 3, 5))], "dwi")
    with pytest.raises(ValueError, match="has 1 frame"):
        stack_frames([np.zeros((2, 3, 4))], "dwi")


def test_stage_volumes_names_files_after_nodes(tmp_path: Path) -> None:
    written = []

    def write(node: str, path: Path) -> Path:
        path.write_text(node)
        written.append(path)
        return path

    with TemporaryWorkspace(tmp_path) as workspace:
        staged = stage_volumes(workspace, {"qsm": "brain QSM", "flair": "brain QSM", "mask": None}, write,
                               main="qsm", name_of=str)
        assert staged["qsm"].name == "brain_QSM.nii.gz"
        assert staged["flair"].name == "flair_brain_QSM.nii.gz"
        assert staged["mask"] is None
        assert all(p.parent == workspace.inputs for p in written)
    assert not workspace.exists and list(tmp_path.iterdir()) == []

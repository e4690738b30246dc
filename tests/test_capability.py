"""Every reader of a capability description (``monai_bundles/<bundle>/configs/capability.json``) agrees with it.

The description is the one place a suffix, a unit, a method name, a choice or a default is written; these tests
fail when a reader says otherwise: the bundle side (``lightning_modules.capability``, ``inference.json``, the
apps' written files, the constants the solvers keep), the Slicer side (``QSMSlicerCommon.capability``, the
options dataclasses, the panels' choices, display presets and ``.ui`` files) and the docs (each bundle's
``docs/README.md``, the Slicer README, ``../shared/DESIGN.md``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lightning_modules import capability
from lightning_modules.monai_trust import BUNDLE_NAMES

REPO = Path(__file__).resolve().parents[1]
EXTENSION = REPO / "QSMSlicerExtension"
MODULE_OF = {"qsm_dipole_inversion": "QSMInversion", "ivim_mapping": "IVIMMapping",
             "spio_quantification": "SPIOQuantification", "rim_lesion_detection": "RimLesionDetection"}
sys.path[:0] = [str(EXTENSION), *(str(EXTENSION / module) for module in MODULE_OF.values())]

from IVIMMappingLib import options as ivim_lib  # noqa: E402  (the Slicer packages are found through sys.path)
from QSMInversionLib import options as qsm_lib  # noqa: E402
from QSMSlicerCommon import capability as slicer_capability  # noqa: E402
from QSMSlicerCommon.display import PRESETS  # noqa: E402
from QSMSlicerCommon.options import IvimOptions, QsmOptions, RimOptions, SpioOptions  # noqa: E402
from QSMSlicerCommon.process import PROGRESS_PREFIX, parse_progress  # noqa: E402
from RimLesionDetectionLib import lesions as rim_lesions_lib  # noqa: E402

OPTIONS_CLASSES = (QsmOptions, IvimOptions, SpioOptions, RimOptions)
#: Literal keys of an ``inference.json`` that are workflow plumbing or ``--help``, not options of the capability.
WORKFLOW_LITERALS = {"dataset_dir", "save_execute_config", "help"}
#: Settings in an ``inference.json`` that its capability.json does not describe yet: each for its bundle's owner to
#: describe (a user option) or to move out of the top level (fixed by the weights); remove the entry then.
NOT_YET_DESCRIBED = {"rim_lesion_detection": {"n_radiomics", "n_members"}}


def description(bundle: str) -> dict:
    return capability.describe(bundle)


def option_combinations(bundle: str) -> list[dict]:
    """Every combination of the values of the options that decide which outputs are written."""
    deciding = sorted({option for spec in description(bundle)["outputs"].values() for option in spec.get("when", {})})
    values = [capability.choices(bundle, option) for option in deciding]
    return [dict(zip(deciding, combination, strict=True)) for combination in itertools.product(*values)]


# --- the description itself -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_description_follows_the_schema(bundle: str) -> None:
    found = description(bundle)
    assert set(found) == {"bundle", "title", "description", "main_input", "inputs", "options", "outputs"}
    assert found["bundle"] == bundle and found["title"] and found["description"]
    assert found["main_input"] == next(iter(found["inputs"]))
    for name, spec in found["inputs"].items():
        assert {"help", "kind", "required"} <= set(spec) <= {"help", "kind", "required", "unit"}, name
        assert spec["kind"] in ("volume", "labelmap", "text") and isinstance(spec["required"], bool), name
    assert not set(found["inputs"]) & set(found["options"])
    for name, spec in found["options"].items():
        assert {"help", "default"} <= set(spec) <= {"help", "default", "choices", "unit", "requires"}, name
        if "choices" in spec:
            assert spec["choices"] and spec["default"] in spec["choices"], name
        for choice, needed in spec.get("requires", {}).items():
            assert choice in spec["choices"] and needed, (name, choice)
            assert set(needed) <= set(found["options"]) - {name}, (name, choice)
    for name, spec in found["outputs"].items():
        assert {"suffix", "unit", "help", "display"} <= set(spec) <= {"suffix", "unit", "help", "display", "when",
                                                                         "columns"}
        assert spec["suffix"].startswith(name + "."), name
        if "columns" in spec:
            assert spec["suffix"].endswith(".csv") and spec["columns"], name
            assert all(set(column) == {"name", "unit", "help"} and column["help"] for column in spec["columns"]), name
            assert len({column["name"] for column in spec["columns"]}) == len(spec["columns"]), name
        if spec["display"] is not None:
            assert set(spec["display"]) == {"color_node_id", "range", "labelmap", "node_unit"}, name
            assert spec["display"]["range"] is None or len(spec["display"]["range"]) == 2, name
        for option, values in spec.get("when", {}).items():
            assert set(values) <= set(capability.choices(bundle, option)), (name, option)


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_the_slicer_reader_reads_what_the_bundle_reader_reads(bundle: str) -> None:
    assert slicer_capability.describe(bundle) == description(bundle)
    assert slicer_capability.bundles() == tuple(sorted(BUNDLE_NAMES))
    for options in option_combinations(bundle):
        assert slicer_capability.output_suffixes(bundle, **options) == capability.outputs(bundle, **options)
    for option, spec in description(bundle)["options"].items():
        assert slicer_capability.default(bundle, option) == capability.default(bundle, option) == spec["default"]
        assert slicer_capability.choices(bundle, option) == capability.choices(bundle, option)
        for choice in spec.get("choices", ()):
            needed = tuple(spec.get("requires", {}).get(choice, ()))
            assert slicer_capability.requires(bundle, option, choice) == capability.requires(bundle, option, choice)
            assert capability.requires(bundle, option, choice) == needed, (option, choice)
    for output, spec in description(bundle)["outputs"].items():
        if "columns" in spec:
            names = tuple(column["name"] for column in spec["columns"])
            assert slicer_capability.columns(bundle, output) == capability.columns(bundle, output) == names


# --- bundle side ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_inference_config_options_are_the_described_ones(bundle: str) -> None:
    from monai.bundle import ConfigParser

    config = json.loads((REPO / "monai_bundles" / bundle / "configs" / "inference.json").read_text(encoding="utf-8"))
    found = description(bundle)
    described = set(found["inputs"]) | set(found["options"])
    assert described <= set(config), "described options that --key cannot set (no top-level key in inference.json)"
    literals = {key for key, value in config.items()
                if not isinstance(value, dict | list) and not (isinstance(value, str) and value[:1] in "$@%")}
    undescribed = literals - WORKFLOW_LITERALS - NOT_YET_DESCRIBED.get(bundle, set()) - described
    assert not undescribed, "settings in inference.json that capability.json does not describe"
    parser = ConfigParser(config)
    for name, spec in found["options"].items():
        value = config[name]
        if isinstance(value, str) and value.startswith("$"):
            value = parser.get_parsed_content(name)
        if value is None or isinstance(value, str | int | float | bool):
            assert value == spec["default"], f"--{name}: inference.json {value!r}, capability.json {spec['default']!r}"
    for name, text in config.get("options", {}).items():  # a copy of the help texts, until --help replaces it
        if name != "help":
            assert name in described, f"--{name} has help in inference.json but no entry in capability.json"
            assert text == (found["inputs"].get(name) or found["options"][name])["help"], name


def test_the_solvers_offer_the_described_choices() -> None:
    from lightning_modules import physics
    from lightning_modules.qsm import methods

    assert tuple(methods.METHODS) == capability.choices("qsm_dipole_inversion", "method")
    assert tuple(physics.FIELD_UNITS) == capability.choices("qsm_dipole_inversion", "field_unit")


QSM = "qsm_dipole_inversion"


@pytest.mark.parametrize("unit", capability.choices(QSM, "field_unit"))
def test_field_units_need_exactly_the_described_options(unit: str) -> None:
    """The conversion to ppm works with what the description says a unit needs, and fails without any of it."""
    from lightning_modules import physics
    from lightning_modules.io import InputError
    from lightning_modules.qsm.transforms import field_scale

    needed = capability.requires(QSM, "field_unit", unit)
    physics.field_scale_to_ppm(unit, **dict.fromkeys(needed, 3.0))
    assert field_scale({"field_unit": unit, **dict.fromkeys(needed, "3")}, "f.nii.gz") > 0
    for missing in needed:
        given = {name: 3.0 for name in needed if name != missing}
        with pytest.raises(ValueError, match=f"needs --{missing}"):
            physics.field_scale_to_ppm(unit, **given)
        with pytest.raises(InputError, match=f"'f.nii.gz': a field in {unit} needs --{missing}"):
            field_scale({"field_unit": unit, **given}, "f.nii.gz")


def test_field_unit_help_texts_state_the_described_requirements() -> None:
    options = description(QSM)["options"]
    for unit in capability.choices(QSM, "field_unit"):
        needed = capability.requires(QSM, "field_unit", unit)
        if needed:
            assert f"{unit} (needs {' and '.join(f'--{name}' for name in needed)})" in options["field_unit"]["help"]
    for option in {name for unit in capability.choices(QSM, "field_unit")
                   for name in capability.requires(QSM, "field_unit", unit)}:
        units = [unit for unit in capability.choices(QSM, "field_unit")
                 if option in capability.requires(QSM, "field_unit", unit)]
        assert options[option]["help"].endswith(f"for --field_unit {' or '.join(units)}"), option


def test_the_rim_lesion_table_has_the_described_columns() -> None:
    """The writer fills every described column, and its docstring example (the file's bytes) holds."""
    import doctest

    from lightning_modules.rim import transforms

    names = capability.columns("rim_lesion_detection", "lesions")
    assert transforms.TABLE_COLUMNS == names
    header, row = transforms.lesion_table([3], [2], [4.0], np.array([[1.0, 2.0, 3.0]]), [0.75], 0.5).splitlines()
    assert tuple(header.split(",")) == names and len(row.split(",")) == len(names)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(transforms.lesion_table, globs=vars(transforms)):
        assert runner.run(test).failed == 0


def write(path: Path, data: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([1.0, 1.0, 1.0, 1.0])), path)
    return str(path)


def bundle_runs(folder: Path) -> list[tuple[str, dict, list[str]]]:
    """(bundle, options deciding the outputs, command-line options) of small real runs: QSM, and IVIM with the
    model whose outputs differ most from the default's."""
    rng = np.random.default_rng(0)
    field = write(folder / "case_field.nii.gz", 0.01 * rng.standard_normal((8, 8, 8)))
    b_values = np.array([0, 10, 20, 50, 100, 200, 400, 800], dtype=float)
    signal = 1000 * (0.1 * np.exp(-b_values * 0.02) + 0.9 * np.exp(-b_values * 1e-3))
    dwi = write(folder / "case_dwi.nii.gz", np.broadcast_to(signal, (2, 2, 2, b_values.size)))
    (folder / "case_dwi.bval").write_text(" ".join(f"{b:g}" for b in b_values) + "\n")
    return [("qsm_dipole_inversion", {}, ["--field", field, "--method", "tkd"]),
            ("ivim_mapping", {"model": "triexp"},
             ["--dwi", dwi, "--bvals", str(folder / "case_dwi.bval"), "--method", "lsq", "--model", "triexp"])]


@pytest.mark.slow
def test_bundles_write_the_described_outputs_and_progress_lines(tmp_path: Path) -> None:
    """Real runs, side by side (about 25 s on two shared cores); the other bundles' tests run them too."""
    runs = bundle_runs(tmp_path)
    children = []
    for index, (bundle, _, arguments) in enumerate(runs):
        output_dir = tmp_path / f"out{index}"
        command = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
                   str(REPO / "monai_bundles" / bundle / "configs" / "inference.json"), *arguments,
                   "--output_dir", str(output_dir), "--device", "cpu"]
        children.append((output_dir, subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                                       stderr=subprocess.PIPE, text=True)))
    for (bundle, options, arguments), (output_dir, child) in zip(runs, children, strict=True):
        stdout, stderr = child.communicate(timeout=300)
        assert child.returncode == 0, f"{bundle}: {stderr[-2000:]}"
        stem = Path(arguments[1]).name.removesuffix(".nii.gz")
        expected = {f"{stem}_{suffix}" for suffix in capability.outputs(bundle, **options).values()}
        assert {p.name for p in output_dir.iterdir()} == expected, bundle
        progress = [parse_progress(line) for line in stdout.splitlines() if line.startswith(PROGRESS_PREFIX)]
        assert progress and None not in progress and progress[-1][0] == 1.0, bundle


def test_progress_lines_have_one_format_on_both_sides() -> None:
    """The prefix is written twice: Slicer's Python cannot import lightning_modules (its dependencies)."""
    from lightning_modules import bundle_app

    assert PROGRESS_PREFIX == bundle_app.PROGRESS_PREFIX


# --- Slicer side ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options_class", OPTIONS_CLASSES, ids=lambda c: c.BUNDLE)
def test_options_dataclasses_are_described_inputs_and_options(options_class) -> None:
    found = description(options_class.BUNDLE)
    fields = dataclasses.fields(options_class)
    assert fields[0].name == found["main_input"]
    assert {name for name, spec in found["inputs"].items() if spec["required"]} <= {f.name for f in fields}
    for field in fields:
        assert field.name in found["inputs"] or field.name in found["options"], field.name
        if field.name in found["options"] and field.default is not None:
            assert field.default == found["options"][field.name]["default"], field.name


def test_panel_choices_are_the_described_ones() -> None:
    assert qsm_lib.FIELD_UNITS == capability.choices("qsm_dipole_inversion", "field_unit")
    assert qsm_lib.METHODS == capability.choices("qsm_dipole_inversion", "method")
    assert qsm_lib.METHOD_CHOICES == (qsm_lib.DEFAULT_METHOD_CHOICE, *qsm_lib.METHODS)
    assert qsm_lib.DEFAULT_METHOD_CHOICE not in qsm_lib.METHODS
    for option, values in (("model", ivim_lib.MODELS), ("mode", ivim_lib.MODES), ("method", ivim_lib.METHODS)):
        assert values == capability.choices("ivim_mapping", option), option


@pytest.mark.parametrize("unit", capability.choices(QSM, "field_unit"))
def test_the_qsm_panel_passes_exactly_the_options_a_field_unit_requires(unit: str) -> None:
    options = qsm_lib.qsm_options(Path("f.nii.gz"), None, field_unit=unit, b0_tesla=3.0, te_ms=20.0, method="tkd")
    given = {name for name in ("b0_tesla", "te_ms") if getattr(options, name) is not None}
    assert given == set(capability.requires(QSM, "field_unit", unit))


def test_the_rim_panel_reads_described_lesion_table_columns() -> None:
    described = description("rim_lesion_detection")["outputs"]["lesions"]["columns"]
    columns = {column["name"]: column for column in described}
    assert rim_lesions_lib.TABLE_COLUMNS == tuple(columns)
    assert rim_lesions_lib.CENTROID_COLUMNS == ("centroid_x", "centroid_y", "centroid_z")
    assert all(columns[name]["unit"] == "mm" and "RAS" in columns[name]["help"]
               for name in rim_lesions_lib.CENTROID_COLUMNS)
    assert rim_lesions_lib.RIM_POSITIVE_COLUMN in columns


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_display_presets_are_the_described_ones(bundle: str) -> None:
    outputs = description(bundle)["outputs"]
    assert set(PRESETS[bundle]) == {name for name, spec in outputs.items() if spec["display"]}
    for name, preset in PRESETS[bundle].items():
        display = outputs[name]["display"]
        assert preset.color_node_id == display["color_node_id"]
        assert preset.display_range == (tuple(display["range"]) if display["range"] else None)
        assert (preset.labelmap, preset.unit) == (display["labelmap"], display["node_unit"])


@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_ui_files_leave_option_help_and_units_to_the_description(bundle: str) -> None:
    """The panels set an option widget's tooltip and unit suffix from the description (``BundleWidgetMixin``)."""
    module = MODULE_OF[bundle]
    tree = ET.parse(EXTENSION / module / "Resources" / "UI" / f"{module}.ui")
    options = description(bundle)["options"]
    for widget in tree.iter("widget"):
        properties = {p.get("name"): p for p in widget.findall("property")}
        parameter = properties.get("SlicerParameterName")
        if parameter is not None and parameter.findtext("string") in options:
            assert not {"toolTip", "suffix"} & set(properties), (module, parameter.findtext("string"))


# --- docs -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bundle", BUNDLE_NAMES)
def test_bundle_docs_name_every_output_unit_and_choice(bundle: str) -> None:
    docs = (REPO / "monai_bundles" / bundle / "docs" / "README.md").read_text(encoding="utf-8")
    found = description(bundle)
    for name, spec in found["outputs"].items():
        assert spec["suffix"] in docs or f"`{name}`" in docs or f"`_{name}`" in docs, name
        assert spec["unit"] is None or spec["unit"] in docs, (name, spec["unit"])
    for option, spec in found["options"].items():
        for choice in spec.get("choices", ()):
            choice = json.dumps(choice) if isinstance(choice, bool) else choice  # as typed: --objects true
            assert f"`{choice}`" in docs or f"--{option} {choice}" in docs, (option, choice)
    for name, spec in found["outputs"].items():
        for column in spec.get("columns", ()):
            assert column["name"] in docs, (name, column["name"])


def test_slicer_readme_shows_the_described_node_names_and_displays() -> None:
    readme = (EXTENSION / "README.md").read_text(encoding="utf-8")
    for bundle in BUNDLE_NAMES:
        for name, spec in description(bundle)["outputs"].items():
            display = spec["display"]
            assert f"_{name}" in readme, name
            if display is None:
                continue
            if display["node_unit"]:
                assert f"_{display['node_unit']}" in readme, (name, display["node_unit"])
            if display["range"]:
                low, high = (f"{v:g}".replace("-", "−") for v in display["range"])
                assert f"{low}…{high}" in readme, (name, display["range"])


def test_design_tables_list_every_output_and_unit() -> None:
    design = REPO.parent / "shared" / "DESIGN.md"
    if not design.is_file():
        pytest.skip(f"{design} not found (the shared design notes sit next to the checkout)")
    text = design.read_text(encoding="utf-8")
    for bundle in BUNDLE_NAMES:
        found = description(bundle)
        for name, spec in found["outputs"].items():
            opt_in = spec.get("when") and all(found["options"][option]["default"] is False for option in spec["when"])
            if opt_in and spec["suffix"] not in text:
                continue  # an addition a user asks for (SPIO's --objects true), beyond the contract: the docs name it
            assert spec["suffix"] in text or f"`_{name}`" in text or f"`{{stem}}_{name}`" in text, name
            assert spec["unit"] is None or spec["unit"] in text, (name, spec["unit"])

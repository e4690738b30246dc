"""Each Slicer module follows the scripted-module template; its .ui and CMakeLists match its code.

Checked with ``ast`` and ``xml.etree`` since neither Slicer nor Qt is available here.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from slicer_test_support import EXTENSION_DIR, MODULES, REPO, run_with_only


def module_tree(module: str) -> ast.Module:
    return ast.parse((EXTENSION_DIR / module / f"{module}.py").read_text(encoding="utf-8"))


def classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def base_names(cls: ast.ClassDef) -> set[str]:
    return {b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in cls.bases}


def ui_widgets(module: str) -> dict[str, ET.Element]:
    root = ET.parse(EXTENSION_DIR / module / "Resources" / "UI" / f"{module}.ui").getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def parameter_fields(module: str) -> set[str]:
    cls = classes(module_tree(module))[f"{module}ParameterNode"]
    return {node.target.id for node in cls.body if isinstance(node, ast.AnnAssign)}


def methods(cls: ast.ClassDef) -> set[str]:
    return {f.name for f in cls.body if isinstance(f, ast.FunctionDef)}


SHARED = classes(ast.parse((EXTENSION_DIR / "QSMSlicerCommon" / "slicer_module.py").read_text(encoding="utf-8")))


@pytest.mark.parametrize("module", MODULES)
def test_module_declares_template_classes(module: str) -> None:
    found = classes(module_tree(module))
    expected = {
        module: "ScriptedLoadableModule",
        f"{module}Widget": "ScriptedLoadableModuleWidget",
        f"{module}Logic": "ScriptedLoadableModuleLogic",
        f"{module}Test": "ScriptedLoadableModuleTest",
    }
    for name, base in expected.items():
        assert name in found, f"{module}.py lacks class {name}"
        assert base in base_names(found[name]), f"{name} must derive from {base}"
    node_class = found[f"{module}ParameterNode"]
    assert [ast.unparse(d) for d in node_class.decorator_list] == ["parameterNodeWrapper"]
    widget, logic = found[f"{module}Widget"], found[f"{module}Logic"]
    assert {"BundleWidgetMixin", "VTKObservationMixin"} <= base_names(widget)
    assert "BundleLogicMixin" in base_names(logic)
    widget_methods = methods(widget) | methods(SHARED["BundleWidgetMixin"])
    assert {"setup", "cleanup", "enter", "exit", "onApplyButton", "setParameterNode"} <= widget_methods
    assert {"__init__", "setup"} <= methods(widget), "the module's own widget loads its .ui"
    logic_methods = methods(logic) | methods(SHARED["BundleLogicMixin"])
    assert {"getParameterNode", "stage", "start", "loadResults", "process"} <= logic_methods
    assert "stage" in methods(logic), "each module stages its own inputs"
    test_methods = {m for m in methods(found[f"{module}Test"]) if m.startswith("test_")}
    assert test_methods, f"{module}Test has no test method"


@pytest.mark.parametrize("module", MODULES)
def test_module_file_stays_short(module: str) -> None:
    lines = (EXTENSION_DIR / module / f"{module}.py").read_text(encoding="utf-8").count("\n")
    assert lines < 200, f"{module}.py has {lines} lines; move logic into {module}Lib/ or QSMSlicerCommon"


@pytest.mark.parametrize("module", MODULES)
def test_ui_file_has_every_widget_the_code_names(module: str) -> None:
    widgets = ui_widgets(module)
    root_class = ET.parse(EXTENSION_DIR / module / "Resources" / "UI" / f"{module}.ui").getroot()
    assert root_class.find("widget").get("class") == "qMRMLWidget"
    common = EXTENSION_DIR / "QSMSlicerCommon"
    sources = [EXTENSION_DIR / module / f"{module}.py", *(EXTENSION_DIR / module / f"{module}Lib").glob("*.py"),
               common / "slicer_panel.py", common / "slicer_module.py"]
    referenced = set()
    for source in sources:
        referenced |= set(re.findall(r"\bui\.(\w+)", source.read_text(encoding="utf-8")))
    assert referenced, "no self.ui.<widget> references found"
    missing = referenced - set(widgets)
    assert not missing, f"{module}.ui lacks widgets {sorted(missing)}"
    classes_used = {w.get("class") for w in widgets.values()}
    assert {"qMRMLNodeComboBox", "ctkCollapsibleButton", "QProgressBar", "QPlainTextEdit"} <= classes_used
    assert widgets["applyButton"].get("class") == widgets["cancelButton"].get("class") == "QPushButton"
    declared = {c.findtext("class") for c in root_class.iter("customwidget")}
    assert {c for c in classes_used if c.startswith(("qMRML", "ctk"))} <= declared, "undeclared custom widgets"


@pytest.mark.parametrize("module", MODULES)
def test_ui_parameter_bindings_match_the_parameter_node(module: str) -> None:
    widgets = ui_widgets(module)
    bound = {}
    for name, widget in widgets.items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = name
    assert set(bound) == parameter_fields(module)
    root = ET.parse(EXTENSION_DIR / module / "Resources" / "UI" / f"{module}.ui").getroot()
    scene_receivers = {c.findtext("receiver") for c in root.iter("connection")
                       if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    mrml_widgets = {n for n, w in widgets.items() if w.get("class") in ("qMRMLNodeComboBox", "qMRMLTableView")}
    assert mrml_widgets and mrml_widgets == scene_receivers, "every MRML widget must receive the MRML scene"


def cmake_list(cmake: str, variable: str) -> list[str]:
    """The items of ``set(<variable> ...)`` in a CMakeLists.txt."""
    match = re.search(r"set\(" + variable + r"\s+(.*?)\)", cmake, re.S)
    assert match, f"no set({variable} ...)"
    return match.group(1).split()


def module_cmake_files(module: str) -> dict[str, set[str]]:
    """The scripts and resources that ``qsm_add_scripted_module`` (top-level CMakeLists.txt) builds for the call in
    the module's CMakeLists.txt, as paths relative to the module folder."""
    call = (EXTENSION_DIR / module / "CMakeLists.txt").read_text(encoding="utf-8")
    match = re.search(r"qsm_add_scripted_module\(NAME (\w+) LIB_SCRIPTS ([^)]*)\)", call)
    assert match and match.group(1) == module, "a module's CMakeLists.txt is one qsm_add_scripted_module() call"
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    function = re.search(r"function\(qsm_add_scripted_module\)(.*?)endfunction\(\)", top, re.S)
    assert function, "no qsm_add_scripted_module() in the top-level CMakeLists.txt"
    body = function.group(1).replace("${MODULE_NAME}", module)
    assert f"set(_scripts {module}.py {module}Lib/__init__.py)" in body and "SCRIPTS ${_scripts}" in body
    assert re.search(r"slicerMacroBuildScriptedModule\(.*WITH_GENERIC_TESTS.*\)", body, re.S)
    resources = re.search(r"RESOURCES\s+(.*?)\s+WITH_GENERIC_TESTS", body, re.S).group(1).split()
    scripts = {f"{module}.py", f"{module}Lib/__init__.py"} | {f"{module}Lib/{s}" for s in match.group(2).split()}
    return {"scripts": scripts, "resources": set(resources)}


@pytest.mark.parametrize("module", MODULES)
def test_module_folder_layout_and_cmake(module: str) -> None:
    folder = EXTENSION_DIR / module
    assert sorted(p.name for p in folder.glob("*.py")) == [f"{module}.py"], "helpers belong in <Module>Lib/"
    assert (folder / "Resources" / "Icons" / f"{module}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    listed = module_cmake_files(module)
    on_disk = {"scripts": {f"{module}.py"} | {f"{module}Lib/{p.name}" for p in (folder / f"{module}Lib").glob("*.py")},
               "resources": {str(p.relative_to(folder)) for p in (folder / "Resources").rglob("*") if p.is_file()}}
    assert listed == on_disk, "CMake must list every script and resource that exists, and nothing else"
    assert {f"Resources/Icons/{module}.png", f"Resources/UI/{module}.ui",
            f"Resources/Requirements/{module}.txt"} <= listed["resources"]
    # Slicer installs the resources of all scripted modules into one Resources/ folder: names must not collide
    assert all(module in Path(r).name for r in listed["resources"])


def test_common_library_cmake_lists_exactly_its_files() -> None:
    cmake = (EXTENSION_DIR / "QSMSlicerCommon" / "CMakeLists.txt").read_text(encoding="utf-8")
    listed = set(cmake_list(cmake, "QSM_COMMON_PYTHON_SCRIPTS"))
    on_disk = {f"QSMSlicerCommon/{p.name}" for p in (EXTENSION_DIR / "QSMSlicerCommon").glob("*.py")}
    assert listed == on_disk


def test_top_level_cmake_is_a_slicer_extension() -> None:
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    for needed in ("cmake_minimum_required", "project(QSMSlicerExtension)", 'EXTENSION_DEPENDS "PyTorch"',
                   'EXTENSION_CATEGORY "Quantification"', "find_package(Slicer REQUIRED)",
                   "include(${Slicer_USE_FILE})", "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
                   "include(${Slicer_EXTENSION_CPACK})", "monai_bundles lightning_modules", "QSMSlicerExtensionData"):
        assert needed in cmake, needed
    values = dict(re.findall(r'set\((EXTENSION_\w+) "([^"]*)"\)', cmake))
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL",
                "EXTENSION_SCREENSHOTURLS"):
        assert values.get(key), f"{key} is empty"
    assert values["EXTENSION_HOMEPAGE"].startswith("https://")
    raw = "https://raw.githubusercontent.com/"
    for url in (values["EXTENSION_ICONURL"], *values["EXTENSION_SCREENSHOTURLS"].split()):
        assert url.startswith(raw), url
        relative = url.split("/", 6)[-1]  # after https://raw.githubusercontent.com/<owner>/<repo>/<branch>/
        assert (REPO / relative).is_file(), f"{url} names {relative}, which is not in the repository"
    subdirectories = re.findall(r"add_subdirectory\(QSMSlicerExtension/(\w+)\)", cmake)
    assert sorted(subdirectories) == sorted(("QSMSlicerCommon", *MODULES))


def test_extension_index_entry() -> None:
    """The catalog entry for Slicer's ExtensionsIndex (schema v1.0.1 fields) agrees with the CMake metadata."""
    entry = json.loads((EXTENSION_DIR / "QSMSlicerExtension.json").read_text(encoding="utf-8"))
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert set(entry) == {"$schema", "scm_type", "scm_url", "scm_revision", "category", "build_dependencies",
                          "build_subdirectory", "tier"}
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    values = dict(re.findall(r'set\((EXTENSION_\w+) "([^"]*)"\)', cmake))
    assert entry["scm_type"] == "git" and entry["scm_url"] == values["EXTENSION_HOMEPAGE"] + ".git"
    assert entry["category"] == values["EXTENSION_CATEGORY"]
    assert entry["build_dependencies"] == values["EXTENSION_DEPENDS"].split()
    assert (REPO / entry["build_subdirectory"] / "CMakeLists.txt").is_file()
    assert entry["tier"] in (1, 3, 5)


def test_common_package_imports_no_slicer_and_no_heavy_package_at_import() -> None:
    for source in (EXTENSION_DIR / "QSMSlicerCommon").glob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        top_level = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                top_level |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                top_level.add(node.module.split(".")[0])
        forbidden = top_level & {"slicer", "qt", "ctk", "vtk", "lightning_modules", "torch", "monai", "nibabel"}
        assert not forbidden, f"{source.name} imports {forbidden} at module level"
    code = ("import sys, QSMSlicerCommon, QSMSlicerCommon.slicer_module; "
            "print(sorted({'slicer', 'qt', 'vtk', 'torch', 'monai', 'nibabel'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=EXTENSION_DIR)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("module", MODULES)
def test_lib_finds_the_common_package_from_a_source_checkout(module: str) -> None:
    """With only the module folder on sys.path (as Slicer sets it), <Module>Lib makes QSMSlicerCommon importable."""
    done = run_with_only([EXTENSION_DIR / module],
                         f"import {module}Lib.options, QSMSlicerCommon; print(QSMSlicerCommon.__file__)",
                         drop=("QSMSlicerExtension",))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(EXTENSION_DIR / "QSMSlicerCommon" / "__init__.py")

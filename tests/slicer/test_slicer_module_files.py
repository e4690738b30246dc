"""Each Slicer module follows the scripted-module template; its .ui and CMakeLists match its code.

Checked with ``ast`` and ``xml.etree`` since neither Slicer nor Qt is available here.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from slicer_test_support import EXTENSION_DIR, MODULES, REPO


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
    widget_methods = {f.name for f in found[f"{module}Widget"].body if isinstance(f, ast.FunctionDef)}
    assert {"setup", "cleanup", "enter", "exit", "onApplyButton", "setParameterNode"} <= widget_methods
    logic_methods = {f.name for f in found[f"{module}Logic"].body if isinstance(f, ast.FunctionDef)}
    assert {"getParameterNode", "stage", "start", "loadResults", "process"} <= logic_methods


@pytest.mark.parametrize("module", MODULES)
def test_ui_file_has_every_widget_the_code_names(module: str) -> None:
    widgets = ui_widgets(module)
    root_class = ET.parse(EXTENSION_DIR / module / "Resources" / "UI" / f"{module}.ui").getroot()
    assert root_class.find("widget").get("class") == "qMRMLWidget"
    sources = [EXTENSION_DIR / module / f"{module}.py", EXTENSION_DIR / "QSMSlicerCommon" / "slicer_panel.py"]
    referenced = set()
    for source in sources:
        referenced |= set(re.findall(r"\bui\.(\w+)", source.read_text(encoding="utf-8")))
    assert referenced, "no self.ui.<widget> references found"
    missing = referenced - set(widgets)
    assert not missing, f"{module}.ui lacks widgets {sorted(missing)}"
    classes_used = {w.get("class") for w in widgets.values()}
    assert {"qMRMLNodeComboBox", "ctkCollapsibleButton", "QProgressBar", "QPlainTextEdit"} <= classes_used
    assert widgets["applyButton"].get("class") == widgets["cancelButton"].get("class") == "QPushButton"


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
    combos = {n for n, w in widgets.items() if w.get("class") == "qMRMLNodeComboBox"}
    assert combos and combos == scene_receivers, "every node combo box must receive the MRML scene"


@pytest.mark.parametrize("module", MODULES)
def test_module_folder_layout_and_cmake(module: str) -> None:
    folder = EXTENSION_DIR / module
    assert sorted(p.name for p in folder.glob("*.py")) == [f"{module}.py"], "helpers belong in <Module>Lib/"
    assert (folder / "Resources" / "Icons" / f"{module}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cmake = (folder / "CMakeLists.txt").read_text(encoding="utf-8")
    assert f"set(MODULE_NAME {module})" in cmake and "slicerMacroBuildScriptedModule(" in cmake
    for lib_file in sorted((folder / f"{module}Lib").glob("*.py")):
        assert f"${{MODULE_NAME}}Lib/{lib_file.name}" in cmake, f"{lib_file.name} is not in MODULE_PYTHON_SCRIPTS"
    for resource in ("Resources/Icons/${MODULE_NAME}.png", "Resources/UI/${MODULE_NAME}.ui"):
        assert resource in cmake


def test_top_level_cmake_builds_every_module_and_ships_the_bundles() -> None:
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    for needed in ("cmake_minimum_required", "project(QSMSlicerExtension)", 'EXTENSION_DEPENDS "PyTorch"',
                   "find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "${Slicer_EXTENSION_CPACK}",
                   "monai_bundles lightning_modules", "QSMSlicerExtensionData"):
        assert needed in cmake, needed
    for folder in ("QSMSlicerCommon", *MODULES):
        assert f"add_subdirectory(QSMSlicerExtension/{folder})" in cmake
    common_cmake = (EXTENSION_DIR / "QSMSlicerCommon" / "CMakeLists.txt").read_text(encoding="utf-8")
    for source in sorted((EXTENSION_DIR / "QSMSlicerCommon").glob("*.py")):
        assert f"QSMSlicerCommon/{source.name}" in common_cmake, f"{source.name} is not installed"


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
    import QSMSlicerCommon  # noqa: F401  (the import itself is the test)

    assert "slicer" not in sys.modules and "qt" not in sys.modules


@pytest.mark.parametrize("module", MODULES)
def test_lib_finds_the_common_package_from_a_source_checkout(module: str) -> None:
    """With only the module folder on sys.path (as Slicer sets it), <Module>Lib makes QSMSlicerCommon importable."""
    keep = "[p for p in sys.path if p and 'QSMSlicerExtension' not in p]"
    code = (f"import sys; sys.path[:] = [{str(EXTENSION_DIR / module)!r}] + {keep}; "
            f"import {module}Lib.options, QSMSlicerCommon; print(QSMSlicerCommon.__file__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(EXTENSION_DIR / "QSMSlicerCommon" / "__init__.py")

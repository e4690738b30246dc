"""The extension's CMake install layout, configured against a stand-in Slicer (``fake_slicer/``).

Checks that the modules, ``QSMSlicerCommon`` and the shipped bundles / ``lightning_modules`` land where
``QSMSlicerCommon.locations`` looks, and that a bundle process started from the installed copy imports the
installed ``lightning_modules`` and resolves the installed bundles. Slicer's real macros are not exercised.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from slicer_test_support import EXTENSION_DIR, MODULES, REPO

from lightning_modules.monai_trust import BUNDLE_NAMES

FAKE_SLICER = Path(__file__).resolve().parent / "fake_slicer"


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("c++") is None, reason="needs cmake and c++")
def test_install_layout_runs_from_the_shipped_copy(tmp_path: Path) -> None:
    build, prefix = tmp_path / "build", tmp_path / "install"
    subprocess.run(["cmake", "-S", str(REPO), "-B", str(build), f"-DSlicer_DIR={FAKE_SLICER}"], check=True,
                   capture_output=True, timeout=120)
    subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)], check=True, capture_output=True,
                   timeout=120)
    modules_dir = prefix / "lib" / "Slicer-5.8" / "qt-scripted-modules"
    for module in MODULES:
        source = EXTENSION_DIR / module
        for path in (source / f"{module}.py", *(source / f"{module}Lib").glob("*.py"),
                     *(p for p in (source / "Resources").rglob("*") if p.is_file())):
            relative = path.relative_to(source)
            installed = modules_dir / relative
            assert installed.is_file(), relative
            assert installed.read_bytes() == path.read_bytes(), f"{relative} was overwritten by another module"
    for path in (EXTENSION_DIR / "QSMSlicerCommon").glob("*.py"):
        assert (modules_dir / "QSMSlicerCommon" / path.name).read_bytes() == path.read_bytes(), path.name
    data = modules_dir / "QSMSlicerExtensionData"
    for bundle in BUNDLE_NAMES:
        for config in ("inference.json", "capability.json"):
            assert (data / "monai_bundles" / bundle / "configs" / config).is_file(), (bundle, config)
    assert (data / "lightning_modules" / "bundle_app.py").is_file()
    assert not list(prefix.rglob("__pycache__"))
    # the headless layer is for tests and the web app: its qt.py in Slicer would hide PythonQt's qt
    assert not [p for name in ("headless_slicer.py", "qt.py", "ctk.py") for p in prefix.rglob(name)]

    child = ("import lightning_modules.bundle_app as b; print(b.__file__); "
             "print(b.bundle_root('qsm_dipole_inversion'))")
    code = (f"import subprocess, sys; sys.path.insert(0, {str(modules_dir)!r}); "
            "from QSMSlicerCommon.locations import locate_extension_paths; "
            "import QSMSlicerCommon; print(QSMSlicerCommon.__file__); paths = locate_extension_paths(); "
            "from QSMSlicerCommon import capability; print(','.join(capability.bundles())); "
            f"print(subprocess.run([sys.executable, '-c', {child!r}], env=paths.child_environment(), "
            "capture_output=True, text=True, check=True).stdout, end='')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    common, described, package, bundle = done.stdout.splitlines()
    assert Path(common) == modules_dir / "QSMSlicerCommon" / "__init__.py"
    assert described.split(",") == sorted(BUNDLE_NAMES)
    assert Path(package) == data / "lightning_modules" / "bundle_app.py"
    assert Path(bundle) == data / "monai_bundles" / "qsm_dipole_inversion"

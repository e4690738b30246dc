"""The dependency installer: asks before installing, only when something is missing, never at import."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from QSMSlicerCommon.install import (
    PIP_ENSURE_DECLINED,
    DependencyError,
    DependencyInstaller,
    PipEnsureBackend,
    PipInstallBackend,
    backend_for_version,
    distribution_name,
    read_requirements,
)
from QSMSlicerCommon.locations import locate_extension_paths
from QSMSlicerCommon.options import SpioOptions
from QSMSlicerCommon.runner import BundleRunner
from slicer_test_support import EXTENSION_DIR

SPIO_REQUIREMENTS = read_requirements(EXTENSION_DIR / "SPIOQuantification" / "Resources" / "Requirements"
                                      / "SPIOQuantification.txt")


class FakeBackend:
    def __init__(self, asks_user: bool, installed: set[str], provides: dict[str, str]) -> None:
        self.asks_user = asks_user
        self.installed = installed
        self.provides = provides
        self.calls: list[list[str]] = []

    def install(self, specs) -> bool:
        self.calls.append(list(specs))
        self.installed |= {self.provides[s] for s in specs if s in self.provides}
        return True


def make(asks_user: bool, *, installed: set[str], answer: bool = True, provides: dict[str, str] | None = None):
    requirements = SPIO_REQUIREMENTS
    provides = provides if provides is not None else {spec: distribution_name(spec) for spec in requirements}
    backend = FakeBackend(asks_user, installed, provides)
    questions: list[str] = []

    def confirm(message: str) -> bool:
        questions.append(message)
        return answer

    installer = DependencyInstaller(backend, confirm=confirm, is_available=lambda name: name in backend.installed)
    return installer, backend, questions, requirements


def test_nothing_happens_when_everything_is_installed() -> None:
    everything = {"torch"} | {distribution_name(spec) for spec in SPIO_REQUIREMENTS}
    installer, backend, questions, requirements = make(False, installed=everything)
    assert installer.ensure(requirements) is True
    assert backend.calls == [] and questions == []


def test_pip_install_backend_asks_first_and_installs_only_the_missing() -> None:
    installer, backend, questions, requirements = make(False, installed={"torch", "numpy", "scipy"})
    assert installer.ensure(requirements) is True
    assert len(questions) == 1 and "PyWavelets>=1.4" in questions[0] and "numpy" not in questions[0]
    assert backend.calls == [[spec for spec in requirements if distribution_name(spec) not in ("numpy", "scipy")]]


def test_declining_installs_nothing() -> None:
    installer, backend, questions, requirements = make(False, installed={"torch"}, answer=False)
    assert installer.ensure(requirements) is False
    assert backend.calls == [] and len(questions) == 1


def test_pip_ensure_backend_does_its_own_asking() -> None:
    installer, backend, questions, requirements = make(True, installed={"torch"})
    assert installer.ensure(requirements) is True
    assert questions == [] and len(backend.calls) == 1


def test_still_missing_after_install_is_an_error() -> None:
    installer, _, _, requirements = make(False, installed={"torch"}, provides={})
    with pytest.raises(DependencyError, match="could not be installed"):
        installer.ensure(requirements)


def test_torch_comes_from_the_pytorch_extension() -> None:
    installer, backend, _, requirements = make(False, installed=set())
    with pytest.raises(DependencyError, match="PyTorch extension"):
        installer.ensure(requirements)
    installer.install_torch = lambda: False  # the user declined in PyTorchUtils' dialog
    assert installer.ensure(requirements) is False and backend.calls == []


def test_backend_choice_by_slicer_version() -> None:
    ensured, installed = [], []

    def pip_ensure(requirements, requester):
        ensured.append((requirements, requester))

    new = backend_for_version((5, 12), pip_ensure=pip_ensure, pip_install=installed.append)
    assert isinstance(new, PipEnsureBackend) and new.asks_user
    assert new.install(["monai>=1.4"]) is True
    assert ensured == [(["monai>=1.4"], "QSMSlicerExtension")]
    without = backend_for_version((5, 11), pip_ensure=None, pip_install=installed.append)
    assert isinstance(without, PipInstallBackend), "a 5.11 build without pip_ensure asks and uses pip_install"
    old = backend_for_version((5, 8), pip_ensure=pip_ensure, pip_install=installed.append)
    assert isinstance(old, PipInstallBackend) and not old.asks_user
    assert old.install(["monai>=1.4", "fire>=0.5"]) is True
    assert installed == [["monai>=1.4", "fire>=0.5"]]


def test_declining_pip_ensure_is_a_decline_and_other_errors_go_through() -> None:
    def declined(requirements, requester):
        raise RuntimeError(PIP_ENSURE_DECLINED)

    def broken(requirements, requester):
        raise RuntimeError("pip is already running")

    installer = DependencyInstaller(PipEnsureBackend(declined), confirm=lambda message: True,
                                    is_available=lambda name: name == "torch")
    assert installer.ensure(["monai>=1.4"]) is False
    installer.backend = PipEnsureBackend(broken)
    with pytest.raises(RuntimeError, match="already running"):
        installer.ensure(["monai>=1.4"])


def test_requirements_file_parsing(tmp_path: Path) -> None:
    path = tmp_path / "Example.txt"
    path.write_text("# comment\n\nmonai>=1.4  # trailing comment\n  PyWavelets>=1.4\n")
    assert read_requirements(path) == ("monai>=1.4", "PyWavelets>=1.4")
    assert [distribution_name(s) for s in ("pytorch-lightning>=2.2", "scikit-image", "pyyaml>=6")] == [
        "pytorch-lightning", "scikit-image", "pyyaml"]
    with pytest.raises(ValueError, match="is not a pip requirement"):
        distribution_name(">=1.0")


def test_the_installer_checks_installed_distributions_for_real() -> None:
    """Default check: distribution metadata (``pyyaml`` is imported as ``yaml``, so import names would not do)."""
    installer = DependencyInstaller(PipInstallBackend(lambda specs: None), confirm=lambda message: False)
    assert installer.missing(["pyyaml>=6", "numpy>=1.24", "no-such-distribution-qsm>=1"]) == [
        "no-such-distribution-qsm>=1"]


class CountingInstaller:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.calls = 0

    def ensure(self, requirements) -> bool:
        assert requirements == ("monai>=1.4",), "the runner passes the module's requirements"
        self.calls += 1
        return self.answers.pop(0)


def test_runner_installs_on_first_start_only_and_stops_when_declined(tmp_path: Path) -> None:
    installer = CountingInstaller([False, True])
    runner = BundleRunner("qsm_dipole_inversion", python=sys.executable, paths=locate_extension_paths(),
                          installer=installer, requirements=("monai>=1.4",), workspace_dir=tmp_path)
    assert installer.calls == 0, "creating the runner (module Logic) must not install anything"
    staged = []
    assert runner.start(lambda ws: staged.append(ws)) is None
    assert installer.calls == 1 and staged == [] and list(tmp_path.iterdir()) == []
    assert runner.ensure_dependencies() and runner.ensure_dependencies()
    assert installer.calls == 2, "once accepted, the check is not repeated"


def test_runner_rejects_options_of_another_bundle_and_cleans_up(tmp_path: Path) -> None:
    runner = BundleRunner("qsm_dipole_inversion", python=sys.executable, paths=locate_extension_paths(),
                          workspace_dir=tmp_path)
    with pytest.raises(ValueError, match="SpioOptions is for spio_quantification"):
        runner.start(lambda ws: SpioOptions(image=ws.input_path("viewline")))
    assert list(tmp_path.iterdir()) == []

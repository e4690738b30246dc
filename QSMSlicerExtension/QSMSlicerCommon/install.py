"""Python dependencies of the bundles, installed into Slicer's Python on first use, after asking.

Nothing is installed at import time. A module calls :meth:`DependencyInstaller.ensure` when the user clicks
Apply. PyTorch comes from the PyTorch Slicer extension (``EXTENSION_DEPENDS PyTorch``) through an injected
``install_torch`` callable; the other packages go through a backend: ``slicer.packaging.pip_ensure`` on
Slicer ≥ 5.11 (it shows its own confirmation and progress), ``slicer.util.pip_install`` before that (after
our own confirmation dialog). ``lightning_modules`` is not pip-installed: it ships with the extension and is
put on the bundle process's ``PYTHONPATH`` (:mod:`QSMSlicerCommon.locations`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

#: Name shown in Slicer's install dialogs.
REQUESTER = "QSMSlicerExtension"


@dataclass(frozen=True)
class PythonRequirement:
    """A package the bundles import.

    Attributes:
        import_name: top-level module to check for (``importlib.util.find_spec``).
        spec: pip requirement string, exactly as in the project's ``pyproject.toml``.
    """

    import_name: str
    spec: str


#: Needed by every bundle process (``pyproject.toml`` dependencies except torch, from the PyTorch extension,
#: and SimpleITK, which Slicer ships).
COMMON_REQUIREMENTS = (
    PythonRequirement("numpy", "numpy>=1.24"),
    PythonRequirement("scipy", "scipy>=1.10"),
    PythonRequirement("monai", "monai>=1.4"),
    PythonRequirement("pytorch_lightning", "pytorch-lightning>=2.2"),
    PythonRequirement("ignite", "pytorch-ignite>=0.4.11"),
    PythonRequirement("fire", "fire>=0.5"),
    PythonRequirement("jsonschema", "jsonschema>=4"),
    PythonRequirement("nibabel", "nibabel>=5"),
    PythonRequirement("yaml", "pyyaml>=6"),
    PythonRequirement("tqdm", "tqdm>=4.60"),
)

#: Extra packages per bundle.
BUNDLE_REQUIREMENTS = {
    "qsm_dipole_inversion": (),
    "ivim_mapping": (),
    "spio_quantification": (PythonRequirement("pywt", "PyWavelets>=1.4"),),
    "rim_lesion_detection": (PythonRequirement("radiomics", "pyradiomics>=3.0"),
                             PythonRequirement("skimage", "scikit-image>=0.21")),
}


def requirements_for(bundle: str) -> tuple[PythonRequirement, ...]:
    """Every pip requirement of one bundle's process (torch excluded)."""
    if bundle not in BUNDLE_REQUIREMENTS:
        raise KeyError(f"unknown bundle {bundle!r}; known: {', '.join(BUNDLE_REQUIREMENTS)}")
    return COMMON_REQUIREMENTS + BUNDLE_REQUIREMENTS[bundle]


class DependencyError(RuntimeError):
    """Packages are still missing after installing, or cannot be installed here."""


class InstallBackend(Protocol):
    """Installs pip requirements into Slicer's Python."""

    #: The backend shows its own confirmation dialog.
    asks_user: bool

    def install(self, specs: Sequence[str]) -> None:
        """Install the pip requirement strings."""
        ...


class PipEnsureBackend:
    """Slicer ≥ 5.11: ``slicer.packaging.pip_ensure`` (confirmation, progress and restart prompt built in).

    Args:
        pip_ensure: ``slicer.packaging.pip_ensure``.
        make_requirement: ``packaging.requirements.Requirement`` (pip_ensure takes Requirement objects).
    """

    asks_user = True

    def __init__(self, pip_ensure: Callable[..., object], make_requirement: Callable[[str], object]) -> None:
        self.pip_ensure = pip_ensure
        self.make_requirement = make_requirement

    def install(self, specs: Sequence[str]) -> None:
        """Ensure the requirements through ``pip_ensure``."""
        self.pip_ensure([self.make_requirement(s) for s in specs], requester=REQUESTER)


class PipInstallBackend:
    """Slicer < 5.11: ``slicer.util.pip_install`` (no dialog of its own, so the installer asks first).

    Args:
        pip_install: ``slicer.util.pip_install``.
    """

    asks_user = False

    def __init__(self, pip_install: Callable[[list[str]], object]) -> None:
        self.pip_install = pip_install

    def install(self, specs: Sequence[str]) -> None:
        """Install with one ``pip install`` call."""
        self.pip_install(list(specs))


def backend_for_version(
    version: tuple[int, int], *, pip_ensure: Callable[..., object] | None,
    make_requirement: Callable[[str], object] | None, pip_install: Callable[[list[str]], object],
) -> InstallBackend:
    """The backend for a Slicer ``(major, minor)`` version."""
    if tuple(version) >= (5, 11) and pip_ensure is not None and make_requirement is not None:
        return PipEnsureBackend(pip_ensure, make_requirement)
    return PipInstallBackend(pip_install)


def module_available(name: str) -> bool:
    """True if ``name`` can be imported in this Python (without importing it)."""
    return importlib.util.find_spec(name) is not None


class DependencyInstaller:
    """Checks the requirements of a bundle and installs the missing ones after the user agreed.

    Args:
        backend: installs pip requirements.
        confirm: asks the user (message → accepted); used when the backend does not ask itself.
        install_torch: installs PyTorch (the PyTorch extension's logic); returns True if torch is now usable.
        is_available: checks an import name (tests inject fakes).
    """

    def __init__(
        self, backend: InstallBackend, *, confirm: Callable[[str], bool],
        install_torch: Callable[[], bool] | None = None, is_available: Callable[[str], bool] = module_available,
    ) -> None:
        self.backend = backend
        self.confirm = confirm
        self.install_torch = install_torch
        self.is_available = is_available

    def missing(self, requirements: Sequence[PythonRequirement]) -> list[PythonRequirement]:
        """The requirements whose module cannot be imported."""
        return [r for r in requirements if not self.is_available(r.import_name)]

    def ensure(self, requirements: Sequence[PythonRequirement]) -> bool:
        """Make torch and ``requirements`` importable; False if the user declined.

        Raises:
            DependencyError: torch cannot be installed here, or packages are missing after installing.
        """
        if not self.is_available("torch"):
            if self.install_torch is None:
                raise DependencyError("PyTorch is not installed; install the PyTorch extension from the "
                                      "Extensions Manager and restart Slicer")
            if not self.install_torch():
                return False
        missing = self.missing(requirements)
        if not missing:
            return True
        specs = [r.spec for r in missing]
        if not self.backend.asks_user and not self.confirm(
            f"{REQUESTER} needs these Python packages: {', '.join(specs)}. Download and install them now? "
            "This can take several minutes."
        ):
            return False
        self.backend.install(specs)
        still_missing = self.missing(requirements)
        if still_missing:
            raise DependencyError(
                f"{', '.join(r.spec for r in still_missing)} could not be installed; see the Python console log"
            )
        return True

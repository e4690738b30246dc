"""Python dependencies of the bundles, installed into Slicer's Python on first use, after asking.

Nothing is installed at import time. A module calls :meth:`DependencyInstaller.ensure` when the user clicks
Apply, with the pip requirements of its ``Resources/Requirements/<Module>.txt`` (:func:`read_requirements`).
PyTorch comes from the PyTorch Slicer extension (``EXTENSION_DEPENDS PyTorch``) through an injected
``install_torch`` callable; the other packages go through a backend: ``slicer.packaging.pip_ensure`` on
Slicer ≥ 5.11 (it shows its own confirmation and progress), ``slicer.util.pip_install`` before that (after
our own confirmation dialog). ``lightning_modules`` is not pip-installed: it ships with the extension and is
put on the bundle process's ``PYTHONPATH`` (:mod:`QSMSlicerCommon.locations`).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

#: Name shown in Slicer's install dialogs.
REQUESTER = "QSMSlicerExtension"
#: Distribution name of PyTorch (installed by the PyTorch extension, never by us).
TORCH = "torch"
#: The message of the ``RuntimeError`` that ``slicer.packaging.pip_ensure`` (Slicer 5.12) raises when the user
#: declines its installation dialog.
PIP_ENSURE_DECLINED = "User declined package installation"

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def read_requirements(path: str | os.PathLike) -> tuple[str, ...]:
    """The pip requirement strings of a requirements file (one per line; ``#`` comments and blank lines skipped).

    Raises:
        FileNotFoundError: the file is missing (a broken installation).
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return tuple(line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip())


def distribution_name(spec: str) -> str:
    """The distribution a requirement names: ``"pytorch-lightning>=2.2"`` → ``"pytorch-lightning"``.

    >>> distribution_name("PyWavelets>=1.4")
    'PyWavelets'
    """
    match = _NAME.match(spec)
    if match is None:
        raise ValueError(f"{spec!r} is not a pip requirement; write it as name[>=version]")
    return match.group(1)


def distribution_installed(name: str) -> bool:
    """True if a distribution of that name is installed in this Python (its metadata is found)."""
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


class DependencyError(RuntimeError):
    """Packages are still missing after installing, or cannot be installed here."""


class InstallBackend(Protocol):
    """Installs pip requirements into Slicer's Python."""

    #: The backend shows its own confirmation dialog.
    asks_user: bool

    def install(self, specs: Sequence[str]) -> bool:
        """Install the pip requirement strings; False if the user declined in the backend's own dialog."""
        ...


class PipEnsureBackend:
    """Slicer ≥ 5.11 with ``slicer.packaging.pip_ensure`` (its own confirmation, progress and restart prompt).

    ``pip_ensure`` says that the user declined by raising ``RuntimeError(PIP_ENSURE_DECLINED)``; that is
    returned here as ``False``, so that nothing starts. Any other error goes through.

    Args:
        pip_ensure: ``slicer.packaging.pip_ensure``.
    """

    asks_user = True

    def __init__(self, pip_ensure: Callable[..., object]) -> None:
        self.pip_ensure = pip_ensure

    def install(self, specs: Sequence[str]) -> bool:
        """Ensure the requirements through ``pip_ensure``; False if the user declined in its dialog."""
        try:
            self.pip_ensure(list(specs), requester=REQUESTER)
        except RuntimeError as error:
            if str(error) == PIP_ENSURE_DECLINED:
                return False
            raise
        return True


class PipInstallBackend:
    """Slicer < 5.11: ``slicer.util.pip_install`` (no dialog of its own, so the installer asks first).

    Args:
        pip_install: ``slicer.util.pip_install``.
    """

    asks_user = False

    def __init__(self, pip_install: Callable[[list[str]], object]) -> None:
        self.pip_install = pip_install

    def install(self, specs: Sequence[str]) -> bool:
        """Install with one ``pip install`` call."""
        self.pip_install(list(specs))
        return True


def backend_for_version(
    version: tuple[int, int], *, pip_ensure: Callable[..., object] | None, pip_install: Callable[[list[str]], object],
) -> InstallBackend:
    """The backend for a Slicer ``(major, minor)`` version: ``pip_ensure`` from 5.11 on where the build has it
    (``None`` for the 5.11 builds without it), ``pip_install`` otherwise."""
    if tuple(version) >= (5, 11) and pip_ensure is not None:
        return PipEnsureBackend(pip_ensure)
    return PipInstallBackend(pip_install)


class DependencyInstaller:
    """Checks the requirements of a bundle and installs the missing ones after the user agreed.

    Args:
        backend: installs pip requirements.
        confirm: asks the user (message → accepted); used when the backend does not ask itself.
        install_torch: installs PyTorch (the PyTorch extension's logic); returns True if torch is now usable.
        is_available: checks a distribution name (tests inject fakes).
    """

    def __init__(
        self, backend: InstallBackend, *, confirm: Callable[[str], bool],
        install_torch: Callable[[], bool] | None = None, is_available: Callable[[str], bool] = distribution_installed,
    ) -> None:
        self.backend = backend
        self.confirm = confirm
        self.install_torch = install_torch
        self.is_available = is_available

    def missing(self, requirements: Sequence[str]) -> list[str]:
        """The requirement strings whose distribution is not installed (versions are left to pip)."""
        return [spec for spec in requirements if not self.is_available(distribution_name(spec))]

    def ensure(self, requirements: Sequence[str]) -> bool:
        """Make torch and the pip ``requirements`` available; False if the user declined (nothing installed).

        Raises:
            DependencyError: torch cannot be installed here, or packages are missing after installing.
        """
        if not self.is_available(TORCH):
            if self.install_torch is None:
                raise DependencyError("PyTorch is not installed; install the PyTorch extension from the "
                                      "Extensions Manager and restart Slicer")
            if not self.install_torch():
                return False
        missing = self.missing(requirements)
        if not missing:
            return True
        if not self.backend.asks_user and not self.confirm(
            f"{REQUESTER} needs these Python packages: {', '.join(missing)}. Download and install them now? "
            "This can take several minutes."
        ):
            return False
        if not self.backend.install(missing):
            return False
        still_missing = self.missing(requirements)
        if still_missing:
            raise DependencyError(f"{', '.join(still_missing)} could not be installed; see the Python console log")
        return True

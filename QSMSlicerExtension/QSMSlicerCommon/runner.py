"""The part of every module's Logic that does not depend on the capability, with injectable collaborators.

A module Logic owns one :class:`BundleRunner`: it asks it to install dependencies on first use, to create a
workspace for the inputs it writes, and to start (GUI) or run (scripts, self-tests) the bundle. Inside Slicer
:func:`QSMSlicerCommon.slicer_nodes.slicer_bundle_runner` builds it with Slicer's collaborators.
"""

from __future__ import annotations

import os

from QSMSlicerCommon.install import DependencyInstaller, requirements_for
from QSMSlicerCommon.job import BundleJob, JobResult, prepare_job
from QSMSlicerCommon.locations import ExtensionPaths
from QSMSlicerCommon.options import BundleOptions
from QSMSlicerCommon.process import LineCallback, ProgressCallback
from QSMSlicerCommon.workspace import TemporaryWorkspace


class BundleRunner:
    """Runs one bundle as a child process.

    Args:
        bundle: bundle name, e.g. ``"qsm_dipole_inversion"``.
        python: Python executable for the child (``PythonSlicer`` inside Slicer).
        paths: bundles and ``lightning_modules`` location.
        installer: installs missing packages on first use; ``None`` skips the check (e.g. a prepared venv).
        workspace_dir: parent folder of the temporary workspaces (default: the system temp folder).
    """

    def __init__(
        self, bundle: str, *, python: str, paths: ExtensionPaths, installer: DependencyInstaller | None = None,
        workspace_dir: str | os.PathLike | None = None,
    ) -> None:
        self.bundle = bundle
        self.python = python
        self.paths = paths
        self.installer = installer
        self.workspace_dir = workspace_dir
        self._dependencies_ready = installer is None

    def ensure_dependencies(self) -> bool:
        """Install what the bundle needs (once per session); False if the user declined."""
        if not self._dependencies_ready:
            assert self.installer is not None
            self._dependencies_ready = self.installer.ensure(requirements_for(self.bundle))
        return self._dependencies_ready

    def new_workspace(self) -> TemporaryWorkspace:
        """A fresh temporary folder for one run's inputs and outputs."""
        return TemporaryWorkspace(self.workspace_dir)

    def start(
        self, options: BundleOptions, workspace: TemporaryWorkspace, *, on_line: LineCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> BundleJob:
        """Start the bundle on ``options`` (inputs already in ``workspace``); the caller polls the job."""
        if options.BUNDLE != self.bundle:
            raise ValueError(f"{type(options).__name__} is for {options.BUNDLE}, this runner runs {self.bundle}")
        job = prepare_job(options, workspace, python=self.python, paths=self.paths, on_line=on_line,
                          on_progress=on_progress)
        job.start()
        return job

    def run(
        self, options: BundleOptions, workspace: TemporaryWorkspace, *, on_line: LineCallback | None = None,
        on_progress: ProgressCallback | None = None, timeout_s: float | None = None,
    ) -> tuple[BundleJob, JobResult]:
        """Start the bundle and wait for it (no GUI); the caller loads the outputs, then ``job.close()``."""
        job = self.start(options, workspace, on_line=on_line, on_progress=on_progress)
        return job, job.wait(timeout_s=timeout_s)

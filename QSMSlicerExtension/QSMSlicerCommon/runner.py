"""The part of every module's Logic that does not depend on the capability, with injectable collaborators.

A module Logic owns one :class:`BundleRunner` and gives it a ``stage`` function that writes the selected nodes
into the run's workspace (:func:`stage_volumes`) and returns the bundle options; the runner installs missing
dependencies on first use, then starts the bundle. The GUI polls the returned job from a timer; scripts and
self-tests call ``job.wait()``. Inside Slicer
:func:`QSMSlicerCommon.slicer_nodes.slicer_bundle_runner` builds it with Slicer's collaborators.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from QSMSlicerCommon.install import DependencyInstaller
from QSMSlicerCommon.job import BundleJob, prepare_job
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
        requirements: pip requirement strings of the bundle process (the module's requirements file).
        workspace_dir: parent folder of the temporary workspaces (default: the system temp folder).
    """

    def __init__(
        self, bundle: str, *, python: str, paths: ExtensionPaths, installer: DependencyInstaller | None = None,
        requirements: Sequence[str] = (), workspace_dir: str | os.PathLike | None = None,
    ) -> None:
        self.bundle = bundle
        self.python = python
        self.paths = paths
        self.installer = installer
        self.requirements = tuple(requirements)
        self.workspace_dir = workspace_dir
        self._dependencies_ready = installer is None

    def ensure_dependencies(self) -> bool:
        """Install what the bundle needs (once per session); False if the user declined."""
        if not self._dependencies_ready:
            assert self.installer is not None
            self._dependencies_ready = self.installer.ensure(self.requirements)
        return self._dependencies_ready

    def new_workspace(self) -> TemporaryWorkspace:
        """A fresh temporary folder for one run's inputs and outputs."""
        return TemporaryWorkspace(self.workspace_dir)

    def start(
        self, stage: Callable[[TemporaryWorkspace], BundleOptions], *, on_line: LineCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> BundleJob | None:
        """Install dependencies if needed, write the inputs and start the bundle; the caller polls the job.

        Args:
            stage: writes the inputs into a fresh workspace and returns the bundle options naming them.
            on_line: streamed output lines.
            on_progress: parsed progress.

        Returns:
            The started job (it owns the workspace), or ``None`` if the user declined installing packages.
        """
        def bundle_job(workspace: TemporaryWorkspace) -> BundleJob:
            options = stage(workspace)
            if options.BUNDLE != self.bundle:
                raise ValueError(f"{type(options).__name__} is for {options.BUNDLE}, not {self.bundle}")
            return prepare_job(options, workspace, python=self.python, paths=self.paths, on_line=on_line,
                               on_progress=on_progress)

        return self._launch(bundle_job)

    def start_tool(
        self, module: str, stage: Callable[[TemporaryWorkspace], tuple[list[str], dict[str, Path]]], *,
        on_line: LineCallback | None = None, on_progress: ProgressCallback | None = None,
    ) -> BundleJob | None:
        """Like :meth:`start`, for a command-line tool of ``lightning_modules`` that is not a bundle
        (``python -m module ...``, e.g. ``lightning_modules.spio.tube_reading``).

        Args:
            module: the tool's module.
            stage: writes the inputs into a fresh workspace and returns the tool's arguments and its outputs
                (name → path in ``workspace.outputs``).
        """
        def tool_job(workspace: TemporaryWorkspace) -> BundleJob:
            arguments, outputs = stage(workspace)
            return BundleJob([self.python, "-m", module, *arguments], workspace, outputs,
                             env=self.paths.child_environment(), on_line=on_line, on_progress=on_progress)

        return self._launch(tool_job)

    def _launch(self, make_job: Callable[[TemporaryWorkspace], BundleJob]) -> BundleJob | None:
        """Install dependencies if needed, make the job in a fresh workspace and start it; the workspace is removed
        if that fails, and ``None`` is returned if the user declined installing packages."""
        if not self.ensure_dependencies():
            return None
        workspace = self.new_workspace()
        try:
            job = make_job(workspace)
            job.start()
        except BaseException:
            workspace.cleanup()
            raise
        return job


def stage_volumes(
    workspace: TemporaryWorkspace, nodes: Mapping[str, object | None], write: Callable[[object, Path], Path], *,
    main: str, name_of: Callable[[object], str],
) -> dict[str, Path | None]:
    """Write the selected input nodes into ``workspace.inputs``; unselected (``None``) inputs stay ``None``.

    The main input's file is named after its node, so the outputs are ``{node name}_{suffix}``; the other
    inputs get their option name in front so that two nodes with the same name cannot overwrite each other.

    Args:
        workspace: the run's temporary folder.
        nodes: option name (``field``, ``mask``...) → node or ``None``.
        write: writes a node to a path (``slicer_nodes.write_volume`` in Slicer) and returns the path.
        main: option name of the main input.
        name_of: a node's name (``node.GetName()`` in Slicer).
    """
    staged: dict[str, Path | None] = {}
    for option, node in nodes.items():
        if node is None:
            staged[option] = None
            continue
        stem = name_of(node) if option == main else f"{option}_{name_of(node)}"
        staged[option] = write(node, workspace.input_path(stem))
    return staged

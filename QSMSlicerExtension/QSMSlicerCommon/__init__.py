# ruff: noqa: N999  (Slicer names packages in CamelCase, like its modules)
"""Plain-Python core shared by the QSM Slicer modules: bundle command lines, child processes, outputs.

Nothing here imports ``slicer``, ``qt`` or ``lightning_modules`` at import time, so the modules load fast
and pytest can drive everything outside 3D Slicer. The few functions that talk to Slicer
(:mod:`QSMSlicerCommon.slicer_nodes`, :mod:`QSMSlicerCommon.slicer_panel`) import it inside their bodies.
"""

from __future__ import annotations

from QSMSlicerCommon.display import PRESETS, DisplayPreset, preset_for
from QSMSlicerCommon.install import DependencyError, DependencyInstaller, read_requirements
from QSMSlicerCommon.job import BundleJob, JobResult, JobStatus, prepare_job
from QSMSlicerCommon.locations import ExtensionPaths, locate_extension_paths
from QSMSlicerCommon.options import (
    IvimOptions,
    QsmOptions,
    RimOptions,
    SpioOptions,
    build_command,
    expected_outputs,
)
from QSMSlicerCommon.process import BundleProcess, ProcessOutcome, parse_progress
from QSMSlicerCommon.runner import BundleRunner, stage_volumes
from QSMSlicerCommon.workspace import TemporaryWorkspace

__all__ = [
    "PRESETS",
    "BundleJob",
    "BundleProcess",
    "BundleRunner",
    "DependencyError",
    "DependencyInstaller",
    "DisplayPreset",
    "ExtensionPaths",
    "IvimOptions",
    "JobResult",
    "JobStatus",
    "ProcessOutcome",
    "QsmOptions",
    "RimOptions",
    "SpioOptions",
    "TemporaryWorkspace",
    "build_command",
    "expected_outputs",
    "locate_extension_paths",
    "parse_progress",
    "preset_for",
    "prepare_job",
    "read_requirements",
    "stage_volumes",
]

"""One bundle run from start to collected outputs: what a module's Logic drives and its Widget polls.

:func:`prepare_job` turns an options dataclass into a :class:`BundleJob` (command, environment, expected
outputs) in a :class:`~QSMSlicerCommon.workspace.TemporaryWorkspace`. The job owns the workspace: it is
removed when the run fails or is cancelled, and by :meth:`BundleJob.close` after a caller loaded the outputs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from QSMSlicerCommon.locations import ExtensionPaths
from QSMSlicerCommon.options import BundleOptions, build_command, expected_outputs
from QSMSlicerCommon.process import BundleProcess, LineCallback, ProcessOutcome, ProgressCallback
from QSMSlicerCommon.workspace import TemporaryWorkspace


class JobStatus(enum.Enum):
    """Final state of a job."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class JobResult:
    """What a finished job reports.

    Attributes:
        status: succeeded, failed or cancelled.
        message: one line for the user (the bundle's ``error: ...`` text on failure).
        outputs: output name → file, only when succeeded.
        returncode: exit status of the child.
    """

    status: JobStatus
    message: str
    returncode: int
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        """The run succeeded and every expected output exists."""
        return self.status is JobStatus.SUCCEEDED


class BundleJob:
    """A child process plus its workspace and the files it must produce.

    Args:
        command: the child's command line.
        workspace: temporary folder of this run (removed on failure, cancel and :meth:`close`).
        outputs: output name → path the run must create.
        env: the child's environment.
        on_line: streamed output lines (see :class:`~QSMSlicerCommon.process.BundleProcess`).
        on_progress: parsed progress.
        process_factory: builds the process (tests inject fakes; default :class:`BundleProcess`).
    """

    def __init__(
        self, command: Sequence[str], workspace: TemporaryWorkspace, outputs: Mapping[str, Path], *,
        env: Mapping[str, str] | None = None, on_line: LineCallback | None = None,
        on_progress: ProgressCallback | None = None, process_factory: type[BundleProcess] = BundleProcess,
    ) -> None:
        self.workspace = workspace
        self.outputs = dict(outputs)
        self.process = process_factory(command, env=env, cwd=workspace.root, on_line=on_line,
                                       on_progress=on_progress)
        self.result: JobResult | None = None

    def start(self) -> None:
        """Start the child process."""
        self.process.start()

    def poll(self) -> JobResult | None:
        """Deliver output received so far; the :class:`JobResult` once the child has ended."""
        if self.result is None:
            outcome = self.process.poll()
            if outcome is not None:
                self._finish(outcome)
        return self.result

    def wait(self, *, timeout_s: float | None = None) -> JobResult:
        """Block until the job ends (scripts, tests and the module's self-test).

        Raises:
            TimeoutError: the job still ran after ``timeout_s``; it has been cancelled.
        """
        try:
            outcome = self.process.wait(timeout_s=timeout_s)
        except TimeoutError:
            self.cancel()
            raise
        self._finish(outcome)
        assert self.result is not None
        return self.result

    def cancel(self) -> JobResult:
        """Stop the child and remove the workspace."""
        self._finish(self.process.cancel())
        assert self.result is not None
        return self.result

    def close(self) -> None:
        """Remove the workspace (after the outputs were loaded)."""
        self.workspace.cleanup()

    def _finish(self, outcome: ProcessOutcome) -> None:
        if self.result is not None:
            return
        self.result = self._judge(outcome)
        if not self.result.succeeded:
            self.close()

    def _judge(self, outcome: ProcessOutcome) -> JobResult:
        if outcome.cancelled:
            return JobResult(JobStatus.CANCELLED, "cancelled by the user", outcome.returncode)
        if outcome.returncode != 0:
            message = outcome.error_message or f"the bundle exited with status {outcome.returncode}; see the log"
            return JobResult(JobStatus.FAILED, message, outcome.returncode)
        missing = [str(p) for p in self.outputs.values() if not p.is_file()]
        if missing:
            return JobResult(JobStatus.FAILED, f"the bundle finished but did not write {', '.join(missing)}",
                             outcome.returncode)
        return JobResult(JobStatus.SUCCEEDED, f"done: {len(self.outputs)} output(s)", outcome.returncode,
                         dict(self.outputs))


def prepare_job(
    options: BundleOptions, workspace: TemporaryWorkspace, *, python: str, paths: ExtensionPaths,
    on_line: LineCallback | None = None, on_progress: ProgressCallback | None = None,
) -> BundleJob:
    """A (not yet started) job running the options' bundle with outputs in ``workspace.outputs``.

    Args:
        options: the capability's options (inputs already written into ``workspace.inputs``).
        workspace: the run's temporary folder; the job takes ownership.
        python: Python executable with the bundle dependencies (``PythonSlicer`` inside Slicer).
        paths: where the bundles and ``lightning_modules`` are.
        on_line: streamed output lines.
        on_progress: parsed progress.
    """
    command = build_command(options, python=python, bundles_dir=paths.bundles_dir, output_dir=workspace.outputs)
    return BundleJob(command, workspace, expected_outputs(options, workspace.outputs),
                     env=paths.child_environment(), on_line=on_line, on_progress=on_progress)

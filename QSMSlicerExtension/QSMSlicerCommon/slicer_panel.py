"""The run controls every module panel shares: Apply/Cancel, progress bar, log box and a polling timer.

The widgets come from the module's ``.ui`` file (``applyButton``, ``cancelButton``, ``progressBar``,
``statusLabel``, ``logTextBox``). ``qt`` is imported only when a panel is created, inside Slicer; tests
inject a fake timer.
"""

from __future__ import annotations

from collections.abc import Callable

from QSMSlicerCommon.job import BundleJob, JobResult

#: How often the GUI polls the child process.
POLL_INTERVAL_MS = 200


def _qt_timer() -> object:
    import qt

    return qt.QTimer()


class BundleRunPanel:
    """Shows a running :class:`BundleJob` in a module panel without blocking the GUI.

    Args:
        ui: the module's widget namespace (``slicer.util.childWidgetVariables``).
        timer_factory: creates the polling timer (default ``qt.QTimer``).
    """

    def __init__(self, ui: object, *, timer_factory: Callable[[], object] = _qt_timer) -> None:
        self.ui = ui
        self.timer = timer_factory()
        self.timer.setInterval(POLL_INTERVAL_MS)
        self.timer.connect("timeout()", self.poll)
        self.ui.cancelButton.connect("clicked(bool)", self.cancel)
        self.ui.cancelButton.enabled = False
        self.job: BundleJob | None = None
        self._on_finished: Callable[[BundleJob, JobResult], None] | None = None

    @property
    def busy(self) -> bool:
        """A job is running."""
        return self.job is not None

    def log(self, text: str) -> None:
        """Append a line to the log box."""
        self.ui.logTextBox.appendPlainText(text)

    def on_line(self, stream: str, line: str) -> None:
        """Job callback: every output line goes to the log."""
        self.log(line)

    def on_progress(self, fraction: float, message: str) -> None:
        """Job callback: progress bar and status line."""
        self.ui.progressBar.value = int(round(100 * fraction))
        if message:
            self.ui.statusLabel.text = message

    def not_started(self, message: str) -> None:
        """No job was started (the user declined installing packages): say so in the status line and the log."""
        self.ui.statusLabel.text = message
        self.log(message)

    def track(self, job: BundleJob, on_finished: Callable[[BundleJob, JobResult], None]) -> None:
        """Follow a started job; ``on_finished(job, result)`` runs once it has ended (also when cancelled)."""
        self.job = job
        self._on_finished = on_finished
        self.ui.progressBar.value = 0
        self.ui.statusLabel.text = "running"
        self.ui.applyButton.enabled = False
        self.ui.cancelButton.enabled = True
        self.timer.start()

    def poll(self) -> None:
        """Timer slot: deliver new output and finish when the job has ended."""
        if self.job is not None:
            result = self.job.poll()
            if result is not None:
                self._finish(result)

    def cancel(self) -> None:
        """Cancel button slot: stop the job (its workspace is removed)."""
        if self.job is not None:
            self._finish(self.job.cancel())

    def _finish(self, result: JobResult) -> None:
        job, on_finished = self.job, self._on_finished
        self.timer.stop()
        self.job = None
        self._on_finished = None
        self.ui.cancelButton.enabled = False
        self.ui.applyButton.enabled = True
        self.ui.statusLabel.text = result.message
        if result.succeeded:
            self.ui.progressBar.value = 100
        self.log(f"{result.status.value}: {result.message}")
        if job is not None and on_finished is not None:
            on_finished(job, result)

"""The child-process runner, job and run panel with small stand-in children (no MONAI start-up cost)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from QSMSlicerCommon.job import BundleJob, JobStatus
from QSMSlicerCommon.process import BundleProcess, parse_progress
from QSMSlicerCommon.slicer_panel import BundleRunPanel
from QSMSlicerCommon.workspace import TemporaryWorkspace

CHATTY_CHILD = """
import sys
for pct in (0, 50, 100):
    print(f"[progress] {pct}% step {pct}", flush=True)
print("a warning", file=sys.stderr, flush=True)
"""
FAILING_CHILD = """
import sys
print("[progress] 10% reading", flush=True)
print("UserWarning: something harmless", file=sys.stderr)
print("error: field map file 'x.nii.gz' is 2-D with shape (4, 4); expected 3-D", file=sys.stderr)
sys.exit(2)
"""
#: A child that starts a grandchild in its process group, reports both pids and sleeps.
SLEEPING_FAMILY = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(f"pids {grandchild.pid}", flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of an exited grandchild counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_parse_progress() -> None:
    assert parse_progress("[progress] 100% done") == (1.0, "done")
    assert parse_progress("[progress] 7%") == (0.07, "")
    assert parse_progress("progress 7%") is None
    assert parse_progress("[progress] 12.5% half") == (0.125, "half")


def test_output_is_streamed_and_progress_parsed() -> None:
    lines, progress = [], []
    process = BundleProcess([sys.executable, "-c", CHATTY_CHILD], on_line=lambda s, t: lines.append((s, t)),
                            on_progress=lambda f, m: progress.append((f, m)))
    process.start()
    outcome = process.wait(timeout_s=30)
    assert outcome.succeeded and outcome.error_message is None
    assert progress == [(0.0, "step 0"), (0.5, "step 50"), (1.0, "step 100")]
    assert ("stderr", "a warning") in lines and ("stdout", "[progress] 50% step 50") in lines
    assert process.progress == 1.0


def test_failure_surfaces_the_one_line_error(tmp_path: Path) -> None:
    workspace = TemporaryWorkspace(tmp_path)
    job = BundleJob([sys.executable, "-c", FAILING_CHILD], workspace, {"chi": workspace.outputs / "x_chi.nii.gz"})
    job.start()
    result = job.wait(timeout_s=30)
    assert result.status is JobStatus.FAILED and result.returncode == 2
    assert result.message == "field map file 'x.nii.gz' is 2-D with shape (4, 4); expected 3-D"
    assert not workspace.exists and not result.outputs


def test_missing_output_is_a_failure(tmp_path: Path) -> None:
    workspace = TemporaryWorkspace(tmp_path)
    job = BundleJob([sys.executable, "-c", "pass"], workspace, {"chi": workspace.outputs / "x_chi.nii.gz"})
    job.start()
    result = job.wait(timeout_s=30)
    assert result.status is JobStatus.FAILED and "did not write" in result.message


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX here")
def test_cancel_stops_the_child_and_its_children_and_removes_the_workspace(tmp_path: Path) -> None:
    workspace = TemporaryWorkspace(tmp_path)
    (workspace.inputs / "field.nii.gz").write_bytes(b"staged input")
    lines: list[str] = []
    job = BundleJob([sys.executable, "-c", SLEEPING_FAMILY], workspace, {}, on_line=lambda s, t: lines.append(t))
    job.start()
    deadline = time.monotonic() + 20
    while not any(t.startswith("pids") for t in lines) and time.monotonic() < deadline:
        assert job.poll() is None
        time.sleep(0.05)
    grandchild = int(next(t for t in lines if t.startswith("pids")).split()[1])
    child = job.process.pid
    started = time.monotonic()
    result = job.cancel()
    assert time.monotonic() - started < 5, "SIGTERM should end a sleeping child at once"
    assert result.status is JobStatus.CANCELLED and result.returncode != 0
    assert not alive(child) and not alive(grandchild)
    assert not workspace.exists and list(tmp_path.iterdir()) == []
    assert job.poll() is result and job.cancel() is result


@pytest.mark.skipif(sys.platform == "win32", reason="signals are POSIX here")
def test_cancel_kills_a_child_that_ignores_terminate() -> None:
    stubborn = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "print('ready', flush=True)\ntime.sleep(60)")
    ready: list[str] = []
    process = BundleProcess([sys.executable, "-c", stubborn], on_line=lambda s, t: ready.append(t))
    process.start()
    while not ready:
        process.poll()
        time.sleep(0.05)
    outcome = process.cancel(grace_s=0.5)
    assert outcome.cancelled and outcome.returncode == -9


class FakeTimer:
    """Stands in for qt.QTimer: the test calls the connected slot itself."""

    def __init__(self) -> None:
        self.active = False
        self.slot = None

    def setInterval(self, ms: int) -> None:
        self.interval = ms

    def connect(self, signal: str, slot) -> None:
        self.slot = slot

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False


class FakeButton(SimpleNamespace):
    def connect(self, signal: str, slot) -> None:
        self.slot = slot


def fake_ui() -> SimpleNamespace:
    log: list[str] = []
    return SimpleNamespace(applyButton=FakeButton(enabled=True), cancelButton=FakeButton(enabled=True),
                           progressBar=SimpleNamespace(value=0), statusLabel=SimpleNamespace(text=""),
                           logTextBox=SimpleNamespace(appendPlainText=log.append, lines=log))


def test_run_panel_follows_a_job_until_it_ends(tmp_path: Path) -> None:
    ui = fake_ui()
    panel = BundleRunPanel(ui, timer_factory=FakeTimer)
    assert ui.cancelButton.enabled is False
    workspace = TemporaryWorkspace(tmp_path)
    out = workspace.outputs / "f_chi.nii.gz"
    script = CHATTY_CHILD + f"\nopen({str(out)!r}, 'w').close()"
    job = BundleJob([sys.executable, "-c", script], workspace, {"chi": out}, on_line=panel.on_line,
                    on_progress=panel.on_progress)
    finished = []
    job.start()
    panel.track(job, lambda j, r: finished.append(r))
    assert panel.busy and ui.applyButton.enabled is False and ui.cancelButton.enabled is True
    deadline = time.monotonic() + 30
    while panel.timer.active and time.monotonic() < deadline:
        panel.timer.slot()
        time.sleep(0.05)
    assert finished and finished[0].succeeded and finished[0].outputs == {"chi": out}
    assert ui.progressBar.value == 100 and not panel.busy
    assert ui.applyButton.enabled is True and ui.cancelButton.enabled is False
    assert "[progress] 50% step 50" in ui.logTextBox.lines and ui.logTextBox.lines[-1].startswith("succeeded")
    job.close()
    assert not workspace.exists


def test_run_panel_cancel_button(tmp_path: Path) -> None:
    ui = fake_ui()
    panel = BundleRunPanel(ui, timer_factory=FakeTimer)
    workspace = TemporaryWorkspace(tmp_path)
    job = BundleJob([sys.executable, "-c", "import time; time.sleep(60)"], workspace, {})
    finished = []
    job.start()
    panel.track(job, lambda j, r: finished.append(r))
    ui.cancelButton.slot()
    assert finished[0].status is JobStatus.CANCELLED and not panel.timer.active
    assert ui.statusLabel.text == "cancelled by the user" and not workspace.exists


def test_wait_with_timeout_cancels_the_job(tmp_path: Path) -> None:
    workspace = TemporaryWorkspace(tmp_path)
    job = BundleJob([sys.executable, "-c", "import time; time.sleep(60)"], workspace, {})
    job.start()
    with pytest.raises(TimeoutError):
        job.wait(timeout_s=0.5)
    assert job.result.status is JobStatus.CANCELLED and not workspace.exists

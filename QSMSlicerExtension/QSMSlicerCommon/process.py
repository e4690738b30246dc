"""A bundle run as a child process that a GUI polls: streamed log lines, progress, one-line errors, cancel.

The bundles print machine-readable progress lines ``[progress] 42% message`` on stdout and, on bad input,
one line ``error: ...`` on stderr with a non-zero exit status (``lightning_modules.bundle_app``; a test keeps
the prefixes here equal to those). Two reader threads move the child's output into a queue; :meth:`poll`
drains it in the caller's thread, so callbacks may touch Qt widgets when a ``qt.QTimer`` calls it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

#: Prefix of progress lines (``lightning_modules.bundle_app.PROGRESS_PREFIX``).
PROGRESS_PREFIX = "[progress]"
#: Prefix of the one-line user error on stderr.
ERROR_PREFIX = "error: "

_PROGRESS_LINE = re.compile(r"^" + re.escape(PROGRESS_PREFIX) + r"\s+(\d+(?:\.\d+)?)%\s*(.*)$")

#: ``on_line(stream, line)`` with stream ``"stdout"`` or ``"stderr"``.
LineCallback = Callable[[str, str], None]
#: ``on_progress(fraction, message)`` with 0 ≤ fraction ≤ 1.
ProgressCallback = Callable[[float, str], None]


def parse_progress(line: str) -> tuple[float, str] | None:
    """The fraction (0..1) and message of a progress line, or ``None`` for any other line.

    >>> parse_progress("[progress] 42% ndi: field.nii.gz")
    (0.42, 'ndi: field.nii.gz')
    >>> parse_progress("wrote out/field_chi.nii.gz") is None
    True
    """
    match = _PROGRESS_LINE.match(line.strip())
    if match is None:
        return None
    return min(max(float(match.group(1)) / 100.0, 0.0), 1.0), match.group(2)


@dataclass(frozen=True)
class ProcessOutcome:
    """How a child process ended.

    Attributes:
        returncode: exit status (negative: killed by that signal on POSIX).
        cancelled: the process was stopped by :meth:`BundleProcess.cancel`.
        error_message: the text of the last ``error: ...`` line on stderr, if any.
    """

    returncode: int
    cancelled: bool
    error_message: str | None

    @property
    def succeeded(self) -> bool:
        """Exit status 0 and not cancelled."""
        return self.returncode == 0 and not self.cancelled


class BundleProcess:
    """Start a command without blocking, then :meth:`poll` it until it returns a :class:`ProcessOutcome`.

    Args:
        command: program and arguments.
        env: environment of the child (default: this process's environment).
        cwd: working directory of the child.
        on_line: called with every output line (stream name, text without the newline).
        on_progress: called with every parsed progress line.
    """

    def __init__(
        self, command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
        on_line: LineCallback | None = None, on_progress: ProgressCallback | None = None,
    ) -> None:
        self.command = [str(c) for c in command]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.on_line = on_line
        self.on_progress = on_progress
        self.progress = 0.0
        self.error_message: str | None = None
        self._lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._process: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []
        self._open_streams = 0
        self._cancelled = False
        self._outcome: ProcessOutcome | None = None

    @property
    def pid(self) -> int | None:
        """Process id of the child once started."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the child in its own process group (so that cancel reaches its children too)."""
        if self._process is not None:
            raise RuntimeError("this process was already started; create a new BundleProcess to run again")
        group = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if sys.platform == "win32"
                 else {"start_new_session": True})
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", bufsize=1, env=self.env, cwd=self.cwd, **group,
        )
        for name, stream in (("stdout", self._process.stdout), ("stderr", self._process.stderr)):
            reader = threading.Thread(target=self._read, args=(name, stream), daemon=True)
            reader.start()
            self._readers.append(reader)
        self._open_streams = len(self._readers)

    def _read(self, name: str, stream) -> None:
        for line in stream:
            self._lines.put((name, line.rstrip("\r\n")))
        stream.close()
        self._lines.put((name, None))

    def poll(self) -> ProcessOutcome | None:
        """Deliver the output received so far; the outcome once the child has exited and its output is read."""
        if self._process is None:
            raise RuntimeError("start() the process before polling it")
        if self._outcome is not None:
            return self._outcome
        while True:
            try:
                name, line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._open_streams -= 1
            else:
                self._handle(name, line)
        returncode = self._process.poll()
        if returncode is None or self._open_streams > 0:
            return None
        self._outcome = ProcessOutcome(returncode, self._cancelled, self.error_message)
        return self._outcome

    def _handle(self, name: str, line: str) -> None:
        if self.on_line is not None:
            self.on_line(name, line)
        if name == "stderr" and line.startswith(ERROR_PREFIX):
            self.error_message = line[len(ERROR_PREFIX):].strip()
        progress = parse_progress(line) if name == "stdout" else None
        if progress is not None:
            self.progress = progress[0]
            if self.on_progress is not None:
                self.on_progress(*progress)

    def wait(self, *, timeout_s: float | None = None, interval_s: float = 0.1) -> ProcessOutcome:
        """Poll until the child ends (for scripts and tests; a GUI polls from a timer instead).

        Raises:
            TimeoutError: the child still runs after ``timeout_s`` (it is left running).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while (outcome := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.command[0]} still runs after {timeout_s} s")
            time.sleep(interval_s)
        return outcome

    def cancel(self, *, grace_s: float = 5.0) -> ProcessOutcome:
        """Terminate the child's process group, kill it if it outlives ``grace_s``, and return the outcome."""
        if self._process is None:
            raise RuntimeError("start() the process before cancelling it")
        if self._outcome is not None:
            return self._outcome
        self._cancelled = True
        if self._process.poll() is None:
            self._signal(terminate=True)
            try:
                self._process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._signal(terminate=False)
                self._process.wait()
        for reader in self._readers:
            reader.join(timeout=grace_s)
        if any(reader.is_alive() for reader in self._readers):
            self._open_streams = 0  # a grandchild outside the group holds the pipes: stop waiting for them
        return self.wait()

    def _signal(self, *, terminate: bool) -> None:
        assert self._process is not None
        if sys.platform == "win32":
            (self._process.terminate if terminate else self._process.kill)()
            return
        try:
            os.killpg(self._process.pid, signal.SIGTERM if terminate else signal.SIGKILL)
        except ProcessLookupError:  # the group ended between poll() and killpg()
            pass

"""``make web``: one session process per browser tab, so that two tabs never share a scene, a run or a file.

A trame server shares one state (and here one Slicer scene) among all the tabs connected to it. The launcher
therefore serves only a start page; opening ``/qsm``, ``/ivim``, ``/spio`` or ``/rim`` hands the tab a new
:mod:`qsm_web.app` process on a free port of the same host (its own scene, its own temporary folder) and
redirects the tab to it. Starting a session takes seconds (VTK, Slicer's libraries, the views), so the launcher
keeps a spare one for the next tab, started when the launcher serves and after each hand-out; a tab that arrives
while the spare is still starting waits for it rather than starting another. A session process exits when no
tab has been connected to it for ``--session-timeout`` seconds (a spare too); stopping the launcher (Ctrl-C,
SIGTERM) stops every session it started, each cancelling its run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

PAGES = {"qsm": "QSM dipole inversion", "ivim": "IVIM mapping", "spio": "SPIO quantification",
         "rim": "Rim-lesion detection"}
START_TIMEOUT_S = 120.0  # a session loads VTK, Slicer's libraries and builds its views (a few seconds, more
#                          on a busy machine)


def free_port(host: str) -> int:
    """A port that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def listening(host: str, port: int) -> bool:
    """Something accepts connections on ``host:port``."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


class Launcher:
    """Starts and stops session processes.

    Args:
        host: interface the sessions listen on (the launcher's own).
        session_timeout_s: a session exits this long after its last tab closed.
        bundle_python: Python that runs the bundles (passed on to each session).
    """

    def __init__(self, host: str, *, session_timeout_s: int, bundle_python: str | None = None) -> None:
        self.host, self.session_timeout_s, self.bundle_python = host, session_timeout_s, bundle_python
        self.sessions: list[subprocess.Popen] = []
        self._spare: threading.Thread | None = None
        self._spare_session: tuple[subprocess.Popen, int] | None = None
        self._lock = threading.Lock()

    def session_for(self, page: str) -> int:
        """A ready session showing ``page`` and its port: the spare one (waited for if it is still starting, which
        is sooner than starting another), else a new one; then start the next spare."""
        starting = self._spare
        if starting is not None:
            starting.join(timeout=START_TIMEOUT_S)
        with self._lock:
            spare, self._spare_session = self._spare_session, None
        if spare is not None and spare[0].poll() is None:
            port = spare[1]
            urllib.request.urlopen(urllib.request.Request(f"http://{self.host}:{port}/api/page/{page}",
                                                          method="POST"), timeout=10).close()
        else:
            _, port = self.start_session(page)
        self.start_spare()
        return port

    def start_spare(self) -> None:
        """Start a spare session in the background, unless one is being started."""
        with self._lock:
            if self._spare is not None and self._spare.is_alive():
                return
            self._spare = threading.Thread(target=self._start_spare, daemon=True)
            self._spare.start()

    def _start_spare(self) -> None:
        try:
            session = self.start_session("qsm")
        except RuntimeError:
            return  # the next tab starts its own session
        with self._lock:
            self._spare_session = session

    def start_session(self, page: str) -> tuple[subprocess.Popen, int]:
        """Start a session process on ``page``; return it and its port once it accepts connections.

        Raises:
            RuntimeError: it exited or did not listen within ``START_TIMEOUT_S``.
        """
        port = free_port(self.host)
        command = [sys.executable, "-m", "qsm_web.app", "--host", self.host, "--port", str(port), "--page", page,
                   "--timeout", str(self.session_timeout_s)]
        if self.bundle_python:
            command += ["--bundle-python", self.bundle_python]
        process = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                                   start_new_session=True)
        with self._lock:
            self.sessions.append(process)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the {page} session exited with status {process.returncode} before serving")
            if listening(self.host, port):
                return process, port
            time.sleep(0.2)
        self.stop_sessions([process])
        raise RuntimeError(f"the {page} session did not serve within {START_TIMEOUT_S:.0f} s")

    @staticmethod
    def stop_sessions(processes: list[subprocess.Popen], *, grace_s: float = 10.0) -> None:
        """SIGTERM to each (a session cancels its run and removes its folder), then SIGKILL to the process group
        of any still running after ``grace_s``."""
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace_s
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop_all(self) -> None:
        """Stop every session this launcher started (a spare being started included)."""
        if self._spare is not None:
            self._spare.join(timeout=START_TIMEOUT_S)
        with self._lock:
            sessions, self.sessions, self._spare_session = list(self.sessions), [], None
        self.stop_sessions(sessions)

    def reap(self) -> None:
        """Forget sessions that ended on their own (their tab closed)."""
        with self._lock:
            self.sessions = [process for process in self.sessions if process.poll() is None]


def start_page() -> str:
    """The launcher's page: one link per capability."""
    links = "".join(f'<li><a href="{key}">{title}</a></li>' for key, title in PAGES.items())
    return (f"<!doctype html><title>QSM Slicer Extension</title><h1>QSM Slicer Extension</h1>"
            f"<p>Each link opens a new session (its own scene and files).</p><ul>{links}</ul>")


def serve(host: str, port: int, launcher: Launcher) -> None:
    """Serve the start page and the session redirects until SIGINT/SIGTERM, then stop every session."""
    from aiohttp import web

    async def index(_request):
        return web.Response(text=start_page(), content_type="text/html")

    async def session(request):
        page = request.match_info["page"]
        if page not in PAGES:
            raise web.HTTPNotFound(text=f"no page {page!r}; choose one of {', '.join(PAGES)}")
        launcher.reap()
        try:
            session_port = await asyncio.get_running_loop().run_in_executor(None, launcher.session_for, page)
        except RuntimeError as error:
            raise web.HTTPServiceUnavailable(text=str(error)) from None
        hostname = request.url.host or host
        raise web.HTTPFound(f"http://{hostname}:{session_port}/")

    async def stop_sessions(_app):
        launcher.stop_all()

    def serving() -> None:  # called once the port is bound
        print(f"QSM Slicer Extension web app: http://{host}:{port}/ (Ctrl-C stops it and its sessions)", flush=True)
        launcher.start_spare()  # the first tab need not wait for a session to start

    app = web.Application()
    app.add_routes([web.get("/", index), web.get("/{page}", session)])
    app.on_shutdown.append(stop_sessions)
    web.run_app(app, host=host, port=port, print=lambda _message: serving())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the four tools in a browser, one session per tab.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--session-timeout", type=int, default=300,
                        help="seconds a session lives on after its tab closed")
    parser.add_argument("--bundle-python", default=None, help="Python that runs the bundles (default: .venv)")
    args = parser.parse_args(argv)
    launcher = Launcher(args.host, session_timeout_s=args.session_timeout, bundle_python=args.bundle_python)
    try:
        serve(args.host, args.port, launcher)
    except OSError as error:
        sys.exit(f"error: cannot serve on {args.host}:{args.port} ({error.strerror or error}); choose another --port")
    finally:
        launcher.stop_all()


if __name__ == "__main__":
    main()

"""The web app (``make web``) served on 127.0.0.1 and driven by headless Chromium through Playwright.

Needs what ``make install`` sets up through ``tools/install_web.sh``: ``.venv-web`` (trame-slicer), Playwright
in ``.venv`` and the Debian ``chromium``. Where one is missing the tests skip and say which and how to get it.
The launcher is started once for the module (``make web``'s command, on a free port) and stopped by its PID
at the end; every page opens its own session process, as a user's tab does.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import web_inputs

REPO = Path(__file__).resolve().parents[2]
WEB_PYTHON = REPO / ".venv-web" / "bin" / "python"
WEB_DIR = REPO / "QSMSlicerExtension" / "web"
SLICER_LAYER = Path(os.environ.get("QSM_SLICER_SOURCE") or REPO.parent / "shared" / "slicer-5.12.3")
START_S = 60.0


def chromium() -> str | None:
    """The Chromium executable (``$QSM_CHROMIUM`` or the Debian package's)."""
    named = os.environ.get("QSM_CHROMIUM")
    return shutil.which(named) if named else shutil.which("chromium") or shutil.which("chromium-browser")


def unavailable() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    if not (WEB_PYTHON.parent.parent / ".installed").is_file():
        return f"{WEB_PYTHON.parent.parent} is not set up (`make install` or `bash tools/install_web.sh` makes it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed in .venv (`bash tools/install_web.sh` installs it)"
    if chromium() is None:
        return "no chromium (`apt-get install chromium`, which tools/install_web.sh does as root)"
    if not (SLICER_LAYER / "Base" / "Python" / "slicer").is_dir():
        return f"Slicer 5.12.3's Python layer not found at {SLICER_LAYER} (place ../shared/slicer-5.12.3)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class WebServer:
    """The launcher's base URL and the session folders the tests opened (all gone once it has stopped)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session_roots: list[Path] = []


@pytest.fixture(scope="module")
def web_server():
    """``qsm_web.launcher`` on 127.0.0.1; stopped by its PID at the end, which must stop every session it
    started and leave none of their folders."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([str(WEB_PYTHON), "-m", "qsm_web.launcher", "--port", str(port),
                                "--session-timeout", "120"], cwd=WEB_DIR, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_S
    with socket.socket() as probe:
        while probe.connect_ex(("127.0.0.1", port)) != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the web launcher did not start: {process.stderr.read()[-2000:]}")
            time.sleep(0.2)
    server = WebServer(f"http://127.0.0.1:{port}/")
    yield server
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the web launcher did not stop within 60 s of SIGTERM")
    left = [str(root) for root in server.session_roots if root.exists()]
    assert not left, f"stopping the launcher left session folders: {left}"


@pytest.fixture(scope="module")
def browser(web_server):
    """Headless Chromium (the Debian package) under Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture
def context(browser):
    """A fresh browser context (its own cookies and tabs) with a desktop-sized viewport."""
    context = browser.new_context(viewport={"width": 1400, "height": 820})
    yield context
    context.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Upload files per page."""
    folder = tmp_path_factory.mktemp("web_inputs")
    return {"qsm": web_inputs.qsm_field(folder), "ivim": web_inputs.ivim_series(folder),
            "spio": web_inputs.spio_image(folder), "rim": web_inputs.rim_case(folder)}


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    """Where page screenshots go: ``$QSM_WEB_SCREENSHOTS`` (the README's are made so) or a temporary folder."""
    folder = Path(os.environ.get("QSM_WEB_SCREENSHOTS") or tmp_path_factory.mktemp("web_screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder

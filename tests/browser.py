"""Reusable browser-test harness: the real ``webui.py`` in a subprocess, driven by headless Chromium.

Use the fixtures from ``tests/conftest.py`` (``studio_server``, ``studio_page``) or, for custom
launches, :func:`run_studio` and :func:`chromium_context` directly::

    def test_my_tab(studio_page, studio_server):
        studio_page.get_by_role("tab", name="Text to speech").click()
        ...

Every server gets a free port and its own ``STUDIO_HOME`` (other engineers run browser tests at
the same time); Chromium is Debian's ``/usr/bin/chromium`` with a fresh profile and no network
features.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class StudioServer:
    """A running ``webui.py``."""

    # Base URL, e.g. "http://127.0.0.1:43123/".
    url: str
    # Its STUDIO_HOME (pretrained_models/, output/, ... live here).
    home: Path
    # File receiving the server's stdout and stderr.
    log_path: Path
    # The server process.
    process: subprocess.Popen

    def log(self) -> str:
        """Everything the server printed so far (for assertion messages)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    """A TCP port nobody listens on right now (bind port 0 and let the OS choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"webui.py exited with code {proc.returncode} before serving:\n{log_path.read_text(errors='replace')}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise TimeoutError(
        f"webui.py did not answer at {url} within {timeout:.0f} s:\n{log_path.read_text(errors='replace')}"
    )


@contextmanager
def run_studio(
    home: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = READY_TIMEOUT_S,
) -> Iterator[StudioServer]:
    """Start ``webui.py`` on a free loopback port with ``STUDIO_HOME=home``; stop it afterwards.

    ``args`` are extra command-line flags (e.g. ``["--lang", "zh"]``); ``env`` extra variables.
    """
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = home / "webui.log"
    child_env = {
        **os.environ,
        "STUDIO_HOME": str(home),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    cmd = [sys.executable, str(REPO_ROOT / "webui.py"), "--host", "127.0.0.1", "--port", str(port), *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_ready(url, proc, log_path, timeout)
        yield StudioServer(url=url, home=home, log_path=log_path, process=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextmanager
def chromium_context(profile_dir: Path, *, locale: str = "en-US") -> Iterator[object]:
    """A headless Chromium ``BrowserContext`` (Playwright, sync API) with a fresh profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=list(CHROMIUM_ARGS),
            locale=locale,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def open_studio(context, server: StudioServer):
    """A new page showing the studio, loaded (the first tab's panel is visible)."""
    page = context.new_page()
    page.goto(server.url, wait_until="domcontentloaded")
    page.locator(".gradio-container").first.wait_for(state="visible", timeout=60_000)
    page.get_by_role("tab").first.wait_for(state="visible", timeout=60_000)
    return page

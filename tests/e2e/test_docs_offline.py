"""/docs in a real browser that can reach no other host: Swagger UI renders every operation."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not shutil.which("chromium"), reason="chromium not installed")]


def test_docs_render_in_a_browser_without_internet(start_server, tmp_path):
    """The way it was found: offline, the page stayed blank (its scripts came from CDNs)."""
    server = start_server(APP_ENV="development", LOAD_DEMO="false")
    args = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # every other host is unreachable
        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", "--dump-dom",
        "--enable-logging=stderr", "--v=0",  # the page's console (a blocked script or style is reported there)
        f"{server.url}/docs",
    ]  # fmt: skip
    browser = subprocess.run(args, capture_output=True, text=True, timeout=120)
    dom = browser.stdout
    assert "swagger-ui" in dom and dom.count('class="opblock ') >= 100, dom[:2000]  # Swagger UI listed operations
    console = [line for line in browser.stderr.splitlines() if ":CONSOLE" in line]
    assert not [line for line in console if "Content Security Policy" in line], console  # its own CSP holds
    assert "/api/v1/matters" in dom
    assert "最多跑一次" in dom  # the spec's title, fetched from /docs/openapi.json

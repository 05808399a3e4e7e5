"""The README's run command as a new user meets it: a real process, the demo catalogue, a browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKEND, REDIS_URL
from tests.e2e.staff_login import staff_bearer

pytestmark = pytest.mark.slow


def test_fresh_start_serves_demo_catalogue(start_server):
    server = start_server(APP_ENV="development")
    matters = httpx.get(server.url + "/api/v1/matters", params={"page_size": 100}).json()
    assert matters["total"] >= 40
    sections = httpx.get(server.url + "/api/v1/sections").json()["items"]
    assert len(sections) == 7 and all(s["matter_count"] >= 4 for s in sections)
    code = matters["items"][0]["code"]
    page = httpx.get(server.url + f"/m/{code}")
    assert page.status_code == 200
    assert matters["items"][0]["name"] in page.text
    assert "最多跑一次" in httpx.get(server.url + "/m").text


def test_production_mode_refuses_to_start_without_secrets(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY", "BASE_URL"}}
    env["APP_ENV"] = "production"
    proc = subprocess.run(
        [sys.executable, "-m", "app", "run"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "DATABASE_URL" in proc.stderr and "SECRET_KEY" in proc.stderr


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium not installed")
def test_guide_page_in_headless_chromium(start_server, tmp_path):
    server = start_server()
    item = httpx.get(server.url + "/api/v1/matters", params={"q": "营业执照"}).json()["items"][0]
    shot = tmp_path / "guide.png"
    args = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=360,1400",
    ]
    dom = subprocess.run(
        [*args, "--dump-dom", f"{server.url}/m/{item['code']}"], capture_output=True, text=True, timeout=90
    )
    assert item["name"] in dom.stdout
    assert "申请材料" in dom.stdout and "预约" in dom.stdout
    subprocess.run([*args, f"--screenshot={shot}", f"{server.url}/m/{item['code']}"], capture_output=True, timeout=90)
    assert shot.exists() and shot.stat().st_size > 10_000
    keep = os.environ.get("E2E_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "guide.png")


def _admin_headers(server, database_url: str) -> dict[str, str]:
    """Create an admin with the CLI and sign in over HTTP."""
    subprocess.run(
        [sys.executable, "-m", "app", "staff", "create", "--role", "admin", "--username", "e2e", "--password-stdin"],
        input="e2e password 123\n", text=True, check=True, timeout=60, capture_output=True,
        cwd=Path(__file__).resolve().parents[2], env={**os.environ, "DATABASE_URL": database_url},
    )  # fmt: skip
    return staff_bearer(server.url, "e2e", "e2e password 123")


@pytest.mark.skipif(BACKEND != "postgres" or not REDIS_URL, reason="two workers need PostgreSQL and Redis")
def test_publish_visible_across_two_workers(start_server, pg_scratch_db):
    server = start_server(DATABASE_URL=pg_scratch_db, REDIS_URL=REDIS_URL.rsplit("/", 1)[0] + "/12", WORKERS="2")
    headers = _admin_headers(server, pg_scratch_db)
    code = httpx.get(server.url + "/api/v1/matters").json()["items"][0]["code"]
    # Warm both workers' caches: new connections are spread over the workers.
    for _ in range(30):
        assert httpx.get(server.url + f"/api/v1/matters/{code}").json()["version"] == 1
    current = httpx.get(server.url + f"/api/v1/admin/matters/{code}/versions/1", headers=headers).json()["content"]
    current["summary"] = f"新版本 {uuid.uuid4().hex[:6]}"
    draft = httpx.put(server.url + f"/api/v1/admin/matters/{code}/draft", json={"content": current}, headers=headers)
    assert draft.status_code == 200, draft.text
    no = draft.json()["version"]["no"]
    published = httpx.post(server.url + f"/api/v1/admin/matters/{code}/versions/{no}/publish", headers=headers)
    assert published.status_code == 200, published.text
    time.sleep(2)
    seen = {httpx.get(server.url + f"/api/v1/matters/{code}").json()["version"] for _ in range(30)}
    assert seen == {no}


@pytest.mark.skipif(BACKEND != "postgres" or not REDIS_URL, reason="two workers need PostgreSQL and Redis")
def test_code_retarget_and_disable_visible_on_every_worker_within_two_seconds(start_server, pg_scratch_db):
    server = start_server(DATABASE_URL=pg_scratch_db, REDIS_URL=REDIS_URL.rsplit("/", 1)[0] + "/11", WORKERS="2")
    headers = _admin_headers(server, pg_scratch_db)
    items = httpx.get(server.url + "/api/v1/matters", params={"page_size": 2}).json()["items"]
    first, second = items[0]["code"], items[1]["code"]
    slug = httpx.get(server.url + f"/api/v1/matters/{first}").json()["links"]["qr"]["slug"]
    json_accept = {"Accept": "application/json"}
    for _ in range(30):  # warm the snapshot caches of both workers (new connections spread over them)
        assert httpx.get(server.url + f"/q/{slug}", headers=json_accept).json()["matter"]["code"] == first
    moved = httpx.patch(server.url + f"/api/v1/admin/codes/{slug}", json={"matter_code": second}, headers=headers)
    assert moved.status_code == 200, moved.text
    time.sleep(2)
    seen = {httpx.get(server.url + f"/q/{slug}", headers=json_accept).json()["matter"]["code"] for _ in range(30)}
    assert seen == {second}
    off = httpx.patch(server.url + f"/api/v1/admin/codes/{slug}", json={"status": "disabled"}, headers=headers)
    assert off.status_code == 200
    time.sleep(2)
    assert {httpx.get(server.url + f"/q/{slug}").status_code for _ in range(30)} == {410}

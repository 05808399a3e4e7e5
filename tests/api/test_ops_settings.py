"""FORWARDED_SECRET and PROMETHEUS_MULTIPROC_DIR as a started worker uses them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from sanic import HTTPResponse, Request, Sanic
from sanic.response import json

from app.server import create_app
from app.settings import Settings
from tests.conftest import AppClient

SECRET = "proxy-secret-42"


async def _client_address(request: Request) -> HTTPResponse:
    return json({"remote_addr": request.remote_addr, "scheme": request.scheme})


@pytest.fixture
async def started() -> AsyncIterator:
    """Start apps built from settings; stopped at the end."""
    clients: list[AppClient] = []

    async def start(settings: Settings, *, probe: bool = False) -> AppClient:
        app: Sanic = create_app(settings)
        if probe:
            app.add_route(_client_address, "/test/client-address")
        client = AppClient(app)
        await client.start()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.stop()


async def test_forwarded_header_with_the_secret_names_the_client(started, settings):
    client = await started(settings.replace(forwarded_secret=SECRET), probe=True)
    assert client.sanic_app.config.FORWARDED_SECRET == SECRET
    header = {"forwarded": f"for=203.0.113.9;proto=https;secret={SECRET}"}
    _, resp = await client.get("/test/client-address", headers=header)
    assert resp.json == {"remote_addr": "203.0.113.9", "scheme": "https"}
    _, resp = await client.get("/test/client-address", headers={"forwarded": "for=198.51.100.1;secret=guess"})
    assert resp.json["remote_addr"] == ""  # a header without the secret is not trusted


async def test_without_a_secret_no_forwarded_header_is_trusted(started, settings):
    client = await started(settings, probe=True)
    assert client.sanic_app.config.FORWARDED_SECRET is None
    _, resp = await client.get("/test/client-address", headers={"forwarded": "for=203.0.113.9;secret="})
    assert resp.json["remote_addr"] == ""


def _other_worker_counter(directory: Path, value: float) -> None:
    """What another worker's prometheus_client leaves in the multiprocess directory."""
    store = MmapedDict(str(directory / "counter_4242.db"))
    key = mmap_key("zuiduo_test_jobs", "zuiduo_test_jobs_total", [], [], "Jobs of another worker")
    store.write_value(key, value, 0.0)
    store.close()


async def test_metrics_aggregate_the_multiprocess_directory(started, settings, tmp_path):
    _other_worker_counter(tmp_path, 3.0)
    client = await started(settings.replace(prometheus_multiproc_dir=tmp_path))
    _, resp = await client.get("/metrics")
    assert resp.status == 200
    assert "zuiduo_test_jobs_total 3.0" in resp.text


async def test_metrics_are_the_process_own_without_the_directory(client, tmp_path):
    _other_worker_counter(tmp_path, 3.0)
    assert client.sanic_app.ctx.settings.prometheus_multiproc_dir is None
    _, resp = await client.get("/metrics")
    assert resp.status == 200
    assert "zuiduo_test_jobs" not in resp.text
    assert "http_requests_total" in resp.text

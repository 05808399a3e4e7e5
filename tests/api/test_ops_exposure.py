"""Point 13 of issue 20: /metrics and /bench/baseline were public in production."""

from __future__ import annotations

import pytest

from app.server import create_app
from tests.conftest import AppClient

TOKEN = "m" * 12 + "-scrape-token"


@pytest.fixture
async def client_for(base_settings):
    """A started client of an app built with these setting changes."""
    clients: list[AppClient] = []

    async def make(**changes) -> AppClient:
        c = AppClient(create_app(base_settings.model_copy(update=changes)))
        await c.start()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.stop()


async def test_production_without_a_token_serves_neither_metrics_nor_the_bench_route(client_for):
    client = await client_for(env="production")
    for path in ("/metrics", "/bench/baseline"):
        _, resp = await client.get(path)
        assert resp.status == 404, path
        assert resp.json["error"]["code"] == "ROUTE_NOT_FOUND"


async def test_a_metrics_token_is_required_when_set(client_for):
    client = await client_for(env="production", metrics_token=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}):  # fmt: skip
        _, resp = await client.get("/metrics", headers=headers)
        assert resp.status == 401, headers
        assert resp.json["error"]["code"] == "METRICS_TOKEN_REQUIRED"
        assert resp.headers["www-authenticate"].startswith("Bearer")
    _, resp = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200
    assert "http_requests_total" in resp.text


async def test_development_with_a_token_still_asks_for_it(client_for):
    client = await client_for(metrics_token=TOKEN)
    _, resp = await client.get("/metrics")
    assert resp.status == 401


async def test_development_and_test_modes_keep_both_open(client_for):
    # bench/run.sh starts the server in development mode (it drops APP_ENV): the baseline stays there.
    for env in ("development", "test"):
        client = await client_for(env=env)
        _, metrics = await client.get("/metrics")
        _, baseline = await client.get("/bench/baseline")
        assert (metrics.status, baseline.status, baseline.json) == (200, 200, {"ok": True}), env


def test_a_short_metrics_token_is_refused():
    from app.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="METRICS_TOKEN"):
        Settings.from_env({"METRICS_TOKEN": "short"})

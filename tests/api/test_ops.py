"""Operations: health, readiness, metrics, request ids, the error envelope, the OpenAPI spec."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.matters import service
from app.server import create_app
from tests import factories
from tests.conftest import AppClient

DOWN_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def assert_envelope(resp, status: int, code: str) -> dict:
    assert resp.status == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


# ---------------------------------------------------------------- health and readiness


async def test_healthz(client):
    _, resp = await client.get("/healthz")
    assert resp.status == 200
    assert resp.json == {"status": "ok"}


async def test_readyz(client):
    _, resp = await client.get("/readyz")
    assert resp.status == 200, resp.text
    assert resp.json == {"status": "ok", "checks": {"database": "ok", "store": "ok"}}


@pytest.fixture
async def down_client(settings) -> AsyncIterator[AppClient]:
    """A started worker whose store (Redis) cannot be reached."""
    c = AppClient(create_app(settings.replace(redis_url=DOWN_REDIS)))
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


async def test_readyz_is_503_when_the_store_is_down_but_guides_are_still_served(down_client):
    await service.import_catalogue(down_client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    _, resp = await down_client.get("/readyz")
    assert resp.status == 503, resp.text
    assert resp.json["status"] == "unavailable"
    assert resp.json["checks"]["database"] == "ok"
    assert resp.json["checks"]["store"].startswith("error")
    # correctness never depends on Redis: public pages keep working
    for _ in range(2):
        _, resp = await down_client.get("/api/v1/matters/4308-XK-SS-001")
        assert resp.status == 200
        _, resp = await down_client.get("/m/4308-XK-SS-001")
        assert resp.status == 200


async def test_admin_writes_work_when_the_store_is_down(down_client, admin_headers):
    await service.import_catalogue(down_client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    _, resp = await down_client.get("/api/v1/matters/4308-XK-SS-001")
    assert resp.json["status"] == "active"
    _, resp = await down_client.post("/api/v1/admin/matters/4308-XK-SS-001/retire", headers=admin_headers)
    assert resp.status == 200, resp.text
    _, resp = await down_client.get("/api/v1/matters/4308-XK-SS-001")
    assert resp.json["status"] == "retired"  # the writing worker dropped its own cache


# ---------------------------------------------------------------- metrics


def request_samples(text: str) -> list:
    """The http_requests_total samples of a Prometheus exposition."""
    return [
        sample
        for family in text_string_to_metric_families(text)
        if family.name == "http_requests"
        for sample in family.samples
        if sample.name == "http_requests_total"
    ]


def request_total(text: str) -> float:
    return sum(sample.value for sample in request_samples(text))


async def test_metrics_count_requests(client):
    _, first = await client.get("/metrics")
    assert first.status == 200
    assert first.headers["content-type"].startswith("text/plain")
    _, resp = await client.get("/healthz")
    assert resp.status == 200
    _, second = await client.get("/metrics")
    assert "# TYPE http_requests_total counter" in second.text
    assert "http_request_duration_seconds_bucket" in second.text
    # the first /metrics call and /healthz were counted
    assert request_total(second.text) - request_total(first.text) == 2


async def test_metrics_label_requests_by_route_template(client):
    await client.get("/healthz")
    await client.get("/api/v1/matters/4308-XX-XX-999")
    await client.get("/api/v1/no-such-route")
    _, resp = await client.get("/metrics")
    samples = request_samples(resp.text)
    routes = {sample.labels["route"] for sample in samples}
    assert "/healthz" in routes
    assert "/api/v1/matters/<code:str>" in routes  # the route template, not the raw path
    assert "unmatched" in routes
    assert "None" not in routes
    assert not any("4308-XX-XX-999" in route or "no-such-route" in route for route in routes)
    assert any(
        s.labels == {"method": "GET", "route": "/api/v1/matters/<code:str>", "status": "404"} and s.value >= 1
        for s in samples
    )


# ---------------------------------------------------------------- request ids


@pytest.mark.parametrize("rid", ["abc-123", "A.b_c-9", "x" * 64, "0f9e8d7c6b5a"])
async def test_valid_request_id_is_echoed(client, rid):
    _, resp = await client.get("/healthz", headers={"X-Request-ID": rid})
    assert resp.headers["x-request-id"] == rid


@pytest.mark.parametrize("rid", ["x" * 65, "y" * 200, "has spaces", "semi;colon", "<script>", "中文"])
async def test_invalid_request_id_is_replaced(client, rid):
    _, resp = await client.get("/healthz", headers={"X-Request-ID": rid.encode()})
    new = resp.headers["x-request-id"]
    assert new != rid
    assert re.fullmatch(r"[0-9a-f]{32}", new)


async def test_request_id_is_generated_and_unique(client):
    ids = set()
    for _ in range(3):
        _, resp = await client.get("/healthz")
        ids.add(resp.headers["x-request-id"])
    assert len(ids) == 3


async def test_request_id_on_errors(client):
    _, resp = await client.get("/api/v1/matters/4308-XX-XX-999", headers={"X-Request-ID": "trace-404"})
    assert resp.status == 404
    assert resp.headers["x-request-id"] == "trace-404"
    _, resp = await client.get("/api/v1/no-such-route", headers={"X-Request-ID": "trace-route"})
    assert resp.headers["x-request-id"] == "trace-route"


# ---------------------------------------------------------------- the error envelope


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v2/matters", "/no/such/page", "/api/v1/matters/X/versions/1/x"])
async def test_unknown_route_is_404_envelope(client, path):
    _, resp = await client.get(path)
    assert_envelope(resp, 404, "ROUTE_NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/api/v1/sections"),
        ("post", "/api/v1/matters/4308-XK-SS-001"),
        ("put", "/healthz"),
        ("get", "/api/v1/admin/matters"),
        ("delete", "/api/v1/admin/catalogue/import"),
    ],
)
async def test_wrong_method_is_405_envelope(client, method, path):
    _, resp = await getattr(client, method)(path)
    assert_envelope(resp, 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("path", ["/metrics", "/metrics/nope", "/mx", "/qq", "/desktop", "/pages"])
async def test_errors_of_paths_that_only_look_like_pages_are_json_envelopes(client, path):
    # /m, /q, /p and /desk are H5 pages; /metrics merely starts with the same letter
    _, resp = await client.post(path, headers={"Accept": "text/html,*/*;q=0.8"})
    assert resp.status in (404, 405), resp.text
    assert_envelope(resp, resp.status, "METHOD_NOT_ALLOWED" if resp.status == 405 else "ROUTE_NOT_FOUND")


async def test_wrong_method_on_metrics_is_a_json_envelope(client):
    _, resp = await client.post("/metrics")
    assert_envelope(resp, 405, "METHOD_NOT_ALLOWED")


async def test_internal_errors_do_not_leak(client, admin_headers):
    # an admin import of something that is not an object still answers with a stable code
    _, resp = await client.post(
        "/api/v1/admin/catalogue/import",
        json={"matters": [1, 2, 3]},
        headers=admin_headers,
    )
    error = assert_envelope(resp, 422, "IMPORT_INVALID")
    assert "Traceback" not in resp.text
    assert error["details"]["errors"][0]["index"] is None


# ---------------------------------------------------------------- OpenAPI


def openapi_path(path: str) -> str:
    return "/" + re.sub(r"<(\w+)(?::[^>]+)?>", r"{\1}", path).lstrip("/")


async def test_openapi_lists_every_route(app, client):
    _, resp = await client.get("/docs/openapi.json")
    assert resp.status == 200
    spec = resp.json
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    registered = {
        (method, openapi_path(route.path))
        for route in app.router.routes
        for method in route.methods
        if method not in {"HEAD", "OPTIONS"} and not openapi_path(route.path).startswith("/docs")
    }
    assert len(registered) >= 20
    assert ("GET", "/api/v1/matters/{code}") in registered
    assert registered == documented


async def test_openapi_api_operations_are_documented(client):
    _, resp = await client.get("/docs/openapi.json")
    paths = resp.json["paths"]
    api_ops = [
        (path, method, op) for path, ops in paths.items() if path.startswith("/api/v1") for method, op in ops.items()
    ]
    assert len(api_ops) >= 13
    for path, method, op in api_ops:
        assert op.get("tags"), f"{method} {path} has no tag"
        assert op.get("summary"), f"{method} {path} has no summary"
        assert "200" in op["responses"] or "201" in op["responses"], f"{method} {path}"

    guide = paths["/api/v1/matters/{code}"]["get"]
    assert "MATTER_NOT_FOUND" in guide["responses"]["404"]["description"]
    version = paths["/api/v1/matters/{code}/versions/{no}"]["get"]
    assert "VERSION_NOT_FOUND" in version["responses"]["404"]["description"]
    assert "INVALID_INPUT" in paths["/api/v1/matters"]["get"]["responses"]["422"]["description"]
    admin_ops = [(path, method, op) for path, method, op in api_ops if path.startswith("/api/v1/admin")]
    assert len(admin_ops) >= 11
    for path, method, op in admin_ops:
        unauthorised = op["responses"]["401"]["description"]
        for code in ("TOKEN_MISSING", "TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_REVOKED"):
            assert code in unauthorised, f"{method} {path} does not document {code}"
        assert "INSUFFICIENT_ROLE" in op["responses"]["403"]["description"], f"{method} {path}"
        assert op.get("security") == [{"bearer": []}], f"{method} {path}"
    spec_text = resp.text
    assert "ADMIN_TOKEN_REQUIRED" not in spec_text
    assert "ADMIN_TOKEN_INVALID" not in spec_text
    publish = paths["/api/v1/admin/matters/{code}/versions/{no}/publish"]["post"]
    assert "GUIDE_INVALID" in publish["responses"]["422"]["description"]
    assert "VERSION_NOT_DRAFT" in publish["responses"]["409"]["description"]
    assert paths["/api/v1/admin/matters"]["post"]["responses"].keys() >= {"201", "409"}


def success_schema(op: dict) -> dict:
    responses = op["responses"]
    ok = responses.get("200") or responses.get("201")
    return ok["content"]["application/json"]["schema"]


async def test_openapi_success_schemas_do_not_list_dict_methods(client):
    _, resp = await client.get("/docs/openapi.json")
    for path, ops in resp.json["paths"].items():
        for method, op in ops.items():
            if "application/json" not in (op["responses"].get("200") or op["responses"].get("201") or {}).get(
                "content", {}
            ):
                continue
            schema = success_schema(op)
            assert schema["type"] == "object", f"{method} {path}"
            properties = schema.get("properties", {})
            assert not {"fromkeys", "clear", "copy", "items", "keys"} & set(properties), f"{method} {path}"


async def test_openapi_schemas_do_not_list_model_config(client):
    _, resp = await client.get("/docs/openapi.json")
    healthz = success_schema(resp.json["paths"]["/healthz"]["get"])
    assert "model_config" not in healthz.get("properties", {})
    assert "model_config" not in resp.text


async def test_openapi_declares_the_bearer_security_scheme(client):
    _, resp = await client.get("/docs/openapi.json")
    spec = resp.json
    used = {
        name
        for ops in spec["paths"].values()
        for op in ops.values()
        for requirement in op.get("security", [])
        for name in requirement
    }
    assert "bearer" in used
    schemes = spec.get("components", {}).get("securitySchemes", {})
    assert used <= set(schemes)
    assert (schemes["bearer"]["type"], schemes["bearer"]["scheme"].lower()) == ("http", "bearer")


async def test_readyz_is_503_while_the_worker_starts_or_stops(client):
    """Until the worker's start-up has finished (and once it begins to stop), not ready: 503, never 500."""
    ctx = client.sanic_app.ctx
    ctx.ready = False
    try:
        _, resp = await client.get("/readyz")
        assert resp.status == 503, resp.text
        assert resp.json == {"status": "starting", "checks": {}}
    finally:
        ctx.ready = True
    _, resp = await client.get("/readyz")
    assert resp.status == 200


async def test_a_started_worker_is_ready_and_a_stopping_one_is_not(settings):
    c = AppClient(create_app(settings))
    assert c.sanic_app.ctx.ready is False
    await c.start()
    assert c.sanic_app.ctx.ready is True
    await c.sanic_app._server_event("shutdown", "before")
    assert c.sanic_app.ctx.ready is False
    await c.sanic_app._server_event("shutdown", "after")

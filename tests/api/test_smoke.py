"""First look: the app starts and answers."""

from tests import factories


async def test_healthz(client):
    _, resp = await client.get("/healthz")
    assert resp.status == 200
    assert resp.json == {"status": "ok"}
    assert resp.headers["x-request-id"]


async def test_import_then_guide(client, admin_headers):
    _, resp = await client.post(
        "/api/v1/admin/catalogue/import", json=factories.small_catalogue(), headers=admin_headers
    )
    assert resp.status == 200, resp.text
    assert resp.json["created"] == 3
    _, resp = await client.get("/api/v1/matters/4308-XK-SS-001")
    assert resp.status == 200, resp.text
    assert resp.json["name"] == "营业执照设立登记"

"""The administration API: the staff admin guard, drafts, publishing, retiring, import, export."""

from __future__ import annotations

import base64
import json
import re

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.guide import service as guide_view
from app.matters.models import Department, Hall, Matter, MatterVersion, VersionStatus
from app.server import create_app
from auth.models import Staff
from tests import factories
from tests.conftest import AppClient

LICENCE = "4308-XK-SS-001"
FOOD = "4308-XK-SS-002"
FUND = "4308-GG-ZF-001"
ADMIN = "/api/v1/admin"

CATALOGUE_ENDPOINTS = [
    ("post", f"{ADMIN}/matters"),
    ("put", f"{ADMIN}/matters/{LICENCE}/draft"),
    ("get", f"{ADMIN}/matters/{LICENCE}/versions"),
    ("get", f"{ADMIN}/matters/{LICENCE}/versions/1"),
    ("post", f"{ADMIN}/matters/{LICENCE}/versions/1/publish"),
    ("post", f"{ADMIN}/matters/{LICENCE}/retire"),
    ("post", f"{ADMIN}/catalogue/import"),
    ("get", f"{ADMIN}/catalogue/export"),
]
STAFF_ENDPOINTS = [
    ("post", f"{ADMIN}/staff"),
    ("post", f"{ADMIN}/staff/somebody/disable"),
    ("post", f"{ADMIN}/staff/somebody/enable"),
]
ADMIN_ENDPOINTS = CATALOGUE_ENDPOINTS + STAFF_ENDPOINTS
ENDPOINT_IDS = [f"{method}-{path.removeprefix(ADMIN)}" for method, path in ADMIN_ENDPOINTS]
# Out of the 1..1_000_000 range a version number never reaches the database.
HUGE_VERSIONS = ["0", "-1", "1000001", "2147483648", "9223372036854775808", "99999999999999999999"]


def assert_error(resp, status: int, code: str) -> dict:
    assert resp.status == status, resp.text
    body = resp.json
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


async def db_counts() -> tuple[int, int, int, int]:
    return (
        await Department.all().count(),
        await Hall.all().count(),
        await Matter.all().count(),
        await MatterVersion.all().count(),
    )


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_claims(token: str, **changes) -> str:
    """The token with its payload edited and its signature kept (what a forger can do)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    edited = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{edited}.{signature}"


def forgeries(admin_token: str) -> dict[str, str]:
    """Tokens an attacker could build from a real admin token (same claims, same kid)."""
    header = jwt.get_unverified_header(admin_token)
    claims = jwt.decode(admin_token, options={"verify_signature": False})
    other_key = Ed25519PrivateKey.generate()
    head, payload, _ = admin_token.split(".")
    none_header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": header["kid"]}).encode())
    return {
        "garbage": "not-the-token",
        "truncated-signature": admin_token[:-4],
        "signature-appended-to": admin_token + "x",
        "two-segments": f"{head}.{payload}",
        "other-key-same-kid": jwt.encode(claims, other_key, algorithm="EdDSA", headers={"kid": header["kid"]}),
        "alg-none": f"{none_header}.{payload}.",
        "hs256-with-kid-as-secret": jwt.encode(
            claims, header["kid"].encode() * 4, algorithm="HS256", headers={"kid": header["kid"]}
        ),
        "unknown-kid": jwt.encode(claims, other_key, algorithm="EdDSA", headers={"kid": "no-such-kid"}),
        "huge": "a" * 5000,
    }


@pytest.fixture
async def imported(client, admin_headers):
    _, resp = await client.post(f"{ADMIN}/catalogue/import", json=factories.small_catalogue(), headers=admin_headers)
    assert resp.status == 200, resp.text
    return resp.json


# ---------------------------------------------------------------- the guard


def admin_routes(app) -> list[tuple[str, str]]:
    """(method, concrete path) of every route registered under /api/v1/admin, parameters filled in."""
    found = set()
    for route in app.router.routes:
        path = "/" + route.path.lstrip("/")
        if not path.startswith(ADMIN + "/"):
            continue
        path = re.sub(r"<\w+:int>", "1", path)
        path = re.sub(r"<\w+(?::[^>]+)?>", "X1", path)
        found |= {(method.lower(), path) for method in route.methods if method not in {"HEAD", "OPTIONS"}}
    return sorted(found)


async def test_the_guard_tests_name_real_admin_routes(app, client):
    registered = {
        (method.lower(), "/" + route.path.lstrip("/"))
        for route in app.router.routes
        for method in route.methods
        if method not in {"HEAD", "OPTIONS"}
    }
    templates = {
        ("post", "/api/v1/admin/matters"),
        ("put", "/api/v1/admin/matters/<code:str>/draft"),
        ("get", "/api/v1/admin/matters/<code:str>/versions"),
        ("get", "/api/v1/admin/matters/<code:str>/versions/<no:int>"),
        ("post", "/api/v1/admin/matters/<code:str>/versions/<no:int>/publish"),
        ("post", "/api/v1/admin/matters/<code:str>/retire"),
        ("post", "/api/v1/admin/catalogue/import"),
        ("get", "/api/v1/admin/catalogue/export"),
        ("post", "/api/v1/admin/staff"),
        ("post", "/api/v1/admin/staff/<username:str>/disable"),
        ("post", "/api/v1/admin/staff/<username:str>/enable"),
    }
    assert templates <= registered
    assert len(ADMIN_ENDPOINTS) == len(templates)


async def test_every_admin_route_turns_away_everyone_but_admins(app, client, make_staff, make_citizen):
    """A sweep over whatever is registered under /api/v1/admin, so a new admin route is guarded too."""
    routes = admin_routes(app)
    assert len(routes) >= len(ADMIN_ENDPOINTS)
    _, clerk = await make_staff("clerk")
    _, reviewer = await make_staff("reviewer")
    callers = [
        ("nobody", {}, 401, "TOKEN_MISSING"),
        ("garbage", {"Authorization": "Bearer not-the-token"}, 401, "TOKEN_INVALID"),
        ("clerk", clerk, 403, "INSUFFICIENT_ROLE"),
        ("reviewer", reviewer, 403, "INSUFFICIENT_ROLE"),
    ]
    for audience in ("app", "miniprogram", "h5"):
        _, citizen = await make_citizen(loa=3 if audience == "app" else 2, audience=audience)
        callers.append((f"citizen-{audience}", citizen, 401, "TOKEN_INVALID"))
    for method, path in routes:
        for name, headers, status, code in callers:
            _, resp = await getattr(client, method)(path, headers=headers)
            assert resp.status == status, (method, path, name, resp.text)
            assert resp.json["error"]["code"] == code, (method, path, name, resp.text)


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
async def test_no_token_is_401_token_missing(client, method, path):
    _, resp = await getattr(client, method)(path)
    assert_error(resp, 401, "TOKEN_MISSING")
    assert resp.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
async def test_empty_authorization_is_401_token_missing(client, method, path):
    _, resp = await getattr(client, method)(path, headers={"Authorization": ""})
    assert_error(resp, 401, "TOKEN_MISSING")


@pytest.mark.parametrize("form", ["basic", "scheme-only", "scheme-and-space", "token-without-scheme", "blank"])
async def test_authorization_without_a_bearer_token_is_401_token_missing(client, admin_headers, form):
    token = token_of(admin_headers)
    header = {
        "basic": f"Basic {token}",
        "scheme-only": "Bearer",
        "scheme-and-space": "Bearer ",
        "token-without-scheme": token,
        "blank": "   ",
    }[form]
    _, resp = await client.get(f"{ADMIN}/catalogue/export", headers={"Authorization": header})
    assert_error(resp, 401, "TOKEN_MISSING")


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
async def test_garbage_token_is_401_token_invalid(client, method, path):
    _, resp = await getattr(client, method)(path, headers={"Authorization": "Bearer not-the-token"})
    assert_error(resp, 401, "TOKEN_INVALID")


@pytest.mark.parametrize(
    "kind",
    [
        "garbage",
        "truncated-signature",
        "signature-appended-to",
        "two-segments",
        "other-key-same-kid",
        "alg-none",
        "hs256-with-kid-as-secret",
        "unknown-kid",
        "huge",
    ],
)
async def test_forged_admin_tokens_are_401_token_invalid(client, admin_headers, kind):
    forged = forgeries(token_of(admin_headers))[kind]
    _, resp = await client.get(f"{ADMIN}/catalogue/export", headers={"Authorization": f"Bearer {forged}"})
    assert_error(resp, 401, "TOKEN_INVALID")
    # the real token still works afterwards
    _, resp = await client.get(f"{ADMIN}/catalogue/export", headers=admin_headers)
    assert resp.status == 200, resp.text


async def test_a_clerk_cannot_promote_itself_by_editing_its_token(client, make_staff):
    _, headers = await make_staff("clerk")
    promoted = with_claims(token_of(headers), role="admin")
    _, resp = await client.get(f"{ADMIN}/catalogue/export", headers={"Authorization": f"Bearer {promoted}"})
    assert_error(resp, 401, "TOKEN_INVALID")


@pytest.mark.parametrize("audience", ["app", "miniprogram", "h5"])
@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
async def test_citizen_token_is_401_token_invalid(client, make_citizen, audience, method, path):
    _, headers = await make_citizen(loa=3 if audience == "app" else 2, audience=audience)
    _, resp = await getattr(client, method)(path, headers=headers)
    assert_error(resp, 401, "TOKEN_INVALID")


@pytest.mark.parametrize("role", ["clerk", "reviewer"])
@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
async def test_clerk_and_reviewer_are_403_insufficient_role(client, make_staff, role, method, path):
    _, headers = await make_staff(role)
    _, resp = await getattr(client, method)(path, headers=headers)
    error = assert_error(resp, 403, "INSUFFICIENT_ROLE")
    assert error["details"] == {"required_roles": ["admin"]}


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS, ids=ENDPOINT_IDS)
async def test_an_admin_passes_the_guard_on_every_route(client, admin_headers, method, path):
    _, resp = await getattr(client, method)(path, headers=admin_headers)
    assert resp.status not in (401, 403), resp.text
    assert resp.status < 500, resp.text


async def test_expired_admin_token_is_401_token_expired(client, make_staff, fake_clock, settings):
    _, headers = await make_staff("admin")
    _, resp = await client.get(f"{ADMIN}/catalogue/export", headers=headers)
    assert resp.status == 200, resp.text
    fake_clock.advance(seconds=settings.access_token_seconds + 1)
    _, resp = await client.get(f"{ADMIN}/catalogue/export", headers=headers)
    assert_error(resp, 401, "TOKEN_EXPIRED")


async def test_bearer_scheme_is_case_insensitive(client, admin_headers):
    token = token_of(admin_headers)
    for scheme in ("bearer", "BEARER", "Bearer"):
        _, resp = await client.get(f"{ADMIN}/catalogue/export", headers={"Authorization": f"{scheme} {token}"})
        assert resp.status == 200, (scheme, resp.text)


async def wrong_callers(make_staff, make_citizen, admin_headers) -> dict[str, tuple[dict[str, str], int, str]]:
    """Headers of every caller the guard must turn away, with the expected status and code."""
    _, clerk = await make_staff("clerk")
    _, reviewer = await make_staff("reviewer")
    _, citizen = await make_citizen(loa=3)
    forged = forgeries(token_of(admin_headers))["other-key-same-kid"]
    return {
        "none": ({}, 401, "TOKEN_MISSING"),
        "tampered": ({"Authorization": admin_headers["Authorization"] + "x"}, 401, "TOKEN_INVALID"),
        "forged": ({"Authorization": f"Bearer {forged}"}, 401, "TOKEN_INVALID"),
        "citizen": (citizen, 401, "TOKEN_INVALID"),
        "clerk": (clerk, 403, "INSUFFICIENT_ROLE"),
        "reviewer": (reviewer, 403, "INSUFFICIENT_ROLE"),
    }


async def test_wrong_callers_do_not_import(client, admin_headers, make_staff, make_citizen):
    callers = await wrong_callers(make_staff, make_citizen, admin_headers)
    for name, (headers, status, code) in callers.items():
        _, resp = await client.post(f"{ADMIN}/catalogue/import", json=factories.small_catalogue(), headers=headers)
        assert resp.status == status, (name, resp.text)
        assert_error(resp, status, code)
        assert await db_counts() == (0, 0, 0, 0), name


async def test_wrong_callers_do_not_change_the_catalogue(client, admin_headers, imported, make_staff, make_citizen):
    await client.put(
        f"{ADMIN}/matters/{LICENCE}/draft", json={"content": factories.guide(name="草稿")}, headers=admin_headers
    )
    callers = await wrong_callers(make_staff, make_citizen, admin_headers)
    before = await db_counts()
    for name, (headers, status, code) in callers.items():
        attempts = [
            ("post", f"{ADMIN}/matters", {"json": {"code": "4308-XK-SS-099", "content": {}}}),
            ("put", f"{ADMIN}/matters/{LICENCE}/draft", {"json": {"content": {"name": "篡改"}}}),
            ("post", f"{ADMIN}/matters/{LICENCE}/versions/2/publish", {}),
            ("post", f"{ADMIN}/matters/{FOOD}/retire", {}),
        ]
        for method, path, kwargs in attempts:
            _, resp = await getattr(client, method)(path, headers=headers, **kwargs)
            assert (resp.status, resp.json["error"]["code"]) == (status, code), (name, path, resp.text)
    assert await db_counts() == before
    draft = await MatterVersion.get(matter__code=LICENCE, no=2)
    assert (draft.status, draft.content["name"]) == (VersionStatus.draft, "草稿")
    assert (await Matter.get(code=FOOD)).status.value == "active"


async def test_wrong_callers_do_not_manage_staff(client, admin_headers, make_staff, make_citizen):
    callers = await wrong_callers(make_staff, make_citizen, admin_headers)
    await make_staff("admin", username="the_admin")
    accounts = await Staff.all().count()
    body = {"username": "intruder", "password": "long enough password", "role": "admin"}
    for name, (headers, status, code) in callers.items():
        _, resp = await client.post(f"{ADMIN}/staff", json=body, headers=headers)
        assert (resp.status, resp.json["error"]["code"]) == (status, code), (name, resp.text)
        _, resp = await client.post(f"{ADMIN}/staff/the_admin/disable", headers=headers)
        assert (resp.status, resp.json["error"]["code"]) == (status, code), (name, resp.text)
    assert await Staff.all().count() == accounts
    assert not await Staff.exists(username="intruder")
    assert (await Staff.get(username="the_admin")).disabled is False


async def test_admin_manages_staff(client, admin_headers, make_staff):
    body = {"username": "clerk_one", "password": "long enough password", "role": "clerk", "hall": "main"}
    _, resp = await client.post(f"{ADMIN}/staff", json=body, headers=admin_headers)
    assert resp.status == 201, resp.text
    assert (resp.json["username"], resp.json["role"], resp.json["hall"], resp.json["disabled"]) == (
        "clerk_one",
        "clerk",
        "main",
        False,
    )
    assert "password" not in resp.text
    _, resp = await client.post(f"{ADMIN}/staff/clerk_one/disable", headers=admin_headers)
    assert (resp.status, resp.json) == (200, {"username": "clerk_one", "disabled": True})
    assert (await Staff.get(username="clerk_one")).disabled is True
    _, resp = await client.post(f"{ADMIN}/staff/clerk_one/enable", headers=admin_headers)
    assert (resp.status, resp.json) == (200, {"username": "clerk_one", "disabled": False})
    _, resp = await client.post(f"{ADMIN}/staff/nobody_here/disable", headers=admin_headers)
    assert_error(resp, 404, "STAFF_NOT_FOUND")


# ---------------------------------------------------------------- create, draft, versions


async def test_create_matter(client, admin_headers):
    _, resp = await client.post(
        f"{ADMIN}/matters", json={"code": "4308-xk-ss-001", "content": {"name": "营业执照"}}, headers=admin_headers
    )
    assert resp.status == 201, resp.text
    assert resp.json["code"] == LICENCE
    assert (resp.json["version"]["no"], resp.json["version"]["status"]) == (1, "draft")
    matter = await Matter.get(code=LICENCE)
    assert (matter.name, matter.published_no) == ("营业执照", None)
    # a draft is not public
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    assert_error(resp, 404, "MATTER_NOT_FOUND")


async def test_duplicate_code_is_409(client, admin_headers):
    body = {"code": LICENCE, "content": {}}
    _, resp = await client.post(f"{ADMIN}/matters", json=body, headers=admin_headers)
    assert resp.status == 201
    _, resp = await client.post(f"{ADMIN}/matters", json={**body, "code": LICENCE.lower()}, headers=admin_headers)
    error = assert_error(resp, 409, "MATTER_CODE_TAKEN")
    assert error["details"] == {"matter_code": LICENCE}
    assert await Matter.all().count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "坏编码", "content": {}}, "code"),
        ({"code": "4308-XK-SS-001", "content": [1, 2]}, "content"),
        ({"code": "4308-XK-SS-001"}, "content"),
        ({"code": "4308-XK-SS-001", "content": {}, "extra": 1}, "extra"),
        ({"code": "A" * 41, "content": {}}, "code"),
    ],
)
async def test_create_with_bad_body_is_422(client, admin_headers, body, field):
    _, resp = await client.post(f"{ADMIN}/matters", json=body, headers=admin_headers)
    error = assert_error(resp, 422, "INVALID_INPUT")
    assert field in error["details"]["fields"]
    assert await Matter.all().count() == 0


async def test_save_draft_and_read_versions(client, admin_headers, imported):
    _, resp = await client.put(
        f"{ADMIN}/matters/{LICENCE}/draft", json={"content": factories.guide(name="草稿名称")}, headers=admin_headers
    )
    assert resp.status == 200, resp.text
    assert (resp.json["version"]["no"], resp.json["version"]["status"]) == (2, "draft")
    _, resp = await client.put(
        f"{ADMIN}/matters/{LICENCE.lower()}/draft", json={"content": {"name": "再改"}}, headers=admin_headers
    )
    assert resp.json["version"]["no"] == 2  # replaced, not a third version

    _, resp = await client.get(f"{ADMIN}/matters/{LICENCE}/versions", headers=admin_headers)
    assert [(v["no"], v["status"]) for v in resp.json["items"]] == [(2, "draft"), (1, "published")]
    _, resp = await client.get(f"{ADMIN}/matters/{LICENCE}/versions/2", headers=admin_headers)
    assert resp.json["content"] == {"name": "再改"}
    # the public guide is still version 1 and drafts are not public
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    assert (resp.json["version"], resp.json["name"]) == (1, "营业执照设立登记")
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}/versions/2")
    assert_error(resp, 404, "VERSION_NOT_FOUND")


async def test_draft_of_unknown_matter_is_404(client, admin_headers):
    _, resp = await client.put(f"{ADMIN}/matters/4308-XX-XX-999/draft", json={"content": {}}, headers=admin_headers)
    assert_error(resp, 404, "MATTER_NOT_FOUND")
    _, resp = await client.get(f"{ADMIN}/matters/4308-XX-XX-999/versions", headers=admin_headers)
    assert_error(resp, 404, "MATTER_NOT_FOUND")


async def test_unknown_version_is_404(client, admin_headers, imported):
    _, resp = await client.get(f"{ADMIN}/matters/{LICENCE}/versions/9", headers=admin_headers)
    assert_error(resp, 404, "VERSION_NOT_FOUND")
    _, resp = await client.post(f"{ADMIN}/matters/{LICENCE}/versions/9/publish", headers=admin_headers)
    assert_error(resp, 404, "VERSION_NOT_FOUND")


@pytest.mark.parametrize("no", HUGE_VERSIONS)
async def test_out_of_range_version_is_404_on_the_admin_version_endpoint(client, admin_headers, imported, no):
    _, resp = await client.get(f"{ADMIN}/matters/{LICENCE}/versions/{no}", headers=admin_headers)
    error = assert_error(resp, 404, "VERSION_NOT_FOUND")
    assert error["details"] == {"matter_code": LICENCE, "version": int(no)}


@pytest.mark.parametrize("no", HUGE_VERSIONS)
async def test_out_of_range_version_is_404_on_publish_and_writes_nothing(client, admin_headers, imported, no):
    await client.put(f"{ADMIN}/matters/{LICENCE}/draft", json={"content": factories.guide()}, headers=admin_headers)
    _, resp = await client.post(f"{ADMIN}/matters/{LICENCE}/versions/{no}/publish", headers=admin_headers)
    error = assert_error(resp, 404, "VERSION_NOT_FOUND")
    assert error["details"] == {"matter_code": LICENCE, "version": int(no)}
    _, resp = await client.get(f"{ADMIN}/matters/{LICENCE}/versions", headers=admin_headers)
    assert [(v["no"], v["status"]) for v in resp.json["items"]] == [(2, "draft"), (1, "published")]


async def test_out_of_range_version_of_an_unknown_matter_is_matter_not_found(client, admin_headers, imported):
    _, resp = await client.get(f"{ADMIN}/matters/4308-XX-XX-999/versions/99999999999999999999", headers=admin_headers)
    assert_error(resp, 404, "MATTER_NOT_FOUND")
    _, resp = await client.post(
        f"{ADMIN}/matters/4308-XX-XX-999/versions/99999999999999999999/publish", headers=admin_headers
    )
    assert_error(resp, 404, "MATTER_NOT_FOUND")


# ---------------------------------------------------------------- publish


async def test_publish_invalid_draft_is_422_with_fields(client, admin_headers, imported):
    content = factories.guide(online_depth=2, online_apply=True, visits=-1)
    del content["legal_basis"]
    _, resp = await client.put(f"{ADMIN}/matters/{LICENCE}/draft", json={"content": content}, headers=admin_headers)
    assert resp.status == 200
    _, resp = await client.post(f"{ADMIN}/matters/{LICENCE}/versions/2/publish", headers=admin_headers)
    error = assert_error(resp, 422, "GUIDE_INVALID")
    fields = error["details"]["fields"]
    assert set(fields) == {"legal_basis", "visits"}
    _, resp = await client.get(f"{ADMIN}/matters/{LICENCE}/versions", headers=admin_headers)
    assert [v["status"] for v in resp.json["items"]] == ["draft", "published"]


async def test_publish_with_broken_rule_and_references(client, admin_headers, imported):
    content = factories.guide(online_depth=2, online_apply=True)
    await client.put(f"{ADMIN}/matters/{LICENCE}/draft", json={"content": content}, headers=admin_headers)
    _, resp = await client.post(f"{ADMIN}/matters/{LICENCE}/versions/2/publish", headers=admin_headers)
    assert assert_error(resp, 422, "GUIDE_INVALID")["details"]["fields"] == {
        "__root__": ["支持网上申报的事项网办深度不得低于 3"]
    }
    await client.put(
        f"{ADMIN}/matters/{LICENCE}/draft", json={"content": factories.guide(hall="nowhere")}, headers=admin_headers
    )
    _, resp = await client.post(f"{ADMIN}/matters/{LICENCE}/versions/2/publish", headers=admin_headers)
    assert assert_error(resp, 422, "GUIDE_INVALID")["details"]["fields"] == {"hall": ["大厅 nowhere 不存在"]}


async def test_publish_a_published_version_is_409(client, admin_headers, imported):
    _, resp = await client.post(f"{ADMIN}/matters/{LICENCE}/versions/1/publish", headers=admin_headers)
    error = assert_error(resp, 409, "VERSION_NOT_DRAFT")
    assert error["details"] == {"version": 1, "status": "published"}


def cached_guide(app, code: str):
    """The guide this worker holds in its cache (None when not cached)."""
    return guide_view.cached(app.ctx.guide, code=code)


async def test_publish_invalidates_the_cached_guide(app, client, admin_headers, imported):
    _, before = await client.get(f"/api/v1/matters/{LICENCE}")
    assert before.json["version"] == 1
    _, page_before = await client.get(f"/m/{LICENCE}")
    assert "营业执照设立登记" in page_before.text
    assert cached_guide(app, LICENCE) is not None  # the worker caches the guide now
    assert guide_view.cached(app.ctx.guide, code=LICENCE, kind="html") is not None  # and the page

    _, resp = await client.put(
        f"{ADMIN}/matters/{LICENCE}/draft",
        json={"content": factories.guide(name="企业开办一件事", promised_limit_days=1)},
        headers=admin_headers,
    )
    assert resp.status == 200
    assert cached_guide(app, LICENCE) is not None  # a draft changes nothing public
    _, resp = await client.post(f"{ADMIN}/matters/{LICENCE}/versions/2/publish", headers=admin_headers)
    assert resp.status == 200, resp.text
    assert resp.json["version"]["status"] == "published"
    assert cached_guide(app, LICENCE) is None  # dropped by the publish, not by a TTL or a restart

    _, after = await client.get(f"/api/v1/matters/{LICENCE}")
    assert (after.json["version"], after.json["name"], after.json["promised_limit_days"]) == (2, "企业开办一件事", 1)
    assert after.headers["etag"] != before.headers["etag"]
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}", headers={"If-None-Match": before.headers["etag"]})
    assert resp.status == 200
    _, page_after = await client.get(f"/m/{LICENCE}")
    assert "企业开办一件事" in page_after.text
    assert page_after.headers["etag"] != page_before.headers["etag"]
    _, old = await client.get(f"/api/v1/matters/{LICENCE}/versions/1")
    assert old.json["version_status"] == "superseded"


async def test_a_failed_publish_keeps_the_cached_guide(app, client, admin_headers, imported):
    await client.get(f"/api/v1/matters/{LICENCE}")
    entry = cached_guide(app, LICENCE)
    assert entry is not None
    await client.put(f"{ADMIN}/matters/{LICENCE}/draft", json={"content": {"name": "不完整"}}, headers=admin_headers)
    _, resp = await client.post(f"{ADMIN}/matters/{LICENCE}/versions/2/publish", headers=admin_headers)
    assert_error(resp, 422, "GUIDE_INVALID")
    assert cached_guide(app, LICENCE) is entry


async def test_publish_on_one_worker_reaches_another_after_a_sync_tick(settings, admin_headers, imported):
    # Each worker is its own process; here both share one, and the reader hears of the write only
    # through the shared store, as a worker in another process does.
    reader, writer = AppClient(create_app(settings)), AppClient(create_app(settings))
    await reader.start()
    await writer.start()
    try:
        reader_cache, writer_cache = reader.sanic_app.ctx.cache, writer.sanic_app.ctx.cache
        assert reader_cache is not writer_cache
        await reader.sanic_app.ctx.scheduler.stop()  # the reader's cache-sync ticks happen by hand
        _, resp = await reader.get(f"/api/v1/matters/{LICENCE}")
        assert resp.json["version"] == 1
        # A worker's first tick after it starts caching a namespace drops it once (it cannot know
        # which writes it missed); the guide is cached from the next read on.
        await reader_cache.sync()
        _, resp = await reader.get(f"/api/v1/matters/{LICENCE}")
        await reader_cache.sync()
        assert guide_view.cached(reader.sanic_app.ctx.guide, code=LICENCE) is not None

        await writer.put(
            f"{ADMIN}/matters/{LICENCE}/draft", json={"content": factories.guide(name="新版本")}, headers=admin_headers
        )
        _, resp = await writer.post(f"{ADMIN}/matters/{LICENCE}/versions/2/publish", headers=admin_headers)
        assert resp.status == 200, resp.text
        _, resp = await reader.get(f"/api/v1/matters/{LICENCE}")
        assert resp.json["version"] == 1  # stale until the reader's next tick: bounded, not forever

        await reader_cache.sync()  # the scheduler's cache-sync tick
        assert guide_view.cached(reader.sanic_app.ctx.guide, code=LICENCE) is None
        _, resp = await reader.get(f"/api/v1/matters/{LICENCE}")
        assert (resp.json["version"], resp.json["name"]) == (2, "新版本")
    finally:
        await writer.stop()
        await reader.stop()


# ---------------------------------------------------------------- retire


async def test_retire_shows_on_the_cached_guide(app, client, admin_headers, imported):
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    assert resp.json["status"] == "active"
    _, page = await client.get(f"/m/{LICENCE}")
    assert "该事项已取消办理" not in page.text
    assert cached_guide(app, LICENCE) is not None
    _, resp = await client.post(f"{ADMIN}/matters/{LICENCE}/retire", json={"successor": FOOD}, headers=admin_headers)
    assert resp.status == 200, resp.text
    assert resp.json == {"code": LICENCE, "status": "retired", "successor": FOOD}

    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    assert resp.json["status"] == "retired"
    assert resp.json["successor"] == {"code": FOOD, "name": "食品经营许可", "url": f"http://testserver/m/{FOOD}"}
    _, page = await client.get(f"/m/{LICENCE}")
    assert "该事项已取消办理" in page.text
    _, resp = await client.get("/api/v1/matters")
    assert LICENCE not in [m["code"] for m in resp.json["items"]]


async def test_retire_without_body(client, admin_headers, imported):
    _, resp = await client.post(f"{ADMIN}/matters/{FUND}/retire", headers=admin_headers)
    assert resp.status == 200, resp.text
    assert resp.json == {"code": FUND, "status": "retired", "successor": None}
    _, resp = await client.get(f"/api/v1/matters/{FUND}")
    assert (resp.json["status"], resp.json["successor"]) == ("retired", None)


@pytest.mark.parametrize("successor", [LICENCE, "4308-XX-XX-999"])
async def test_retire_with_bad_successor_is_422(client, admin_headers, imported, successor):
    _, resp = await client.post(
        f"{ADMIN}/matters/{LICENCE}/retire", json={"successor": successor}, headers=admin_headers
    )
    error = assert_error(resp, 422, "INVALID_INPUT")
    assert list(error["details"]["fields"]) == ["successor"]
    _, resp = await client.get(f"/api/v1/matters/{LICENCE}")
    assert resp.json["status"] == "active"


async def test_retired_matter_takes_no_drafts(client, admin_headers, imported):
    await client.post(f"{ADMIN}/matters/{LICENCE}/retire", headers=admin_headers)
    _, resp = await client.put(f"{ADMIN}/matters/{LICENCE}/draft", json={"content": {}}, headers=admin_headers)
    assert_error(resp, 409, "MATTER_RETIRED")


# ---------------------------------------------------------------- import / export


def bad_catalogue() -> dict:
    return factories.catalogue(
        factories.entry(LICENCE),
        factories.entry(FOOD, legal_limit_days=1, promised_limit_days=9),
        factories.entry("4308-XK-SS-003", department="nope"),
        factories.entry("x"),
    )


async def test_import_bad_file_is_422_listing_every_error_and_imports_nothing(client, admin_headers):
    _, resp = await client.post(f"{ADMIN}/catalogue/import", json=bad_catalogue(), headers=admin_headers)
    error = assert_error(resp, 422, "IMPORT_INVALID")
    errors = error["details"]["errors"]
    assert sorted(e["index"] for e in errors) == [1, 2, 3]
    assert error["details"]["error_count"] == 3
    by_index = {e["index"]: e for e in errors}
    assert by_index[1]["fields"] == {"__root__": ["承诺时限不得超过法定时限"]}
    assert by_index[2]["fields"] == {"__root__": ["部门 nope 不存在"]}
    assert "code" in by_index[3]["fields"]
    assert await db_counts() == (0, 0, 0, 0)
    _, resp = await client.get("/api/v1/matters")
    assert resp.json["total"] == 0


async def test_partial_import(client, admin_headers):
    _, resp = await client.post(f"{ADMIN}/catalogue/import?partial=true", json=bad_catalogue(), headers=admin_headers)
    assert resp.status == 200, resp.text
    assert (resp.json["created"], resp.json["updated"], resp.json["unchanged"]) == (1, 0, 0)
    assert sorted(e["index"] for e in resp.json["skipped"]) == [1, 2, 3]
    _, resp = await client.get("/api/v1/matters")
    assert [m["code"] for m in resp.json["items"]] == [LICENCE]


async def test_import_is_idempotent_over_http(client, admin_headers, imported):
    assert imported == {"created": 3, "updated": 0, "unchanged": 0, "skipped": []}
    _, resp = await client.post(f"{ADMIN}/catalogue/import", json=factories.small_catalogue(), headers=admin_headers)
    assert resp.json == {"created": 0, "updated": 0, "unchanged": 3, "skipped": []}
    assert await MatterVersion.all().count() == 3


async def test_import_invalidates_the_cached_guide(app, client, admin_headers, imported):
    _, resp = await client.get(f"/api/v1/matters/{FUND}")
    assert resp.json["visits"] == 0
    assert cached_guide(app, FUND) is not None
    data = factories.small_catalogue()
    data["matters"][2]["visits"] = 1
    _, resp = await client.post(f"{ADMIN}/catalogue/import", json=data, headers=admin_headers)
    assert resp.json["updated"] == 1
    _, resp = await client.get(f"/api/v1/matters/{FUND}")
    assert (resp.json["version"], resp.json["visits"], resp.json["visits_label"]) == (2, 1, "最多跑一次")


async def test_export(client, admin_headers, imported):
    _, resp = await client.get(f"{ADMIN}/catalogue/export", headers=admin_headers)
    assert resp.status == 200
    assert "attachment" in resp.headers["content-disposition"]
    assert "catalogue.json" in resp.headers["content-disposition"]
    data = resp.json
    assert data["version"] == 1
    assert [m["code"] for m in data["matters"]] == sorted([LICENCE, FOOD, FUND])
    assert {d["code"] for d in data["departments"]} == {"scjgj", "gjjzx"}
    _, resp = await client.post(f"{ADMIN}/catalogue/import", json=data, headers=admin_headers)
    assert resp.json == {"created": 0, "updated": 0, "unchanged": 3, "skipped": []}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", f"{ADMIN}/catalogue/import"),
        ("post", f"{ADMIN}/matters"),
        ("put", f"{ADMIN}/matters/{LICENCE}/draft"),
        ("post", f"{ADMIN}/matters/{LICENCE}/retire"),
    ],
)
@pytest.mark.parametrize("body", [b'{"matters": [', b"\xff\xfe not utf-8", b"{'single': 'quotes'}"])
async def test_malformed_json_is_422(client, admin_headers, imported, method, path, body):
    _, resp = await getattr(client, method)(
        path, content=body, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert_error(resp, 422, "MALFORMED_JSON")
    assert await MatterVersion.all().count() == 3


async def test_import_of_a_non_object_is_422(client, admin_headers):
    for body in ([], "text", None):
        _, resp = await client.post(f"{ADMIN}/catalogue/import", json=body, headers=admin_headers)
        assert_error(resp, 422, "IMPORT_INVALID")

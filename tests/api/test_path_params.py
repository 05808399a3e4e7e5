"""Every registered route answers odd path parameters with 4xx, never 5xx (issue 20 point 10).

Found as: a 33-character hall code on /api/v1/admin/halls/{hall}/schedule and a 65-character username on
/api/v1/admin/staff/{username}/enable answered 500 (the value reached a varchar column's length check in the
database). This walks app.router.routes, so a route added later is walked too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote

import pytest
from sanic import Sanic

PARAM = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)(?::([^>]+))?>")
ODD_VALUES = {
    "long": "a" * 300,
    "one_past_varchar": "h" * 33,
    "long_username": "u" * 65,
    "unicode": "办事指南😀" * 20,
    "dot_dot": "../../etc/passwd",
    "control": "a\x01b",
    "spaces": "  a b  ",
}
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def walked_routes(app: Sanic) -> list[tuple[str, str]]:
    """(method, path template) of every route with at least one path parameter."""
    found = []
    for route in app.router.routes:
        path = "/" + route.path.lstrip("/")
        if not PARAM.search(path):
            continue
        for method in sorted(route.methods):
            found.append((method, path))
    return sorted(set(found))


def fill(template: str, value: str) -> str:
    """The template with every parameter set to `value` (percent-encoded, `/` too)."""
    return PARAM.sub(lambda _: quote(value, safe=""), template)


async def test_the_walk_covers_the_routes_named_in_the_issue(app):
    routes = {path for _, path in walked_routes(app)}
    assert len(routes) > 60
    for expected in ("/api/v1/admin/halls/<hall:str>/schedule", "/api/v1/admin/staff/<username:str>/disable"):
        assert expected in routes


@pytest.mark.parametrize("value", list(ODD_VALUES), ids=list(ODD_VALUES))
async def test_no_route_answers_5xx_to_an_odd_path_parameter(client, make_staff, make_citizen, value):
    _, admin = await make_staff("admin")
    _, clerk = await make_staff("clerk")
    _, citizen = await make_citizen()
    # Pages' forms carry the browser's form token, so that posts reach their handlers (not only the CSRF check).
    browser = "walk" * 10
    secret = client.sanic_app.ctx.settings.secret_key.encode()
    csrf = hmac.new(secret, f"csrf:{browser}".encode(), hashlib.sha256).hexdigest()[:32]
    callers = {
        "admin": {**admin, "Cookie": f"zd_b={browser}; zd_st=" + admin["Authorization"].split()[1]},
        "clerk": {**clerk, "Cookie": f"zd_b={browser}; zd_st=" + clerk["Authorization"].split()[1]},
        "citizen": {**citizen, "Cookie": f"zd_b={browser}; zd_at=" + citizen["Authorization"].split()[1]},
        "anonymous": {"Cookie": f"zd_b={browser}"},
    }
    failures = []
    walked = 0
    for method, template in walked_routes(client.sanic_app):
        url = fill(template, ODD_VALUES[value])
        for who, headers in callers.items():
            headers = {**headers, "Idempotency-Key": "walk-0123456789abcdef", "Origin": "http://testserver"}
            kwargs: dict = {}
            if method in BODY_METHODS:
                kwargs = {"json": {}} if template.startswith("/api/") else {"data": {"csrf": csrf}}
            if template.endswith("/events"):
                continue  # an event stream never ends: see test_the_event_stream_checks_its_hall_before_streaming
            _, resp = await client.request(method, url, headers=headers, **kwargs)
            walked += 1
            if resp.status >= 500:
                failures.append(f"{who} {method} {template} -> {resp.status} {resp.text[:120]}")
    assert walked > 200
    assert failures == [], "\n".join(failures)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/admin/halls/{h33}/schedule"),
        ("PUT", "/api/v1/admin/halls/{h33}/schedule"),
        ("GET", "/api/v1/admin/halls/{h33}/closures"),
        ("GET", "/api/v1/admin/halls/{h33}/counters"),
        ("POST", "/api/v1/admin/staff/{u65}/enable"),
        ("POST", "/api/v1/admin/staff/{u65}/disable"),
    ],
)
async def test_the_routes_of_the_issue_answer_404(client, admin_headers, method, path):
    url = path.format(h33="h" * 33, u65="u" * 65)
    _, resp = await client.request(method, url, headers=admin_headers, json={})
    assert resp.status == 404, resp.text
    assert resp.json["error"]["code"] == "PATH_PARAMETER_INVALID"
    # One character shorter reaches the handler, which answers as for any unknown hall or account.
    _, resp = await client.request(method, path.format(h33="h" * 32, u65="u" * 64), headers=admin_headers, json={})
    assert resp.status in (404, 422), resp.text
    assert resp.json["error"]["code"] != "PATH_PARAMETER_INVALID"


async def test_the_event_stream_checks_its_hall_before_streaming(client):
    _, resp = await client.get("/display/" + "h" * 33 + "/events")
    assert resp.status == 404
    assert resp.json["error"]["code"] == "PATH_PARAMETER_INVALID"

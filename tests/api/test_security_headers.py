"""Browser security headers (issue 20 point 12): found as H5 and public pages with no CSP, no frame-ancestors, no
nosniff and no Referrer-Policy, and API responses without nosniff. Walks every GET route of the app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.matters import service
from tests import factories
from tests.api.test_path_params import PARAM

TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "web" / "templates"
# A plausible value per parameter name, so that pages render for real (others get a value that names nothing).
SAMPLES = {"code": "4308-XK-SS-001", "hall": "main", "name": "h5.js"}
TAG = re.compile(rb"<(script|style)\b([^>]*)>", re.IGNORECASE)
HANDLER = re.compile(rb"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)


def get_routes(app) -> list[str]:
    """Every GET path template of the app, parameters filled."""
    paths = set()
    for route in app.router.routes:
        if "GET" in route.methods:
            template = "/" + route.path.lstrip("/")
            paths.add(PARAM.sub(lambda m: SAMPLES.get(m.group(1), "x"), template))
    return sorted(paths)


def check_page(path: str, resp) -> list[str]:
    """What is wrong with an HTML response's policy and markup."""
    problems = []
    csp = resp.headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    nonce = next((s[7:-1] for s in directives.get("script-src", []) if s.startswith("'nonce-")), None)
    if not nonce or len(nonce) < 16:
        problems.append("no nonce in script-src")
    for name, wanted in {"object-src": ["'none'"], "base-uri": ["'none'"], "default-src": ["'self'"]}.items():
        if directives.get(name) != wanted:
            problems.append(f"{name} is {directives.get(name)}")
    if directives.get("frame-ancestors") not in (["'none'"], ["'self'"]):
        problems.append("frame-ancestors")
    if "form-action" not in directives:
        problems.append("form-action")
    if any("unsafe" in s or s == "*" or s.startswith(("http:", "https:")) for s in directives.get("script-src", [])):
        problems.append("script-src not strict")
    if "'unsafe-inline'" in directives.get("style-src", []):
        problems.append("style-src allows inline elements")
    if not resp.headers.get("referrer-policy"):
        problems.append("no Referrer-Policy")
    body = resp.content
    for match in TAG.finditer(body):
        if nonce is None or f'nonce="{nonce}"'.encode() not in match.group(2):
            problems.append(f"<{match.group(1).decode()}> without this response's nonce")
    if b"zd-csp-nonce" in body:
        problems.append("placeholder left in the page")
    if HANDLER.search(body):
        problems.append("inline event handler")
    return [f"{path}: {p}" for p in problems]


async def test_every_html_page_has_the_strict_policy_and_every_response_nosniff(client, make_staff, make_citizen):
    await service.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    _, admin = await make_staff("admin")
    _, citizen = await make_citizen(audience="h5")
    cookies = {
        "admin": "zd_st=" + admin["Authorization"].split()[1],
        "citizen": "zd_at=" + citizen["Authorization"].split()[1],
        "anonymous": "",
    }
    problems: list[str] = []
    pages: set[str] = set()
    responses = 0
    for path in get_routes(client.sanic_app):
        if path.endswith("/events"):
            continue  # an event stream (text/event-stream) never ends
        for who, cookie in cookies.items():
            headers = {"Accept": "text/html", **({"Cookie": cookie} if cookie else {})}
            _, resp = await client.get(path, headers=headers, follow_redirects=False)
            responses += 1
            if resp.headers.get("x-content-type-options") != "nosniff":
                problems.append(f"{path} ({who}, {resp.status}): no nosniff")
            if resp.headers.get("content-type", "").startswith("text/html") and not path.startswith("/docs"):
                pages.add(path)
                problems += check_page(f"{path} ({who}, {resp.status})", resp)
    assert responses > 300
    assert len(pages) > 40, sorted(pages)
    print(f"walked {responses} responses, {len(pages)} HTML page routes")
    assert problems == [], "\n".join(problems)


async def test_each_response_has_its_own_nonce_also_for_a_cached_page(client):
    await service.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    nonces = set()
    for _ in range(3):
        _, resp = await client.get("/m/4308-XK-SS-001")  # rendered once per worker, then served from its cache
        assert resp.status == 200
        assert not check_page("guide", resp)
        nonces.add(re.search(r"'nonce-([^']+)'", resp.headers["content-security-policy"]).group(1))
    assert len(nonces) == 3


async def test_error_pages_and_api_errors_carry_the_headers(client):
    _, page = await client.get("/m/no-such-matter", headers={"Accept": "text/html"})
    assert page.status == 404 and page.headers["content-type"].startswith("text/html")
    assert not check_page("error page", page)
    _, api = await client.get("/api/v1/no-such-route")
    assert api.status == 404 and api.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in api.headers  # JSON is never rendered as a page


@pytest.mark.parametrize("template", sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.html")))
def test_templates_have_no_inline_handlers_and_nonce_every_script_and_style(template):
    text = (TEMPLATES / template).read_bytes()
    assert not HANDLER.search(text), template
    assert not re.search(rb"javascript:", text, re.IGNORECASE), template
    for match in TAG.finditer(text):
        assert b'nonce="{{ csp_nonce }}"' in match.group(2), (template, match.group(0))

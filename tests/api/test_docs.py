"""/docs works without internet access: the page and every asset it names come from this service."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest


class _Refs(HTMLParser):
    """Every URL a page makes the browser load, and its inline scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href", "data-spec", "data-config"):
            if values.get(name):
                self.urls.append(values[name] or "")
        if tag == "script" and not values.get("src"):
            self.inline.append("script")
        if tag == "style" or "style" in values or any(name.startswith("on") for name in values):
            self.inline.append(tag)


def _refs(html: str) -> _Refs:
    parser = _Refs()
    parser.feed(html)
    return parser


EXPECTED_TYPE = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


@pytest.mark.parametrize("page", ["/docs", "/docs/swagger"])
async def test_docs_page_references_only_same_origin_assets_that_answer(client, page):
    """The way it was found: the page named CDN hosts, so without internet it stayed blank."""
    _, resp = await client.get(page)
    assert resp.status == 200 and resp.content_type.startswith("text/html")
    assert not re.search(r"(?i)(https?:)?//[a-z0-9.-]+\.[a-z]", resp.text), "the page names another host"
    policy = resp.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'self';" in policy and "unsafe" not in policy
    assert resp.headers["x-content-type-options"] == "nosniff"
    refs = _refs(resp.text)
    assert refs.inline == []  # no inline script, style or handler: a strict CSP (script-src 'self') holds
    assert len(refs.urls) == 9  # 2 icons, 2 stylesheets, the spec, its config, 3 scripts
    for url in refs.urls:
        assert url.startswith("/docs/") and not url.startswith("//"), url
        _, asset = await client.get(url)
        assert asset.status == 200, url
        suffix = "/swagger-config" if url.endswith("swagger-config") else url[url.rfind(".") :]
        expected = EXPECTED_TYPE.get(suffix, "application/json")
        assert asset.content_type.split(";")[0] == expected, (url, asset.content_type)
        assert asset.body, url


async def test_the_assets_are_swagger_ui_from_the_pinned_package(client):
    from swagger_ui.utils import SWAGGER_UI_PY_ROOT

    _, bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.body == (SWAGGER_UI_PY_ROOT / "static" / "swagger-ui-bundle.js").read_bytes()
    assert b"SwaggerUIBundle" in bundle.body
    _, init = await client.get("/docs/assets/swagger-init.js")
    assert b"SwaggerUIBundle(" in init.body and b"validatorUrl: null" in init.body
    _, css = await client.get("/docs/assets/swagger-ui.css")
    assert b".swagger-ui" in css.body


async def test_only_the_listed_assets_are_served(client):
    for path in ("/docs/assets/swagger-ui.js.map", "/docs/assets/__init__.py", "/docs/assets/../settings.py",
                 "/docs/assets/LICENSE", "/docs/assets/swagger-editor-bundle.js"):  # fmt: skip
        _, resp = await client.get(path)
        assert resp.status == 404, path


async def test_swagger_config_sends_nothing_to_an_online_validator(client):
    _, resp = await client.get("/docs/swagger-config")
    assert resp.status == 200 and resp.json["validatorUrl"] is None


async def test_oauth2_redirect_page_is_served_locally(client, monkeypatch):
    """sanic-ext fetched this page from a CDN on every request; now it is the package's file."""
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("no internet")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    _, resp = await client.get("/docs/oauth2-redirect.html")
    assert resp.status == 200 and resp.content_type.startswith("text/html")
    assert "swaggerUIRedirectOauth2" in resp.text


async def test_redoc_which_only_loads_from_a_cdn_is_not_offered(client):
    _, resp = await client.get("/docs/redoc")
    assert resp.status == 404

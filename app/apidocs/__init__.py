"""The API documentation at /docs: Swagger UI from the pinned swagger-ui-py package, served by this service alone."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, file
from swagger_ui.utils import SWAGGER_UI_PY_ROOT

HERE = Path(__file__).resolve().parent
PACKAGE_ASSETS = SWAGGER_UI_PY_ROOT / "static"  # swagger-ui-dist as the package ships it
ASSETS_URI = "/docs/assets"
JS, CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
PNG, HTML = "image/png", "text/html; charset=utf-8"
# Each file /docs/assets serves: its place and content type (nothing else of either folder is reachable).
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui.css": (PACKAGE_ASSETS / "swagger-ui.css", CSS),
    "swagger-ui-bundle.js": (PACKAGE_ASSETS / "swagger-ui-bundle.js", JS),
    "swagger-ui-standalone-preset.js": (PACKAGE_ASSETS / "swagger-ui-standalone-preset.js", JS),
    "favicon-32x32.png": (PACKAGE_ASSETS / "favicon-32x32.png", PNG),
    "favicon-16x16.png": (PACKAGE_ASSETS / "favicon-16x16.png", PNG),
    "docs.css": (HERE / "docs.css", CSS),
    "swagger-init.js": (HERE / "swagger-init.js", JS),
}
# sanic-ext's OpenAPI pages: our Swagger page (same-origin assets, no inline script); ReDoc only loads from a CDN.
CONFIG: dict[str, Any] = {
    "OAS_URL_PREFIX": "/docs",
    "OAS_UI_DEFAULT": "swagger",
    "OAS_UI_SWAGGER_HTML_TITLE": "最多跑一次 政务服务 API",
    "OAS_PATH_TO_SWAGGER_HTML": str(HERE / "swagger.html"),
    "OAS_UI_SWAGGER_CDN_URL": ASSETS_URI,
    "OAS_UI_REDOC": False,
    "SWAGGER_UI_CONFIGURATION": {
        "apisSorter": "alpha",
        "operationsSorter": "alpha",
        "docExpansion": "list",
        "validatorUrl": None,  # Swagger UI's default sends the spec's URL to an online validator
    },
}


# The pages' own policy: every script and style from this origin, no inline script (the H5 pages' nonce policy
# leaves /docs alone). Swagger UI draws its icons as data: images and calls the API it documents on this origin;
# its bundle inserts one <style> element, allowed by its hash (a new swagger-ui-py version may change it: the
# browser test fails on any policy violation).
SWAGGER_STYLE_HASH = "'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='"
CSP = (
    f"default-src 'self'; script-src 'self'; style-src 'self' {SWAGGER_STYLE_HASH}; img-src 'self' data:; "
    "font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _with_policy(handler: Callable[..., Any]) -> Callable[..., Awaitable[HTTPResponse]]:
    """The page handler, its answer carrying the docs' Content-Security-Policy."""

    async def page(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        response = handler(request, *args, **kwargs)
        response = await response if inspect.isawaitable(response) else response
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return page


async def _oauth2_redirect(request: Request, **_: Any) -> HTTPResponse:
    """Swagger UI's OAuth2 redirect page from the package (sanic-ext fetches it from a CDN on each request)."""
    return await file(PACKAGE_ASSETS / "oauth2-redirect.html", mime_type=HTML)


def install(app: Sanic) -> None:
    """Serve the documentation's assets; call after `Extend(app)` (which adds the pages) with CONFIG applied."""
    for name, (path, content_type) in ASSETS.items():
        app.static(f"{ASSETS_URI}/{name}", path, name=f"docs_asset_{name.replace('.', '_').replace('-', '_')}",
                   content_type=content_type)  # fmt: skip
    for route in app.router.routes:
        if route.name.endswith("openapi.oauth2-redirect"):
            route.handler = _oauth2_redirect
        elif route.name.endswith(("openapi.index", "openapi.swagger")):
            route.handler = _with_policy(route.handler)

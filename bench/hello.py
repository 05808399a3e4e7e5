"""The machine's HTTP ceiling: a bare Sanic app (one route, {"ok": true}, no middleware, no access log), run by the
harness as `python -m sanic bench.hello:app` with the service's worker count next to it."""

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json

app = Sanic("hello")
app.config.AUTO_EXTEND = False  # bare: sanic-ext, installed in the same venv, would otherwise extend it


@app.get("/")
async def hello(request: Request) -> HTTPResponse:
    """The smallest JSON answer the framework can give."""
    return json({"ok": True})

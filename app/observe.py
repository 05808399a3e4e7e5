"""Request ids, the structured access log, Prometheus metrics and the error envelope handlers."""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import SanicException
from sanic.response.types import BaseHTTPResponse

from app import db
from app.audit.context import Origin, set_origin
from app.errors import DatabaseUnavailable, DomainError, error_body
from app.http import CSP_NONCE_PLACEHOLDER, bound_path_params
from app.jsontext import dumps

access_log = logging.getLogger("app.access")
log = logging.getLogger("app")

# Browser security headers. Templates write `nonce="{{ csp_nonce }}"` on their <script> and <style> elements:
# the placeholder is rendered (and cached, e.g. a guide page) once, and every HTML response gets its own nonce in
# its place and in its Content-Security-Policy. Escaped text can never contain the placeholder (it holds `<`).
_CSP_PLACEHOLDER_BYTES = CSP_NONCE_PLACEHOLDER.encode()
_DOCS_PREFIX = "/docs"  # the API documentation's own page (Swagger UI / ReDoc) brings its own assets


def content_security_policy(nonce: str, *, frame_ancestors: str = "'none'", form_action: str = "'self'") -> str:
    """The strict policy of every HTML page: our own scripts and styles with this response's nonce, nothing else.

    Style attributes (`style="..."`) stay allowed: they cannot run script, and elements need the nonce.
    """
    return (
        f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
        "style-src-attr 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        f"object-src 'none'; base-uri 'none'; form-action {form_action}; frame-ancestors {frame_ancestors}"
    )


_NONCE_CHARS = 22  # as `secrets.token_urlsafe(16)`, and as long as the templates' placeholder
_NONCES_PER_DRAW = 186  # 186 × 22 = 4,092 characters: the URL-safe base64 of 3,069 random bytes, without padding
_nonces: list[str] = []  # nonces drawn and not yet used (never shared with a forked child)
os.register_at_fork(after_in_child=_nonces.clear)


def _nonce() -> str:
    """A fresh CSP nonce: 22 URL-safe characters of the OS's CSPRNG (132 bits).

    One getrandom() system call and one base64 encoding per 186 pages rather than per page: each page takes its
    slice of the encoded text (every character of base64 without padding carries 6 random bits).
    """
    if not _nonces:
        text = base64.urlsafe_b64encode(os.urandom(_NONCES_PER_DRAW * _NONCE_CHARS * 3 // 4)).decode()
        _nonces.extend(text[i : i + _NONCE_CHARS] for i in range(0, len(text), _NONCE_CHARS))
    return _nonces.pop()


def secure_headers(request: Request, response: HTTPResponse) -> None:
    """nosniff on every response; on HTML pages a nonce'd CSP, no framing and a same-origin referrer."""
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    if not (response.content_type or "").startswith("text/html") or request.path.startswith(_DOCS_PREFIX):
        return
    nonce = _nonce()
    body = response.body
    if body and _CSP_PLACEHOLDER_BYTES in body:
        response.body = body.replace(_CSP_PLACEHOLDER_BYTES, nonce.encode())
    # A page with its own needs sets these itself (the waiting-room screen may be framed by our own pages).
    frame = getattr(request.ctx, "csp_frame_ancestors", "'none'")
    form = getattr(request.ctx, "csp_form_action", "'self'")
    headers["Content-Security-Policy"] = content_security_policy(nonce, frame_ancestors=frame, form_action=form)
    if frame == "'none'":
        headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_HTML_PREFIXES = ("/m/", "/q/", "/p/", "/desk/")
_HTML_PATHS = frozenset({"/m", "/desk", "/p"})
# The official account's sign-in is a browser navigation too: its refusals are pages for a browser.
_BROWSER_PATHS = frozenset({"/api/v1/auth/wechat/authorize", "/api/v1/auth/wechat/callback"})

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"])
DB_UNAVAILABLE = Counter("db_unavailable_total", "Requests answered 503: database lost or slow", ["error"])
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS)


# Each request is tallied in plain dicts of this worker and the tallies go to the Prometheus metrics once a second
# (the `metrics-flush` job) and before each scrape: a Counter.inc and a Histogram.observe each take a lock and
# write shared memory in multiprocess mode, 12 % of a cached read's time (bench/README.md).
_counts: dict[tuple[str, str, int], int] = {}  # (method, route, status) -> requests
_times: dict[str, list[float]] = {}  # route -> requests per latency bucket, then the sum of their seconds
_BOUNDS = (*LATENCY_BUCKETS, float("inf"))


def _observe(method: str, route: str, status: int, elapsed: float) -> None:
    """Tally one request (its count and its latency bucket) in this worker."""
    key = (method, route, status)
    _counts[key] = _counts.get(key, 0) + 1
    tally = _times.get(route)
    if tally is None:
        tally = _times[route] = [0.0] * (len(_BOUNDS) + 1)
    tally[bisect.bisect_left(_BOUNDS, elapsed)] += 1  # the first bucket whose bound is >= elapsed, as observe()
    tally[-1] += elapsed


def flush_request_metrics() -> None:
    """Add this worker's tallies to the Prometheus metrics and start new ones."""
    counts, times = dict(_counts), dict(_times)
    _counts.clear()
    _times.clear()
    for (method, route, status), n in counts.items():
        REQUESTS.labels(method, route, str(status)).inc(n)
    for route, tally in times.items():
        child = LATENCY.labels(route)
        # What Histogram.observe does per request, once per bucket (its `_buckets` and `_sum` values).
        for i, n in enumerate(tally[:-1]):
            if n:
                child._buckets[i].inc(n)
        child._sum.inc(tally[-1])


class WorkerCollector:
    """Server workers serving and replaced, read from the worker manager's shared state at each scrape."""

    def __init__(self) -> None:
        self.states: Callable[[], Mapping[str, Any]] | None = None  # set in a worker of a multi-process service

    def collect(self) -> Iterator[Metric]:
        """`app_workers_serving` and `app_worker_restarts_total` (nothing in a single process)."""
        if self.states is None:
            return
        try:
            servers = [s for s in self.states().values() if isinstance(s, dict) and s.get("server")]
        except Exception:  # the manager process is gone (shutting down): no figures rather than an error
            return
        serving = GaugeMetricFamily("app_workers_serving", "Server workers started and acknowledged")
        serving.add_metric([], sum(1 for s in servers if s.get("state") == "ACKED"))
        restarts = CounterMetricFamily("app_worker_restarts", "Server workers started again after the first start")
        restarts.add_metric([], sum(max(0, int(s.get("starts", 1)) - 1) for s in servers))
        yield serving
        yield restarts


WORKERS = WorkerCollector()
_WORKER_REGISTRY = CollectorRegistry(auto_describe=False)
_WORKER_REGISTRY.register(WORKERS)

# Sanic's own exceptions get stable codes too.
_SANIC_CODES = {
    404: ("ROUTE_NOT_FOUND", "请求的地址不存在"),
    405: ("METHOD_NOT_ALLOWED", "不支持该请求方法"),
    413: ("PAYLOAD_TOO_LARGE", "请求内容过大"),
    400: ("BAD_REQUEST", "请求格式不正确"),
    408: ("REQUEST_TIMEOUT", "请求超时"),
    503: ("SERVICE_UNAVAILABLE", "服务暂时不可用，请稍后再试"),
}


# Request ids need to be unique, not secret: a random per-process prefix and a counter avoid a
# getrandom() system call on every request (measurable on the hot paths).
_ID_PREFIX = uuid.uuid4().hex[:16]
_id_counter = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"  # 32 hex characters, like a UUID


class JsonFormatter(logging.Formatter):
    """One JSON object per log line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record and any `extra` fields as JSON."""
        data = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("request_id", "method", "path", "status", "duration_ms", "route"):
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_text:  # already rendered (and redacted) by the filter
            data["exc"] = record.exc_text
        elif record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(level: str) -> None:
    """Structured logs on stderr for our loggers."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    from auth.redact import RedactingFilter

    # No ID number, phone, token or key ever reaches a log line.
    handler.addFilter(RedactingFilter())
    for name in ("app", "auth"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    for name in ("sanic.root", "sanic.error", "sanic.server", "sanic.access", "tortoise"):
        for existing in logging.getLogger(name).handlers:
            existing.addFilter(RedactingFilter())


def _wants_html(request: Request) -> bool:
    if request.path in _BROWSER_PATHS:
        return "text/html" in request.headers.get("accept", "")
    if request.path not in _HTML_PATHS and not request.path.startswith(_HTML_PREFIXES):
        return False
    return "application/json" not in request.headers.get("accept", "")


class AppRequest(Request):
    """Sanic's request, stamped with an id and a start time when it arrives and finished when it is answered.

    What two middlewares did before: the request id (the client's, when well-formed), the audit origin,
    then on the answer the security headers, `X-Request-ID`, the metrics and the access log line.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ctx = self.ctx
        ctx.started = time.perf_counter()
        incoming = self.headers.get("x-request-id")
        ctx.request_id = incoming if incoming and _REQUEST_ID.match(incoming) else _new_request_id()
        # The audit log reads who and from where through the request's context (services take no new parameter).
        # Sanic handles a request in the task that created it, so the handler sees this origin.
        set_origin(Origin(request_id=ctx.request_id, holder=ctx, request=self))

    async def respond(
        self,
        response: BaseHTTPResponse | None = None,
        *,
        status: int = 200,
        headers: Any = None,
        content_type: str | None = None,
    ) -> Any:
        """Finish the answer (headers, metrics, access log) once, then let Sanic send it."""
        if response is None:
            response = HTTPResponse(status=status, headers=headers, content_type=content_type)
        if not self.responded and isinstance(response, BaseHTTPResponse):
            _finish(self, response)
        return await super().respond(response)


def _finish(request: AppRequest, response: BaseHTTPResponse) -> None:
    """Security headers, the request id, the request's metrics and (when enabled) its access log line."""
    secure_headers(request, response)
    ctx = request.ctx
    rid = ctx.request_id
    response.headers["X-Request-ID"] = rid
    elapsed = time.perf_counter() - ctx.started
    route = request.uri_template or "unmatched"
    _observe(request.method, route, response.status, elapsed)
    if request.app.ctx.settings.access_log:
        access_log.info(
            "request",
            extra={
                "request_id": rid,
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )


def install(app: Sanic) -> None:
    """Wire request ids, logging, metrics and error handlers into the app."""

    # No middleware: Sanic dispatches two signals around every middleware call, which cost more than our own
    # work (bench/README.md). The request class does that work at both ends (AppRequest); bounded path
    # parameters are checked by the handlers of the routes that have them.
    # Last of the start-up listeners: the OpenAPI spec is built first, from the handlers as they were declared.
    @app.before_server_start(priority=-1000)
    async def _bounded_paths(app: Sanic) -> None:
        bound_path_params(app)

    def render(request: Request, status: int, body: dict, headers: dict[str, str] | None = None) -> HTTPResponse:
        if _wants_html(request) and "pages" in app.ctx.__dict__:
            error = body["error"]
            phone = error.get("details", {}).get("phone")
            html = app.ctx.pages.error_page(status=status, code=error["code"], message=error["message"], phone=phone)
            return HTTPResponse(html, status=status, headers=headers, content_type="text/html; charset=utf-8")
        return HTTPResponse(dumps(body), status=status, headers=headers, content_type="application/json; charset=utf-8")

    async def on_domain_error(request: Request, exc: DomainError) -> HTTPResponse:
        return render(request, exc.status, exc.envelope(), exc.headers)

    async def on_sanic_error(request: Request, exc: SanicException) -> HTTPResponse:
        status = getattr(exc, "status_code", 500) or 500
        code, message = _SANIC_CODES.get(status, ("HTTP_ERROR", "请求无法处理"))
        headers = dict(getattr(exc, "headers", None) or {})
        return render(request, status, error_body(code, message), headers)

    async def on_unexpected(request: Request, exc: Exception) -> HTTPResponse:
        rid = getattr(request.ctx, "request_id", "-")
        if db.unavailable(exc):
            # Lost, unreachable or too slow: nothing was committed (the bounds end before the response's),
            # so the client may retry with its Idempotency-Key.
            DB_UNAVAILABLE.labels(type(exc).__name__).inc()
            log.warning("database unavailable: %s", type(exc).__name__, extra={"request_id": rid, "path": request.path})
            error = DatabaseUnavailable(details={"request_id": rid})
            return render(request, error.status, error.envelope(), error.headers)
        log.exception("unhandled error", extra={"request_id": rid, "path": request.path})
        return render(request, 500, error_body("INTERNAL_ERROR", "服务内部错误，请稍后再试", {"request_id": rid}))

    @app.after_server_start
    async def _worker_states(app: Sanic) -> None:
        if hasattr(app, "multiplexer"):  # a worker of `python -m app run`: the manager shares every worker's state
            WORKERS.states = lambda: app.m.workers

    app.error_handler.add(DomainError, on_domain_error)
    app.error_handler.add(SanicException, on_sanic_error)
    app.error_handler.add(Exception, on_unexpected)


def metrics_payload(multiproc_dir: Path | None) -> bytes:
    """Prometheus exposition of this process, or of all workers' files in multiproc_dir (multiprocess mode)."""
    flush_request_metrics()
    workers = generate_latest(_WORKER_REGISTRY)
    if multiproc_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(multiproc_dir))
        return generate_latest(registry) + workers
    return generate_latest() + workers


METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

"""Operations endpoints: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
import hmac

from sanic import Blueprint, HTTPResponse, Request
from sanic.exceptions import NotFound

from app import clock, db
from app.errors import Unauthorized
from app.http import doc, json_response
from app.observe import METRICS_CONTENT_TYPE, metrics_payload

bp = Blueprint("ops", url_prefix="")
TAG = "ops 运维"


@bp.route("/healthz", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="存活检查")
async def healthz(request: Request) -> HTTPResponse:
    """The process answers."""
    return json_response({"status": "ok"})


@bp.route("/readyz", methods=["GET", "HEAD"])
@doc(
    tag=TAG,
    summary="就绪检查（数据库、Redis、对象存储与后台任务）",
    description="启动完成前、依赖不可达或后台任务连续失败时返回 503（status：starting、unavailable、degraded）。",
)
async def readyz(request: Request) -> HTTPResponse:
    """Started, database, store (and object store) reachable within a second each, and no background job failing."""
    ctx = request.app.ctx
    if not getattr(ctx, "ready", False):
        return json_response({"status": "starting", "checks": {}}, status=503)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(db.ping(), timeout=1)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; say which
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await asyncio.wait_for(ctx.store.ping(), timeout=1)
        checks["store"] = "ok"
    except Exception as exc:
        checks["store"] = f"error: {type(exc).__name__}"
    materials = ctx.services.materials
    if materials.backend != "local":  # an object store is a dependency like the database (the local directory is not)
        try:
            await asyncio.wait_for(materials.ping(), timeout=1)
            checks["materials"] = "ok"
        except Exception as exc:
            checks["materials"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body: dict = {"status": "ok" if ready else "unavailable", "checks": checks}
    scheduler = getattr(ctx, "scheduler", None)
    failing = scheduler.failing() if scheduler is not None else {}
    if failing:
        body["jobs"] = {
            name: {"failures": job.failures, "since": clock.iso(job.failing_since), "error": job.last_error}
            for name, job in failing.items()
        }
        if ready:
            body["status"], ready = "degraded", False
    return json_response(body, status=200 if ready else 503)


class MetricsTokenRequired(Unauthorized):
    code, message = "METRICS_TOKEN_REQUIRED", "读取监控指标需要有效的访问令牌"


def _metrics_allowed(request: Request) -> bool:
    """METRICS_TOKEN set: the request must carry it as a bearer token; unset: development and test only."""
    token = request.app.ctx.settings.metrics_token
    if token is None:
        return request.app.ctx.settings.is_dev
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@bp.get("/metrics")
@doc(
    tag=TAG,
    summary="Prometheus 指标（设置 METRICS_TOKEN 时须带 Authorization: Bearer；未设置时仅开发模式提供）",
    errors=[MetricsTokenRequired],
)
async def metrics(request: Request) -> HTTPResponse:
    """Prometheus text exposition, for the scraper holding METRICS_TOKEN (or anyone in development)."""
    if not _metrics_allowed(request):
        if request.app.ctx.settings.metrics_token is None:
            raise NotFound()  # production without a token: metrics are not served at all
        raise MetricsTokenRequired(headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    payload = metrics_payload(request.app.ctx.settings.prometheus_multiproc_dir)
    return HTTPResponse(payload, content_type=METRICS_CONTENT_TYPE)


@bp.get("/bench/baseline")
@doc(tag=TAG, summary="基准路由（压测对照，仅开发与测试模式）")
async def baseline(request: Request) -> HTTPResponse:
    """A trivial route that benchmarks measure every other path against (not served in production)."""
    if not request.app.ctx.settings.is_dev:
        raise NotFound()
    return json_response({"ok": True})

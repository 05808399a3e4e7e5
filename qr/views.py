"""Code JSON for apps, images and posters, administration of codes; the scan helpers of /q/<slug>.

The /q/<slug> route itself is the H5 channel's (app.web.scan): a browser gets the guide page there.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sanic import Blueprint, HTTPResponse, Request

from app.errors import InvalidInput, pydantic_details
from app.http import JSON_TYPE, cached_response, doc, json_response, parse_body, parse_query
from app.jsontext import etag_for
from app.matters.schemas import Section
from app.wechat.errors import WeChatError, WeChatRateLimited, WeChatUnavailable
from auth.errors import STAFF_AUTH_ERRORS
from auth.guards import admin_required
from qr import analytics, present, render, service
from qr.errors import (
    CodeDisabled,
    CodeExhausted,
    CodeExpired,
    CodeGone,
    CodeNotFound,
    CodeNotYetValid,
    TargetInvalid,
    ValidityEnded,
)
from qr.types import CodeAction, CodeStatus

bp = Blueprint("qr", url_prefix="")
TAG = "qr 事项二维码"
ADMIN_TAG = "admin 二维码管理"
AUTH = STAFF_AUTH_ERRORS
GONE = [CodeNotFound, CodeDisabled, CodeExpired, CodeNotYetValid, CodeExhausted]
VISITOR_COOKIE = "zd_vid"
IMAGE_MAX_AGE = 86400 * 30  # the content of /q/{slug} never changes, so its image never does
_REASONS = {
    "CODE_NOT_FOUND": "unknown",
    "CODE_DISABLED": "disabled",
    "CODE_EXPIRED": "expired",
    "CODE_NOT_YET_VALID": "not_yet_valid",
    "CODE_EXHAUSTED": "exhausted",
}


def counted(request: Request) -> bool:
    """Whether this request counts as a scan (not HEAD, not a known bot)."""
    return request.method != "HEAD" and not analytics.is_bot(request.headers.get("user-agent", ""))


async def resolve_scan(request: Request, slug: str) -> service.Snapshot:
    """Resolve and record the scan (counted, or invalid with its reason); first visits get a visitor id."""
    ctx = request.app.ctx
    count = counted(request)
    try:
        snap = await service.resolve(ctx.codes, slug=slug, count=count)
    except (CodeNotFound, CodeGone) as exc:
        if count:
            ctx.scans.record_invalid(_REASONS.get(exc.code, "other"))
        raise
    if count:
        headers = request.headers
        ua = headers.get("user-agent", "")
        cookie = request.cookies.get(VISITOR_COOKIE) if "cookie" in headers else None
        if cookie and analytics.valid_cookie(cookie):
            visitor = "c:" + cookie
        elif cookie:  # not one of ours: fall back to address and agent
            visitor = analytics.visitor_id(None, request.remote_addr or request.ip, ua)
        else:
            request.ctx.new_visitor = analytics.new_visitor_cookie()
            visitor = "c:" + request.ctx.new_visitor
        ctx.scans.record(slug, analytics.channel_of(ua, headers.get("x-client")), visitor)
    return snap


def with_visitor(request: Request, response: HTTPResponse) -> HTTPResponse:
    """Set the first-party visitor cookie minted for this scan (unique-visitor counts)."""
    new = getattr(request.ctx, "new_visitor", None)
    if new:
        # Written directly: the value is our own URL-safe token, and this is the hot path.
        secure = "; Secure" if request.app.ctx.settings.base_url.startswith("https://") else ""
        response.headers.add(
            "Set-Cookie", f"{VISITOR_COOKIE}={new}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax{secure}"
        )
    return response


def json_answer(request: Request, snap: service.Snapshot) -> HTTPResponse:
    """What a code opens now, as JSON (encoded once per change in the snapshot)."""
    return with_visitor(
        request, HTTPResponse(snap.json_body, content_type=JSON_TYPE, headers={"Cache-Control": "no-store"})
    )


def wants_json(request: Request) -> bool:
    """An app asking for the resolution rather than a browser asking for the page."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


async def image(request: Request, slug: str, kind: str) -> HTTPResponse:
    """A code's PNG or SVG image (only issued codes have images: a printed non-code would be a dead end)."""
    await service.snapshot(request.app.ctx.codes, slug=slug)
    opts = _options(request)
    content, etag = render.cached_image(kind, f"{request.app.ctx.settings.base_url}/q/{slug}", opts)
    content_type = "image/png" if kind == "png" else "image/svg+xml"
    return cached_response(request, content, etag, content_type=content_type, max_age=IMAGE_MAX_AGE)


def scan_notice(snap: service.Snapshot) -> str | None:
    """What a browser is told when the printed matter was retired and its successor opens instead."""
    if snap.retired_from and snap.matter_code != snap.printed_matter:
        return f"您扫描的事项「{snap.retired_from.name}」已取消，以下为继任事项的办事指南。"
    return None


def _options(request: Request) -> render.ImageOptions:
    if not request.query_string:  # the printed code's own address: the defaults, without a validation per request
        return render.DEFAULT_OPTIONS
    data = {k: v[0] for k, v in request.args.items()}
    try:
        return render.ImageOptions.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("图片参数不合法", details=pydantic_details(exc)) from None


@bp.get("/q/<slug:str>/poster.svg")
@doc(tag=TAG, summary="可打印的事项二维码海报（SVG，A5）", errors=[CodeNotFound])
async def poster(request: Request, slug: str) -> HTTPResponse:
    """A printable poster: matter name, matter code, slug, hall."""
    snap = await service.snapshot(request.app.ctx.codes, slug=slug)
    content = await service.poster_svg(request.app.ctx.codes, slug=snap.slug)
    return cached_response(request, content, etag_for(content), content_type="image/svg+xml", max_age=3600)


@bp.get("/api/v1/codes/<slug:str>")
@doc(tag=TAG, summary="解析二维码（小程序、App 使用）", errors=GONE)
async def code_json(request: Request, slug: str) -> HTTPResponse:
    """What a code opens now: status, matter summary and action URLs (counted as a scan)."""
    return json_answer(request, await resolve_scan(request, slug))


@bp.get("/api/v1/matters/<code:str>/wechat-codes/<kind:str>")
@doc(tag=TAG, summary="事项的微信码：mp.png 公众号带参二维码，wxa.png 小程序码（首次请求时生成并保存）",
     errors=[CodeNotFound, TargetInvalid, WeChatRateLimited, WeChatUnavailable, WeChatError])  # fmt: skip
async def wechat_code(request: Request, code: str, kind: str) -> HTTPResponse:
    """Official-account scene QR or mini-program code of a matter (scene = its default code's slug)."""
    if not kind.endswith(".png"):
        raise CodeNotFound()
    content = await service.wechat_code_png(request.app.ctx.codes, matter_code=code, kind=kind[:-4])
    return cached_response(request, content, etag_for(content), content_type="image/png", max_age=86400)


# ---------------------------------------------------------------- administration


class NewCode(BaseModel):
    """A code to issue."""

    model_config = ConfigDict(extra="forbid")
    matter_code: str = Field(min_length=6, max_length=40)
    action: CodeAction = CodeAction.guide
    label: str = Field(default="", max_length=200)
    hall: str | None = Field(default=None, max_length=32)
    valid_since: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    max_scans: int | None = Field(default=None, ge=1, le=100_000_000)


class CodeChange(BaseModel):
    """Fields to change on a code (absent = unchanged, null = cleared for the validity fields)."""

    model_config = ConfigDict(extra="forbid")
    matter_code: str | None = Field(default=None, min_length=6, max_length=40)
    action: CodeAction | None = None
    status: CodeStatus | None = None
    label: str | None = Field(default=None, max_length=200)
    valid_since: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    max_scans: int | None = Field(default=None, ge=1, le=100_000_000)


class CodeListQuery(BaseModel):
    """Filters of the code list."""

    model_config = ConfigDict(extra="ignore")
    matter_code: str | None = Field(default=None, max_length=40)
    section: Section | None = None
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=50, ge=1, le=200)


class StatsQuery(BaseModel):
    """Date range of statistics (Asia/Shanghai dates)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    date_from: dt.date | None = Field(default=None, alias="from")
    date_to: dt.date | None = Field(default=None, alias="to")


class SectionQuery(BaseModel):
    """A section."""

    model_config = ConfigDict(extra="ignore")
    section: Section


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(
            "时间必须带时区，例如 2026-12-01T08:00:00+08:00", details={"fields": {"valid": ["缺少时区"]}}
        )
    return value


@bp.post("/api/v1/admin/codes")
@doc(tag=ADMIN_TAG, summary="签发二维码（如按大厅、张贴位置）", body=NewCode, status=201,
     errors=[*AUTH, InvalidInput, TargetInvalid, ValidityEnded], secured="bearer")  # fmt: skip
@admin_required
async def issue(request: Request) -> HTTPResponse:
    """Issue a code for a matter."""
    body = parse_body(request, NewCode)
    result = await service.issue_code(
        request.app.ctx.codes, matter_code=body.matter_code, action=body.action.value, label=body.label,
        hall=body.hall, valid_since=_aware(body.valid_since), valid_until=_aware(body.valid_until),
        max_scans=body.max_scans, created_by=request.ctx.principal.subject,
    )  # fmt: skip
    return json_response(present.code(result), status=201)


@bp.get("/api/v1/admin/codes")
@doc(tag=ADMIN_TAG, summary="二维码列表", query=CodeListQuery, errors=[*AUTH, InvalidInput], secured="bearer")
@admin_required
async def list_(request: Request) -> HTTPResponse:
    """Codes by matter or section."""
    q = parse_query(request, CodeListQuery)
    result = await service.list_codes(
        request.app.ctx.codes,
        matter_code=q.matter_code,
        section=q.section.value if q.section else None,
        page=q.page,
        page_size=q.page_size,
    )
    return json_response(present.code_page(result))


@bp.get("/api/v1/admin/codes/<slug:str>")
@doc(tag=ADMIN_TAG, summary="查看二维码", errors=[*AUTH, CodeNotFound], secured="bearer")
@admin_required
async def get_one(request: Request, slug: str) -> HTTPResponse:
    """One code."""
    return json_response(present.code(await service.get_code(request.app.ctx.codes, slug=slug)))


@bp.patch("/api/v1/admin/codes/<slug:str>")
@doc(tag=ADMIN_TAG, summary="改指向、停用/启用、改有效期（2 秒内在所有进程生效）", body=CodeChange,
     errors=[*AUTH, CodeNotFound, InvalidInput, TargetInvalid, ValidityEnded], secured="bearer")  # fmt: skip
@admin_required
async def change(request: Request, slug: str) -> HTTPResponse:
    """Retarget, disable or re-validate a code."""
    body = parse_body(request, CodeChange)
    given: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set}
    for key in ("valid_since", "valid_until"):
        if key in given:
            given[key] = _aware(given[key])
    for key in ("action", "status"):
        if given.get(key) is not None:
            given[key] = given[key].value
    result = await service.update_code(request.app.ctx.codes, slug=slug, **given)
    return json_response(present.code(result))


@bp.get("/api/v1/admin/codes/<slug:str>/stats")
@doc(tag=ADMIN_TAG, summary="扫码统计（按日、按渠道、独立访客）", query=StatsQuery,
     errors=[*AUTH, CodeNotFound, InvalidInput], secured="bearer")  # fmt: skip
@admin_required
async def stats(request: Request, slug: str) -> HTTPResponse:
    """Scans per day and channel, unique visitors."""
    q = parse_query(request, StatsQuery)
    await request.app.ctx.scans.flush()  # include this worker's buffered scans
    stats = await analytics.code_stats(slug=slug, date_from=q.date_from, date_to=q.date_to)
    return json_response(present.code_stats(stats))


@bp.get("/api/v1/admin/codes/batch.zip")
@doc(tag=ADMIN_TAG, summary="按业务板块批量下载打印文件（ZIP：海报 SVG + PNG）", query=SectionQuery,
     errors=[*AUTH, InvalidInput], secured="bearer")  # fmt: skip
@admin_required
async def batch_zip(request: Request) -> HTTPResponse:
    """Issue any missing default codes of a section and download its print files."""
    q = parse_query(request, SectionQuery)
    content, count = await service.section_zip(request.app.ctx.codes, section=q.section.value)
    name = f"qr-{q.section.value}-{count}.zip"
    return HTTPResponse(
        content, content_type="application/zip", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )

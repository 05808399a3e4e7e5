"""H5 pages: home and search, the guide page and its service entries, progress, the desk and the dashboard."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sanic import Blueprint, HTTPResponse, Request, redirect

from app import clock
from app.booking import queue
from app.booking.errors import HallNotFound
from app.cases import service as cases
from app.cases.errors import ProgressNotFound, ReceiptCodeInvalid
from app.cases.types import ProgressView
from app.console.kit import PRIVATE, staff_page
from app.errors import InvalidInput, MatterNotFound, NotFound, ServiceUnavailable, pydantic_details
from app.feedback.errors import RangeInvalid
from app.guide import service as guides
from app.http import cached_response, doc, parse_query
from app.jsontext import dumps
from app.matters import service
from app.matters.schemas import SECTION_NAMES, Section
from app.ratelimit import TooManyRequests
from app.stats import indicators
from app.stats import present as stats_present
from app.stats.types import IndicatorReport
from app.web import ACTIONS
from app.web import bundle_view as bv
from app.web.kit import page, see_other
from auth.guards import check_origin, csrf_token, finish_page

bp = Blueprint("web", url_prefix="")
TAG = "h5 页面"
HTML = "text/html; charset=utf-8"


class StatsPageQuery(BaseModel):
    """The dashboard's period."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    date_from: dt.date | None = Field(default=None, alias="from")
    date_to: dt.date | None = Field(default=None, alias="to")


class ProgressPageQuery(BaseModel):
    """The progress page's address: a case number may fill in the form (a query code there is ignored)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    case_no: str = Field(default="", max_length=32)


class ProgressPageForm(BaseModel):
    """The progress query, posted (so the query code stays out of addresses, logs and histories)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    case_no: str = Field(min_length=1, max_length=32, description="办件编号")
    query_code: str = Field(min_length=1, max_length=16, description="查询码")


# Same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on the query form's post, which
# the origin check refuses; the address (a receipt code in /p/<code>) still never leaves for another site.
PRIVATE_PAGE = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin", "X-Robots-Tag": "noindex"}


class HomeQuery(BaseModel):
    """Search parameters of the H5 home page."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    q: str | None = Field(default=None, max_length=50)
    section: Section | None = None
    page: int = Field(default=1, ge=1, le=1000)


@bp.route("/", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="首页（302 跳转到 /m）", status=302)
async def root(request: Request) -> HTTPResponse:
    """Send browsers to the H5 home page."""
    return redirect("/m")


@bp.route("/m", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="H5 首页：业务板块与事项搜索", query=HomeQuery)
async def home(request: Request) -> HTTPResponse:
    """Sections and search results."""
    query = parse_query(request, HomeQuery)
    sections = await service.list_sections()
    results = None
    if query.q or query.section:
        results = await service.search_matters(
            q=query.q, section=query.section.value if query.section else None, page=query.page, page_size=20
        )
    html = request.app.ctx.pages.render(
        "home.html",
        elder=_elder(request),
        here=request.path + (f"?{request.query_string}" if request.query_string else ""),
        sections=sections,
        results=results,
        q=query.q or "",
        section=query.section.value if query.section else "",
    )
    return HTTPResponse(html, content_type=HTML)


def _elder(request: Request) -> bool:
    # Without a Cookie header Sanic would still parse one (its prefixed names too) on every guide page.
    return "cookie" in request.headers and request.cookies.get("zd_elder") == "1"


def _render_guide(
    request: Request, guide: guides.GuideDocument, *, notice: str | None = None, mini_program: dict | None = None
) -> bytes:
    return request.app.ctx.pages.render(
        "guide.html", g=guide.data, actions=ACTIONS, notice=notice, mini_program=mini_program, elder=_elder(request),
        here=f"/m/{guide.data['code']}",
    ).encode()  # fmt: skip


async def guide_html(
    request: Request, code: str, *, notice: str | None = None, mini_program: dict | None = None
) -> bytes:
    """The rendered guide page of a matter (a scan's page carries a notice or the mini-program link: not cached)."""
    deps = request.app.ctx.guide
    if notice is None and mini_program is None:
        kind = "html-elder" if _elder(request) else "html"
        return (await guides.rendition(deps, code=code, kind=kind, render=partial(_render_guide, request)))[1]
    guide = await guides.guide(deps, code=code)
    return _render_guide(request, guide, notice=notice, mini_program=mini_program)


@bp.route("/m/<code:str>", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="H5 办事指南页", errors=[MatterNotFound])
async def guide_page(request: Request, code: str) -> HTTPResponse:
    """The mobile guide page of a matter's current version (rendered once per change, cached)."""
    deps = request.app.ctx.guide
    kind = "html-elder" if _elder(request) else "html"  # the elder-mode rendition is cached beside the other
    etag, body = await guides.rendition(deps, code=code, kind=kind, render=partial(_render_guide, request))
    response = cached_response(
        request, body, etag, content_type=HTML, max_age=request.app.ctx.settings.guide_cache_seconds
    )
    response.headers["Vary"] = "Accept-Encoding, Cookie"
    return response


@bp.route("/m/<code:str>/progress", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="办事入口：进度查询（跳转到 /p）", status=302)
async def progress_entry(request: Request, code: str) -> HTTPResponse:
    """Progress is looked up by case number and query code, whatever the matter."""
    return redirect("/p")


_STATIC_DIR = Path(__file__).parent / "static"
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


@functools.cache
def _static_file(name: str) -> tuple[bytes, str, str] | None:
    """(bytes, ETag, content type) of one of our own static files, read once per worker."""
    path = _STATIC_DIR / name
    kind = _STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        return None
    body = path.read_bytes()
    return body, f'"{hashlib.sha256(body).hexdigest()[:16]}"', kind


@bp.route("/static/<name:str>", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="页面的小脚本与样式（本站文件，无第三方 CDN；可缓存 1 天）", errors=[NotFound])
async def static_file(request: Request, name: str) -> HTTPResponse:
    """Our own small scripts (progressive enhancement only: every page works without them)."""
    found = _static_file(name)
    if found is None:
        raise NotFound()
    body, etag, kind = found
    return cached_response(request, body, etag, content_type=kind, max_age=86400)


@bp.route("/desk", methods=["GET", "HEAD"])
@doc(
    tag="console 工作台",
    summary="前台签到与叫号（窗口人员、管理员；手持机与桌面）：扫码签到、现场取号、叫号",
    errors=[HallNotFound],
)
@staff_page("clerk", "admin")
async def desk_page(request: Request) -> HTTPResponse:
    """The front desk: a focused scan field, the result colour-coded, walk-in numbers and call-next (desk.js)."""
    staff = request.ctx.page_staff
    hall = staff.hall or (request.args.get("hall") or "").strip() or None
    hall_name, counters = (await queue.hall_name(hall), await queue.counter_sections(hall)) if hall else (None, {})
    sections = [(s.value, SECTION_NAMES[s]) for s in Section]
    html = request.app.ctx.pages.render(
        "desk.html", staff=staff, hall=hall, hall_name=hall_name, sections=sections,
        counters=dumps(counters).decode(), admin=staff.role == "admin", csrf=csrf_token(request),
    )  # fmt: skip
    headers = {**PRIVATE, "Referrer-Policy": "same-origin"}  # and the strict page policy (app/observe.py)
    return finish_page(request, HTTPResponse(html, content_type=HTML, headers=headers))


def _minute(at: dt.datetime) -> str:
    return f"{at.astimezone(clock.SHANGHAI):%Y-%m-%d %H:%M}"


def _progress_context(view: ProgressView, departments: dict[str, str] | None = None) -> dict[str, Any]:
    """What progress.html shows of a case: times in Asia/Shanghai to the minute, dates as YYYY-MM-DD."""
    s = view.summary
    step = s.next_step
    return {
        "case_no": s.case_no,
        "matter": {"code": s.matter_code, "name": s.matter_name},
        "principal": {"name": view.principal_name},
        "status": s.status.value,
        "status_name": s.status_name,
        "sla": {"state": s.sla.state, "due_on": s.sla.due_on.isoformat() if s.sla.due_on else None},
        "submitted_at": _minute(s.submitted_at),
        "promised_days": s.promised_days,
        "next_step": None
        if step is None
        else {"name": step.name, "expected_by": step.expected_by.isoformat() if step.expected_by else None},
        "timeline": bv.timeline_context(view.timeline),
        "kind": s.kind,
        "bundle": bv.bundle_context(view.bundle, departments or {}),
    }


def _client(request: Request) -> str:
    return request.remote_addr or request.ip or "unknown"


def _progress_form(
    request: Request, *, status: int = 200, case_no: str = "", errors: dict[str, str] | None = None,
    headers: dict[str, str] | None = None, notice: str | None = None,
) -> HTTPResponse:  # fmt: skip
    """The query form (what was typed kept, except the query code, which is never echoed)."""
    return page(request, "progress.html", status=status, case=None, case_no=case_no[:32], errors=errors or {},
                notice=notice, headers={**PRIVATE_PAGE, **(headers or {})})  # fmt: skip


@bp.route("/p", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="H5 办件进度查询页：办件编号 + 查询码的表单（以 POST 提交，查询码不出现在网址中）",
     query=ProgressPageQuery)  # fmt: skip
async def progress_form(request: Request) -> HTTPResponse:
    """The query form; a case number in the address fills it in, a query code there is ignored."""
    q = parse_query(request, ProgressPageQuery)
    if "query_code" in request.args:
        # An old link or a hand-typed address: the code is not read from it, and the address loses it.
        return see_other(request, "/p" + (f"?case_no={quote(q.case_no)}" if q.case_no else ""))
    return _progress_form(request, case_no=q.case_no)


@bp.post("/p")
@doc(tag=TAG, summary="H5 办件进度查询：提交办件编号和查询码，显示办理过程（限频，与 API 共用）",
     body=ProgressPageForm, body_media="application/x-www-form-urlencoded",
     errors=[ProgressNotFound, TooManyRequests, ServiceUnavailable])  # fmt: skip
async def progress_query(request: Request) -> HTTPResponse:
    """The case's timeline once the number and code match; else the form with the reason next to its field.

    Only the origin is checked (no form token): the lookup changes nothing, and a visitor whose browser
    keeps no cookies must still be able to use it.
    """
    check_origin(request)
    data = {k: v[0] for k, v in (request.form or {}).items()}
    try:
        form = ProgressPageForm.model_validate(data)
    except ValidationError as exc:
        fields = pydantic_details(exc)["fields"]
        errors = {k: "；".join(v) for k, v in fields.items() if k in ("case_no", "query_code")}
        return _progress_form(request, status=422, case_no=str(data.get("case_no", "")), errors=errors)
    try:
        view = await cases.query_progress(
            request.app.ctx.cases, client=_client(request), case_no=form.case_no, query_code=form.query_code, code=None
        )
    except ProgressNotFound as exc:
        return _progress_form(request, status=exc.status, case_no=form.case_no, errors={"query_code": exc.message})
    except (TooManyRequests, ServiceUnavailable) as exc:
        return _progress_form(request, status=exc.status, case_no=form.case_no, errors={"__all__": exc.message},
                              headers=exc.headers)  # fmt: skip
    departments = await bv.department_names() if view.bundle else {}
    return page(request, "progress.html", case=_progress_context(view, departments), headers=PRIVATE_PAGE)


@bp.route("/p/<code:str>", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="H5 办件进度页（受理回执二维码打开）", errors=[ReceiptCodeInvalid, TooManyRequests])
async def progress_by_code(request: Request, code: str) -> HTTPResponse:
    """What the receipt's QR code opens: the case's timeline and the expected date of its next step."""
    try:
        view = await cases.query_progress(
            request.app.ctx.cases, client=_client(request), case_no=None, query_code=None, code=code[:200]
        )
    except ProgressNotFound:
        # Nobody typed a number or a code here: say what is wrong with the QR code, and offer the form.
        bad = ReceiptCodeInvalid()
        return _progress_form(request, status=bad.status, notice=bad.message)
    except (TooManyRequests, ServiceUnavailable) as exc:
        return _progress_form(request, status=exc.status, errors={"__all__": exc.message}, headers=exc.headers)
    departments = await bv.department_names() if view.bundle else {}
    return page(request, "progress.html", case=_progress_context(view, departments), headers=PRIVATE_PAGE)


def _stats_context(report: IndicatorReport) -> dict[str, Any]:
    """What stats.html shows: the API's report, generated_at in Asia/Shanghai to the minute."""
    data = stats_present.report_json(report)
    return {**data, "generated_at": _minute(report.generated_at), "charts": stats_present.dashboard_charts(data)}


@bp.route("/stats", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="改革成效看板（公开：最多跑一次率、零跑路率、按时办结率、好评率等，服务端渲染图表）",
     query=StatsPageQuery, errors=[InvalidInput, RangeInvalid, TooManyRequests])  # fmt: skip
async def stats_page(request: Request) -> HTTPResponse:
    """The reform indicators with charts drawn on the server (SVG: no script, no CDN)."""
    q = parse_query(request, StatsPageQuery)
    start, end = indicators.period(q.date_from, q.date_to)
    ctx = request.app.ctx
    report = await indicators.public_report(
        ctx.stats, client=request.remote_addr or request.ip or "unknown", date_from=start, date_to=end
    )
    html = ctx.pages.render("stats.html", r=_stats_context(report))
    return HTTPResponse(html, content_type=HTML, headers={"Cache-Control": "public, max-age=60"})

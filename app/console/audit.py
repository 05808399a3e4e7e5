"""The audit log in the console (administrators): search form, result pages and the CSV export."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from sanic import Blueprint, HTTPResponse, Request

from app import clock
from app.audit import service as audit
from app.audit.schemas import AuditFilter, AuditSearch
from app.console.kit import PRIVATE, page, staff_page
from app.errors import InvalidInput
from app.http import doc, parse_query
from auth.guards import finish_page

bp = Blueprint("console_audit", url_prefix="")
TAG = "console 工作台"


def _when(at: dt.datetime) -> str:
    return (clock.iso(at) or "")[:19].replace("T", " ")  # Beijing time, to the second


FILTERS = ("actor", "action", "object_type", "object_id", "from", "to")


@bp.get("/console/audit")
@doc(tag=TAG, summary="审计日志（检索与导出，仅管理员）", query=AuditSearch, errors=[InvalidInput])
@staff_page("admin")
async def audit_page(request: Request) -> HTTPResponse:
    """The search form and one page of matching entries, newest first."""
    typed = {k: str(request.args.get(k, ""))[:100] for k in FILTERS}
    try:
        q = parse_query(request, AuditSearch)
    except InvalidInput as exc:
        fields = exc.details.get("fields", {}) if isinstance(exc.details, dict) else {}
        return page(request, "audit.html", status=422, form=typed, errors=fields, found=None, csv_link="", pages={})
    found = await audit.search(q.query(), page=q.page, page_size=50)
    kept = {k: v for k, v in typed.items() if v}
    last = max(1, -(-found.total // found.page_size))
    pages = {
        "prev": f"/console/audit?{urlencode({**kept, 'page': q.page - 1})}" if q.page > 1 else "",
        "next": f"/console/audit?{urlencode({**kept, 'page': q.page + 1})}" if q.page < last else "",
        "last": last,
    }
    csv_link = "/console/audit.csv" + (f"?{urlencode(kept)}" if kept else "")
    return page(request, "audit.html", form=typed, errors={}, found=found, csv_link=csv_link, pages=pages, when=_when)


@bp.get("/console/audit.csv")
@doc(tag=TAG, summary="审计日志导出（CSV，仅管理员）", query=AuditFilter, errors=[InvalidInput])
@staff_page("admin")
async def audit_csv(request: Request) -> HTTPResponse:
    """The matching entries as CSV, like the admin API's export."""
    q = parse_query(request, AuditFilter)
    text = await audit.export_csv(q.query())
    response = HTTPResponse(
        text.encode("utf-8-sig"),
        content_type="text/csv; charset=utf-8",
        headers={**PRIVATE, "Content-Disposition": 'attachment; filename="audit.csv"'},
    )
    return finish_page(request, response)

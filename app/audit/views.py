"""The audit log for administrators: search (JSON) and export (CSV)."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from app.audit import present
from app.audit import service as audit
from app.audit.schemas import AuditFilter, AuditSearch
from app.errors import InvalidInput
from app.http import doc, json_response, parse_query
from app.paging import envelope
from auth.errors import STAFF_AUTH_ERRORS
from auth.guards import admin_required

bp = Blueprint("audit_admin", url_prefix="/api/v1/admin")
TAG = "admin 审计日志"
PRIVATE = {"Cache-Control": "no-store"}


@bp.get("/audit")
@doc(tag=TAG, summary="审计日志检索（按操作人、操作、对象、日期；分页）", query=AuditSearch,
     errors=[*STAFF_AUTH_ERRORS, InvalidInput], secured="bearer")  # fmt: skip
@admin_required
async def search(request: Request) -> HTTPResponse:
    """One page of the audit log, newest first."""
    q = parse_query(request, AuditSearch)
    found = await audit.search(q.query(), page=q.page, page_size=q.page_size)
    return json_response(envelope(found, present.entry_json), headers=PRIVATE)


@bp.get("/audit.csv")
@doc(tag=TAG, summary="审计日志导出（CSV，筛选条件同检索）", query=AuditFilter,
     errors=[*STAFF_AUTH_ERRORS, InvalidInput], secured="bearer")  # fmt: skip
@admin_required
async def export(request: Request) -> HTTPResponse:
    """The matching entries as CSV (at most 50 000)."""
    q = parse_query(request, AuditFilter)
    text = await audit.export_csv(q.query())
    return HTTPResponse(
        text.encode("utf-8-sig"),  # the BOM lets spreadsheet programs read the Chinese text as UTF-8
        content_type="text/csv; charset=utf-8",
        headers={**PRIVATE, "Content-Disposition": 'attachment; filename="audit.csv"'},
    )

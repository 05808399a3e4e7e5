"""Administrators' statistics (/api/v1/admin/...): the rating aggregates and the reform indicators."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.errors import InvalidInput
from app.feedback import present as feedback_present
from app.feedback import ratings
from app.feedback.errors import RangeInvalid
from app.http import doc, json_response, parse_query
from app.stats import indicators, present
from app.stats.deps import StatsDeps
from auth.errors import STAFF_AUTH_ERRORS
from auth.guards import admin_required

bp = Blueprint("stats_admin", url_prefix="/api/v1")
ADMIN_TAG = "admin 好差评与改革指标"
PRIVATE = {"Cache-Control": "private, no-store"}


class StatsQuery(BaseModel):
    """Grouping and period of the rating aggregates."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    by: Literal["matter", "department", "hall", "counter"] = "department"
    date_from: dt.date | None = Field(default=None, alias="from")
    date_to: dt.date | None = Field(default=None, alias="to")


class IndicatorQuery(BaseModel):
    """The period of the indicators (default: this year to today)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    date_from: dt.date | None = Field(default=None, alias="from", description="起始日期（默认今年 1 月 1 日）")
    date_to: dt.date | None = Field(default=None, alias="to", description="结束日期（默认今天）")
    format: Literal["json", "csv"] = "json"


def _deps(request: Request) -> StatsDeps:
    return request.app.ctx.stats


@bp.get("/admin/ratings/stats")
@doc(tag=ADMIN_TAG, summary="好差评统计（按事项、部门、大厅、窗口）", query=StatsQuery, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, RangeInvalid])  # fmt: skip
@admin_required
async def rating_stats(request: Request) -> HTTPResponse:
    """Counts per level and the satisfaction rate per group."""
    q = parse_query(request, StatsQuery)
    start, end = indicators.period(q.date_from, q.date_to)
    report = await ratings.satisfaction_report(by=q.by, date_from=start, date_to=end)
    return json_response(feedback_present.satisfaction_json(report))


@bp.get("/admin/indicators")
@doc(tag=ADMIN_TAG, summary="改革指标（全市、分板块、分部门；format=csv 导出）", query=IndicatorQuery, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, RangeInvalid])  # fmt: skip
@admin_required
async def indicator_report(request: Request) -> HTTPResponse:
    """The indicators against the year's targets; `format=csv` for a spreadsheet."""
    q = parse_query(request, IndicatorQuery)
    start, end = indicators.period(q.date_from, q.date_to)
    report = await indicators.compute(_deps(request), date_from=start, date_to=end)
    if q.format == "csv":
        return HTTPResponse(
            present.to_csv(report).encode(),
            content_type="text/csv; charset=utf-8",
            headers={**PRIVATE, "Content-Disposition": f'attachment; filename="indicators-{start}-{end}.csv"'},
        )
    return json_response(present.report_json(report), headers=PRIVATE)

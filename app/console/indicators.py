"""The reform indicators in the console (admin): the same report as GET /api/v1/admin/indicators."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.console.kit import ConsoleForbidden, page, staff_page
from app.errors import InvalidInput
from app.feedback.errors import RangeInvalid
from app.http import doc, parse_query
from app.stats import indicators, present

bp = Blueprint("console_indicators", url_prefix="")
TAG = "console 工作台"


class PeriodQuery(BaseModel):
    """The period (default: this year to today)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    date_from: dt.date | None = Field(default=None, alias="from")
    date_to: dt.date | None = Field(default=None, alias="to")


@bp.get("/console/indicators")
@doc(tag=TAG, summary="改革指标（全市、分板块、分部门，与管理接口同一报表）", query=PeriodQuery,
     errors=[InvalidInput, RangeInvalid, ConsoleForbidden])  # fmt: skip
@staff_page("admin")
async def indicator_page(request: Request) -> HTTPResponse:
    """The indicators against the year's targets, computed fresh (not the public page's cached copy)."""
    q = parse_query(request, PeriodQuery)
    start, end = indicators.period(q.date_from, q.date_to)
    report = await indicators.compute(request.app.ctx.stats, date_from=start, date_to=end)
    return page(request, "indicators.html", r=present.report_json(report))

"""Staff API for consultation and rectification (/api/v1/staff/...), ratings and indicators for administrators."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sanic import Blueprint, HTTPResponse, Request

from app.errors import InvalidInput
from app.feedback import consult, ratings
from app.feedback import errors as fe
from app.feedback.models import RectificationStatus
from app.http import doc, json_response, parse_body, parse_query
from app.stats import indicators
from auth.errors import STAFF_AUTH_ERRORS
from auth.guards import admin_required, staff_required

bp = Blueprint("feedback_staff", url_prefix="/api/v1")
TAG = "staff 咨询答复与差评整改"
ADMIN_TAG = "admin 好差评与改革指标"
PRIVATE = {"Cache-Control": "private, no-store"}
reviewer = staff_required("reviewer", "admin")
staff = staff_required("clerk", "reviewer", "admin")


class QuestionListQuery(BaseModel):
    """Which questions: all, unanswered, due soon or overdue."""

    model_config = ConfigDict(extra="ignore")
    view: Literal["all", "unanswered", "due_soon", "overdue"] = "all"
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)


class AnswerIn(BaseModel):
    """The department's answer."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    answer: str = Field(min_length=2, max_length=2000)


class PublishIn(BaseModel):
    """The FAQ wording (optional: the question and answer with personal data masked)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    question: str | None = Field(default=None, min_length=2, max_length=500)
    answer: str | None = Field(default=None, min_length=2, max_length=2000)
    published: bool = True


class RectListQuery(BaseModel):
    """Which rectifications."""

    model_config = ConfigDict(extra="ignore")
    status: RectificationStatus | None = None
    overdue: bool = False
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)


class StepIn(BaseModel):
    """A rectification step: verify, rectify, reply (with the text for the citizen), close, or contest."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    action: Literal["verify", "rectify", "reply", "close", "contest"]
    note: str = Field(default="", max_length=1000, description="核实情况、整改措施或申诉理由（内部）")
    reply: str | None = Field(default=None, max_length=1000, description="答复评价人的内容（reply 时必填）")

    @model_validator(mode="after")
    def _contest_has_reason(self) -> StepIn:
        if self.action == "contest" and not self.note:
            raise ValueError("申诉须说明理由（note）")
        return self


class DecisionIn(BaseModel):
    """An administrator's decision on a contested rating."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    decision: Literal["uphold", "reject"] = Field(description="uphold 申诉成立（评价不计入统计）/ reject 申诉不成立")
    note: str = Field(min_length=2, max_length=1000)


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


@bp.get("/staff/questions")
@doc(tag=TAG, summary="咨询列表（本部门：待答复、即将超时、已超时）", query=QuestionListQuery, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput])  # fmt: skip
@reviewer
async def staff_questions(request: Request) -> HTTPResponse:
    """Questions for the caller's departments."""
    q = parse_query(request, QuestionListQuery)
    body = await consult.staff_questions(
        principal=request.ctx.principal, view=None if q.view == "all" else q.view, page=q.page, page_size=q.page_size
    )
    return json_response(body, headers=PRIVATE)


@bp.post("/staff/questions/<question_id:str>/answer")
@doc(tag=TAG, summary="答复咨询（通过公众号/小程序通知提问人）", body=AnswerIn, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, fe.QuestionNotFound, fe.QuestionOutOfScope,
             fe.QuestionAnswered])  # fmt: skip
@reviewer
async def answer(request: Request, question_id: str) -> HTTPResponse:
    """Answer a question of one's department."""
    body = parse_body(request, AnswerIn)
    result = await consult.answer(
        settings=request.app.ctx.settings, principal=request.ctx.principal, question_id=question_id, text=body.answer
    )
    return json_response(result)


@bp.post("/staff/questions/<question_id:str>/publish")
@doc(tag=TAG, summary="公开为常见问题（匿名化，显示在办事指南页）或撤下", body=PublishIn, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, fe.QuestionNotFound, fe.QuestionOutOfScope,
             fe.QuestionNotAnswered])  # fmt: skip
@reviewer
async def publish(request: Request, question_id: str) -> HTTPResponse:
    """Show an answered question on the guide page, or take it off."""
    body = parse_body(request, PublishIn)
    cache, principal = request.app.ctx.cache, request.ctx.principal
    if not body.published:
        return json_response(await consult.unpublish(cache=cache, principal=principal, question_id=question_id))
    result = await consult.publish(
        cache=cache, principal=principal, question_id=question_id, question=body.question, answer_text=body.answer
    )
    return json_response(result)


@bp.get("/staff/rectifications")
@doc(tag=TAG, summary="差评整改单（本部门或本大厅）", query=RectListQuery, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput])  # fmt: skip
@staff
async def rectifications(request: Request) -> HTTPResponse:
    """Rectifications in the caller's scope, the nearest deadline first."""
    q = parse_query(request, RectListQuery)
    body = await ratings.staff_rectifications(
        principal=request.ctx.principal, status=q.status.value if q.status else None, overdue=q.overdue,
        page=q.page, page_size=q.page_size,
    )  # fmt: skip
    return json_response(body, headers=PRIVATE)


@bp.get("/staff/rectifications/<rect_id:str>")
@doc(tag=TAG, summary="整改单详情（评价、每一步记录）", secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, fe.RectificationNotFound, fe.RectificationOutOfScope])  # fmt: skip
@staff
async def rectification(request: Request, rect_id: str) -> HTTPResponse:
    """One rectification."""
    return json_response(
        await ratings.staff_rectification(principal=request.ctx.principal, rect_id=rect_id), headers=PRIVATE
    )


@bp.post("/staff/rectifications/<rect_id:str>/steps")
@doc(tag=TAG, summary="整改步骤：核实 → 整改 → 答复评价人 → 办结；或申诉", body=StepIn, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, fe.RectificationNotFound, fe.RectificationOutOfScope,
             fe.StepOutOfOrder, fe.RectificationChanged])  # fmt: skip
@staff
async def rectification_step(request: Request, rect_id: str) -> HTTPResponse:
    """Take the next step; out of order is 409."""
    body = parse_body(request, StepIn)
    result = await ratings.step(
        settings=request.app.ctx.settings, principal=request.ctx.principal, rect_id=rect_id, action=body.action,
        note=body.note, reply=body.reply,
    )  # fmt: skip
    return json_response(result)


@bp.post("/admin/rectifications/<rect_id:str>/decision")
@doc(tag=ADMIN_TAG, summary="裁定申诉（成立：评价不计入统计；不成立：继续整改）", body=DecisionIn, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, fe.RectificationNotFound, fe.StepOutOfOrder,
             fe.RectificationChanged])  # fmt: skip
@admin_required
async def decide(request: Request, rect_id: str) -> HTTPResponse:
    """An administrator decides a contested rating."""
    body = parse_body(request, DecisionIn)
    result = await ratings.step(
        settings=request.app.ctx.settings, principal=request.ctx.principal, rect_id=rect_id, action=body.decision,
        note=body.note, reply=None,
    )  # fmt: skip
    return json_response(result)


@bp.get("/admin/ratings/stats")
@doc(tag=ADMIN_TAG, summary="好差评统计（按事项、部门、大厅、窗口）", query=StatsQuery, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, fe.RangeInvalid])  # fmt: skip
@admin_required
async def rating_stats(request: Request) -> HTTPResponse:
    """Counts per level and the satisfaction rate per group."""
    q = parse_query(request, StatsQuery)
    start, end = indicators.period(q.date_from, q.date_to)
    items = await ratings.satisfaction(by=q.by, date_from=start, date_to=end)
    return json_response({"by": q.by, "from": start.isoformat(), "to": end.isoformat(), "items": items})


@bp.get("/admin/indicators")
@doc(tag=ADMIN_TAG, summary="改革指标（全市、分板块、分部门；format=csv 导出）", query=IndicatorQuery, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, fe.RangeInvalid])  # fmt: skip
@admin_required
async def indicator_report(request: Request) -> HTTPResponse:
    """The indicators against the year's targets; `format=csv` for a spreadsheet."""
    q = parse_query(request, IndicatorQuery)
    start, end = indicators.period(q.date_from, q.date_to)
    report = await indicators.compute(settings=request.app.ctx.settings, date_from=start, date_to=end)
    if q.format == "csv":
        return HTTPResponse(
            indicators.to_csv(report).encode(),
            content_type="text/csv; charset=utf-8",
            headers={**PRIVATE, "Content-Disposition": f'attachment; filename="indicators-{start}-{end}.csv"'},
        )
    return json_response(report, headers=PRIVATE)

"""Staff API for consultation and rectification (/api/v1/staff/...) and administrators' decisions on contests."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sanic import Blueprint, HTTPResponse, Request

from app.errors import InvalidInput
from app.feedback import consult, present, ratings
from app.feedback import errors as fe
from app.feedback.deps import FeedbackDeps
from app.feedback.types import RectificationStatus
from app.http import doc, json_response, parse_body, parse_query
from auth.errors import STAFF_AUTH_ERRORS
from auth.guards import admin_required, staff_required

bp = Blueprint("feedback_staff", url_prefix="/api/v1")
TAG = "staff 咨询答复与差评整改"
ADMIN_TAG = "admin 好差评与改革指标"  # the aggregates and indicators are app.stats.views
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


def _deps(request: Request) -> FeedbackDeps:
    return request.app.ctx.feedback


@bp.get("/staff/questions")
@doc(tag=TAG, summary="咨询列表（本部门：待答复、即将超时、已超时）", query=QuestionListQuery, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput])  # fmt: skip
@reviewer
async def staff_questions(request: Request) -> HTTPResponse:
    """Questions for the caller's departments."""
    q = parse_query(request, QuestionListQuery)
    page = await consult.staff_questions(
        principal=request.ctx.principal, view=None if q.view == "all" else q.view, page=q.page, page_size=q.page_size
    )
    return json_response(present.question_page_json(page), headers=PRIVATE)


@bp.post("/staff/questions/<question_id:str>/answer")
@doc(tag=TAG, summary="答复咨询（通过公众号/小程序通知提问人）", body=AnswerIn, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, fe.QuestionNotFound, fe.QuestionOutOfScope,
             fe.QuestionAnswered])  # fmt: skip
@reviewer
async def answer(request: Request, question_id: str) -> HTTPResponse:
    """Answer a question of one's department."""
    body = parse_body(request, AnswerIn)
    result = await consult.answer(
        _deps(request), principal=request.ctx.principal, question_id=question_id, text=body.answer
    )
    return json_response(present.question_json(result))


@bp.post("/staff/questions/<question_id:str>/publish")
@doc(tag=TAG, summary="公开为常见问题（匿名化，显示在办事指南页）或撤下", body=PublishIn, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, fe.QuestionNotFound, fe.QuestionOutOfScope,
             fe.QuestionNotAnswered])  # fmt: skip
@reviewer
async def publish(request: Request, question_id: str) -> HTTPResponse:
    """Show an answered question on the guide page, or take it off."""
    body = parse_body(request, PublishIn)
    deps, principal = _deps(request), request.ctx.principal
    if not body.published:
        result = await consult.unpublish(deps, principal=principal, question_id=question_id)
    else:
        result = await consult.publish(
            deps, principal=principal, question_id=question_id, question=body.question, answer_text=body.answer
        )
    return json_response(present.question_json(result))


@bp.get("/staff/rectifications")
@doc(tag=TAG, summary="差评整改单（本部门或本大厅）", query=RectListQuery, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput])  # fmt: skip
@staff
async def rectifications(request: Request) -> HTTPResponse:
    """Rectifications in the caller's scope, the nearest deadline first."""
    q = parse_query(request, RectListQuery)
    page = await ratings.staff_rectifications(
        principal=request.ctx.principal, status=q.status.value if q.status else None, overdue=q.overdue,
        page=q.page, page_size=q.page_size,
    )  # fmt: skip
    return json_response(present.rectification_page_json(page), headers=PRIVATE)


@bp.get("/staff/rectifications/<rect_id:str>")
@doc(tag=TAG, summary="整改单详情（评价、每一步记录）", secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, fe.RectificationNotFound, fe.RectificationOutOfScope])  # fmt: skip
@staff
async def rectification(request: Request, rect_id: str) -> HTTPResponse:
    """One rectification."""
    detail = await ratings.staff_rectification(principal=request.ctx.principal, rect_id=rect_id)
    return json_response(present.rectification_detail_json(detail), headers=PRIVATE)


@bp.post("/staff/rectifications/<rect_id:str>/steps")
@doc(tag=TAG, summary="整改步骤：核实 → 整改 → 答复评价人 → 办结；或申诉", body=StepIn, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, fe.RectificationNotFound, fe.RectificationOutOfScope,
             fe.StepOutOfOrder, fe.RectificationChanged])  # fmt: skip
@staff
async def rectification_step(request: Request, rect_id: str) -> HTTPResponse:
    """Take the next step; out of order is 409."""
    body = parse_body(request, StepIn)
    result = await ratings.step(
        _deps(request), principal=request.ctx.principal, rect_id=rect_id, action=body.action, note=body.note,
        reply=body.reply,
    )  # fmt: skip
    return json_response(present.rectification_detail_json(result))


@bp.post("/admin/rectifications/<rect_id:str>/decision")
@doc(tag=ADMIN_TAG, summary="裁定申诉（成立：评价不计入统计；不成立：继续整改）", body=DecisionIn, secured="bearer",
     errors=[*STAFF_AUTH_ERRORS, InvalidInput, fe.RectificationNotFound, fe.StepOutOfOrder,
             fe.RectificationChanged])  # fmt: skip
@admin_required
async def decide(request: Request, rect_id: str) -> HTTPResponse:
    """An administrator decides a contested rating."""
    body = parse_body(request, DecisionIn)
    result = await ratings.step(
        _deps(request), principal=request.ctx.principal, rect_id=rect_id, action=body.decision, note=body.note,
        reply=None,
    )  # fmt: skip
    return json_response(present.rectification_detail_json(result))

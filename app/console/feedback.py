"""The workbench for questions (answer, publish as FAQ with a masking preview) and rectifications of bad ratings
(verify → rectify → reply → close, or contest), through the same services as the staff API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app import clock
from app.console.kit import page, see_other, staff_page
from app.errors import InvalidInput
from app.feedback import consult, ratings
from app.feedback import errors as fe
from app.feedback.types import QuestionView, RectificationDetail
from app.http import doc, parse_query
from app.web.kit import field_errors, read_form

bp = Blueprint("console_feedback", url_prefix="")
TAG = "console 工作台"
reviewer = staff_page("reviewer", "admin")
staff = staff_page("clerk", "reviewer", "admin")
QUESTION_VIEWS = {"unanswered": "待答复", "due_soon": "即将超时", "overdue": "已超时", "all": "全部"}
SLA_NAMES = {"open": "待答复", "due_soon": "即将超时", "overdue": "已超时", "answered": "已答复",
             "answered_late": "已答复（超时）"}  # fmt: skip
RECT_STATUS = {"open": "待核实", "verified": "已核实", "rectified": "已整改", "replied": "已答复评价人",
               "closed": "已办结", "contested": "申诉中", "dismissed": "申诉成立"}  # fmt: skip


class QuestionQuery(BaseModel):
    """Which questions."""

    model_config = ConfigDict(extra="ignore")
    view: Literal["all", "unanswered", "due_soon", "overdue"] = "unanswered"
    page: int = Field(default=1, ge=1, le=10_000)


class DoneQuery(BaseModel):
    """What the last post did (for the success message)."""

    model_config = ConfigDict(extra="ignore")
    done: str = Field(default="", max_length=32)


class AnswerForm(BaseModel):
    """The department's answer."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    answer: str = Field(min_length=2, max_length=2000)


class PublishForm(BaseModel):
    """The FAQ wording, previewed masked before it is published."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    question: str = Field(min_length=2, max_length=500)
    answer: str = Field(min_length=2, max_length=2000)
    op: Literal["preview", "publish", "unpublish"] = "preview"


class RectQuery(BaseModel):
    """Which rectifications."""

    model_config = ConfigDict(extra="ignore")
    overdue: bool = False
    page: int = Field(default=1, ge=1, le=10_000)


class StepForm(BaseModel):
    """A rectification step (the staff API's StepIn, as a form posts it)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    action: Literal["verify", "rectify", "reply", "close", "contest"]
    note: str = Field(default="", max_length=1000)
    reply: str | None = Field(default=None, max_length=1000)


# ---------------------------------------------------------------- questions


@bp.get("/console/questions")
@doc(tag=TAG, summary="咨询答复队列（待答复、即将超时、已超时）", query=QuestionQuery, errors=[InvalidInput])
@reviewer
async def questions(request: Request) -> HTTPResponse:
    """Questions of the reviewer's departments, the nearest deadline first."""
    q = parse_query(request, QuestionQuery)
    result = await consult.staff_questions(
        principal=request.ctx.principal, view=None if q.view == "all" else q.view, page=q.page, page_size=20
    )
    return page(request, "questions.html", q=q, result=result, views=QUESTION_VIEWS, sla_names=SLA_NAMES)


def _question_page(request: Request, view: QuestionView, *, status: int = 200, errors: dict[str, str] | None = None,
                   typed: dict[str, Any] | None = None) -> HTTPResponse:  # fmt: skip
    typed = typed or {}
    faq_q = view.staff.faq_question if view.staff and view.published else None
    faq_a = view.staff.faq_answer if view.staff and view.published else None
    draft = (
        str(typed.get("question") or faq_q or view.text),
        str(typed.get("faq_answer") or faq_a or view.answer or ""),
    )
    # What the guide page would show: the same masking the publish service applies.
    shown = (consult.anonymise(draft[0]), consult.anonymise(draft[1]))
    done = parse_query(request, DoneQuery).done
    return page(request, "question.html", status=status, question=view, errors=errors or {}, typed=typed,
                draft=draft, preview=shown, sla_names=SLA_NAMES, done=done, tz=clock.SHANGHAI)  # fmt: skip


@bp.get("/console/questions/<question_id:str>")
@doc(tag=TAG, summary="咨询详情（答复；公开为常见问题前预览脱敏效果）",
     errors=[fe.QuestionNotFound, fe.QuestionOutOfScope])  # fmt: skip
@reviewer
async def question(request: Request, question_id: str) -> HTTPResponse:
    """One question of the reviewer's departments."""
    view = await consult.staff_question(principal=request.ctx.principal, question_id=question_id)
    return _question_page(request, view)


@bp.post("/console/questions/<question_id:str>/answer")
@doc(tag=TAG, summary="答复咨询（与 POST /api/v1/staff/questions/<id>/answer 同一服务）",
     errors=[InvalidInput, fe.QuestionNotFound, fe.QuestionOutOfScope, fe.QuestionAnswered])  # fmt: skip
@reviewer
async def answer(request: Request, question_id: str) -> HTTPResponse:
    """Answer; the asker is notified by the service."""
    principal = request.ctx.principal
    form, errors, raw = read_form(request, AnswerForm)
    status = 422
    if form is not None:
        try:
            await consult.answer(request.app.ctx.feedback, principal=principal, question_id=question_id,
                                 text=form.answer)  # fmt: skip
            return see_other(request, f"/console/questions/{question_id}?done=answered")
        except fe.QuestionAnswered as exc:
            errors, status = {"answer": exc.message}, exc.status
    view = await consult.staff_question(principal=principal, question_id=question_id)
    return _question_page(request, view, status=status, errors=errors, typed={"answer": raw.get("answer", "")})


@bp.post("/console/questions/<question_id:str>/publish")
@doc(tag=TAG, summary="预览并公开为常见问题（手机号、证件号等脱敏），或撤下",
     errors=[InvalidInput, fe.QuestionNotFound, fe.QuestionOutOfScope, fe.QuestionNotAnswered])  # fmt: skip
@reviewer
async def publish(request: Request, question_id: str) -> HTTPResponse:
    """Preview the masked wording, publish it, or take it off the guide page."""
    deps, principal = request.app.ctx.feedback, request.ctx.principal
    form, errors, raw = read_form(request, PublishForm)
    typed = {"question": raw.get("question", ""), "faq_answer": raw.get("answer", "")}
    status = 422
    if raw.get("op") == "unpublish":
        await consult.unpublish(deps, principal=principal, question_id=question_id)
        return see_other(request, f"/console/questions/{question_id}?done=unpublished")
    if form is not None:
        if form.op == "preview":
            view = await consult.staff_question(principal=principal, question_id=question_id)
            return _question_page(request, view, typed=typed)
        try:
            await consult.publish(deps, principal=principal, question_id=question_id, question=form.question,
                                  answer_text=form.answer)  # fmt: skip
            return see_other(request, f"/console/questions/{question_id}?done=published")
        except fe.QuestionNotAnswered as exc:
            errors, status = field_errors(exc), exc.status
    if "answer" in errors:
        errors["faq_answer"] = errors.pop("answer")  # the publish form's field, not the answer form's
    view = await consult.staff_question(principal=principal, question_id=question_id)
    return _question_page(request, view, status=status, errors=errors, typed=typed)


# ---------------------------------------------------------------- rectifications


@bp.get("/console/rectifications")
@doc(tag=TAG, summary="差评整改单（本部门或本大厅，期限最近的在前）", query=RectQuery, errors=[InvalidInput])
@staff
async def rectifications(request: Request) -> HTTPResponse:
    """Rectifications in the caller's scope."""
    q = parse_query(request, RectQuery)
    result = await ratings.staff_rectifications(
        principal=request.ctx.principal, status=None, overdue=q.overdue, page=q.page, page_size=20
    )
    return page(request, "rectifications.html", q=q, result=result, names=RECT_STATUS)


def _rect_page(request: Request, detail: RectificationDetail, *, status: int = 200,
               errors: dict[str, str] | None = None, typed: dict[str, Any] | None = None) -> HTTPResponse:  # fmt: skip
    role = request.ctx.principal.role or ""
    allowed = ratings.allowed_steps(detail.rectification.status, role)
    done = parse_query(request, DoneQuery).done
    return page(request, "rectification.html", status=status, d=detail, r=detail.rectification, allowed=allowed,
                names=RECT_STATUS, step_names=ratings.STEP_NAMES, errors=errors or {}, typed=typed or {},
                done=ratings.STEP_NAMES.get(done, ""), tz=clock.SHANGHAI)  # fmt: skip


@bp.get("/console/rectifications/<rect_id:str>")
@doc(tag=TAG, summary="整改单详情（评价、期限、每一步记录和可执行步骤）",
     errors=[fe.RectificationNotFound, fe.RectificationOutOfScope])  # fmt: skip
@staff
async def rectification(request: Request, rect_id: str) -> HTTPResponse:
    """One rectification with its rating, deadline and steps."""
    detail = await ratings.staff_rectification(principal=request.ctx.principal, rect_id=rect_id)
    return _rect_page(request, detail)


@bp.post("/console/rectifications/<rect_id:str>/steps")
@doc(tag=TAG, summary="整改步骤（与 POST /api/v1/staff/rectifications/<id>/steps 同一服务）",
     errors=[InvalidInput, fe.RectificationNotFound, fe.RectificationOutOfScope, fe.StepOutOfOrder,
             fe.RectificationChanged])  # fmt: skip
@staff
async def rectification_step(request: Request, rect_id: str) -> HTTPResponse:
    """Take the next step; out of order or incomplete is said next to the form."""
    principal = request.ctx.principal
    form, errors, raw = read_form(request, StepForm)
    status = 422
    if form is not None:
        if form.action == "contest" and not form.note:
            errors = {"note": "申诉须说明理由"}
        else:
            try:
                await ratings.step(request.app.ctx.feedback, principal=principal, rect_id=rect_id,
                                   action=form.action, note=form.note, reply=form.reply)  # fmt: skip
                return see_other(request, f"/console/rectifications/{rect_id}?done={form.action}")
            except (fe.StepOutOfOrder, fe.RectificationChanged, InvalidInput) as exc:
                field = "reply" if isinstance(exc, InvalidInput) and form.action == "reply" else "__all__"
                errors, status = field_errors(exc, field), exc.status
    detail = await ratings.staff_rectification(principal=principal, rect_id=rect_id)
    return _rect_page(request, detail, status=status, errors=errors, typed=raw)

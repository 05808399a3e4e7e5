"""Citizen consultation and ratings in the browser: ask about a matter, my questions and their answers, rate a
case, a counter visit or an answer (好差评) on the five levels, my ratings with the department's reply, and
the one addendum. Every write calls the same service as /api/v1 (miniprogram_api/feedback.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sanic import Blueprint, HTTPResponse, Request

from app import clock
from app.errors import DomainError, InvalidInput, MatterNotFound
from app.feedback import consult, present, ratings
from app.feedback import errors as fe
from app.feedback.schemas import AddendumIn, QuestionIn, RatingIn
from app.feedback.types import QuestionView, Rateable, RatingView, SubjectType
from app.guide import service as guides
from app.http import doc, idempotent_answer, parse_query
from app.idempotency import (
    Claim,
    IdempotencyInFlight,
    IdempotencyKeyInvalid,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
)
from app.ratelimit import TooManyRequests
from app.web.kit import citizen_page, optional_citizen, page, read_form, see_other
from auth.guards import CrossSiteRejected, FormExpired

bp = Blueprint("web_feedback", url_prefix="")
TAG = "h5 页面"
PAGE_SIZE = 20
FORM_ERRORS = [FormExpired, CrossSiteRejected]

SUBJECT_NAMES = {"case": "办件", "visit": "窗口服务", "consultation": "咨询答复"}
QUESTION_STATUS = {"pending": "待答复", "answered": "已答复"}
SLA_NAMES = {"due_soon": "即将到期", "overdue": "已超期", "answered_late": "超期答复"}
RECTIFICATION_STATUS = {
    "open": "已转责任部门", "verified": "已核实", "rectified": "已整改", "replied": "已答复您",
    "closed": "整改办结", "reviewing": "复核中", "reviewed": "复核完成",
}  # fmt: skip
# What a refused write means on a page (the API words them for developers: Idempotency-Key ...).
KEY_MESSAGES = {
    IdempotencyKeyReused.code: "本页已提交过其他内容：已为您换新表单，请确认后再提交一次",
    IdempotencyInFlight.code: "您的提问正在提交，请稍候在“我的咨询”中查看",
    IdempotencyKeyInvalid.code: "页面已过期，请确认内容后再提交一次",
    IdempotencyKeyRequired.code: "页面已过期，请确认内容后再提交一次",
}
SUBJECT_ERRORS = (fe.RatingSubjectNotFound, fe.NotRateableYet, fe.AlreadyRated, fe.RatingWindowClosed)


class PageQuery(BaseModel):
    """A page of a list."""

    model_config = ConfigDict(extra="ignore")
    page: int = Field(default=1, ge=1, le=10_000)


class RatedQuery(BaseModel):
    """Shown once, after a redirect: the subject had been rated already."""

    model_config = ConfigDict(extra="ignore")
    rated: int = Field(default=0, ge=0, le=1)
    done: int = Field(default=0, ge=0, le=1)


class RateQuery(BaseModel):
    """What the rating form is about (the links from my bookings, cases and questions carry it)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    subject_type: SubjectType
    subject_id: str = Field(min_length=1, max_length=64)


class AskForm(QuestionIn):
    """The ask form: the question, and the form's own idempotency key (a double submit asks once)."""

    idem: str = Field(default="", max_length=200)


class RateForm(RatingIn):
    """The rating form: a single ticked tag arrives as one string, several as a list."""

    @field_validator("tags", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def _at(value: dt.datetime | dt.date | None) -> str:
    """A time as citizens read it (Asia/Shanghai, to the minute); a date as it is."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(clock.SHANGHAI).strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def _page(request: Request, template: str, **context: Any) -> HTTPResponse:
    """A feedback page with the labels and the time format every one of them uses."""
    return page(request, template, at=_at, subject_names=SUBJECT_NAMES, levels=ratings.LEVELS, **context)


def _fields(errors: dict[str, str], known: set[str]) -> dict[str, str]:
    """Errors of fields the page shows stay by them; any other (a tampered form) goes to the top."""
    out: dict[str, str] = {}
    for name, message in errors.items():
        key = name if name in known else "__all__"
        out[key] = f"{out[key]}；{message}" if key in out else message
    return out


# ---------------------------------------------------------------- consultation


async def _consult_page(
    request: Request, code: str, *, status: int = 200, errors: dict[str, str] | None = None, text: str = "",
    headers: dict[str, str] | None = None,
) -> HTTPResponse:  # fmt: skip
    guide = (await guides.guide(request.app.ctx.guide, code=code)).data
    return _page(
        request, "consult.html", status=status, headers=headers, g=guide, errors=errors or {}, text=text,
        consult_days=request.app.ctx.settings.consult_days,
    )  # fmt: skip


@bp.route("/m/<code:str>/consult", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="咨询：事项常见问题与提问表单（提交需登录）", errors=[MatterNotFound])
async def consult_page(request: Request, code: str) -> HTTPResponse:
    """The matter's FAQ and the ask form (an anonymous visitor is sent to sign in when posting)."""
    await optional_citizen(request)  # the page says who is signed in
    return await _consult_page(request, code)


@bp.post("/m/<code:str>/consult")
@doc(tag=TAG, summary="咨询：提交问题（5–500 字；表单隐藏字段带幂等键，重复提交只问一次），成功后 303 到咨询详情",
     errors=[*FORM_ERRORS, InvalidInput, MatterNotFound, fe.ConsultNotOffered, TooManyRequests, IdempotencyKeyInvalid,
             IdempotencyKeyReused, IdempotencyInFlight])  # fmt: skip
@citizen_page(loa=1)
async def ask(request: Request, code: str) -> HTTPResponse:
    """Ask the matter's department; then the question's page (its answer appears there)."""
    form, errors, raw = read_form(request, AskForm)
    text = str(raw.get("text", ""))[:500]
    if form is None:
        return await _consult_page(request, code, status=422, errors=_fields(errors, {"text"}), text=text)
    principal, question = request.ctx.principal, form.text

    async def run(claim: Claim | None) -> dict[str, Any]:
        asked = await consult.ask(
            request.app.ctx.feedback, principal=principal, matter_code=code, text=question, claim=claim
        )
        return present.question_json(asked)

    try:
        answer = await idempotent_answer(
            request, key=form.idem, owner=principal.subject, payload={"matter_code": code, "text": question}, run=run
        )
    except (fe.ConsultNotOffered, TooManyRequests, IdempotencyKeyInvalid, IdempotencyKeyRequired,
            IdempotencyKeyReused, IdempotencyInFlight) as exc:  # fmt: skip
        message = KEY_MESSAGES.get(exc.code, exc.message)
        return await _consult_page(request, code, status=exc.status, errors={"__all__": message}, text=text,
                                   headers=exc.headers)  # fmt: skip
    return see_other(request, f"/m/me/questions/{answer.body['id']}")


@bp.get("/m/me/questions")
@doc(tag=TAG, summary="我的咨询：问题、状态与答复", query=PageQuery, errors=[InvalidInput])
@citizen_page(loa=1)
async def my_questions(request: Request) -> HTTPResponse:
    """The citizen's questions, newest first, with which answers are rated."""
    q = parse_query(request, PageQuery)
    principal = request.ctx.principal
    found = await consult.my_questions(principal=principal, page=q.page, page_size=PAGE_SIZE)
    rated = await ratings.ratings_of(
        principal=principal, subject_type=SubjectType.consultation, subject_ids=[str(i.id) for i in found.items]
    )
    return _page(request, "my_questions.html", found=found, rated=rated, pages=_pages(found.total),
                 status_names=QUESTION_STATUS, sla_names=SLA_NAMES)  # fmt: skip


@bp.get("/m/me/questions/<question_id:str>")
@doc(tag=TAG, summary="咨询详情：答复后可评价答复", errors=[fe.QuestionNotFound])
@citizen_page(loa=1)
async def my_question(request: Request, question_id: str) -> HTTPResponse:
    """One of the citizen's questions (anyone else's is 404), with the link to rate its answer."""
    principal = request.ctx.principal
    question: QuestionView = await consult.my_question(principal=principal, question_id=question_id)
    rated = await ratings.ratings_of(
        principal=principal, subject_type=SubjectType.consultation, subject_ids=[str(question.id)]
    )
    return _page(request, "question.html", q=question, rating_id=rated.get(str(question.id)),
                 status_names=QUESTION_STATUS, sla_names=SLA_NAMES)  # fmt: skip


def _pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


# ---------------------------------------------------------------- ratings


@bp.route("/m/<code:str>/rate", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="评价：事项满意度与如何评价（我的预约、我的办件、我的咨询）", errors=[MatterNotFound])
async def rate_page(request: Request, code: str) -> HTTPResponse:
    """The matter's satisfaction and where the citizen's rateable cases, visits and answers are."""
    await optional_citizen(request)
    guide = (await guides.guide(request.app.ctx.guide, code=code)).data
    settings = request.app.ctx.settings
    return _page(request, "rate.html", g=guide, rating_days=settings.rating_window_days,
                 rectify_days=settings.rectify_days)  # fmt: skip


async def _rateable(request: Request, subject_type: SubjectType | str, subject_id: str) -> Rateable | DomainError:
    """What the form rates, checked as the rating will be; or why it cannot be rated."""
    try:
        kind = SubjectType(subject_type)
    except ValueError:  # not a kind of subject at all (a tampered form)
        return fe.RatingSubjectNotFound()
    try:
        return await ratings.rateable(
            request.app.ctx.feedback, principal=request.ctx.principal, subject_type=kind, subject_id=subject_id
        )
    except SUBJECT_ERRORS as exc:
        return exc


async def _rate_form(
    request: Request, *, subject_type: SubjectType | str, subject_id: str, status: int = 200,
    errors: dict[str, str] | None = None, form: dict[str, Any] | None = None,
    checked: Rateable | DomainError | None = None,
) -> HTTPResponse:  # fmt: skip
    """The rating form, with what is rated (or why it cannot be) at the top."""
    errors = dict(errors or {})
    if checked is None:
        checked = await _rateable(request, subject_type, subject_id)
    if isinstance(checked, DomainError):
        errors.setdefault("subject", checked.message)
        status = status if status != 200 else checked.status
    return _page(
        request, "rate_new.html", status=status, subject=checked if isinstance(checked, Rateable) else None,
        subject_type=str(subject_type), subject_id=subject_id, errors=errors,
        form=form or {"level": "", "tags": [], "comment": ""}, good_tags=ratings.GOOD_TAGS, bad_tags=ratings.BAD_TAGS,
    )  # fmt: skip


@bp.get("/m/rate/new")
@doc(tag=TAG, summary="评价表单：五级满意度、评价标签、意见（办件 / 窗口服务 / 咨询答复，一次一评）", query=RateQuery,
     errors=[InvalidInput, *SUBJECT_ERRORS])  # fmt: skip
@citizen_page(loa=1)
async def rate_form(request: Request) -> HTTPResponse:
    """The form; a subject already rated goes to its rating (one rating, one addendum)."""
    q = parse_query(request, RateQuery)
    checked = await _rateable(request, q.subject_type, q.subject_id)
    if isinstance(checked, Rateable) and checked.rating_id is not None:
        return see_other(request, f"/m/me/ratings/{checked.rating_id}?rated=1")
    return await _rate_form(request, subject_type=q.subject_type, subject_id=q.subject_id, checked=checked)


@bp.post("/m/rate/new")
@doc(tag=TAG, summary="评价：提交（差评转责任部门整改），成功后 303 到评价详情",
     errors=[*FORM_ERRORS, InvalidInput, *SUBJECT_ERRORS])  # fmt: skip
@citizen_page(loa=1)
async def rate(request: Request) -> HTTPResponse:
    """Rate once through the same service as the API; errors sit by their field and keep what was chosen."""
    form, errors, raw = read_form(request, RateForm)
    tags = raw.get("tags", [])
    typed = {
        "level": str(raw.get("level", ""))[:2],
        "tags": [str(t) for t in ([tags] if isinstance(tags, str) else tags)][:20],
        "comment": str(raw.get("comment", ""))[:500],
    }
    subject_type, subject_id = str(raw.get("subject_type", ""))[:20], str(raw.get("subject_id", ""))[:64]
    if form is None:
        if "level" in errors and not typed["level"]:
            errors["level"] = "请选择满意程度"
        errors = {("subject" if k in ("subject_type", "subject_id") else k): v for k, v in errors.items()}
        errors = _fields(errors, {"level", "tags", "comment", "subject"})
        return await _rate_form(request, subject_type=subject_type, subject_id=subject_id, status=422, errors=errors,
                                form=typed)  # fmt: skip
    try:
        rating = await ratings.rate(
            request.app.ctx.feedback, principal=request.ctx.principal, subject_type=form.subject_type,
            subject_id=form.subject_id, level=form.level, tags=form.tags, comment=form.comment,
        )  # fmt: skip
    except SUBJECT_ERRORS as exc:
        return await _rate_form(request, subject_type=subject_type, subject_id=subject_id, status=exc.status,
                                errors={"subject": exc.message}, form=typed)  # fmt: skip
    return see_other(request, f"/m/me/ratings/{rating.id}?done=1")


@bp.get("/m/me/ratings")
@doc(tag=TAG, summary="我的评价：评价与整改进展", query=PageQuery, errors=[InvalidInput])
@citizen_page(loa=1)
async def my_ratings(request: Request) -> HTTPResponse:
    """The citizen's ratings, newest first."""
    q = parse_query(request, PageQuery)
    found = await ratings.my_ratings(principal=request.ctx.principal, page=q.page, page_size=PAGE_SIZE)
    return _page(request, "my_ratings.html", found=found, pages=_pages(found.total),
                 rect_names=RECTIFICATION_STATUS)  # fmt: skip


async def _rating_page(
    request: Request, rating: RatingView, *, status: int = 200, errors: dict[str, str] | None = None,
    comment: str = "", notice: str | None = None,
) -> HTTPResponse:  # fmt: skip
    return _page(request, "rating.html", status=status, r=rating, errors=errors or {}, comment=comment,
                 notice=notice, rect_names=RECTIFICATION_STATUS)  # fmt: skip


@bp.get("/m/me/ratings/<rating_id:str>")
@doc(tag=TAG, summary="评价详情：整改进展与部门答复、追加评价表单", query=RatedQuery, errors=[fe.RatingNotFound])
@citizen_page(loa=1)
async def my_rating(request: Request, rating_id: str) -> HTTPResponse:
    """One of the citizen's ratings (anyone else's is 404)."""
    q = parse_query(request, RatedQuery)
    rating = await ratings.my_rating(principal=request.ctx.principal, rating_id=rating_id)
    notice = fe.AlreadyRated.message if q.rated else ("评价已提交，感谢您的评价。" if q.done else None)
    return await _rating_page(request, rating, notice=notice)


@bp.post("/m/me/ratings/<rating_id:str>/addendum")
@doc(tag=TAG, summary="追加评价（一次，原评价不能修改），成功后 303 到评价详情",
     errors=[*FORM_ERRORS, InvalidInput, fe.RatingNotFound, fe.AddendumExists, fe.RatingWindowClosed])  # fmt: skip
@citizen_page(loa=1)
async def add_to(request: Request, rating_id: str) -> HTTPResponse:
    """Add to a rating once through the same service as the API."""
    principal = request.ctx.principal
    form, errors, raw = read_form(request, AddendumIn)
    comment = str(raw.get("comment", ""))[:500]
    if form is None:
        rating = await ratings.my_rating(principal=principal, rating_id=rating_id)
        return await _rating_page(request, rating, status=422, errors=_fields(errors, {"comment"}), comment=comment)
    try:
        await ratings.add_to(request.app.ctx.feedback, principal=principal, rating_id=rating_id, comment=form.comment)
    except (fe.AddendumExists, fe.RatingWindowClosed) as exc:
        rating = await ratings.my_rating(principal=principal, rating_id=rating_id)
        return await _rating_page(request, rating, status=exc.status, errors={"comment": exc.message},
                                  comment=comment)  # fmt: skip
    return see_other(request, f"/m/me/ratings/{rating_id}")

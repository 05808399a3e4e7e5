"""Citizen API: ask about a matter (咨询), rate a case, visit or answer (好差评), follow a rectification."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.errors import InvalidInput, MatterNotFound, ServiceUnavailable
from app.feedback import consult, present, ratings
from app.feedback import errors as fe
from app.feedback.deps import FeedbackDeps
from app.feedback.schemas import AddendumIn, QuestionIn, RatingIn
from app.http import doc, idempotent, json_response, parse_body, parse_query
from app.idempotency import Claim, IdempotencyInFlight, IdempotencyKeyInvalid, IdempotencyKeyReused
from app.ratelimit import TooManyRequests
from auth.errors import CITIZEN_AUTH_ERRORS
from auth.guards import citizen_required

bp = Blueprint("feedback", url_prefix="/api/v1")
TAG = "feedback 咨询与好差评"
PRIVATE = {"Cache-Control": "private, no-store"}
AUTH_ERRORS = CITIZEN_AUTH_ERRORS


class PageQuery(BaseModel):
    """A page."""

    model_config = ConfigDict(extra="ignore")
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)


def _deps(request: Request) -> FeedbackDeps:
    return request.app.ctx.feedback


@bp.post("/matters/<code:str>/questions")
@doc(tag=TAG, summary="咨询事项（登录后；限频，5–500 字；可带 Idempotency-Key 以便安全重试）", body=QuestionIn,
     status=201, secured="bearer",
     errors=[*AUTH_ERRORS, InvalidInput, MatterNotFound, fe.ConsultNotOffered, TooManyRequests,
             ServiceUnavailable, IdempotencyKeyInvalid, IdempotencyKeyReused, IdempotencyInFlight])  # fmt: skip
@citizen_required(loa=1)
async def ask(request: Request, code: str) -> HTTPResponse:
    """Ask the matter's department; the answer comes within the service level, with a push."""
    body = parse_body(request, QuestionIn)
    principal = request.ctx.principal

    async def run(claim: Claim | None) -> dict[str, Any]:
        asked = await consult.ask(_deps(request), principal=principal, matter_code=code, text=body.text, claim=claim)
        return present.question_json(asked)

    return await idempotent(
        request,
        owner=principal.subject,
        payload={"matter_code": code, **body.model_dump()},
        key_required=False,  # a retry with the key asks once; without it, each request is a question
        run=run,
    )


@bp.get("/questions")
@doc(tag=TAG, summary="我的咨询", query=PageQuery, secured="bearer", errors=[*AUTH_ERRORS, InvalidInput])
@citizen_required(loa=1)
async def my_questions(request: Request) -> HTTPResponse:
    """The caller's questions with their answers."""
    q = parse_query(request, PageQuery)
    page = await consult.my_questions(principal=request.ctx.principal, page=q.page, page_size=q.page_size)
    return json_response(present.question_page_json(page), headers=PRIVATE)


@bp.get("/questions/<question_id:str>")
@doc(tag=TAG, summary="咨询详情", secured="bearer", errors=[*AUTH_ERRORS, fe.QuestionNotFound])
@citizen_required(loa=1)
async def my_question(request: Request, question_id: str) -> HTTPResponse:
    """One of the caller's questions."""
    question = await consult.my_question(principal=request.ctx.principal, question_id=question_id)
    return json_response(present.question_json(question), headers=PRIVATE)


@bp.post("/ratings")
@doc(
    tag=TAG,
    summary="评价（一次一评：已办结的办件、签到的窗口服务、已答复的咨询）",
    body=RatingIn,
    status=201,
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput, fe.RatingSubjectNotFound, fe.NotRateableYet, fe.AlreadyRated,
            fe.RatingWindowClosed],
)  # fmt: skip
@citizen_required(loa=1)
async def rate(request: Request) -> HTTPResponse:
    """Rate once; 不满意 or 非常不满意 opens a rectification for the responsible department."""
    body = parse_body(request, RatingIn)
    result = await ratings.rate(
        _deps(request), principal=request.ctx.principal, subject_type=body.subject_type,
        subject_id=body.subject_id, level=body.level, tags=body.tags, comment=body.comment,
    )  # fmt: skip
    return json_response(present.rating_json(result), status=201)


@bp.get("/ratings")
@doc(tag=TAG, summary="我的评价", query=PageQuery, secured="bearer", errors=[*AUTH_ERRORS, InvalidInput])
@citizen_required(loa=1)
async def my_ratings(request: Request) -> HTTPResponse:
    """The caller's ratings with the follow-up of any rectification."""
    q = parse_query(request, PageQuery)
    page = await ratings.my_ratings(principal=request.ctx.principal, page=q.page, page_size=q.page_size)
    return json_response(present.rating_page_json(page), headers=PRIVATE)


@bp.get("/ratings/<rating_id:str>")
@doc(tag=TAG, summary="评价详情与整改进展", secured="bearer", errors=[*AUTH_ERRORS, fe.RatingNotFound])
@citizen_required(loa=1)
async def my_rating(request: Request, rating_id: str) -> HTTPResponse:
    """One rating, with its rectification's steps and the department's reply."""
    rating = await ratings.my_rating(principal=request.ctx.principal, rating_id=rating_id)
    return json_response(present.rating_json(rating), headers=PRIVATE)


@bp.post("/ratings/<rating_id:str>/addendum")
@doc(tag=TAG, summary="追加评价（一次，原评价不能修改）", body=AddendumIn, secured="bearer",
     errors=[*AUTH_ERRORS, InvalidInput, fe.RatingNotFound, fe.AddendumExists, fe.RatingWindowClosed])  # fmt: skip
@citizen_required(loa=1)
async def add_to(request: Request, rating_id: str) -> HTTPResponse:
    """Add to a rating once."""
    body = parse_body(request, AddendumIn)
    rating = await ratings.add_to(
        _deps(request), principal=request.ctx.principal, rating_id=rating_id, comment=body.comment
    )
    return json_response(present.rating_json(rating))

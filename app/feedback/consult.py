"""Consultation (咨询): citizens ask about a matter, its department answers within a service level counted in
working days, the asker is told through the outbox, and an answer may be published (anonymised) as FAQ."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from tortoise.transactions import in_transaction

from app import clock, workdays
from app.audit import service as audit
from app.feedback.deps import FeedbackDeps
from app.feedback.errors import (
    ConsultNotOffered,
    QuestionAnswered,
    QuestionNotAnswered,
    QuestionNotFound,
    QuestionOutOfScope,
)
from app.feedback.models import Question
from app.feedback.present import question_json
from app.feedback.types import FaqEntry, QuestionPage, QuestionStatus, QuestionView, StaffQuestionFields
from app.idempotency import Claim
from app.matters import guides
from app.notify import service as notify
from app.ratelimit import Limit, hit
from auth.tokens import Principal

# What must not reach a public FAQ: e-mail addresses, case numbers, and any run of 7 or more digits however it
# is written (138-0013-8000, +86 138 0013 8000, an ID number with spaces): phones, ID and account numbers.
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")  # ASCII: \w would eat the Chinese around it
_CASE_NO = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{1,6}\d{14}(?![0-9])")
_FULL_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F) if chr(c - 0xFEE0).isalnum() or chr(c - 0xFEE0) in "@.+-"}
_DIGITS = re.compile(r"\+?\d(?:[\s\-.()]*\d){6,}[\dXx]?")


def anonymise(text: str) -> str:
    """Mask what identifies a person in a question before it is published (full-width digits included)."""
    text = text.translate(_FULL_WIDTH)  # digits and Latin letters only: Chinese punctuation stays as written
    for pattern in (_EMAIL, _CASE_NO, _DIGITS):
        text = pattern.sub("***", text)
    return text


async def ask(
    deps: FeedbackDeps, *, principal: Principal, matter_code: str, text: str, claim: Claim | None = None
) -> QuestionView:
    """Ask a question about a matter (rate limited per citizen); answers its record with the due date."""
    settings = deps.settings
    _, _, guide = await guides.guide_document(deps.cache, matter_code, base_url=settings.base_url)
    if guide["status"] != "active":
        raise ConsultNotOffered(details={"matter_code": guide["code"]})
    await hit(deps.store, Limit("consult-citizen-1h", settings.consult_per_hour, 3600), principal.id)
    now, today = clock.now(), clock.today()
    row = Question(
        id=uuid.uuid4(),
        matter_code=guide["code"],
        matter_name=guide["name"],
        department_code=guide["department"]["code"],
        citizen_id=uuid.UUID(principal.id),
        text=text,
        status=QuestionStatus.pending,
        asked_at=now,
        due_on=workdays.add_workdays(today, settings.consult_days),
        warn_on=workdays.add_workdays(today, max(settings.consult_days - 1, 0)),
    )
    view = question_view(row)
    async with in_transaction():  # the question and, for a retryable request, its stored answer
        await row.save(force_create=True)
        if claim is not None:
            await claim.complete(201, question_json(view))
    return view


def _sla(row: Question, today: dt.date) -> str:
    if row.status is QuestionStatus.answered:
        return "answered_late" if row.answered_at and clock.local_date(row.answered_at) > row.due_on else "answered"
    if today > row.due_on:
        return "overdue"
    return "due_soon" if today >= row.warn_on else "open"


def question_view(row: Question, *, staff: bool = False) -> QuestionView:
    """A question for its asker, or for staff."""
    return QuestionView(
        id=row.id,
        matter_code=row.matter_code,
        matter_name=row.matter_name,
        department=row.department_code,
        text=row.text,
        status=row.status,
        asked_at=row.asked_at,
        due_on=row.due_on,
        sla=_sla(row, clock.today()),
        answer=row.answer,
        answered_at=row.answered_at,
        published=row.published_at is not None,
        staff=StaffQuestionFields(row.answered_by, row.faq_question, row.faq_answer) if staff else None,
    )


async def my_questions(*, principal: Principal, page: int, page_size: int) -> QuestionPage:
    """The caller's questions, newest first."""
    query = Question.filter(citizen_id=uuid.UUID(principal.id))
    total = await query.count()
    rows = await query.order_by("-asked_at").offset((page - 1) * page_size).limit(page_size)
    return QuestionPage(tuple(question_view(r) for r in rows), total, page, page_size)


async def my_question(*, principal: Principal, question_id: str) -> QuestionView:
    """One of the caller's questions (anyone else's is 404)."""
    return question_view(await _question(question_id, citizen_id=principal.id))


async def _question(question_id: str, *, citizen_id: str | None = None) -> Question:
    try:
        qid = uuid.UUID(question_id)
    except ValueError:
        raise QuestionNotFound() from None
    filters: dict[str, Any] = {"id": qid}
    if citizen_id is not None:
        filters["citizen_id"] = uuid.UUID(citizen_id)
    row = await Question.get_or_none(**filters)
    if row is None:
        raise QuestionNotFound()
    return row


def _check_scope(principal: Principal, row: Question) -> None:
    """The one staff-scope rule (a question belongs to its department, not to a hall)."""
    if not principal.covers(department=row.department_code, hall=None):
        raise QuestionOutOfScope(details={"department": row.department_code})


async def staff_questions(*, principal: Principal, view: str | None, page: int, page_size: int) -> QuestionPage:
    """Questions of the reviewer's departments: all, unanswered, due soon or overdue (the oldest first)."""
    query = Question.filter(**principal.scope_filter(hall=None))  # a question belongs to a department only
    today = clock.today()
    if view in {"unanswered", "due_soon", "overdue"}:
        query = query.filter(status=QuestionStatus.pending)
    if view == "due_soon":
        query = query.filter(warn_on__lte=today, due_on__gte=today)
    elif view == "overdue":
        query = query.filter(due_on__lt=today)
    total = await query.count()
    order = ("due_on", "asked_at") if view else ("-asked_at",)
    rows = await query.order_by(*order).offset((page - 1) * page_size).limit(page_size)
    return QuestionPage(tuple(question_view(r, staff=True) for r in rows), total, page, page_size)


async def staff_question(*, principal: Principal, question_id: str) -> QuestionView:
    """One question of the reviewer's departments (403 for another department's)."""
    row = await _question(question_id)
    _check_scope(principal, row)
    return question_view(row, staff=True)


async def answer(deps: FeedbackDeps, *, principal: Principal, question_id: str, text: str) -> QuestionView:
    """Answer a question of one's department; the asker is notified in the same transaction."""
    row = await _question(question_id)
    _check_scope(principal, row)
    now = clock.now()
    async with in_transaction():
        won = await Question.filter(id=row.id, status=QuestionStatus.pending).update(
            status=QuestionStatus.answered, answer=text, answered_by=uuid.UUID(principal.id), answered_at=now
        )
        if not won:
            raise QuestionAnswered(details={"question_id": str(row.id)})
        await notify.enqueue(
            kind="consult_answered",
            citizen_id=row.citizen_id,
            subject_type="consultation",
            subject_id=str(row.id),
            payload={
                "matter_name": row.matter_name,
                "question": row.text[:40],
                "answer": text[:200],
                "at": clock.iso(now),
                "url": f"{deps.settings.base_url}/m/me/questions/{row.id}",  # the question with its answer
            },
            dedupe_key=f"consultation:{row.id}:answered",
            fresh=True,
        )
        await audit.record(
            principal,
            action="question.answer",
            object_type="question",
            object_id=row.id,
            summary=f"答复咨询（{row.matter_code}）",
            changes={"answer": text[:500]},
        )
    row.status, row.answer, row.answered_at, row.answered_by = (
        QuestionStatus.answered,
        text,
        now,
        uuid.UUID(principal.id),
    )
    return question_view(row, staff=True)


async def publish(
    deps: FeedbackDeps, *, principal: Principal, question_id: str, question: str | None, answer_text: str | None
) -> QuestionView:
    """Publish an answered question as FAQ on the guide page, anonymised (the staff's wording, else masked)."""
    row = await _question(question_id)
    _check_scope(principal, row)
    if row.status is not QuestionStatus.answered:
        raise QuestionNotAnswered(details={"question_id": str(row.id)})
    row.faq_question = anonymise(question or row.text)
    row.faq_answer = anonymise(answer_text or row.answer or "")
    row.published_at = clock.now()
    async with in_transaction():
        await row.save(update_fields=["faq_question", "faq_answer", "published_at"])
        await audit.record(
            principal,
            action="question.publish",
            object_type="question",
            object_id=row.id,
            summary=f"发布常见问题（{row.matter_code}）",
            changes={"question": row.faq_question, "answer": row.faq_answer},
        )
    await guides.invalidate(deps.cache)  # the guide page shows it at once
    return question_view(row, staff=True)


async def unpublish(deps: FeedbackDeps, *, principal: Principal, question_id: str) -> QuestionView:
    """Take a published FAQ off the guide page."""
    row = await _question(question_id)
    _check_scope(principal, row)
    row.published_at = None
    async with in_transaction():
        await row.save(update_fields=["published_at"])
        await audit.record(
            principal,
            action="question.unpublish",
            object_type="question",
            object_id=row.id,
            summary=f"撤下常见问题（{row.matter_code}）",
        )
    await guides.invalidate(deps.cache)
    return question_view(row, staff=True)


async def published_faq(matter_code: str, *, limit: int = 20) -> tuple[FaqEntry, ...]:
    """The matter's published questions and answers, newest first (for the guide)."""
    rows = (
        await Question.filter(matter_code=matter_code, published_at__isnull=False)
        .order_by("-published_at")
        .limit(limit)
        .values("faq_question", "faq_answer")
    )
    return tuple(FaqEntry(question=r["faq_question"], answer=r["faq_answer"]) for r in rows)

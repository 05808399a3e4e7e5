"""The API's JSON of the feedback results (app.feedback.types): questions, ratings, rectifications, aggregates."""

from __future__ import annotations

from typing import Any

from app import clock
from app.feedback.types import (
    FaqEntry,
    QuestionPage,
    QuestionView,
    RatingPage,
    RatingView,
    RectificationDetail,
    RectificationItem,
    RectificationPage,
    RectificationView,
    SatisfactionReport,
    SatisfactionRow,
)
from app.paging import envelope


def question_json(q: QuestionView) -> dict[str, Any]:
    """A question for its asker (or for staff, with who answered and the FAQ wording)."""
    body: dict[str, Any] = {
        "id": str(q.id),
        "matter": {"code": q.matter_code, "name": q.matter_name},
        "department": q.department,
        "text": q.text,
        "status": q.status.value,
        "asked_at": clock.iso(q.asked_at),
        "due_on": q.due_on.isoformat(),
        "sla": q.sla,
        "answer": q.answer,
        "answered_at": clock.iso(q.answered_at),
        "published": q.published,
    }
    if q.staff is not None:
        body.update(
            answered_by=str(q.staff.answered_by) if q.staff.answered_by else None,
            faq_question=q.staff.faq_question,
            faq_answer=q.staff.faq_answer,
        )
    return body


def question_page_json(p: QuestionPage) -> dict[str, Any]:
    """A page of questions."""
    return envelope(p, question_json)


def rectification_json(r: RectificationView) -> dict[str, Any]:
    """A rectification's state and steps."""
    return {
        "id": str(r.id),
        "status": r.status,
        "due_on": r.due_on.isoformat(),
        "overdue": r.overdue,
        "reply": r.reply,
        "closed_at": clock.iso(r.closed_at),
        "steps": [
            {
                "action": s.action,
                "label": s.label,
                "status": s.status,
                "at": clock.iso(s.at),
                **({"note": s.note, "actor": {"kind": s.actor_kind, "id": s.actor_id}} if s.internal else {}),
            }
            for s in r.steps
        ],
    }


def rating_json(r: RatingView, *, with_rectification: bool = True) -> dict[str, Any]:
    """A rating with its rectification's progress (`excluded` where staff read it)."""
    body: dict[str, Any] = {
        "id": str(r.id),
        "subject_type": r.subject_type.value,
        "subject_id": r.subject_id,
        "level": r.level,
        "level_name": r.level_name,
        "tags": list(r.tags),
        "comment": r.comment,
        "addendum": r.addendum,
        "addendum_at": clock.iso(r.addendum_at),
        "matter_code": r.matter_code,
        "department": r.department,
        "hall": r.hall,
        "counter": r.counter,
        "created_at": clock.iso(r.created_at),
    }
    if with_rectification:
        body["rectification"] = rectification_json(r.rectification) if r.rectification is not None else None
    if r.excluded is not None:
        body["excluded"] = r.excluded
    return body


def rating_page_json(p: RatingPage) -> dict[str, Any]:
    """A page of the caller's ratings."""
    return envelope(p, rating_json)


def rectification_page_json(p: RectificationPage) -> dict[str, Any]:
    """A page of rectifications with each rating in short."""
    return envelope(p, rectification_item_json)


def rectification_item_json(i: RectificationItem) -> dict[str, Any]:
    """One rectification of a staff list, with its rating in short."""
    item = rectification_json(i.rectification)
    item["rating"] = {
        "level": i.rating.level,
        "level_name": i.rating.level_name,
        "comment": i.rating.comment,
        "matter_code": i.rating.matter_code,
        "subject_type": i.rating.subject_type.value,
    }
    return item


def rectification_detail_json(d: RectificationDetail) -> dict[str, Any]:
    """One rectification with its rating (the rating without its rectification again)."""
    body = rectification_json(d.rectification)
    body["rating"] = rating_json(d.rating, with_rectification=False)
    return body


def satisfaction_row_json(by: str, row: SatisfactionRow) -> dict[str, Any]:
    """One group's counts per level and satisfaction rate."""
    return {
        by: row.key,
        "total": row.total,
        "levels": {str(level): n for level, n in row.levels},
        "good": row.good,
        "bad": row.bad,
        "satisfaction_rate": row.satisfaction_rate,
    }


def satisfaction_json(report: SatisfactionReport) -> dict[str, Any]:
    """The rating aggregates of a period."""
    return {
        "by": report.by,
        "from": report.date_from.isoformat(),
        "to": report.date_to.isoformat(),
        "items": [satisfaction_row_json(report.by, row) for row in report.items],
    }


def faq_json(faq: tuple[FaqEntry, ...]) -> list[dict[str, str]]:
    """A matter's published questions and answers (the guide's `consult_faq`)."""
    return [{"question": f.question, "answer": f.answer} for f in faq]


def matter_satisfaction_json(row: SatisfactionRow | None) -> dict[str, Any] | None:
    """A matter's public satisfaction (the guide's `satisfaction`); None before its first rating."""
    if row is None:
        return None
    return {"total": row.total, "satisfaction_rate": row.satisfaction_rate, "good": row.good}

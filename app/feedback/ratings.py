"""Ratings (好差评) and the rectification of bad ones (差评整改).

One rating per completed case, per check-in visit and per answered question (一次一评, 一事一评),
within a window; it may be added to once and never rewritten. 不满意 or 非常不满意 opens a
rectification for the responsible department with a deadline in working days: verify → rectify →
reply to the citizen → close, every step recorded. Staff may contest a rating they believe abusive;
an administrator decides (upheld: the rating no longer counts and the rectification is dismissed).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from app import clock, workdays
from app.audit import service as audit
from app.booking.models import Booking, CheckIn
from app.cases.models import Case, CaseStatus
from app.errors import InvalidInput
from app.feedback.deps import FeedbackDeps
from app.feedback.errors import (
    AddendumExists,
    AlreadyRated,
    NotRateableYet,
    RatingNotFound,
    RatingSubjectNotFound,
    RatingWindowClosed,
    RectificationChanged,
    RectificationNotFound,
    RectificationOutOfScope,
    StepOutOfOrder,
)
from app.feedback.models import Question, Rating, Rectification, RectificationStep
from app.feedback.types import (
    QuestionStatus,
    Rateable,
    RatedSummary,
    RatingPage,
    RatingView,
    RectificationDetail,
    RectificationItem,
    RectificationPage,
    RectificationStatus,
    RectificationView,
    SatisfactionReport,
    SatisfactionRow,
    StepView,
    SubjectType,
)
from app.matters.models import Matter
from app.notify import service as notify
from auth.tokens import Principal

LEVELS = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
GOOD_LEVELS = frozenset({3, 4, 5})  # 好评 in the national rules; 1 and 2 are 差评
BAD_LEVELS = frozenset({1, 2})
# The tags a rating may carry, in the order forms show them: what went well, then what to improve.
GOOD_TAGS = ("服务态度好", "办事效率高", "一次告知清楚", "材料精简", "环境舒适", "网上办理方便")
BAD_TAGS = ("等候时间长", "多次跑腿", "态度不好", "流程繁琐", "告知不清", "系统不好用")
TAG_LIST = GOOD_TAGS + BAD_TAGS
TAGS = frozenset(TAG_LIST)

R = RectificationStatus
# action: (statuses it starts from, where it leads, who may take it)
STEPS: dict[str, tuple[frozenset[R], R | None, frozenset[str]]] = {
    "verify": (frozenset({R.open}), R.verified, frozenset({"reviewer", "clerk", "admin"})),
    "rectify": (frozenset({R.verified}), R.rectified, frozenset({"reviewer", "clerk", "admin"})),
    "reply": (frozenset({R.rectified}), R.replied, frozenset({"reviewer", "clerk", "admin"})),
    "close": (frozenset({R.replied}), R.closed, frozenset({"reviewer", "clerk", "admin"})),
    "contest": (frozenset({R.open, R.verified}), R.contested, frozenset({"reviewer", "clerk", "admin"})),
    "uphold": (frozenset({R.contested}), R.dismissed, frozenset({"admin"})),  # the rating was abusive
    "reject": (frozenset({R.contested}), None, frozenset({"admin"})),  # it stands: back where it was
}
STEP_NAMES = {
    "open": "收到差评，已转责任部门",
    "verify": "核实情况",
    "rectify": "落实整改",
    "reply": "答复评价人",
    "close": "整改办结",
    "contest": "部门申诉（认为评价不实）",
    "uphold": "申诉成立，评价不计入统计",
    "reject": "申诉不成立，继续整改",
}


def allowed_steps(status: str, role: str) -> list[str]:
    """The steps a role may take on a rectification in this status, in table order."""
    return [a for a, (src, _, who) in STEPS.items() if status in {s.value for s in src} and role in who]


@dataclass(frozen=True)
class Subject:
    """What is rated, and whom it is charged to."""

    matter_code: str
    department_code: str
    hall_code: str | None
    counter: str | None
    finished_at: dt.datetime
    matter_name: str = ""
    detail: str = ""  # the case number, the counter, or the question: what the citizen recognises


async def _matter_of(matter_code: str) -> tuple[str, str]:
    """(department code, name) of a matter."""
    matter = await Matter.get_or_none(code=matter_code)
    return (matter.department_code, matter.name) if matter else ("", matter_code)


async def _subject(citizen_id: uuid.UUID, subject_type: SubjectType, subject_id: str) -> Subject:
    """The caller's finished case, visit or answered question (404 for anything not theirs)."""
    if subject_type is SubjectType.case:
        case = await Case.get_or_none(case_no=subject_id.strip().upper()[:32], citizen_id=citizen_id)
        if case is None:
            raise RatingSubjectNotFound()
        if case.status is not CaseStatus.completed or case.completed_at is None:
            raise NotRateableYet(details={"status": case.status.value})
        return Subject(case.matter_code, case.department_code, case.hall_code, None, case.completed_at,
                       case.matter_name, case.case_no)  # fmt: skip
    try:
        sid = uuid.UUID(subject_id)
    except ValueError:
        raise RatingSubjectNotFound() from None
    if subject_type is SubjectType.visit:
        checkin = await CheckIn.get_or_none(id=sid, kind="booking")
        booking = await Booking.get_or_none(id=checkin.booking_id) if checkin and checkin.booking_id else None
        if checkin is None or booking is None or booking.citizen_id != citizen_id:
            raise RatingSubjectNotFound()
        if checkin.undone_at is not None:
            raise NotRateableYet(details={"reason": "undone"})
        # One visit, one rating: a check-in undone and done again is still the same visit.
        others = [
            str(i) for i in await CheckIn.filter(booking_id=booking.id).exclude(id=sid).values_list("id", flat=True)
        ]
        if others and await Rating.exists(subject_type=SubjectType.visit, subject_id__in=others):
            raise AlreadyRated(details={"subject_type": "visit", "subject_id": subject_id})
        department, name = await _matter_of(booking.matter_code)
        return Subject(booking.matter_code, department, checkin.hall_code, checkin.counter, checkin.created_at,
                       name, checkin.counter or "")  # fmt: skip
    question = await Question.get_or_none(id=sid, citizen_id=citizen_id)
    if question is None:
        raise RatingSubjectNotFound()
    if question.status is not QuestionStatus.answered or question.answered_at is None:
        raise NotRateableYet(details={"status": question.status.value})
    return Subject(question.matter_code, question.department_code, None, None, question.answered_at,
                   question.matter_name, question.text)  # fmt: skip


def _normalised_id(subject_type: SubjectType, subject_id: str) -> str:
    """The subject id as stored: a case number in capitals, any other id as a canonical UUID."""
    return subject_id.strip().upper() if subject_type is SubjectType.case else str(uuid.UUID(subject_id))


def _check_window(deps: FeedbackDeps, subject: Subject, now: dt.datetime) -> None:
    days = deps.settings.rating_window_days
    if now - subject.finished_at > dt.timedelta(days=days):
        raise RatingWindowClosed(details={"days": days})


async def rateable(deps: FeedbackDeps, *, principal: Principal, subject_type: SubjectType, subject_id: str) -> Rateable:
    """What the citizen is about to rate, checked as `rate` checks it; with the rating when already rated."""
    subject = await _subject(uuid.UUID(principal.id), subject_type, subject_id)
    stored_id = _normalised_id(subject_type, subject_id)
    prior = await Rating.get_or_none(subject_type=subject_type, subject_id=stored_id)
    if prior is None:
        _check_window(deps, subject, clock.now())
    return Rateable(
        subject_type=subject_type,
        subject_id=stored_id,
        matter_code=subject.matter_code,
        matter_name=subject.matter_name,
        detail=subject.detail,
        finished_at=subject.finished_at,
        closes_at=subject.finished_at + dt.timedelta(days=deps.settings.rating_window_days),
        rating_id=prior.id if prior is not None else None,
    )


async def ratings_of(
    *, principal: Principal, subject_type: SubjectType, subject_ids: list[str]
) -> dict[str, uuid.UUID]:
    """Which of these subjects the caller has rated: subject id (as given) -> rating id (for lists to link to)."""
    stored: dict[str, str] = {}
    for given in subject_ids:
        try:
            stored[_normalised_id(subject_type, given)] = given
        except ValueError:
            continue  # not an id of this kind: never rated
    if not stored:
        return {}
    rows = await Rating.filter(
        citizen_id=uuid.UUID(principal.id), subject_type=subject_type, subject_id__in=list(stored)
    ).values_list("subject_id", "id")
    return {stored[sid]: rid for sid, rid in rows}


async def rate(
    deps: FeedbackDeps,
    *,
    principal: Principal,
    subject_type: SubjectType,
    subject_id: str,
    level: int,
    tags: list[str],
    comment: str,
) -> RatingView:
    """Rate a finished case, visit or answer once; a bad rating opens its rectification in the same transaction."""
    citizen_id = uuid.UUID(principal.id)
    subject = await _subject(citizen_id, subject_type, subject_id)
    now = clock.now()
    _check_window(deps, subject, now)
    rating = Rating(
        id=uuid.uuid4(), subject_type=subject_type, subject_id=_normalised_id(subject_type, subject_id),
        citizen_id=citizen_id, level=level,
        tags=list(dict.fromkeys(tags)), comment=comment, matter_code=subject.matter_code,
        department_code=subject.department_code, hall_code=subject.hall_code, counter=subject.counter, created_at=now,
    )  # fmt: skip
    try:
        async with in_transaction():
            await rating.save(force_create=True)
            if level in BAD_LEVELS:
                await _open_rectification(deps, rating, now)
    except IntegrityError:  # (subject_type, subject_id) is unique: rated already, perhaps this very instant
        prior = await Rating.get_or_none(subject_type=subject_type, subject_id=rating.subject_id)
        if prior is not None and (prior.citizen_id, prior.level, prior.tags, prior.comment) == (
            citizen_id,
            rating.level,
            rating.tags,
            rating.comment,
        ):
            return await rating_view(prior)  # the same rating sent again (a retry): its answer
        raise AlreadyRated(details={"subject_type": subject_type.value, "subject_id": subject_id}) from None
    return await rating_view(rating)


async def _open_rectification(deps: FeedbackDeps, rating: Rating, now: dt.datetime) -> Rectification:
    row = await Rectification.create(
        id=uuid.uuid4(),
        rating_id=rating.id,
        department_code=rating.department_code,
        hall_code=rating.hall_code,
        status=R.open,
        opened_at=now,
        due_on=workdays.add_workdays(clock.today(), deps.settings.rectify_days),
    )
    await RectificationStep.create(
        rectification_id=row.id, action="open", from_status="", to_status=R.open.value, actor_kind="system",
        note=f"{LEVELS[rating.level]}：{rating.comment}"[:1000], created_at=now,
    )  # fmt: skip
    return row


async def add_to(deps: FeedbackDeps, *, principal: Principal, rating_id: str, comment: str) -> RatingView:
    """Add to one's rating once (追评), within the rating window from the rating; the rating is never rewritten."""
    settings = deps.settings
    rating = await _own_rating(principal, rating_id)
    if clock.now() - rating.created_at > dt.timedelta(days=settings.rating_window_days):
        raise RatingWindowClosed(details={"days": settings.rating_window_days})
    if not await Rating.filter(id=rating.id, addendum__isnull=True).update(addendum=comment, addendum_at=clock.now()):
        raise AddendumExists(details={"rating_id": str(rating.id)})
    return await rating_view(await Rating.get(id=rating.id))


async def _own_rating(principal: Principal, rating_id: str) -> Rating:
    try:
        rid = uuid.UUID(rating_id)
    except ValueError:
        raise RatingNotFound() from None
    rating = await Rating.get_or_none(id=rid, citizen_id=uuid.UUID(principal.id))
    if rating is None:
        raise RatingNotFound()
    return rating


async def rating_view(
    rating: Rating,
    *,
    staff: bool = False,
    preloaded: dict[uuid.UUID, tuple[Rectification, list[RectificationStep]]] | None = None,
) -> RatingView:
    """A rating with its rectification's progress (what the citizen follows up on)."""
    found = (preloaded if preloaded is not None else await _rectifications_of([rating.id])).get(rating.id)
    return RatingView(
        id=rating.id,
        subject_type=rating.subject_type,
        subject_id=rating.subject_id,
        level=rating.level,
        level_name=LEVELS[rating.level],
        tags=tuple(rating.tags),
        comment=rating.comment,
        addendum=rating.addendum,
        addendum_at=rating.addendum_at,
        matter_code=rating.matter_code,
        department=rating.department_code,
        hall=rating.hall_code,
        counter=rating.counter,
        created_at=rating.created_at,
        rectification=rectification_view(*found, internal=staff) if found is not None else None,
        excluded=rating.excluded if staff else None,
    )


async def _rectifications_of(
    rating_ids: list[uuid.UUID],
) -> dict[uuid.UUID, tuple[Rectification, list[RectificationStep]]]:
    """The rectifications of these ratings with their steps, in two queries."""
    rects = await Rectification.filter(rating_id__in=rating_ids) if rating_ids else []
    steps = await _steps_of([r.id for r in rects])
    return {r.rating_id: (r, steps.get(r.id, [])) for r in rects}


async def _steps_of(rect_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[RectificationStep]]:
    out: dict[uuid.UUID, list[RectificationStep]] = {}
    if rect_ids:
        for step_row in await RectificationStep.filter(rectification_id__in=rect_ids).order_by("id"):
            out.setdefault(step_row.rectification_id, []).append(step_row)
    return out


# What the citizen is shown of a contest: that the rating is being reviewed, not the department's case against it.
_CITIZEN_STATUS = {R.contested: "reviewing", R.dismissed: "reviewed"}
_CITIZEN_STEP = {"contest": "复核中", "uphold": "复核完成", "reject": "复核完成，继续整改"}


def rectification_view(rect: Rectification, steps: list[RectificationStep], *, internal: bool) -> RectificationView:
    """A rectification's state and steps (notes and contests stay internal; the citizen sees steps and the reply)."""
    open_ = rect.status not in {R.closed, R.dismissed}
    return RectificationView(
        id=rect.id,
        status=rect.status.value if internal else _CITIZEN_STATUS.get(rect.status, rect.status.value),
        due_on=rect.due_on,
        overdue=open_ and clock.today() > rect.due_on,
        reply=rect.reply,
        closed_at=rect.closed_at,
        steps=tuple(
            StepView(
                action=s.action,
                label=STEP_NAMES.get(s.action, s.action)
                if internal
                else _CITIZEN_STEP.get(s.action, STEP_NAMES.get(s.action, s.action)),
                status=s.to_status if internal else _CITIZEN_STATUS.get(R(s.to_status), s.to_status),
                at=s.created_at,
                internal=internal,
                **({"note": s.note, "actor_kind": s.actor_kind, "actor_id": s.actor_id} if internal else {}),
            )
            for s in steps
            if internal or s.action != "reject"  # a rejected contest simply continues, as far as the citizen sees
        ),
    )


async def my_ratings(*, principal: Principal, page: int, page_size: int) -> RatingPage:
    """The caller's ratings, newest first."""
    query = Rating.filter(citizen_id=uuid.UUID(principal.id))
    total = await query.count()
    rows = await query.order_by("-created_at").offset((page - 1) * page_size).limit(page_size)
    rects = await _rectifications_of([r.id for r in rows])
    items = tuple([await rating_view(r, preloaded=rects) for r in rows])
    return RatingPage(items, total, page, page_size)


async def my_rating(*, principal: Principal, rating_id: str) -> RatingView:
    """One of the caller's ratings with the follow-up of its rectification."""
    return await rating_view(await _own_rating(principal, rating_id))


# ---------------------------------------------------------------- rectification, for staff


async def _rectification(principal: Principal, rect_id: str) -> Rectification:
    try:
        rid = uuid.UUID(rect_id)
    except ValueError:
        raise RectificationNotFound() from None
    rect = await Rectification.get_or_none(id=rid)
    if rect is None:
        raise RectificationNotFound()
    if not principal.covers(department=rect.department_code, hall=rect.hall_code):
        raise RectificationOutOfScope(details={"department": rect.department_code})
    return rect


async def staff_rectifications(
    *, principal: Principal, status: str | None, overdue: bool, page: int, page_size: int
) -> RectificationPage:
    """Rectifications of the caller's departments (or hall), the most urgent first."""
    query = Rectification.filter(**principal.scope_filter())
    if status:
        query = query.filter(status=status)
    if overdue:
        query = query.filter(due_on__lt=clock.today()).exclude(status__in=[R.closed, R.dismissed])
    total = await query.count()
    rows = await query.order_by("due_on", "opened_at").offset((page - 1) * page_size).limit(page_size)
    ratings = {r.id: r for r in await Rating.filter(id__in=[rect.rating_id for rect in rows])} if rows else {}
    steps = await _steps_of([rect.id for rect in rows])
    items = []
    for rect in rows:
        rating = ratings[rect.rating_id]
        level = rating.level
        rated = RatedSummary(level, LEVELS[level], rating.comment, rating.matter_code, rating.subject_type)
        items.append(RectificationItem(rectification_view(rect, steps.get(rect.id, []), internal=True), rated))
    return RectificationPage(tuple(items), total, page, page_size)


async def staff_rectification(*, principal: Principal, rect_id: str) -> RectificationDetail:
    """One rectification with its rating and every step."""
    rect = await _rectification(principal, rect_id)
    view = rectification_view(rect, (await _steps_of([rect.id])).get(rect.id, []), internal=True)
    return RectificationDetail(view, await rating_view(await Rating.get(id=rect.rating_id), staff=True))


async def step(
    deps: FeedbackDeps, *, principal: Principal, rect_id: str, action: str, note: str, reply: str | None
) -> RectificationDetail:
    """Take the next step of a rectification (409 when out of order); a reply reaches the citizen by the outbox."""
    rect = await _rectification(principal, rect_id)
    sources, target, roles = STEPS[action]
    if rect.status not in sources or (principal.role or "") not in roles:
        allowed = [a for a, (src, _, who) in STEPS.items() if rect.status in src and (principal.role or "") in who]
        raise StepOutOfOrder(
            f"整改单当前状态为「{rect.status.value}」，不能执行「{STEP_NAMES.get(action, action)}」",
            details={"status": rect.status.value, "action": action, "allowed": allowed},
        )
    if action == "reply" and not (reply or "").strip():
        raise InvalidInput("请填写答复评价人的内容", code="REPLY_REQUIRED")
    before = rect.status
    new = target or rect.resume_status or R.open
    now = clock.now()
    changes: dict[str, Any] = {"status": new, "version": rect.version + 1}
    if action == "contest":
        changes["resume_status"] = before
    elif action in {"uphold", "reject"}:
        changes["resume_status"] = None
    if action == "reply":
        changes["reply"] = reply.strip()  # type: ignore[union-attr]
    if action in {"close", "uphold"}:
        changes["closed_at"] = now
    async with in_transaction():
        if not await Rectification.filter(id=rect.id, version=rect.version, status=before).update(**changes):
            raise RectificationChanged(details={"rectification_id": str(rect.id)})
        await RectificationStep.create(
            rectification_id=rect.id, action=action, from_status=before.value, to_status=new.value,
            actor_kind="staff", actor_id=principal.id, note=note[:1000], created_at=now,
        )  # fmt: skip
        rating = await Rating.get(id=rect.rating_id)
        if action == "uphold":
            await Rating.filter(id=rating.id).update(excluded=True)
        if action == "reply":
            await notify.enqueue(
                kind="rating_reply",
                citizen_id=rating.citizen_id,
                subject_type="rating",
                subject_id=str(rating.id),
                payload={
                    "matter_code": rating.matter_code,
                    "level_name": LEVELS[rating.level],
                    "reply": changes["reply"][:200],
                    "at": clock.iso(now),
                    "url": f"{deps.settings.base_url}/m/me/ratings/{rating.id}",  # the rating with the reply
                },
                dedupe_key=f"rating:{rating.id}:reply",
                fresh=True,
            )
        await audit.record(
            principal,
            action=f"rectification.{action}",
            object_type="rectification",
            object_id=rect.id,
            summary=f"整改单{STEP_NAMES.get(action, action)}：{before.value} → {new.value}",
            changes={"status": [before.value, new.value], "note": note[:500], "reply": changes.get("reply")},
        )
    return await staff_rectification(principal=principal, rect_id=str(rect.id))


# ---------------------------------------------------------------- aggregates


async def satisfaction(
    *, by: str, date_from: dt.date | None = None, date_to: dt.date | None = None, key: str | None = None
) -> list[SatisfactionRow]:
    """Counts per level and the satisfaction rate (好评率: levels 3-5) per matter, department, hall or counter."""
    column = {"matter": "matter_code", "department": "department_code", "hall": "hall_code", "counter": "counter"}[by]
    query = Rating.filter(excluded=False)
    if date_from:
        query = query.filter(created_at__gte=clock.day_start(date_from))
    if date_to:
        query = query.filter(created_at__lt=clock.day_start(date_to + dt.timedelta(days=1)))
    if key is not None:
        query = query.filter(**{column: key})
    fields = tuple(dict.fromkeys((column, "level", "hall_code" if by == "counter" else column)))
    rows = await query.annotate(n=Count("id")).group_by(*fields).values(*fields, "n")  # counted in the database
    groups: dict[str, dict[int, int]] = {}
    for r in rows:
        name = r[column] if by != "counter" else (f"{r['hall_code']}/{r['counter']}" if r["counter"] else None)
        if name is None:
            continue
        groups.setdefault(name, {}).setdefault(r["level"], 0)
        groups[name][r["level"]] += r["n"]
    out = []
    for name, levels in sorted(groups.items()):
        total = sum(levels.values())
        good = sum(n for lv, n in levels.items() if lv in GOOD_LEVELS)
        out.append(
            SatisfactionRow(
                key=name,
                total=total,
                levels=tuple((lv, levels.get(lv, 0)) for lv in sorted(LEVELS, reverse=True)),
                good=good,
                bad=total - good,
                satisfaction_rate=round(good / total, 4) if total else None,
            )
        )
    return out


async def satisfaction_report(*, by: str, date_from: dt.date, date_to: dt.date) -> SatisfactionReport:
    """The rating aggregates of a checked period, grouped by matter, department, hall or counter."""
    rows = await satisfaction(by=by, date_from=date_from, date_to=date_to)
    return SatisfactionReport(by, date_from, date_to, tuple(rows))


async def matter_satisfaction(matter_code: str) -> SatisfactionRow | None:
    """The public satisfaction of a matter (for its guide page); None before its first rating."""
    rows = await satisfaction(by="matter", key=matter_code)
    return rows[0] if rows else None

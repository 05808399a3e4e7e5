"""What the feedback services answer: the enumerations and typed results (no ORM, so channels may import it).

Dates and times stay `date` / aware `datetime` here; app.feedback.present formats them for the API.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass

from app.paging import Page


class QuestionStatus(enum.StrEnum):
    """pending -> answered."""

    pending = "pending"
    answered = "answered"


class SubjectType(enum.StrEnum):
    """What a rating is about (一事一评)."""

    case = "case"
    visit = "visit"
    consultation = "consultation"


class RectificationStatus(enum.StrEnum):
    """open -> verified -> rectified -> replied -> closed; contested (an admin decides) -> dismissed or back."""

    open = "open"
    verified = "verified"
    rectified = "rectified"
    replied = "replied"
    closed = "closed"
    contested = "contested"
    dismissed = "dismissed"


@dataclass(frozen=True)
class StaffQuestionFields:
    """What staff see of a question beyond its asker's view."""

    answered_by: uuid.UUID | None
    faq_question: str | None
    faq_answer: str | None


@dataclass(frozen=True)
class QuestionView:
    """A question for its asker, or for staff (`staff` set)."""

    id: uuid.UUID
    matter_code: str
    matter_name: str
    department: str
    text: str
    status: QuestionStatus
    asked_at: dt.datetime
    due_on: dt.date
    sla: str  # open | due_soon | overdue | answered | answered_late
    answer: str | None
    answered_at: dt.datetime | None
    published: bool
    staff: StaffQuestionFields | None = None


QuestionPage = Page[QuestionView]


@dataclass(frozen=True)
class StepView:
    """One step of a rectification as its audience sees it (`note` and actor for staff only)."""

    action: str
    label: str
    status: str
    at: dt.datetime
    internal: bool
    note: str = ""
    actor_kind: str | None = None
    actor_id: str | None = None


@dataclass(frozen=True)
class RectificationView:
    """A rectification's state and steps (the citizen sees a contest as a review)."""

    id: uuid.UUID
    status: str
    due_on: dt.date
    overdue: bool
    reply: str | None
    closed_at: dt.datetime | None
    steps: tuple[StepView, ...]


@dataclass(frozen=True)
class RatingView:
    """A rating with its rectification's progress; `excluded` for staff only."""

    id: uuid.UUID
    subject_type: SubjectType
    subject_id: str
    level: int
    level_name: str
    tags: tuple[str, ...]
    comment: str
    addendum: str | None
    addendum_at: dt.datetime | None
    matter_code: str
    department: str
    hall: str | None
    counter: str | None
    created_at: dt.datetime
    rectification: RectificationView | None
    excluded: bool | None = None  # None: not shown (the citizen's view)


RatingPage = Page[RatingView]


@dataclass(frozen=True)
class Rateable:
    """A case, visit or answer the citizen may rate (or has rated: `rating_id`), before the form is filled in."""

    subject_type: SubjectType
    subject_id: str  # as stored: a case number in capitals, a canonical UUID otherwise
    matter_code: str
    matter_name: str
    detail: str  # the case number, the counter, or the question
    finished_at: dt.datetime  # completed, checked in, answered: the window runs from here
    closes_at: dt.datetime
    rating_id: uuid.UUID | None


@dataclass(frozen=True)
class RatedSummary:
    """The rating a rectification follows up, in short (for a staff list)."""

    level: int
    level_name: str
    comment: str
    matter_code: str
    subject_type: SubjectType


@dataclass(frozen=True)
class RectificationItem:
    """A rectification in a staff list, with the rating in short."""

    rectification: RectificationView
    rating: RatedSummary


RectificationPage = Page[RectificationItem]


@dataclass(frozen=True)
class RectificationDetail:
    """One rectification with every step and its rating (for staff)."""

    rectification: RectificationView
    rating: RatingView


@dataclass(frozen=True)
class SatisfactionRow:
    """Counts per level and the satisfaction rate (好评率: levels 3-5) of one group."""

    key: str  # the matter, department, hall or `hall/counter`
    total: int
    levels: tuple[tuple[int, int], ...]  # (level, count) from 5 down to 1
    good: int
    bad: int
    satisfaction_rate: float | None


@dataclass(frozen=True)
class SatisfactionReport:
    """The rating aggregates of a period, grouped by matter, department, hall or counter."""

    by: str
    date_from: dt.date
    date_to: dt.date
    items: tuple[SatisfactionRow, ...]


@dataclass(frozen=True)
class FaqEntry:
    """A published question and its answer, as the matter's guide shows it."""

    question: str
    answer: str

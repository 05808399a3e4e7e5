"""Questions about matters, ratings of cases, visits and answers, and rectifications of bad ratings."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from app.feedback.types import QuestionStatus, RectificationStatus, SubjectType

__all__ = [
    "Question",
    "QuestionStatus",
    "Rating",
    "Rectification",
    "RectificationStatus",
    "RectificationStep",
    "SubjectType",
]


class Question(Model):
    """A citizen's question about a matter, answered by the matter's department within a service level."""

    id = fields.UUIDField(primary_key=True)
    matter_code = fields.CharField(max_length=40, db_index=True)
    matter_name = fields.CharField(max_length=200)
    department_code = fields.CharField(max_length=32, db_index=True)
    citizen_id = fields.UUIDField(db_index=True)
    text = fields.TextField()
    status = fields.CharEnumField(QuestionStatus, max_length=10, db_index=True)
    asked_at = fields.DatetimeField()
    due_on = fields.DateField()
    warn_on = fields.DateField()
    answer = fields.TextField(null=True)
    answered_by = fields.UUIDField(null=True)
    answered_at = fields.DatetimeField(null=True)
    faq_question = fields.TextField(null=True)  # the anonymised wording published on the guide page
    faq_answer = fields.TextField(null=True)
    published_at = fields.DatetimeField(null=True)

    class Meta:
        table = "consultation"


class Rating(Model):
    """A five-level rating (5 非常满意 … 1 非常不满意) of one case, visit or answered question."""

    id = fields.UUIDField(primary_key=True)
    subject_type = fields.CharEnumField(SubjectType, max_length=14)
    subject_id = fields.CharField(max_length=64)
    citizen_id = fields.UUIDField(db_index=True)
    level = fields.SmallIntField()
    tags = fields.JSONField(default=list)
    comment = fields.CharField(max_length=500, default="")
    addendum = fields.CharField(max_length=500, null=True)  # added once, never rewritten (追评)
    addendum_at = fields.DatetimeField(null=True)
    matter_code = fields.CharField(max_length=40, db_index=True)
    department_code = fields.CharField(max_length=32, db_index=True)
    hall_code = fields.CharField(max_length=32, null=True, db_index=True)
    counter = fields.CharField(max_length=16, null=True)
    excluded = fields.BooleanField(default=False)  # an abusive rating, as an administrator decided
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "rating"
        unique_together = (("subject_type", "subject_id"),)


class Rectification(Model):
    """The follow-up a bad rating opens for the responsible department, with a deadline in working days."""

    id = fields.UUIDField(primary_key=True)
    rating_id = fields.UUIDField(unique=True)
    department_code = fields.CharField(max_length=32, db_index=True)
    hall_code = fields.CharField(max_length=32, null=True)
    status = fields.CharEnumField(RectificationStatus, max_length=10, db_index=True)
    resume_status = fields.CharEnumField(RectificationStatus, max_length=10, null=True)  # before a contest
    opened_at = fields.DatetimeField()
    due_on = fields.DateField()
    reply = fields.TextField(null=True)  # what the citizen is told
    closed_at = fields.DatetimeField(null=True)
    version = fields.IntField(default=1)

    class Meta:
        table = "rectification"


class RectificationStep(Model):
    """One recorded step of a rectification: who, what, when, and the note."""

    id = fields.BigIntField(primary_key=True)
    rectification_id = fields.UUIDField(db_index=True)
    action = fields.CharField(max_length=16)
    from_status = fields.CharField(max_length=10)
    to_status = fields.CharField(max_length=10)
    actor_kind = fields.CharField(max_length=10)
    actor_id = fields.CharField(max_length=64, null=True)
    note = fields.CharField(max_length=1000, default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "rectification_step"

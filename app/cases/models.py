"""Uploads, cases, their materials and their event timeline."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from app.cases.types import CaseStatus

__all__ = ["Case", "CaseEvent", "CaseMaterial", "CaseSequence", "CaseStatus", "Upload"]


class Upload(Model):
    """A file a citizen uploaded: content-addressed on disk, bound to its owner until a case uses it."""

    id = fields.UUIDField(primary_key=True)
    owner_id = fields.UUIDField(db_index=True)
    sha256 = fields.CharField(max_length=64, db_index=True)
    size = fields.BigIntField()
    file_type = fields.CharField(max_length=8)  # what the bytes are (magic), e.g. `pdf`
    filename = fields.CharField(max_length=120)  # the client's name, cleaned, shown only
    case_id = fields.UUIDField(null=True, db_index=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True, db_index=True)  # None once a case holds it

    class Meta:
        table = "upload"


class Case(Model):
    """One application (办件) from submission to completion."""

    id = fields.UUIDField(primary_key=True)
    case_no = fields.CharField(max_length=32, unique=True)
    matter_code = fields.CharField(max_length=40, db_index=True)
    matter_name = fields.CharField(max_length=200)
    guide_version = fields.IntField()
    department_code = fields.CharField(max_length=32, db_index=True)
    hall_code = fields.CharField(max_length=32, db_index=True)
    section = fields.CharField(max_length=20)
    # 一件事: `bundle` is the one application a citizen files, `part` one member matter's case opened from it.
    kind = fields.CharField(max_length=8, default="single")
    bundle_id = fields.UUIDField(null=True, db_index=True)  # a part's bundle case
    stage = fields.SmallIntField(null=True)  # a part's stage (1-based)
    citizen_id = fields.UUIDField(db_index=True)  # the account that submitted (the applicant or the agent)
    agent = fields.BooleanField(default=False)  # 代办: the account acts for the principal below
    principal_kind = fields.CharField(max_length=10)  # person | company
    principal_name_enc = fields.TextField()
    principal_id_enc = fields.TextField()
    principal_id_bidx = fields.CharField(max_length=64, db_index=True)
    principal_phone_enc = fields.TextField(null=True)
    form = fields.JSONField()
    delivery = fields.JSONField()  # {"method": "window"} or {"method": "ems", "address": {...}}
    tracking_no = fields.CharField(max_length=40, null=True)
    status = fields.CharEnumField(CaseStatus, max_length=20, db_index=True)
    resume_status = fields.CharEnumField(CaseStatus, max_length=20, null=True)  # the status a suspension returns to
    promised_days = fields.IntField()
    accepted_on = fields.DateField(null=True)
    due_on = fields.DateField(null=True)
    warn_on = fields.DateField(null=True)
    suspended_on = fields.DateField(null=True)
    suspended_days = fields.IntField(default=0)
    correction = fields.JSONField(null=True)  # the materials a 补正 asks for
    query_code_hash = fields.CharField(max_length=64)
    version = fields.IntField(default=1)
    submitted_at = fields.DatetimeField()
    decided_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "case_record"


class CaseMaterial(Model):
    """A file handed in for one of the guide's materials (a 补正 adds a later round)."""

    id = fields.IntField(primary_key=True)
    case_id = fields.UUIDField(db_index=True)
    name = fields.CharField(max_length=200)
    upload_id = fields.UUIDField()
    round = fields.SmallIntField(default=1)
    created_at = fields.DatetimeField()

    class Meta:
        table = "case_material"


class CaseEvent(Model):
    """One step of a case's timeline: who did what, when, what the citizen is told and the internal note."""

    id = fields.BigIntField(primary_key=True)
    case_id = fields.UUIDField(db_index=True)
    action = fields.CharField(max_length=24)
    from_status = fields.CharField(max_length=20, null=True)
    to_status = fields.CharField(max_length=20)
    actor_kind = fields.CharField(max_length=10)  # citizen | staff | system
    actor_id = fields.CharField(max_length=64, null=True)
    public_text = fields.CharField(max_length=500)
    internal_note = fields.CharField(max_length=1000, default="")
    data = fields.JSONField(default=dict)
    created_at = fields.DatetimeField()

    class Meta:
        table = "case_event"


class CaseSequence(Model):
    """The last case number issued per prefix and day (one upsert per case)."""

    id = fields.IntField(primary_key=True)
    prefix = fields.CharField(max_length=8)
    day = fields.DateField()
    issued = fields.IntField(default=0)

    class Meta:
        table = "case_sequence"
        unique_together = (("prefix", "day"),)

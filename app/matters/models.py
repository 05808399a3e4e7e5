"""ORM models of the catalogue. A matter is the stable index row; its guides are immutable versions."""

from __future__ import annotations

import enum

from tortoise import fields
from tortoise.models import Model


class MatterStatus(enum.StrEnum):
    """Whether a matter is offered."""

    active = "active"
    retired = "retired"


class VersionStatus(enum.StrEnum):
    """draft -> published -> superseded."""

    draft = "draft"
    published = "published"
    superseded = "superseded"


class Department(Model):
    """A department (实施主体) that carries out matters."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=200)
    phone = fields.CharField(max_length=40, default="")

    class Meta:
        table = "department"


class Hall(Model):
    """A service hall or sub-hall: where a citizen goes."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=200)
    kind = fields.CharField(max_length=8, default="main")
    address = fields.CharField(max_length=200)
    phone = fields.CharField(max_length=40)
    hours = fields.CharField(max_length=200)
    latitude = fields.FloatField(null=True)
    longitude = fields.FloatField(null=True)

    class Meta:
        table = "hall"


class Matter(Model):
    """A government service matter. Its search fields mirror its published guide.

    (No semicolons in model docstrings: Tortoise splits the generated SQL on them.)
    """

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=40, unique=True)
    name = fields.CharField(max_length=200, db_index=True)
    section = fields.CharField(max_length=20, db_index=True)
    department_code = fields.CharField(max_length=32, db_index=True)
    hall_code = fields.CharField(max_length=32)
    kind = fields.CharField(max_length=8, default="matter")  # matter | bundle (一件事), as its published guide says
    visits = fields.SmallIntField(default=1)
    online_depth = fields.SmallIntField(default=1)
    status = fields.CharEnumField(MatterStatus, default=MatterStatus.active, max_length=10)
    successor_code = fields.CharField(max_length=40, null=True)
    published_no = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "matter"


class MatterVersion(Model):
    """One version of a matter guide. Published content never changes."""

    id = fields.IntField(primary_key=True)
    matter: fields.ForeignKeyRelation[Matter] = fields.ForeignKeyField(
        "models.Matter", related_name="versions", on_delete=fields.CASCADE
    )
    no = fields.IntField()
    status = fields.CharEnumField(VersionStatus, default=VersionStatus.draft, max_length=12)
    content = fields.JSONField()
    content_hash = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    published_at = fields.DatetimeField(null=True)
    superseded_at = fields.DatetimeField(null=True)

    class Meta:
        table = "matter_version"
        unique_together = (("matter", "no"),)

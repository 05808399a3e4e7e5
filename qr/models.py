"""QR code models: dynamic codes, daily scan counts, invalid scans, WeChat-issued codes."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from qr.types import CodeAction, CodeStatus, ScanChannel

__all__ = ["Code", "CodeAction", "CodeStatus", "ScanChannel"]


class Code(Model):
    """A printed code: a stable slug whose target is decided at scan time."""

    id = fields.IntField(primary_key=True)
    slug = fields.CharField(max_length=16, unique=True)
    matter_code = fields.CharField(max_length=40, db_index=True)
    action = fields.CharEnumField(CodeAction, max_length=10, default=CodeAction.guide)
    status = fields.CharEnumField(CodeStatus, max_length=10, default=CodeStatus.active)
    valid_since = fields.DatetimeField(null=True)
    valid_until = fields.DatetimeField(null=True)
    max_scans = fields.IntField(null=True)
    scans = fields.BigIntField(default=0)
    label = fields.CharField(max_length=200, default="")
    hall_code = fields.CharField(max_length=32, null=True)
    is_default = fields.BooleanField(default=False)
    created_by = fields.CharField(max_length=64, default="system")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "qr_code"


class ScanDaily(Model):
    """Counted scans of one code on one day (Asia/Shanghai) from one channel."""

    id = fields.IntField(primary_key=True)
    slug = fields.CharField(max_length=16)
    day = fields.DateField()
    channel = fields.CharEnumField(ScanChannel, max_length=12)
    scans = fields.BigIntField(default=0)

    class Meta:
        table = "qr_scan_daily"
        unique_together = (("slug", "day", "channel"),)


class ScanVisitors(Model):
    """Unique visitors of one code on one day (HyperLogLog estimate, persisted from Redis)."""

    id = fields.IntField(primary_key=True)
    slug = fields.CharField(max_length=16)
    day = fields.DateField()
    visitors = fields.BigIntField(default=0)

    class Meta:
        table = "qr_scan_visitors"
        unique_together = (("slug", "day"),)


class InvalidScan(Model):
    """Scans that did not resolve, per day and reason (unknown, disabled, expired, exhausted ...)."""

    id = fields.IntField(primary_key=True)
    day = fields.DateField()
    reason = fields.CharField(max_length=20)
    scans = fields.BigIntField(default=0)

    class Meta:
        table = "qr_invalid_scan"
        unique_together = (("day", "reason"),)


class WeChatCode(Model):
    """A code WeChat issued for a matter: an official-account scene QR or a mini-program code."""

    id = fields.IntField(primary_key=True)
    matter_code = fields.CharField(max_length=40)
    kind = fields.CharField(max_length=12)  # "mp_scene" | "wxa"
    slug = fields.CharField(max_length=16)
    ticket = fields.CharField(max_length=200, null=True)
    url = fields.CharField(max_length=500, null=True)
    image = fields.BinaryField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "qr_wechat_code"
        unique_together = (("matter_code", "kind"),)

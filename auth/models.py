"""Identity models: citizens and their channel bindings, staff, sessions (refresh families), signing keys."""

from __future__ import annotations

import enum

from tortoise import fields
from tortoise.models import Model

from auth.types import Role  # staff roles live with the typed results; `auth.models.Role` stays importable


class Channel(enum.StrEnum):
    """Where a citizen signs in from."""

    miniprogram = "miniprogram"
    official_account = "official_account"


class Citizen(Model):
    """One person, whatever channel they arrive through. PII columns hold AES-GCM tokens."""

    id = fields.UUIDField(primary_key=True)
    loa = fields.SmallIntField(default=1)
    unionid = fields.CharField(max_length=64, null=True, unique=True)
    phone_enc = fields.TextField(null=True)
    phone_bidx = fields.CharField(max_length=64, null=True, unique=True)
    phone_verified_at = fields.DatetimeField(null=True)
    name_enc = fields.TextField(null=True)
    id_number_enc = fields.TextField(null=True)
    id_number_bidx = fields.CharField(max_length=64, null=True, unique=True)
    real_name_at = fields.DatetimeField(null=True)
    real_name_ref = fields.CharField(max_length=100, null=True)
    disabled = fields.BooleanField(default=False)
    merged_into = fields.UUIDField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "citizen"


class ChannelBinding(Model):
    """A WeChat identity (app id + openid) bound to a citizen."""

    id = fields.IntField(primary_key=True)
    citizen: fields.ForeignKeyRelation[Citizen] = fields.ForeignKeyField(
        "models.Citizen", related_name="bindings", on_delete=fields.CASCADE
    )
    channel = fields.CharEnumField(Channel, max_length=20)
    appid = fields.CharField(max_length=64)
    openid = fields.CharField(max_length=128)
    unionid = fields.CharField(max_length=64, null=True)
    subscribed = fields.BooleanField(default=True)
    unsubscribed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)

    class Meta:
        table = "channel_binding"
        unique_together = (("appid", "openid"),)


class Staff(Model):
    """A staff account: front desk clerk, department reviewer or administrator."""

    id = fields.UUIDField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    display_name = fields.CharField(max_length=100, default="")
    password_hash = fields.CharField(max_length=255)
    role = fields.CharEnumField(Role, max_length=10)
    hall_code = fields.CharField(max_length=32, null=True)
    departments = fields.JSONField(default=list)
    disabled = fields.BooleanField(default=False)
    failed_attempts = fields.IntField(default=0)
    locked_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Two-factor sign-in (auth.totp): the secret as a PII token, set when enrolment starts and
    # confirmed by `totp_enrolled_at`; the last accepted time step (no replay); recovery code hashes.
    totp_secret_enc = fields.TextField(null=True)
    totp_enrolled_at = fields.DatetimeField(null=True)
    totp_last_step = fields.BigIntField(null=True)
    totp_recovery = fields.JSONField(default=list)

    class Meta:
        table = "staff"


class AuthSession(Model):
    """A sign-in: the family every rotated refresh token belongs to (the `sid` claim)."""

    id = fields.UUIDField(primary_key=True)
    subject = fields.CharField(max_length=64, db_index=True)
    audience = fields.CharField(max_length=20)
    created_at = fields.DatetimeField(auto_now_add=True)
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=32, null=True)

    class Meta:
        table = "auth_session"


class RefreshToken(Model):
    """One refresh token of a session, stored as a hash. A used token is never valid again."""

    id = fields.IntField(primary_key=True)
    session: fields.ForeignKeyRelation[AuthSession] = fields.ForeignKeyField(
        "models.AuthSession", related_name="refresh_tokens", on_delete=fields.CASCADE
    )
    token_hash = fields.CharField(max_length=64, unique=True)
    issued_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_token"


class SigningKey(Model):
    """An Ed25519 key: the active one signs, the others verify until retired."""

    kid = fields.CharField(max_length=32, primary_key=True)
    private_enc = fields.TextField()
    public_jwk = fields.JSONField()
    active = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    retired_at = fields.DatetimeField(null=True)

    class Meta:
        table = "signing_key"

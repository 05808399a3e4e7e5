"""Typed settings: each field states its environment variable, default and checks once."""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from annotated_types import Ge, Le
from pydantic import (
    AfterValidator,
    AliasGenerator,
    BeforeValidator,
    DirectoryPath,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent

DEV_SECRET = "dev-only-secret-not-for-production"  # noqa: S105 - development mode only
DEV_TEMPLATES = {
    "booking_reminder": "dev-tpl-booking-reminder",
    "booking_no_show": "dev-tpl-booking-no-show",
    "case_progress": "dev-tpl-case-progress",
    "consult_answered": "dev-tpl-consult-answered",
    "rating_reply": "dev-tpl-rating-reply",
}


class SettingsError(RuntimeError):
    """Raised when the environment does not describe a startable service."""


class _Marker:
    """A tag in a field's Annotated metadata."""

    def __init__(self, meaning: str) -> None:
        self.meaning = meaning

    def __repr__(self) -> str:
        return f"<{self.meaning}>"


REQUIRED_IN_PRODUCTION = _Marker("production requires the variable to be set")
NOT_FROM_ENV = _Marker("set by code only, never read from the environment")


# ---------------------------------------------------------------- value checks
# A `str` reaching a field is the environment's text; other values are the field's own type (set by code).


def _lowercase(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _key32(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64") from None
    if isinstance(value, bytes) and len(value) != 32:
        raise ValueError(f"must decode to 32 bytes, got {len(value)}")
    return value


def _pairs(value: Any) -> Any:
    """Parse `id:value,id:value`."""
    if not isinstance(value, str):
        return value
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in value.split(","))):
        key, sep, text = item.partition(":")
        if not sep or not key or not text:
            raise ValueError("must look like id:value,id:value")
        if key.strip() in out:
            raise ValueError(f"names {key.strip()!r} twice")
        out[key.strip()] = text.strip()
    return out


def _millis(low: int, high: int) -> BeforeValidator:
    """Seconds, written in the environment as whole milliseconds between low and high."""

    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            ms = int(value)
        except ValueError:
            raise ValueError(f"must be an integer, got {value!r}") from None
        if not low <= ms <= high:
            raise ValueError(f"must be between {low} and {high}, got {ms}")
        return ms / 1000

    return BeforeValidator(parse)


def _no_trailing_slash(value: str) -> str:
    return value.rstrip("/")


def _database_url(value: str) -> str:
    if value.startswith("postgresql://"):
        value = "postgres://" + value[len("postgresql://") :]
    if not value.startswith(("sqlite://", "postgres://")):
        raise ValueError("must start with sqlite:// or postgres://")
    return value


def _http_url(value: str) -> str:
    value = value.rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"must be an absolute http(s) URL, got {value!r}")
    return value


def _callback_token(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]{3,32}", value):
        raise ValueError("must be 3-32 letters or digits (as the WeChat console requires)")
    return value


def _aes_key(value: str) -> str:
    try:
        ok = len(value) == 43 and len(base64.b64decode(value + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise ValueError("must be the console's 43-character EncodingAESKey")
    return value


def _targets(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return tuple(int(v) for v in value.split(","))
        except ValueError:
            raise ValueError(f"must be comma-separated percentages, got {value!r}") from None
    return value


def _roles(value: Any) -> Any:
    """Comma-separated staff roles; "none" (an empty variable reads as unset) names no role."""
    if not isinstance(value, str):
        return value
    names = tuple(filter(None, (v.strip().lower() for v in value.split(","))))
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in {"admin", "reviewer", "clerk"}]
    if unknown:
        raise ValueError(f"must be admin, reviewer, clerk or none, got {','.join(unknown)!r}")
    return names


def _percentages(value: tuple[int, ...]) -> tuple[int, ...]:
    if not value or any(not 0 <= v <= 100 for v in value):
        raise ValueError(f"must be percentages 0-100, got {','.join(map(str, value))!r}")
    return value


def _case_prefix(value: str) -> str:
    if not re.fullmatch(r"[A-Z]{1,6}", value):
        raise ValueError(f"must be 1-6 capital letters, got {value!r}")
    return value


def _derive(secret: str, purpose: str) -> bytes:
    """A development key derived from the dev secret (never used in production)."""
    return hashlib.sha256(f"{purpose}:{secret}".encode()).digest()


def _production(data: dict[str, Any]) -> bool:
    """For defaults that differ in production (`data`: the fields validated so far)."""
    return data.get("env") == "production"


Key32 = Annotated[bytes, BeforeValidator(_key32)]
Pairs = Annotated[dict[str, str], BeforeValidator(_pairs)]
PublicUrl = Annotated[str, AfterValidator(_http_url)]
BaseUrl = Annotated[str, AfterValidator(_no_trailing_slash)]
Stated = Annotated[str, REQUIRED_IN_PRODUCTION]  # production refuses the default: the variable must be set


class Settings(BaseSettings):
    """Every setting the service reads: `Settings.from_env()` in a process, `Settings(...)` in code."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        validate_default=True,
        # Each field reads one variable: its name upper-cased unless the field names another. Code sets fields by name.
        alias_generator=AliasGenerator(validation_alias=str.upper),
        validate_by_name=True,
        validate_by_alias=False,
        case_sensitive=True,
        env_ignore_empty=True,  # an empty variable counts as unset
        enable_decoding=False,  # values are plain text (lists are comma-separated), never JSON
    )

    env: Annotated[Literal["development", "test", "production"], BeforeValidator(_lowercase)] = Field(
        "development", validation_alias="APP_ENV"
    )
    database_url: Annotated[str, AfterValidator(_database_url), REQUIRED_IN_PRODUCTION] = (
        f"sqlite://{ROOT / 'data' / 'zuiduo.sqlite3'}"
    )
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    base_url: Annotated[PublicUrl, REQUIRED_IN_PRODUCTION] = Field(
        default_factory=lambda d: f"http://{d.get('host')}:{d.get('port')}"
    )
    workers: int = Field(1, ge=1, le=64)
    # pending connections the kernel queues for us (capped by net.core.somaxconn); Sanic's own default is 100
    listen_backlog: int = Field(1024, ge=1, le=65535)
    # seconds Sanic's main process waits for every worker to start (Sanic's own 30 s fails a busy 2-core start)
    worker_ack_seconds: int = Field(120, ge=1, le=3600)
    load_demo: bool = Field(default_factory=lambda d: not _production(d))
    auto_migrate: bool = Field(default_factory=lambda d: not _production(d))
    access_log: bool = True
    log_level: Annotated[str, AfterValidator(str.upper)] = "INFO"
    guide_cache_seconds: int = Field(60, ge=0, le=86400)
    cache_poll_seconds: Annotated[float, NOT_FROM_ENV] = 0.5
    # PostgreSQL connections per worker (more only queue in the database: see bench/README.md)
    db_pool_size: int = Field(8, ge=1, le=200)
    # Every database wait is bounded, and below Sanic's 30 s response timeout, so that an answer never
    # contradicts what was committed: a row lock (PostgreSQL lock_timeout), a statement, a transaction
    # left idle, a pooled connection, and the requests of one worker waiting on one hot row at once.
    db_lock_timeout_ms: int = Field(2000, ge=100, le=20000)
    db_statement_timeout_ms: int = Field(8000, ge=100, le=25000)
    db_idle_in_transaction_timeout_ms: int = Field(10000, ge=1000, le=25000)
    db_acquire_timeout_seconds: float = Field(10.0, ge=0.1, le=20)
    db_hot_row_concurrency: int = Field(4, ge=1, le=100)
    db_hot_row_wait_ms: int = Field(8000, ge=100, le=25000)  # in memory, holding no connection
    app_name: Annotated[str, NOT_FROM_ENV] = "zuiduo"
    manage_db: Annotated[bool, NOT_FROM_ENV] = True  # False in tests: the fixtures own the ORM's lifecycle
    forwarded_secret: str | None = Field(None, repr=False)  # Sanic trusts `Forwarded` headers carrying it
    # /metrics aggregates the workers' files here; prometheus_client reads the variable itself too, at import
    prometheus_multiproc_dir: DirectoryPath | None = None
    # /metrics asks for `Authorization: Bearer <this>` when set; without it /metrics is served in development only
    metrics_token: str | None = Field(None, min_length=16, repr=False)

    # Identity and secrets
    secret_key: Stated = Field(DEV_SECRET, repr=False)
    pii_keys: Annotated[dict[str, Key32], BeforeValidator(_pairs), REQUIRED_IN_PRODUCTION] = Field(
        default_factory=lambda d: {"dev1": _derive(d.get("secret_key", DEV_SECRET), "pii")}, repr=False
    )
    pii_active_kid: str = Field(default_factory=lambda d: next(reversed(d.get("pii_keys", {})), ""))
    pii_index_key: Annotated[Key32, REQUIRED_IN_PRODUCTION] = Field(
        default_factory=lambda d: _derive(d.get("secret_key", DEV_SECRET), "pii-index"), repr=False
    )
    jwt_issuer: BaseUrl = Field(default_factory=lambda d: d.get("base_url", ""))
    access_token_seconds: int = Field(900, ge=60, le=3600)
    refresh_token_days: int = Field(30, ge=1, le=365)
    partner_clients: Pairs = Field(default_factory=dict, repr=False)
    token_cache_size: int = Field(10_000, ge=0, le=1_000_000)
    # staff roles that must sign in with a second factor (TOTP); "none" exempts every role
    staff_totp_roles: Annotated[tuple[str, ...], BeforeValidator(_roles)] = ("admin", "reviewer")
    console_idle_minutes: int = Field(30, ge=1, le=24 * 60)  # an unused console session is signed out after this

    # WeChat (official account = mp, mini program = mini)
    wechat_api_base: BaseUrl = "https://api.weixin.qq.com"
    wechat_oauth_base: BaseUrl = "https://open.weixin.qq.com"
    wechat_mp_appid: Stated = "wxdevofficialacct"
    wechat_mp_secret: Stated = Field("dev-mp-secret", repr=False)
    wechat_mini_appid: Stated = "wxdevminiprogram"
    wechat_mini_secret: Stated = Field("dev-mini-secret", repr=False)
    wechat_timeout: Annotated[float, _millis(100, 5000)] = Field(5.0, validation_alias="WECHAT_TIMEOUT_MS")
    wechat_mini_page: str | None = None  # mini-program page that opens a scanned code (scene = slug)
    # The official account's message callback: its Token and EncodingAESKey (43 characters) from the console
    wechat_mp_token: Annotated[Stated, AfterValidator(_callback_token)] = Field("devcallbacktoken", repr=False)
    wechat_mp_aes_key: Annotated[Stated, AfterValidator(_aes_key)] = Field(
        "ZGV2LW9ubHktZW5jb2RpbmctYWVzLWtleS0zMmJ5dGU",  # dev only: base64 of 32 bytes, no "="
        repr=False,
    )
    # refuse plaintext messages (safe mode)
    wechat_mp_encrypted_only: bool = Field(default_factory=_production)
    # seconds a callback's timestamp may be off (and its nonce is remembered)
    wechat_callback_window: int = Field(300, ge=30, le=3600)
    # seconds before the callback answers `success` and lets the work finish alone
    wechat_reply_budget: Annotated[float, _millis(100, 4500)] = Field(4.0, validation_alias="WECHAT_REPLY_BUDGET_MS")
    # notification kind -> template id: official-account template messages and mini-program subscribe messages
    wechat_templates: Pairs = Field(default_factory=lambda d: {} if _production(d) else dict(DEV_TEMPLATES))
    wechat_subscribe_templates: Pairs = Field(default_factory=lambda d: {} if _production(d) else dict(DEV_TEMPLATES))

    # SMS and real-name verification
    sms_sender: Annotated[Literal["console", "http"], BeforeValidator(_lowercase)] = Field(
        default_factory=lambda d: "http" if _production(d) else "console"
    )
    sms_gateway_url: str | None = None
    sms_gateway_key: str | None = Field(None, repr=False)
    realname_verifier: Annotated[Literal["dev", "http"], BeforeValidator(_lowercase)] = Field(
        default_factory=lambda d: "http" if _production(d) else "dev"
    )
    realname_verifier_url: str | None = None
    # real-name attempts that reach the platform, a day: per account, per client address, per ID number
    realname_attempts_per_account_day: int = Field(5, ge=1, le=1000)
    realname_attempts_per_address_day: int = Field(20, ge=1, le=1_000_000)
    realname_attempts_per_id_day: int = Field(5, ge=1, le=1000)

    # Booking rules (per-hall calendars live in the database)
    booking_max_active: int = Field(5, ge=1, le=100)
    booking_noshow_limit: int = Field(3, ge=1, le=100)
    booking_noshow_days: int = Field(90, ge=1, le=365)
    booking_restrict_days: int = Field(30, ge=0, le=365)
    booking_reminder_hour: int = Field(10, ge=0, le=23)  # the day-before reminder goes out at this local hour
    checkin_undo_minutes: int = Field(5, ge=0, le=120)

    # Online submission and cases
    upload_dir: Path = ROOT / "data" / "uploads"
    upload_max_bytes: int = Field(20 * 1024 * 1024, ge=1024, le=200 * 1024 * 1024)
    upload_keep_hours: int = Field(24, ge=1, le=24 * 30)  # an upload no case uses is deleted after this long
    # Where material files live (app.storage): `local` is UPLOAD_DIR; `s3` is a bucket of an S3-compatible store
    storage_backend: Annotated[Literal["local", "s3"], BeforeValidator(_lowercase)] = "local"
    storage_s3_endpoint: PublicUrl | None = None  # e.g. http://minio:9000; unset means AWS's endpoint of the region
    storage_s3_bucket: str | None = None
    storage_s3_region: str = "us-east-1"
    storage_s3_access_key: str | None = Field(None, repr=False)
    storage_s3_secret_key: str | None = Field(None, repr=False)
    storage_s3_sse: bool = True  # ask the store to encrypt each object at rest (SSE-S3, AES256)
    # path-style URLs (endpoint/bucket/key), as MinIO serves; false for virtual-hosted stores (bucket.endpoint/key)
    storage_s3_path_style: bool = True
    case_no_prefix: Annotated[str, AfterValidator(_case_prefix)] = "ZJJ"
    # a case turns yellow when this share of its promised time is used
    case_warn_percent: int = Field(80, ge=1, le=100)
    progress_rate_per_minute: int = Field(10, ge=1, le=10_000_000)  # anonymous progress queries per client address
    # wrong query codes for one case number an hour, past which addresses that already failed on it are refused
    progress_rate_per_case_hour: int = Field(30, ge=1, le=10_000_000)
    progress_fail_per_address_hour: int = Field(20, ge=1, le=10_000_000)  # wrong query codes per client address
    progress_fail_per_address_day: int = Field(100, ge=1, le=10_000_000)
    # the case feed serves events older than this (later commits fill lower ids)
    feed_lag_seconds: int = Field(5, ge=0, le=600)

    # Consultation, ratings (好差评) and the reform indicators
    consult_days: int = Field(2, ge=1, le=30)  # working days within which a department answers a question
    consult_per_hour: int = Field(5, ge=1, le=1000)  # questions a citizen may ask an hour
    # days after a case is completed, a visit or an answer, during which it may be rated
    rating_window_days: int = Field(30, ge=1, le=365)
    rectify_days: int = Field(5, ge=1, le=60)  # working days a department has to close a bad rating's rectification
    # year 1 of the reform: the targets below apply to years 1, 2, 3 (and after)
    reform_start_year: int = Field(2018, ge=2000, le=2100)
    reform_targets: Annotated[tuple[int, ...], BeforeValidator(_targets), AfterValidator(_percentages)] = (80, 90, 95)

    def __init__(self, **values: Any) -> None:
        """Validate these fields (a `str` is a variable's text) and read nothing else."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            errors = [e for e in exc.errors() if e["type"] != "default_factory_not_called"]  # follow-ups of others
            raise SettingsError("; ".join(_explain(error) for error in errors)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the given values: the environment is read by `from_env` alone."""
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the environment (os.environ unless given) once; fail clearly when production lacks a secret."""
        values = _Environment(cls, os.environ if environ is None else environ)()
        return cls(**{**values, **overrides})

    @classmethod
    def variables(cls) -> dict[str, str]:
        """The environment variable of each field `from_env` reads (fields set only by code have none)."""
        return {name: _variable(name) for name, info in cls.model_fields.items() if NOT_FROM_ENV not in info.metadata}

    def replace(self, **changes: object) -> Self:
        """A new construction from the fields stated here plus these changes (unstated defaults are derived again)."""
        stated = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self)(**{**stated, **changes})

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """The rules that involve several fields, all reported in one message (production's missing secrets first)."""
        production = self.is_production
        problems: list[str] = []
        if production:
            missing = [
                _variable(name)
                for name, info in type(self).model_fields.items()
                if REQUIRED_IN_PRODUCTION in info.metadata and name not in self.model_fields_set
            ]
            if missing:
                problems.append("production mode requires these environment variables: " + ", ".join(missing))
            problems += _unsafe_in_production(self)
        if self.pii_active_kid not in self.pii_keys:
            problems.append(f"PII_ACTIVE_KID {self.pii_active_kid!r} is not one of PII_KEYS")
        if self.sms_sender == "console" and production:
            problems.append("SMS_SENDER=console is for development only")
        if self.sms_sender == "http" and not self.sms_gateway_url:
            problems.append("SMS_SENDER=http requires SMS_GATEWAY_URL")
        if self.realname_verifier == "dev" and production:
            problems.append("REALNAME_VERIFIER=dev is for development only")
        if self.realname_verifier == "http" and not self.realname_verifier_url:
            problems.append("REALNAME_VERIFIER=http requires REALNAME_VERIFIER_URL")
        problems += _storage_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def is_production(self) -> bool:
        """True when running in production mode (secrets required, no auto-migrate)."""
        return self.env == "production"

    @property
    def is_dev(self) -> bool:
        """True in development and test modes (dev-only commands allowed)."""
        return self.env != "production"

    @property
    def db_backend(self) -> str:
        """`sqlite` or `postgres`."""
        return "sqlite" if self.database_url.startswith("sqlite") else "postgres"


def _storage_problems(s: Settings) -> list[str]:
    """What the S3 backend lacks: a bucket always; credentials in production (never a machine's ambient ones)."""
    if s.storage_backend != "s3":
        return []
    problems = [] if s.storage_s3_bucket else ["STORAGE_BACKEND=s3 requires STORAGE_S3_BUCKET"]
    if bool(s.storage_s3_access_key) != bool(s.storage_s3_secret_key):
        problems.append("STORAGE_S3_ACCESS_KEY and STORAGE_S3_SECRET_KEY go together")
    elif s.is_production and not s.storage_s3_access_key:
        problems.append("STORAGE_BACKEND=s3 in production requires STORAGE_S3_ACCESS_KEY and STORAGE_S3_SECRET_KEY")
    return problems


# ---------------------------------------------------------------- production safety
# Values this repository ships for development: production refuses each of them even when stated explicitly.
DEV_VALUES: dict[str, frozenset[object]] = {
    "secret_key": frozenset({DEV_SECRET}),
    "wechat_mp_appid": frozenset({"wxdevofficialacct"}),
    "wechat_mp_secret": frozenset({"dev-mp-secret"}),
    "wechat_mini_appid": frozenset({"wxdevminiprogram"}),
    "wechat_mini_secret": frozenset({"dev-mini-secret"}),
    "wechat_mp_token": frozenset({"devcallbacktoken"}),
    "wechat_mp_aes_key": frozenset({"ZGV2LW9ubHktZW5jb2RpbmctYWVzLWtleS0zMmJ5dGU"}),
}
DEV_KEYS = frozenset({_derive(DEV_SECRET, "pii"), _derive(DEV_SECRET, "pii-index")})  # the development PII keys
MIN_SECRET_CHARS = 32
MIN_DISTINCT_CHARS = 8  # a random 32-character hex secret has fewer with a chance below one in a million
MIN_DISTINCT_KEY_BYTES = 16  # 32 random bytes have about 30 distinct values
MIN_CALLBACK_TOKEN_CHARS = 16


def _patterned(values: bytes | str) -> str | None:
    """Why these characters or bytes are not random (None when no pattern is seen)."""
    codes = list(values.encode() if isinstance(values, str) else values)
    distinct = len(set(codes))
    if distinct == 1:
        return "repeats one character" if isinstance(values, str) else "repeats one byte"
    if len({b - a for a, b in itertools.pairwise(codes)}) == 1:
        return "is a counting sequence"
    period = next((p for p in range(1, len(codes) // 2 + 1) if codes == (codes[:p] * len(codes))[: len(codes)]), None)
    if period is not None:
        return f"repeats a {period}-character pattern"
    return None


def _weak_secret(text: str, *, minimum: int) -> str | None:
    """Why a secret string is too weak for production (None when it is acceptable)."""
    if len(text) < minimum:
        return f"must be at least {minimum} characters"
    pattern = _patterned(text)
    if pattern:
        return pattern
    if len(set(text)) < MIN_DISTINCT_CHARS:
        return f"has fewer than {MIN_DISTINCT_CHARS} distinct characters"
    return None


def _weak_key(key: bytes) -> str | None:
    """Why a 32-byte key is not random (None when it looks random)."""
    if key in DEV_KEYS:
        return "is derived from the development SECRET_KEY"
    pattern = _patterned(key)
    if pattern:
        return pattern
    if len(set(key)) < MIN_DISTINCT_KEY_BYTES:
        return f"has fewer than {MIN_DISTINCT_KEY_BYTES} distinct bytes"
    if all(32 <= b < 127 for b in key):
        return "is printable text, not random bytes"
    return None


def _unsafe_in_production(s: Settings) -> list[str]:
    """Every stated value production refuses: development values, weak secrets and keys, a plain-http BASE_URL."""
    stated = s.model_fields_set
    problems: list[str] = []
    for name, values in DEV_VALUES.items():
        if name in stated and getattr(s, name) in values:
            problems.append(f"{_variable(name)} is the development value shipped with the repository")
    checks = {
        "secret_key": lambda v: _weak_secret(v, minimum=MIN_SECRET_CHARS),
        "wechat_mp_secret": lambda v: _weak_secret(v, minimum=1),
        "wechat_mini_secret": lambda v: _weak_secret(v, minimum=1),
        "wechat_mp_token": lambda v: _weak_secret(v, minimum=MIN_CALLBACK_TOKEN_CHARS),
        "wechat_mp_aes_key": lambda v: _weak_key(base64.b64decode(v + "=")),
    }
    for name, check in checks.items():
        value = getattr(s, name)
        if name in stated and value not in DEV_VALUES[name] and (why := check(value)):
            problems.append(f"{_variable(name)} {why}")
    keys = {f"PII_KEYS[{kid}]": key for kid, key in s.pii_keys.items()} if "pii_keys" in stated else {}
    if "pii_index_key" in stated:
        keys["PII_INDEX_KEY"] = s.pii_index_key
    for label, key in keys.items():
        if why := _weak_key(key):
            problems.append(f"{label} {why}")
    seen: dict[bytes, str] = {}
    for label, key in keys.items():
        if key in seen:
            problems.append(f"{label} is the same key as {seen[key]} (one key per purpose)")
        seen.setdefault(key, label)
    if "base_url" in stated and urlsplit(s.base_url).scheme != "https":
        problems.append(
            f"BASE_URL must start with https:// in production (http drops Secure from cookies), got {s.base_url!r}"
        )
    return problems


class _Environment(EnvSettingsSource):
    """The variables of one mapping, each field reading exactly its own variable."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k: v for k, v in self._environ.items() if not (self.env_ignore_empty and v == "")}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = None if NOT_FROM_ENV in field.metadata else _variable(field_name)
        return (self.env_vars.get(variable) if variable else None), field_name, False


def _variable(field_name: str) -> str:
    """The environment variable of a field."""
    alias = Settings.model_fields[field_name].validation_alias
    return alias if isinstance(alias, str) else field_name.upper()


def _explain(error: ErrorDetails) -> str:
    """One validation error, naming the variable as the operator writes it."""
    loc = error["loc"]
    if not loc:  # a rule over several fields: its message names them
        return str(error.get("ctx", {}).get("error", error["msg"]))
    field = str(loc[0])
    if field not in Settings.model_fields:
        field = next((f for f in Settings.model_fields if _variable(f) == field), field)
    name = (_variable(field) if field in Settings.model_fields else field) + "".join(
        f"[{part}]" for part in loc[1:] if isinstance(part, str)
    )
    kind, got, ctx = error["type"], error.get("input"), error.get("ctx", {})
    if kind == "value_error":
        text = str(ctx["error"])
    elif kind in {"int_parsing", "int_from_float", "int_type"}:
        text = f"must be an integer, got {got!r}"
    elif kind in {"greater_than_equal", "less_than_equal"}:
        low, high = _bounds(Settings.model_fields[field])
        text = f"must be between {low} and {high}, got {got}"
    elif kind == "literal_error":
        text = f"must be {str(ctx['expected']).replace(chr(39), '')}, got {got!r}"
    elif kind == "bool_parsing":
        text = f"must be true or false, got {got!r}"
    elif kind == "extra_forbidden":
        text = "is not a setting"
    else:  # the value may be a secret: not repeated
        text = f"is not valid: {error['msg']}"
    return f"{name} {text}"


def _bounds(info: FieldInfo) -> tuple[object, object]:
    low = next((m.ge for m in info.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in info.metadata if isinstance(m, Le)), None)
    return low, high

"""Typed settings: each field states its environment variable, default and checks once."""

from __future__ import annotations

import base64
import binascii
import hashlib
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
    load_demo: bool = Field(default_factory=lambda d: not _production(d))
    auto_migrate: bool = Field(default_factory=lambda d: not _production(d))
    access_log: bool = True
    log_level: Annotated[str, AfterValidator(str.upper)] = "INFO"
    guide_cache_seconds: int = Field(60, ge=0, le=86400)
    cache_poll_seconds: Annotated[float, NOT_FROM_ENV] = 0.5
    # PostgreSQL connections per worker (more only queue in the database: see bench/README.md)
    db_pool_size: int = Field(8, ge=1, le=200)
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
    case_no_prefix: Annotated[str, AfterValidator(_case_prefix)] = "ZJJ"
    # a case turns yellow when this share of its promised time is used
    case_warn_percent: int = Field(80, ge=1, le=100)
    progress_rate_per_minute: int = Field(10, ge=1, le=10_000_000)  # anonymous progress queries per client address
    # anonymous queries of one case number (guessing its code)
    progress_rate_per_case_hour: int = Field(30, ge=1, le=10_000_000)
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
        """The rules that involve several fields; production's missing secrets are named first."""
        production = self.is_production
        if production:
            missing = [
                _variable(name)
                for name, info in type(self).model_fields.items()
                if REQUIRED_IN_PRODUCTION in info.metadata and name not in self.model_fields_set
            ]
            if missing:
                raise ValueError("production mode requires these environment variables: " + ", ".join(missing))
            if len(self.secret_key) < 32:
                raise ValueError("SECRET_KEY must be at least 32 characters")
        if self.pii_active_kid not in self.pii_keys:
            raise ValueError(f"PII_ACTIVE_KID {self.pii_active_kid!r} is not one of PII_KEYS")
        if self.sms_sender == "console" and production:
            raise ValueError("SMS_SENDER=console is for development only")
        if self.sms_sender == "http" and not self.sms_gateway_url:
            raise ValueError("SMS_SENDER=http requires SMS_GATEWAY_URL")
        if self.realname_verifier == "dev" and production:
            raise ValueError("REALNAME_VERIFIER=dev is for development only")
        if self.realname_verifier == "http" and not self.realname_verifier_url:
            raise ValueError("REALNAME_VERIFIER=http requires REALNAME_VERIFIER_URL")
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

"""Typed settings, read once from the environment."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _key32(name: str, raw: str) -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{name} must be base64") from None
    if len(key) != 32:
        raise SettingsError(f"{name} must decode to 32 bytes, got {len(key)}")
    return key


def _derive(secret: str, purpose: str) -> bytes:
    """A development key derived from the dev secret (never used in production)."""
    return hashlib.sha256(f"{purpose}:{secret}".encode()).digest()


def _callback_token(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]{3,32}", raw):
        raise SettingsError("WECHAT_MP_TOKEN must be 3-32 letters or digits (as the WeChat console requires)")
    return raw


def _aes_key(raw: str) -> str:
    try:
        ok = len(raw) == 43 and len(base64.b64decode(raw + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise SettingsError("WECHAT_MP_AES_KEY must be the console's 43-character EncodingAESKey")
    return raw


def _targets(raw: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in raw.split(","))
    except ValueError:
        raise SettingsError(f"REFORM_TARGETS must be comma-separated percentages, got {raw!r}") from None
    if not values or any(not 0 <= v <= 100 for v in values):
        raise SettingsError(f"REFORM_TARGETS must be percentages 0-100, got {raw!r}")
    return values


def _case_prefix(raw: str) -> str:
    if not re.fullmatch(r"[A-Z]{1,6}", raw):
        raise SettingsError(f"CASE_NO_PREFIX must be 1-6 capital letters, got {raw!r}")
    return raw


def _pairs(name: str, raw: str) -> dict[str, str]:
    """Parse `id:value,id:value`."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, value = item.partition(":")
        if not sep or not key or not value:
            raise SettingsError(f"{name} must look like id:value,id:value")
        if key.strip() in out:
            raise SettingsError(f"{name} names {key.strip()!r} twice")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads; built once by `Settings.from_env`."""

    env: str = "development"
    database_url: str = f"sqlite://{ROOT / 'data' / 'zuiduo.sqlite3'}"
    redis_url: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    load_demo: bool = True
    auto_migrate: bool = True
    access_log: bool = True
    log_level: str = "INFO"
    guide_cache_seconds: int = 60
    cache_poll_seconds: float = 0.5
    max_page_size: int = 100
    db_pool_size: int = 8  # PostgreSQL connections per worker (more only queue in the database: see bench/README.md)
    app_name: str = "zuiduo"
    manage_db: bool = True  # False in tests: the fixtures own the ORM's lifecycle

    # Identity and secrets
    secret_key: str = DEV_SECRET
    pii_keys: dict[str, bytes] = field(default_factory=lambda: {"dev1": _derive(DEV_SECRET, "pii")})
    pii_active_kid: str = "dev1"
    pii_index_key: bytes = field(default_factory=lambda: _derive(DEV_SECRET, "pii-index"))
    jwt_issuer: str = "http://127.0.0.1:8000"
    access_token_seconds: int = 900
    refresh_token_days: int = 30
    partner_clients: dict[str, str] = field(default_factory=dict)
    token_cache_size: int = 10_000

    # WeChat (official account = mp, mini program = mini)
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_oauth_base: str = "https://open.weixin.qq.com"
    wechat_mp_appid: str = "wxdevofficialacct"
    wechat_mp_secret: str = "dev-mp-secret"  # noqa: S105 - dev only
    wechat_mini_appid: str = "wxdevminiprogram"
    wechat_mini_secret: str = "dev-mini-secret"  # noqa: S105 - dev only
    wechat_timeout: float = 5.0
    wechat_mini_page: str | None = None  # mini-program page that opens a scanned code (scene = slug)
    # The official account's message callback: its Token and EncodingAESKey (43 characters) from the console
    wechat_mp_token: str = "devcallbacktoken"  # noqa: S105 - dev only
    wechat_mp_aes_key: str = "ZGV2LW9ubHktZW5jb2RpbmctYWVzLWtleS0zMmJ5dGU"  # dev only: base64 of 32 bytes, no "="
    wechat_mp_encrypted_only: bool = False  # refuse plaintext messages (safe mode); production defaults to True
    wechat_callback_window: int = 300  # seconds a callback's timestamp may be off (and its nonce is remembered)
    wechat_reply_budget: float = 4.0  # seconds before the callback answers `success` and lets the work finish alone
    # notification kind -> template id: official-account template messages and mini-program subscribe messages
    wechat_templates: dict[str, str] = field(default_factory=lambda: dict(DEV_TEMPLATES))
    wechat_subscribe_templates: dict[str, str] = field(default_factory=lambda: dict(DEV_TEMPLATES))

    # SMS and real-name verification
    sms_sender: str = "console"
    sms_gateway_url: str | None = None
    sms_gateway_key: str | None = None
    realname_verifier: str = "dev"
    realname_verifier_url: str | None = None

    # Booking rules (per-hall calendars live in the database)
    booking_max_active: int = 5
    booking_noshow_limit: int = 3
    booking_noshow_days: int = 90
    booking_restrict_days: int = 30
    booking_reminder_hour: int = 10  # the day-before reminder goes out at this local hour
    checkin_undo_minutes: int = 5

    # Online submission and cases
    upload_dir: Path = ROOT / "data" / "uploads"
    upload_max_bytes: int = 20 * 1024 * 1024
    upload_keep_hours: int = 24  # an upload no case uses is deleted after this long
    case_no_prefix: str = "ZJJ"
    case_warn_percent: int = 80  # a case turns yellow when this share of its promised time is used
    progress_rate_per_minute: int = 10  # anonymous progress queries per client address
    progress_rate_per_case_hour: int = 30  # anonymous queries of one case number (guessing its code)
    feed_lag_seconds: int = 5  # the case feed serves events older than this (later commits fill lower ids)

    # Consultation, ratings (好差评) and the reform indicators
    consult_days: int = 2  # working days within which a department answers a question
    consult_per_hour: int = 5  # questions a citizen may ask an hour
    rating_window_days: int = 30  # days after a case is completed, a visit or an answer, during which it may be rated
    rectify_days: int = 5  # working days a department has to close the rectification of a bad rating
    reform_start_year: int = 2018  # year 1 of the reform: the targets below apply to years 1, 2, 3 (and after)
    reform_targets: tuple[int, ...] = (80, 90, 95)

    extra: dict[str, str] = field(default_factory=dict)

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

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Read the environment once; fail with a clear message when production lacks a secret."""
        env = dict(os.environ if environ is None else environ)
        mode = env.get("APP_ENV", "development").strip().lower()
        if mode not in {"development", "production", "test"}:
            raise SettingsError(f"APP_ENV must be development, test or production, got {mode!r}")
        production = mode == "production"
        required = (
            "DATABASE_URL",
            "BASE_URL",
            "SECRET_KEY",
            "PII_KEYS",
            "PII_INDEX_KEY",
            "WECHAT_MP_APPID",
            "WECHAT_MP_SECRET",
            "WECHAT_MINI_APPID",
            "WECHAT_MINI_SECRET",
            "WECHAT_MP_TOKEN",
            "WECHAT_MP_AES_KEY",
        )
        missing = [name for name in required if production and not env.get(name)]
        if missing:
            raise SettingsError("production mode requires these environment variables: " + ", ".join(missing))
        database_url = env.get("DATABASE_URL") or cls.database_url
        if database_url.startswith("postgresql://"):
            database_url = "postgres://" + database_url[len("postgresql://") :]
        if not database_url.startswith(("sqlite://", "postgres://")):
            raise SettingsError("DATABASE_URL must start with sqlite:// or postgres://")
        host = env.get("HOST") or "127.0.0.1"
        port = _int(env, "PORT", 8000, 1, 65535)
        base_url = (env.get("BASE_URL") or f"http://{host}:{port}").rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise SettingsError(f"BASE_URL must be an absolute http(s) URL, got {base_url!r}")
        secret = env.get("SECRET_KEY") or DEV_SECRET
        if production and len(secret) < 32:
            raise SettingsError("SECRET_KEY must be at least 32 characters")
        if env.get("PII_KEYS"):
            pii_keys = {
                kid: _key32(f"PII_KEYS[{kid}]", raw) for kid, raw in _pairs("PII_KEYS", env["PII_KEYS"]).items()
            }
        else:
            pii_keys = {"dev1": _derive(secret, "pii")}
        active = env.get("PII_ACTIVE_KID") or list(pii_keys)[-1]
        if active not in pii_keys:
            raise SettingsError(f"PII_ACTIVE_KID {active!r} is not one of PII_KEYS")
        index_key = (
            _key32("PII_INDEX_KEY", env["PII_INDEX_KEY"]) if env.get("PII_INDEX_KEY") else _derive(secret, "pii-index")
        )
        sms_sender = (env.get("SMS_SENDER") or ("http" if production else "console")).lower()
        if sms_sender not in {"console", "http"}:
            raise SettingsError("SMS_SENDER must be console or http")
        if sms_sender == "console" and production:
            raise SettingsError("SMS_SENDER=console is for development only")
        if sms_sender == "http" and not env.get("SMS_GATEWAY_URL"):
            raise SettingsError("SMS_SENDER=http requires SMS_GATEWAY_URL")
        verifier = (env.get("REALNAME_VERIFIER") or ("http" if production else "dev")).lower()
        if verifier not in {"dev", "http"}:
            raise SettingsError("REALNAME_VERIFIER must be dev or http")
        if verifier == "dev" and production:
            raise SettingsError("REALNAME_VERIFIER=dev is for development only")
        if verifier == "http" and not env.get("REALNAME_VERIFIER_URL"):
            raise SettingsError("REALNAME_VERIFIER=http requires REALNAME_VERIFIER_URL")
        values: dict[str, object] = dict(
            env=mode,
            database_url=database_url,
            redis_url=env.get("REDIS_URL") or None,
            base_url=base_url,
            host=host,
            port=port,
            workers=_int(env, "WORKERS", 1, 1, 64),
            load_demo=_bool(env.get("LOAD_DEMO"), not production),
            auto_migrate=_bool(env.get("AUTO_MIGRATE"), not production),
            access_log=_bool(env.get("ACCESS_LOG"), True),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            guide_cache_seconds=_int(env, "GUIDE_CACHE_SECONDS", 60, 0, 86400),
            max_page_size=_int(env, "MAX_PAGE_SIZE", 100, 10, 1000),
            db_pool_size=_int(env, "DB_POOL_SIZE", 8, 1, 200),
            secret_key=secret,
            pii_keys=pii_keys,
            pii_active_kid=active,
            pii_index_key=index_key,
            jwt_issuer=(env.get("JWT_ISSUER") or base_url).rstrip("/"),
            access_token_seconds=_int(env, "ACCESS_TOKEN_SECONDS", 900, 60, 3600),
            refresh_token_days=_int(env, "REFRESH_TOKEN_DAYS", 30, 1, 365),
            partner_clients=_pairs("PARTNER_CLIENTS", env.get("PARTNER_CLIENTS", "")),
            token_cache_size=_int(env, "TOKEN_CACHE_SIZE", 10_000, 0, 1_000_000),
            wechat_timeout=_int(env, "WECHAT_TIMEOUT_MS", 5000, 100, 5000) / 1000,
            wechat_api_base=(env.get("WECHAT_API_BASE") or cls.wechat_api_base).rstrip("/"),
            wechat_oauth_base=(env.get("WECHAT_OAUTH_BASE") or cls.wechat_oauth_base).rstrip("/"),
            wechat_mp_appid=env.get("WECHAT_MP_APPID") or cls.wechat_mp_appid,
            wechat_mp_secret=env.get("WECHAT_MP_SECRET") or cls.wechat_mp_secret,
            wechat_mini_appid=env.get("WECHAT_MINI_APPID") or cls.wechat_mini_appid,
            wechat_mini_secret=env.get("WECHAT_MINI_SECRET") or cls.wechat_mini_secret,
            wechat_mini_page=env.get("WECHAT_MINI_PAGE") or None,
            wechat_mp_token=_callback_token(env.get("WECHAT_MP_TOKEN") or cls.wechat_mp_token),
            wechat_mp_aes_key=_aes_key(env.get("WECHAT_MP_AES_KEY") or cls.wechat_mp_aes_key),
            wechat_mp_encrypted_only=_bool(env.get("WECHAT_MP_ENCRYPTED_ONLY"), production),
            wechat_callback_window=_int(env, "WECHAT_CALLBACK_WINDOW", 300, 30, 3600),
            wechat_reply_budget=_int(env, "WECHAT_REPLY_BUDGET_MS", 4000, 100, 4500) / 1000,
            wechat_templates=_pairs("WECHAT_TEMPLATES", env["WECHAT_TEMPLATES"])
            if env.get("WECHAT_TEMPLATES")
            else ({} if production else dict(DEV_TEMPLATES)),
            wechat_subscribe_templates=_pairs("WECHAT_SUBSCRIBE_TEMPLATES", env["WECHAT_SUBSCRIBE_TEMPLATES"])
            if env.get("WECHAT_SUBSCRIBE_TEMPLATES")
            else ({} if production else dict(DEV_TEMPLATES)),
            sms_sender=sms_sender,
            sms_gateway_url=env.get("SMS_GATEWAY_URL") or None,
            sms_gateway_key=env.get("SMS_GATEWAY_KEY") or None,
            realname_verifier=verifier,
            realname_verifier_url=env.get("REALNAME_VERIFIER_URL") or None,
            booking_max_active=_int(env, "BOOKING_MAX_ACTIVE", 5, 1, 100),
            booking_noshow_limit=_int(env, "BOOKING_NOSHOW_LIMIT", 3, 1, 100),
            booking_noshow_days=_int(env, "BOOKING_NOSHOW_DAYS", 90, 1, 365),
            booking_restrict_days=_int(env, "BOOKING_RESTRICT_DAYS", 30, 0, 365),
            booking_reminder_hour=_int(env, "BOOKING_REMINDER_HOUR", 10, 0, 23),
            checkin_undo_minutes=_int(env, "CHECKIN_UNDO_MINUTES", 5, 0, 120),
            upload_dir=Path(env["UPLOAD_DIR"]) if env.get("UPLOAD_DIR") else cls.upload_dir,
            upload_max_bytes=_int(env, "UPLOAD_MAX_BYTES", 20 * 1024 * 1024, 1024, 200 * 1024 * 1024),
            upload_keep_hours=_int(env, "UPLOAD_KEEP_HOURS", 24, 1, 24 * 30),
            case_no_prefix=_case_prefix(env.get("CASE_NO_PREFIX") or cls.case_no_prefix),
            case_warn_percent=_int(env, "CASE_WARN_PERCENT", 80, 1, 100),
            progress_rate_per_minute=_int(env, "PROGRESS_RATE_PER_MINUTE", 10, 1, 10_000_000),
            progress_rate_per_case_hour=_int(env, "PROGRESS_RATE_PER_CASE_HOUR", 30, 1, 10_000_000),
            feed_lag_seconds=_int(env, "FEED_LAG_SECONDS", 5, 0, 600),
            consult_days=_int(env, "CONSULT_DAYS", 2, 1, 30),
            consult_per_hour=_int(env, "CONSULT_PER_HOUR", 5, 1, 1000),
            rating_window_days=_int(env, "RATING_WINDOW_DAYS", 30, 1, 365),
            rectify_days=_int(env, "RECTIFY_DAYS", 5, 1, 60),
            reform_start_year=_int(env, "REFORM_START_YEAR", 2018, 2000, 2100),
            reform_targets=_targets(env.get("REFORM_TARGETS") or "80,90,95"),
        )
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

"""Typed settings, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


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
    admin_token: str = "dev-admin-token"  # noqa: S105 - dev only; production requires ADMIN_TOKEN
    load_demo: bool = True
    auto_migrate: bool = True
    access_log: bool = True
    log_level: str = "INFO"
    guide_cache_seconds: int = 60
    cache_poll_seconds: float = 0.5
    max_page_size: int = 100
    app_name: str = "zuiduo"
    manage_db: bool = True  # False in tests: the fixtures own the ORM's lifecycle
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        """True when running in production mode (secrets required, no auto-migrate)."""
        return self.env == "production"

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
        missing = [name for name in ("DATABASE_URL", "ADMIN_TOKEN", "BASE_URL") if production and not env.get(name)]
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
        values: dict[str, object] = dict(
            env=mode,
            database_url=database_url,
            redis_url=env.get("REDIS_URL") or None,
            base_url=base_url,
            host=host,
            port=port,
            workers=_int(env, "WORKERS", 1, 1, 64),
            admin_token=env.get("ADMIN_TOKEN") or cls.admin_token,
            load_demo=_bool(env.get("LOAD_DEMO"), not production),
            auto_migrate=_bool(env.get("AUTO_MIGRATE"), not production),
            access_log=_bool(env.get("ACCESS_LOG"), True),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            guide_cache_seconds=_int(env, "GUIDE_CACHE_SECONDS", 60, 0, 86400),
            max_page_size=_int(env, "MAX_PAGE_SIZE", 100, 10, 1000),
        )
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

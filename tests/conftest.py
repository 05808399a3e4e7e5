"""Shared fixtures: settings per backend, one migrated database per session, a clean slate per test,
the app and its ASGI client, the store, the clock."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from sanic import Sanic
from sanic_testing.testing import ASGI_HOST, ASGI_PORT, SanicASGITestClient, TestingResponse
from tortoise import connections

from app import clock, db
from app.settings import Settings
from app.store import reset_fake_store

DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("TEST_REDIS_URL") or None
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if REDIS_URL and _WORKER.startswith("gw"):
    # Parallel workers flush their store between tests: each gets its own Redis database.
    _base, _, _db = REDIS_URL.rpartition("/")
    REDIS_URL = f"{_base}/{int(_db or 0) - int(_WORKER[2:])}"
# The SQLite trigger of migration 0015, restored after each clean slate.
_AUDIT_NO_DELETE = importlib.import_module("app.migrations.0015_audit_log")._SQLITE[1]
BACKEND = "postgres" if DATABASE_URL.startswith(("postgres://", "postgresql://")) else "sqlite"
TABLES = [
    "audit_log",
    "consultation",
    "rating",
    "rectification",
    "rectification_step",
    "upload",
    "case_record",
    "case_material",
    "case_event",
    "case_sequence",
    "booking",
    "booking_slot",
    "booking_account",
    "queue_ticket",
    "queue_call",
    "booking_revoked_ticket",
    "hall_schedule",
    "hall_closure",
    "hall_counter",
    "queue_counter",
    "checkin",
    "desk_scan",
    "notification",
    "idempotency_record",
    "qr_code",
    "qr_scan_daily",
    "qr_scan_visitors",
    "qr_invalid_scan",
    "qr_wechat_code",
    "refresh_token",
    "auth_session",
    "channel_binding",
    "citizen",
    "staff",
    "signing_key",
    "matter_version",
    "matter",
    "hall",
    "department",
    "job_lease",
]

Sanic.test_mode = True


def pytest_report_header(config: pytest.Config) -> str:
    """Say which backend this run uses."""
    return f"backend: {BACKEND} database, {'redis' if REDIS_URL else 'in-process'} store"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Row-lock tests only mean something on PostgreSQL; browser and real-server tests run in one pass.

    `make test` runs the suite twice (SQLite, then PostgreSQL + Redis). The end-to-end tests start their
    own servers (most on a SQLite file of their own, as `make run` does) and take minutes: the first pass
    sets TEST_SKIP_E2E=1 so they run once, in the second.
    """
    if os.environ.get("TEST_SKIP_E2E") == "1":
        once = pytest.mark.skip(reason="end-to-end: run once, in the PostgreSQL + Redis pass")
        for item in items:
            if "tests/e2e/" in str(item.path).replace("\\", "/"):
                item.add_marker(once)
    if BACKEND == "postgres":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL row locks (SQLite run)")
    for item in items:
        if item.get_closest_marker("postgres") is not None:
            item.add_marker(skip)


def _private_pg_url(url: str, name: str) -> str:
    parts = urlsplit(url.replace("postgresql://", "postgres://", 1))
    return urlunsplit(parts._replace(path=f"/{name}"))


def pg_admin(sql: str) -> None:
    """Run one statement on the PostgreSQL server's maintenance database (CREATE/DROP DATABASE)."""
    import asyncio

    async def run() -> None:
        conn = await asyncpg.connect(_private_pg_url(DATABASE_URL, "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def scratch_pg_database(prefix: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database next to TEST_DATABASE_URL, dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield _private_pg_url(DATABASE_URL, name)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private database for this session: a temp SQLite file or a fresh PostgreSQL database."""
    if BACKEND == "sqlite":
        yield f"sqlite://{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return
    with scratch_pg_database("zuiduo_test") as url:
        yield url


@pytest.fixture(scope="session")
def base_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for the test backend."""
    return Settings(
        upload_dir=tmp_path_factory.mktemp("uploads"),
        env="test",
        database_url=database_url,
        redis_url=REDIS_URL,
        base_url="http://testserver",
        load_demo=False,
        auto_migrate=False,
        access_log=False,
        log_level="WARNING",
        manage_db=False,
        cache_poll_seconds=0.05,
    )


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """argon2id with minimal cost in tests: the same algorithm, without 300 ms per hash."""
    from argon2 import PasswordHasher

    import auth.staff

    saved = auth.staff._hasher
    auth.staff._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    auth.staff._dummy_hash.cache_clear()
    yield
    auth.staff._hasher = saved
    auth.staff._dummy_hash.cache_clear()


@pytest.fixture(scope="session")
async def migrated(base_settings: Settings) -> AsyncIterator[None]:
    """The ORM opened and migrated once per session."""
    await db.init_db(base_settings)
    await db.migrate(base_settings)
    yield
    await db.close_db()


@pytest.fixture(autouse=True)
async def clean(migrated: None, base_settings: Settings) -> AsyncIterator[None]:
    """Every test starts with empty tables, an empty store and the real clock."""
    conn = connections.get("default")
    if BACKEND == "postgres":
        await conn.execute_script(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    else:
        # The audit log refuses DELETE (a trigger): the test slate drops that trigger around emptying it.
        await conn.execute_script("DROP TRIGGER IF EXISTS audit_log_no_delete")
        for table in TABLES:
            await conn.execute_script(f"DELETE FROM {table}")
        await conn.execute_script(_AUDIT_NO_DELETE)
    reset_fake_store()
    if REDIS_URL:
        import redis.asyncio as aioredis

        r = aioredis.from_url(REDIS_URL)
        await r.flushdb()
        await r.aclose()
    yield
    clock.set_clock(None)


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """The settings a test's app is built with."""
    return base_settings


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Sanic]:
    """A started app (listeners run) per test."""
    from app.server import create_app

    application = create_app(settings)
    yield application
    # Sanic's blueprints are module-level and keep every app they were registered on, with its routes: each
    # new app's registration (and sanic-ext's OpenAPI build) walks them all, so a test run slowed quadratically
    # (a fifth of a late test's time) and kept every app alive. A worker builds one app; tests build thousands.
    for blueprint in application.blueprints.values():
        blueprint.reset()
    type(application)._app_registry.pop(application.name, None)


class AppClient(SanicASGITestClient):
    """sanic-testing's ASGI client, but the app starts once per test and stops at the end.

    The stock client runs the whole startup and shutdown around every request (~120 ms each) and
    so rebuilds per-worker state (caches, token cache, scheduler) between requests, which hides
    exactly the behaviour a worker has in production.
    """

    async def start(self) -> None:
        """Start the app like a worker does."""
        self.sanic_app.router.reset()
        self.sanic_app.signal_router.reset()
        await self.sanic_app._startup()
        await self.sanic_app._server_event("init", "before")
        await self.sanic_app._server_event("init", "after")

    async def stop(self) -> None:
        """Stop the app (listeners run)."""
        await self.sanic_app._server_event("shutdown", "before")
        await self.sanic_app._server_event("shutdown", "after")

    async def request(self, method, url, gather_request=True, *args, **kwargs):  # type: ignore[override]
        """`(None, response)` like the stock client, without restarting the app."""
        if not url.startswith(("http:", "https:")):
            url = f"http://{ASGI_HOST}:{ASGI_PORT}{url if url.startswith('/') else '/' + url}"
        response = await httpx.AsyncClient.request(self, method, url, *args, **kwargs)
        response.__class__ = TestingResponse
        return None, response


@pytest.fixture
async def client(app: Sanic) -> AsyncIterator[AppClient]:
    """An ASGI client of the started app."""
    c = AppClient(app)
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


@pytest.fixture
def services(settings: Settings):
    """Every domain's dependencies, built by the one bootstrap as a worker builds them."""
    from app.bootstrap import build_services

    return build_services(settings)


@pytest.fixture
def auth_deps(services):
    """Identity services wired like the workers' (own store client and token cache)."""
    return services.auth


@pytest.fixture
def make_staff(auth_deps):
    """Create a staff account and return (staff, bearer headers)."""
    from auth.logins import issue_for_staff
    from auth.staff import create_staff

    async def make(
        role: str = "admin",
        *,
        username: str | None = None,
        hall: str | None = None,
        departments: list[str] | None = None,
        password: str = "correct horse battery",
    ):
        if role == "clerk" and hall is None:
            hall = "main"
        if role == "reviewer" and not departments:
            departments = ["scjgj"]
        staff = await create_staff(
            username=username or f"{role}_{uuid.uuid4().hex[:6]}",
            password=password,
            role=role,
            hall=hall,
            departments=departments,
        )
        pair = await issue_for_staff(auth_deps, staff=staff)
        return staff, {"Authorization": f"Bearer {pair.access_token}"}

    return make


@pytest.fixture
def make_citizen(auth_deps):
    """Create a citizen with a verified phone at a level of assurance; return (citizen id, headers, pair)."""
    from auth.devtokens import dev_token_for_phone
    from auth.models import Citizen

    async def make(*, phone: str | None = None, loa: int = 2, audience: str = "app"):
        phone = phone or "139" + uuid.uuid4().int.__str__()[:8]
        token = await dev_token_for_phone(auth_deps, phone=phone, loa=loa, audience=audience)
        citizen = await Citizen.get(phone_bidx=auth_deps.cipher.blind_index(phone, kind="phone"))
        return citizen, {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
async def admin_headers(make_staff) -> dict[str, str]:
    """Bearer headers of an administrator (staff role admin)."""
    _, headers = await make_staff("admin")
    return headers


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.current = start

    def __call__(self) -> dt.datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        """Move time forward."""
        self.current += dt.timedelta(**delta)


@pytest.fixture
def fake_clock() -> FakeClock:
    """Install a fake clock at 2026-09-30 10:00 Asia/Shanghai (the day before National Day)."""
    fake = FakeClock(dt.datetime(2026, 9, 30, 2, 0, tzinfo=dt.UTC))
    clock.set_clock(fake)
    return fake


@pytest.fixture
def fake_wechat(base_settings: Settings):
    """A fake WeChat API on 127.0.0.1 knowing the settings' official account and mini program."""
    from tests.fakes.wechat import FakeWeChat

    apps = {
        base_settings.wechat_mp_appid: base_settings.wechat_mp_secret,
        base_settings.wechat_mini_appid: base_settings.wechat_mini_secret,
    }
    with FakeWeChat(apps=apps) as server:
        yield server


@pytest.fixture
def wechat_settings(base_settings: Settings, fake_wechat) -> Settings:
    """Test settings whose WeChat API and OAuth pages are the fake."""
    return base_settings.replace(wechat_api_base=fake_wechat.url, wechat_oauth_base=fake_wechat.url)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[object]:
    """A local S3-compatible server (moto, in server mode) for this test process, started on first use."""
    from tests.fakes.s3 import LocalS3

    with LocalS3() as server:
        yield server

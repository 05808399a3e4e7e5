"""The application factory: the ONLY module that registers blueprints."""

from __future__ import annotations

import functools
import gc
import itertools
import logging
import os

from sanic import Sanic
from sanic.config import Config
from sanic_ext import Extend
from sanic_ext.extensions.openapi.extension import OpenAPIExtension

from app import apidocs, db, idempotency, sanicfast
from app.booking import jobs as booking_jobs
from app.booking.deps import BookingDeps
from app.bootstrap import Services, build_services
from app.cache import LocalCache
from app.cases import uploads
from app.cases.service import CaseDeps
from app.feedback.deps import FeedbackDeps
from app.guide.service import GuideDeps
from app.jobs import Scheduler
from app.matters.service import CatalogueDeps
from app.notify import delivery
from app.observe import AppRequest, configure_logging, flush_request_metrics, install
from app.settings import Settings
from app.stats.deps import StatsDeps
from app.store import Store
from app.web import Pages
from app.wechat.callback import Callback
from app.wechat.client import WeChatClient
from app.wechat.replies import Responder
from app.workers import install as supervise
from auth.deps import AuthDeps
from auth.tokens import TokenAuthority
from qr.analytics import ScanRecorder
from qr.service import CodeDeps

log = logging.getLogger("app")
_names = itertools.count()
_PREPARED_FLAG = "ZUIDUO_PREPARED"


async def prepare(settings: Settings) -> None:
    """Migrate, make sure a signing key exists, load the demo catalogue into an empty database (dev)."""
    from app.matters import demo, service

    if not (settings.auto_migrate or settings.load_demo):
        return
    services = build_services(settings)
    try:
        # Under the migration lock, the demo catalogue too: instances started together on an empty database
        # (two hosts, a compose `up`) would otherwise both see it empty and load it twice.
        async with db.migration_lock(settings):
            if settings.auto_migrate:
                await db.migrate(settings)
                await services.tokens.ensure_key()
            if settings.load_demo and await service.catalogue_is_empty():
                report = await demo.load_demo(services.catalogue)
                log.info("demo catalogue loaded: %s matters", report.created)
    finally:
        await services.aclose()


async def _housekeeping(services: Services) -> None:
    """Forget expired idempotency keys, revocations of tickets whose slots are over and unused uploads."""
    await idempotency.sweep()
    await booking_jobs.sweep_revocations()
    while await uploads.sweep(services.cases):
        pass


class AppContext:
    """What handlers find on `request.app.ctx`: the settings, the pages and the worker's services."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pages = Pages()
        self.services: Services  # set when the worker starts
        self.wechat_callback: Callback
        self.scheduler: Scheduler
        self.ready = False  # /readyz answers 503 until the worker has started (and again while it stops)

    # The worker's dependencies, under the names handlers use.
    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def cache(self) -> LocalCache:
        return self.services.cache

    @property
    def tokens(self) -> TokenAuthority:
        return self.services.tokens

    @property
    def wechat(self) -> WeChatClient:
        return self.services.wechat

    @property
    def scans(self) -> ScanRecorder:
        return self.services.scans

    @property
    def auth(self) -> AuthDeps:
        return self.services.auth

    @property
    def booking(self) -> BookingDeps:
        return self.services.booking

    @property
    def cases(self) -> CaseDeps:
        return self.services.cases

    @property
    def feedback(self) -> FeedbackDeps:
        return self.services.feedback

    @property
    def stats(self) -> StatsDeps:
        return self.services.stats

    @property
    def catalogue(self) -> CatalogueDeps:
        return self.services.catalogue

    @property
    def codes(self) -> CodeDeps:
        return self.services.codes

    @property
    def guide(self) -> GuideDeps:
        return self.services.guide


async def _flush_metrics() -> None:
    """The scheduler's job: this worker's request tallies into the Prometheus metrics."""
    flush_request_metrics()


def create_app(settings: Settings | None = None) -> Sanic:
    """Build the Sanic app for these settings (read from the environment when omitted)."""
    if not isinstance(settings, Settings):
        # Sanic's CLI (`sanic app.server:create_app --factory`) passes its own argument namespace.
        settings = Settings.from_env()
    configure_logging(settings.log_level)
    name = settings.app_name if next(_names) == 0 else f"{settings.app_name}_{os.getpid()}_{next(_names)}"
    ctx = AppContext(settings)
    app: Sanic[Config, AppContext] = Sanic(name, ctx=ctx, request_class=AppRequest)
    app.config.update(
        ACCESS_LOG=False,  # our structured access log replaces Sanic's
        REQUEST_MAX_SIZE=16 * 1024 * 1024,
        REQUEST_TIMEOUT=30,
        RESPONSE_TIMEOUT=30,
        KEEP_ALIVE_TIMEOUT=15,
        FORWARDED_SECRET=settings.forwarded_secret,
        **apidocs.CONFIG,  # /docs serves its own assets: no CDN
        CORS=False,
        HTTP_AUTO_OPTIONS=False,  # no CORS here, and each auto route costs a router rebuild at start
        # sanic-ext adds one HEAD route per GET route, each re-rendering the routers (quadratic in routes:
        # most of an app's start-up). The public pages that browsers and link checkers probe declare HEAD.
        HTTP_AUTO_HEAD=False,
        HEALTH=False,
    )
    sanicfast.install()
    # Only the OpenAPI extension: the others (injection above all) hook every request and are not used here.
    Extend(app, extensions=[OpenAPIExtension], built_in_extensions=False)
    apidocs.install(app)
    app.ext.openapi.describe(
        "最多跑一次 · 事项二维码政务服务 API",
        version="1.0.0",
        description='张家界市政务服务事项二维码平台后端。错误统一为 {"error": {"code", "message", "details"}}。',
    )
    app.ext.openapi.add_security_scheme(
        "bearer", "http", scheme="bearer", bearer_format="JWT",
        description="EdDSA access token (Authorization: Bearer ...); H5 pages use the httpOnly cookie zd_at",
    )  # fmt: skip
    install(app)
    supervise(app)

    from app.audit.views import bp as audit_admin
    from app.booking.views import bp as booking_staff
    from app.cases.views import bp as cases_staff
    from app.console.audit import bp as console_audit
    from app.console.cases import bp as console_cases
    from app.console.catalogue import bp as console_catalogue
    from app.console.codes import bp as console_codes
    from app.console.feedback import bp as console_feedback
    from app.console.halls import bp as console_halls
    from app.console.indicators import bp as console_indicators
    from app.console.outbox import bp as console_outbox
    from app.console.signin import bp as console_signin
    from app.console.staff import bp as console_staff
    from app.feedback.views import bp as feedback_staff
    from app.matters.views import bp as catalogue_admin
    from app.ops import bp as ops
    from app.stats.views import bp as stats_admin
    from app.web.account import bp as web_account
    from app.web.applications import bp as web_apply
    from app.web.bookings import bp as web_bookings
    from app.web.consult import bp as web_feedback
    from app.web.display import bp as web_display
    from app.web.scan import bp as web_scan
    from app.web.views import bp as web
    from app.wechat.views import bp as wechat_callback
    from auth.admin_views import bp as staff_admin
    from auth.views import bp as auth
    from miniprogram_api.bookings import bp as bookings
    from miniprogram_api.cases import bp as cases
    from miniprogram_api.catalogue import bp as catalogue
    from miniprogram_api.feedback import bp as feedback
    from miniprogram_api.me import bp as me
    from qr.views import bp as qr

    for blueprint in (
        ops, auth, me, catalogue, bookings, cases, catalogue_admin, staff_admin, booking_staff, cases_staff, qr, web,
        web_scan, web_account, web_bookings, web_apply, web_feedback, wechat_callback, feedback, feedback_staff,
        stats_admin, console_signin, console_cases, console_feedback, console_outbox, console_staff, console_indicators,
        web_display,
        console_catalogue, console_codes, console_halls,
        audit_admin, console_audit,
    ):  # fmt: skip
        app.blueprint(blueprint)

    @app.main_process_start
    async def _main_start(app: Sanic) -> None:
        if not settings.manage_db:
            return
        await db.init_db(settings)
        try:
            await prepare(settings)
        finally:
            await db.close_db()
        os.environ[_PREPARED_FLAG] = "1"

    @app.before_server_start
    async def _worker_start(app: Sanic) -> None:
        db.configure_waits(settings)
        if settings.manage_db:
            await db.init_db(settings)
            if not os.environ.get(_PREPARED_FLAG):
                await prepare(settings)
        services = build_services(settings)
        ctx.services = services
        ctx.wechat_callback = Callback(settings, services.store, Responder(services))
        scheduler = Scheduler()
        scheduler.add("cache-sync", settings.cache_poll_seconds, services.cache.sync)
        scheduler.add("scan-flush", 2.0, services.scans.flush)
        no_shows = functools.partial(booking_jobs.mark_no_shows, services.booking)
        scheduler.add("booking-no-shows", 60.0, no_shows, cluster=True)
        scheduler.add("housekeeping", 3600.0, functools.partial(_housekeeping, services), cluster=True)
        # Every worker drains the outbox (claims use SKIP LOCKED, so they never take the same row):
        # a job of each worker, not a cluster one.
        deliver = functools.partial(delivery.deliver, services.notify)
        scheduler.add("notify-delivery", 1.0, deliver)
        scheduler.add("metrics-flush", 1.0, _flush_metrics)
        ctx.scheduler = scheduler
        scheduler.start()
        # What start-up built lives as long as the worker: moved out of the collector's generations, it is no
        # longer traversed by every full collection (9 % of a request's instructions; bench/README.md).
        gc.collect()
        gc.freeze()
        ctx.ready = True
        log.info("worker ready", extra={"route": settings.db_backend})

    @app.before_server_stop
    async def _worker_stopping(app: Sanic) -> None:
        ctx.ready = False

    @app.after_server_stop
    async def _worker_stop(app: Sanic) -> None:
        await ctx.scheduler.stop()
        flush_request_metrics()
        await ctx.services.aclose()
        if settings.manage_db:
            await db.close_db()

    @app.main_process_stop
    async def _main_stop(app: Sanic) -> None:
        # A SQLite file with workers can hang the main process on an aiosqlite thread (ARCHITECTURE.md).
        if settings.manage_db:
            await db.close_db()

    return app

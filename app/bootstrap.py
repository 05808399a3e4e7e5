"""Build the services' dependencies from settings: the one wiring used by the server, the CLI and the tests.

Every domain receives its dependencies the same way: a frozen `...Deps` dataclass of that domain,
passed as the first argument of each service function that needs infrastructure. This module is
the only place those dataclasses are constructed (tests included, through `build_services`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from app.booking.deps import BookingDeps
from app.cache import LocalCache
from app.cases.service import CaseDeps
from app.feedback.deps import FeedbackDeps
from app.guide.service import GuideDeps
from app.matters.service import CatalogueDeps
from app.notify.deps import NotifyDeps
from app.settings import Settings
from app.stats.deps import StatsDeps
from app.storage import MaterialStore, make_material_store
from app.store import Store, make_store
from app.wechat.client import WeChatClient
from auth.accounts import PROFILES
from auth.deps import AuthDeps
from auth.pii import PiiCipher
from auth.realname import make_verifier
from auth.sms import make_sender
from auth.tokens import TokenAuthority
from qr import service as codes_service
from qr.analytics import ScanRecorder
from qr.service import CodeDeps


@dataclass(frozen=True)
class Services:
    """Everything a channel calls services with, built once per worker (or per CLI command, or per test)."""

    settings: Settings
    store: Store
    cache: LocalCache
    cipher: PiiCipher
    tokens: TokenAuthority
    wechat: WeChatClient
    scans: ScanRecorder
    auth: AuthDeps
    booking: BookingDeps
    cases: CaseDeps
    materials: MaterialStore
    notify: NotifyDeps
    feedback: FeedbackDeps
    stats: StatsDeps
    catalogue: CatalogueDeps
    codes: CodeDeps
    guide: GuideDeps

    async def aclose(self) -> None:
        """Flush what is buffered and close the outgoing clients (worker or command end)."""
        await self.scans.flush()  # nothing counted is lost on a clean shutdown
        await self.wechat.aclose()
        await self.store.aclose()
        await self.materials.aclose()


def build_services(settings: Settings, *, store: Store | None = None) -> Services:
    """Construct every domain's dependencies from settings (no I/O: clients connect lazily)."""
    store = store if store is not None else make_store(settings)
    cache = LocalCache(store, ttl=settings.guide_cache_seconds or 1)
    cache.track_keys(PROFILES)
    cipher = PiiCipher.from_settings(settings)
    tokens = TokenAuthority(settings, cipher, cache)
    wechat = WeChatClient(settings, store)
    materials = make_material_store(settings)
    sms = make_sender(settings)  # one sender: sign-in codes and notifications (tests read its outbox)
    booking = BookingDeps(settings=settings, cache=cache, tokens=tokens, cipher=cipher)
    codes = CodeDeps(cache=cache, base_url=settings.base_url, wechat=wechat, mini_page=settings.wechat_mini_page)
    # The catalogue imports neither codes nor the guide read model: what follows its writes is wired here.
    catalogue = CatalogueDeps(
        cache=cache,
        on_published=(codes_service.ensure_default_code,),  # every published matter has its printed code
        on_changed=(partial(codes_service.invalidate, codes),),  # code snapshots carry matter names and successors
    )
    return Services(
        settings=settings,
        store=store,
        cache=cache,
        cipher=cipher,
        tokens=tokens,
        wechat=wechat,
        scans=ScanRecorder(store),
        auth=AuthDeps(
            settings=settings,
            store=store,
            cache=cache,
            tokens=tokens,
            cipher=cipher,
            sms=sms,
            verifier=make_verifier(settings),
            wechat=wechat,
        ),
        booking=booking,
        cases=CaseDeps(settings=settings, cache=cache, tokens=tokens, cipher=cipher, store=store, materials=materials),
        materials=materials,
        notify=NotifyDeps(settings=settings, wechat=wechat, sms=sms, cipher=cipher),
        feedback=FeedbackDeps(settings=settings, store=store, cache=cache),
        stats=StatsDeps(settings=settings, store=store),
        catalogue=catalogue,
        codes=codes,
        # The read model listens to the catalogue's, codes' and schedules' namespaces itself (app.guide.service).
        guide=GuideDeps(cache=cache, base_url=settings.base_url, codes=codes, booking=booking),
    )

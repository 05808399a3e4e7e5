"""Scan analytics, recorded off the hot path.

A scan only increments in-memory counters of the worker; the scheduler's flush job (and the
worker's shutdown) moves them to the database with additive upserts and the visitor ids to Redis
HyperLogLogs, so nothing is lost on a clean shutdown and a failed flush is retried with the next.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import logging
import os
import re
from collections import Counter, defaultdict

from tortoise.transactions import in_transaction

from app import clock
from app.errors import InvalidInput
from app.store import Store
from qr import sql as qr_sql
from qr.models import Code, InvalidScan, ScanChannel, ScanDaily, ScanVisitors
from qr.types import CodeStats, DayScans, InvalidScans

log = logging.getLogger("app.qr.analytics")

_BOTS = re.compile(
    # "bot" only as a word or a product token (Googlebot/2.1), so phone models such as CUBOT count.
    r"\bbot\b|[a-z]bot/|spider|crawler|crawling|slurp|facebookexternalhit|bytespider|headlesschrome|"
    r"python-requests|python-urllib|go-http-client|curl/|wget/|scrapy|httpclient|java/",
    re.IGNORECASE,
)
MAX_VISITORS_PER_KEY = 50_000  # beyond this a worker's buffer keeps counting but stops keeping ids
HLL_TTL = 400 * 86400
PFADD_SLICE = 1000  # visitor ids per PFADD command of a flush


def channel_of(user_agent: str, client_header: str | None) -> ScanChannel:
    """Which channel a scan came from (mini program and app identify themselves)."""
    client = (client_header or "").lower()
    ua = user_agent or ""
    if client == "miniprogram" or "miniProgram" in ua:
        return ScanChannel.miniprogram
    if client == "app" or "ZuiduoApp" in ua:
        return ScanChannel.app
    if "MicroMessenger" in ua:
        return ScanChannel.wechat
    return ScanChannel.browser


@functools.lru_cache(maxsize=4096)
def is_bot(user_agent: str) -> bool:
    """Known crawlers, link previewers and scripted clients are not counted as scans (cached per agent)."""
    return bool(_BOTS.search(user_agent or ""))


_COOKIE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


# Visitor ids count people; they guard nothing. They are drawn 256 at a time (one getrandom() system call and one
# base64 encoding per 256 first scans, not per scan: the hot path): each id is a 16-character slice of the URL-safe
# base64 of 3,072 random bytes, which has no padding, so every character carries 6 random bits (96 per id).
_VISITOR_ID_CHARS = 16
_VISITOR_IDS_PER_DRAW = 256
_visitor_ids: list[str] = []  # drawn and not yet given out (never shared with a forked child)
os.register_at_fork(after_in_child=_visitor_ids.clear)


def new_visitor_cookie() -> str:
    """A fresh visitor id (16 URL-safe characters)."""
    if not _visitor_ids:
        text = base64.urlsafe_b64encode(os.urandom(_VISITOR_IDS_PER_DRAW * _VISITOR_ID_CHARS * 3 // 4)).decode()
        _visitor_ids.extend(text[i : i + _VISITOR_ID_CHARS] for i in range(0, len(text), _VISITOR_ID_CHARS))
    return _visitor_ids.pop()


def valid_cookie(cookie: str) -> bool:
    """True for a visitor cookie we could have minted."""
    return 8 <= len(cookie) <= 64 and _COOKIE_CHARS.issuperset(cookie)


def visitor_id(cookie: str | None, ip: str, user_agent: str) -> str:
    """A visitor key: our first-party cookie when present, else a hash of address and agent."""
    if cookie and valid_cookie(cookie):
        return "c:" + cookie
    return "h:" + hashlib.blake2b(f"{ip}|{user_agent}".encode(), digest_size=10).hexdigest()


class ScanRecorder:
    """Per-worker buffer of scan counts; `flush()` persists it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.scans: Counter[tuple[str, dt.date, str]] = Counter()
        self.invalid: Counter[tuple[dt.date, str]] = Counter()
        self.visitors: defaultdict[tuple[str, dt.date], set[str]] = defaultdict(set)
        self._day: tuple[int, dt.date] = (-1, dt.date.min)

    def _today(self) -> dt.date:
        # The local date changes once a day: work it out at most once a second.
        second = int(clock.timestamp())
        if self._day[0] != second:
            self._day = (second, clock.today())
        return self._day[1]

    def record(self, slug: str, channel: ScanChannel, visitor: str) -> None:
        """Count one resolved scan (a dict increment: the hot path does no I/O)."""
        day = self._today()
        self.scans[(slug, day, channel.value)] += 1
        seen = self.visitors[(slug, day)]
        if len(seen) < MAX_VISITORS_PER_KEY:
            seen.add(visitor)

    def record_invalid(self, reason: str) -> None:
        """Count one scan that did not resolve, by reason."""
        self.invalid[(self._today(), reason)] += 1

    async def flush(self) -> None:
        """Persist the buffer; on failure the counts go back into it for the next flush."""
        scans, self.scans = self.scans, Counter()
        invalid, self.invalid = self.invalid, Counter()
        visitors, self.visitors = self.visitors, defaultdict(set)
        if not (scans or invalid or visitors):
            return
        try:
            # One transaction: a failure leaves nothing half-written, so putting every count back is exact.
            async with in_transaction():
                await _upsert_scans(scans)
                await _upsert_invalid(invalid)
        except Exception:
            log.exception("scan flush failed; keeping %d counters for the next flush", len(scans) + len(invalid))
            self.scans.update(scans)
            self.invalid.update(invalid)
            for key, ids in visitors.items():
                self.visitors[key] |= ids
            return
        if invalid:
            log.info("invalid scans: %s", {f"{d}:{r}": n for (d, r), n in invalid.items()})
        try:
            await self._visitors(visitors)
        except Exception:  # unique-visitor estimates are best effort when Redis is away
            log.warning("visitor estimates not updated: store unavailable")

    async def _visitors(self, visitors: dict[tuple[str, dt.date], set[str]]) -> None:
        for (slug, day), ids in visitors.items():
            key = f"qr:hll:{slug}:{day.isoformat()}"
            batch = list(ids)
            # In slices: one PFADD of a busy code's 20,000 ids packed and parsed for ~15 ms in one go, while
            # the scans queued behind it on this worker's loop waited (the p99 of bench/'s qr paths).
            for start in range(0, len(batch), PFADD_SLICE):
                await self.store.pfadd(key, *batch[start : start + PFADD_SLICE])
            await self.store.expire(key, HLL_TTL)
            estimate = int(await self.store.pfcount(key))
            updated = await ScanVisitors.filter(slug=slug, day=day).update(visitors=estimate)
            if not updated:
                await qr_sql.insert_ignore("qr_scan_visitors", ("slug", "day", "visitors"), (slug, day, estimate))
                await ScanVisitors.filter(slug=slug, day=day).update(visitors=estimate)


async def _upsert_scans(scans: Counter[tuple[str, dt.date, str]]) -> None:
    for (slug, day, channel), n in scans.items():
        await qr_sql.add_scans("qr_scan_daily", ("slug", "day", "channel"), (slug, day, channel), n)


async def _upsert_invalid(invalid: Counter[tuple[dt.date, str]]) -> None:
    for (day, reason), n in invalid.items():
        await qr_sql.add_scans("qr_invalid_scan", ("day", "reason"), (day, reason), n)


async def code_stats(*, slug: str, date_from: dt.date | None, date_to: dt.date | None) -> CodeStats:
    """Per-day scans by channel and unique visitors of one code."""
    from qr.errors import CodeNotFound
    from qr.service import SLUG_RE

    if not SLUG_RE.match(slug or "") or not await Code.exists(slug=slug):
        raise CodeNotFound()
    date_to = date_to or clock.today()
    date_from = date_from or date_to - dt.timedelta(days=29)
    if date_from > date_to or (date_to - date_from).days > 366:
        raise InvalidInput(
            "日期范围不合法（最长 366 天）", details={"fields": {"from": ["应不晚于 to，且跨度不超过 366 天"]}}
        )
    by_channel: dict[dt.date, dict[str, int]] = {}
    visitors: dict[dt.date, int] = {}
    for row in await ScanDaily.filter(slug=slug, day__gte=date_from, day__lte=date_to).order_by("day"):
        by_channel.setdefault(row.day, {})[row.channel.value] = row.scans
    for row in await ScanVisitors.filter(slug=slug, day__gte=date_from, day__lte=date_to):
        by_channel.setdefault(row.day, {})
        visitors[row.day] = row.visitors
    days = tuple(
        DayScans(
            day=day, scans=sum(by_channel[day].values()), by_channel=by_channel[day], visitors=visitors.get(day, 0)
        )
        for day in sorted(by_channel)
    )
    totals: Counter[str] = Counter()
    for item in days:
        totals.update(item.by_channel)
    return CodeStats(
        slug=slug,
        date_from=date_from,
        date_to=date_to,
        days=days,
        total_scans=sum(d.scans for d in days),
        by_channel=dict(totals),
    )


async def invalid_stats(*, date_from: dt.date, date_to: dt.date) -> tuple[InvalidScans, ...]:
    """Invalid scans per day and reason."""
    rows = await InvalidScan.filter(day__gte=date_from, day__lte=date_to).order_by("day", "reason")
    return tuple(InvalidScans(day=r.day, reason=r.reason, scans=r.scans) for r in rows)

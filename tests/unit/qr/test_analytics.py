"""qr.analytics: channels, bots, visitor ids, the per-worker scan buffer and its flush (additive,
retried on failure), unique visitors, statistics over date ranges."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from app import clock
from app.errors import InvalidInput
from app.store import make_store
from qr import analytics, present
from qr import sql as qr_sql
from qr.analytics import ScanRecorder, channel_of, code_stats, invalid_stats, is_bot, visitor_id
from qr.errors import CodeNotFound
from qr.models import Code, InvalidScan, ScanChannel, ScanDaily, ScanVisitors

SLUG, OTHER = "k3mq9xa2", "p7rt4bnc"
WECHAT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN"
)
MINI = WECHAT + " miniProgram/wx1234567890"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; 23127PN0CC) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
HUAWEI = (
    "Mozilla/5.0 (Linux; Android 12; HarmonyOS; NOH-AN00) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/99.0.4844.88 HuaweiBrowser/14.0.5.302 Mobile Safari/537.36"
)


@pytest.fixture
async def recorder(base_settings):
    store = make_store(base_settings)
    yield ScanRecorder(store)
    await store.aclose()


@pytest.fixture
async def codes() -> None:
    """Two codes to take statistics of (stats need the code to exist)."""
    await Code.create(slug=SLUG, matter_code="4308-XK-SS-001")
    await Code.create(slug=OTHER, matter_code="4308-XK-SS-002")


async def daily() -> dict[tuple[str, str, str], int]:
    return {(r.slug, r.day.isoformat(), r.channel.value): r.scans for r in await ScanDaily.all()}


async def invalid() -> dict[tuple[str, str], int]:
    return {(r.day.isoformat(), r.reason): r.scans for r in await InvalidScan.all()}


async def visitors() -> dict[tuple[str, str], int]:
    return {(r.slug, r.day.isoformat()): r.visitors for r in await ScanVisitors.all()}


# ---------------------------------------------------------------- channels, bots, visitor ids


@pytest.mark.parametrize(
    ("ua", "client", "channel"),
    [
        (WECHAT, None, ScanChannel.wechat),
        (WECHAT, "miniprogram", ScanChannel.miniprogram),
        (MINI, None, ScanChannel.miniprogram),
        (SAFARI, "miniprogram", ScanChannel.miniprogram),
        (SAFARI, "MiniProgram", ScanChannel.miniprogram),
        (ANDROID_CHROME, "app", ScanChannel.app),
        (ANDROID_CHROME, "APP", ScanChannel.app),
        ("ZuiduoApp/2.3 (Android 14)", None, ScanChannel.app),
        (WECHAT, "app", ScanChannel.app),
        (SAFARI, None, ScanChannel.browser),
        (ANDROID_CHROME, None, ScanChannel.browser),
        (HUAWEI, None, ScanChannel.browser),
        (SAFARI, "something-else", ScanChannel.browser),
        ("", None, ScanChannel.browser),
        ("", "", ScanChannel.browser),
    ],
)
def test_channel_of(ua: str, client: str | None, channel: ScanChannel) -> None:
    assert channel_of(ua, client) is channel


@pytest.mark.parametrize(
    "ua",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 "
        "(compatible; Bytespider; spider-feedback@bytedance.com)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0 Safari/537.36",
        "curl/8.0",
        "curl/7.81.0",
        "Wget/1.21.2",
        "python-requests/2.32.3",
        "Python-urllib/3.12",
        "Go-http-client/1.1",
        "Scrapy/2.11 (+https://scrapy.org)",
        "Java/17.0.2",
    ],
)
def test_known_bots(ua: str) -> None:
    assert is_bot(ua)


@pytest.mark.parametrize("ua", [SAFARI, ANDROID_CHROME, HUAWEI, WECHAT, MINI, "ZuiduoApp/2.3 (iOS 17.5)", ""])
def test_people_are_not_bots(ua: str) -> None:
    assert not is_bot(ua)


def test_phone_models_ending_in_bot_are_people() -> None:
    ua = (
        "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Mobile Safari/537.36"
    )
    assert not is_bot(ua)


def test_visitor_id_prefers_the_cookie() -> None:
    assert visitor_id("abcdEFGH_-12", "10.0.0.1", SAFARI) == "c:abcdEFGH_-12"
    assert visitor_id("abcdEFGH_-12", "10.0.0.2", WECHAT) == "c:abcdEFGH_-12"


@pytest.mark.parametrize("cookie", [None, "", "short", "has space in it", "x" * 65, "../../etc/passwd", "a;b=c"])
def test_visitor_id_without_a_usable_cookie_hashes_address_and_agent(cookie: str | None) -> None:
    vid = visitor_id(cookie, "10.0.0.1", SAFARI)
    assert vid.startswith("h:") and len(vid) == 2 + 20
    assert vid == visitor_id(None, "10.0.0.1", SAFARI)
    assert vid != visitor_id(None, "10.0.0.2", SAFARI)
    assert vid != visitor_id(None, "10.0.0.1", WECHAT)
    if cookie:
        assert cookie not in vid


# ---------------------------------------------------------------- the buffer and its flush


async def test_record_is_buffered_until_flush(recorder):
    recorder.record(SLUG, ScanChannel.browser, "c:one")
    recorder.record(SLUG, ScanChannel.browser, "c:one")
    recorder.record(SLUG, ScanChannel.wechat, "c:two")
    recorder.record(OTHER, ScanChannel.app, "c:one")
    recorder.record_invalid("unknown")
    assert await ScanDaily.all().count() == 0 and await InvalidScan.all().count() == 0
    await recorder.flush()
    today = clock.today().isoformat()
    assert await daily() == {
        (SLUG, today, "browser"): 2,
        (SLUG, today, "wechat"): 1,
        (OTHER, today, "app"): 1,
    }
    assert await invalid() == {(today, "unknown"): 1}
    assert await visitors() == {(SLUG, today): 2, (OTHER, today): 1}
    assert not recorder.scans and not recorder.invalid and not recorder.visitors


async def test_flushes_are_additive(recorder):
    for _ in range(3):
        recorder.record(SLUG, ScanChannel.browser, "c:one")
        recorder.record_invalid("expired")
        await recorder.flush()
    today = clock.today().isoformat()
    assert await daily() == {(SLUG, today, "browser"): 3}
    assert await invalid() == {(today, "expired"): 3}
    assert await visitors() == {(SLUG, today): 1}  # the same visitor in every flush


async def test_visitors_add_up_across_flushes_and_recorders(base_settings, recorder):
    recorder.record(SLUG, ScanChannel.browser, "c:one")
    await recorder.flush()
    other_store = make_store(base_settings)
    try:
        other = ScanRecorder(other_store)  # another worker, same shared store
        other.record(SLUG, ScanChannel.browser, "c:one")
        other.record(SLUG, ScanChannel.browser, "c:two")
        await other.flush()
    finally:
        await other_store.aclose()
    recorder.record(SLUG, ScanChannel.browser, "c:three")
    await recorder.flush()
    assert await visitors() == {(SLUG, clock.today().isoformat()): 3}
    assert sum((await daily()).values()) == 4


async def test_empty_flush_touches_nothing(recorder, monkeypatch):
    async def no_db(*args, **kwargs):
        raise AssertionError("an empty flush must not write")

    monkeypatch.setattr(analytics, "_upsert_scans", no_db)
    monkeypatch.setattr(analytics, "_upsert_invalid", no_db)
    await recorder.flush()


async def test_days_are_shanghai_dates(recorder, fake_clock):
    fake_clock.current = dt.datetime(2026, 9, 30, 15, 59, tzinfo=dt.UTC)  # 23:59 in Shanghai
    recorder.record(SLUG, ScanChannel.browser, "c:one")
    recorder.record_invalid("disabled")
    fake_clock.advance(minutes=1)  # midnight in Shanghai, still the 30th in UTC
    recorder.record(SLUG, ScanChannel.browser, "c:one")
    recorder.record_invalid("disabled")
    await recorder.flush()
    assert await daily() == {(SLUG, "2026-09-30", "browser"): 1, (SLUG, "2026-10-01", "browser"): 1}
    assert await invalid() == {("2026-09-30", "disabled"): 1, ("2026-10-01", "disabled"): 1}
    assert await visitors() == {(SLUG, "2026-09-30"): 1, (SLUG, "2026-10-01"): 1}


async def test_a_failed_flush_keeps_everything_for_the_next(recorder, monkeypatch):
    recorder.record(SLUG, ScanChannel.browser, "c:one")
    recorder.record(SLUG, ScanChannel.browser, "c:two")
    recorder.record_invalid("unknown")

    async def broken(*args, **kwargs):
        raise ConnectionError("database is away")

    with monkeypatch.context() as patch:
        patch.setattr(analytics, "_upsert_scans", broken)
        await recorder.flush()  # logged, never raised
        recorder.record(SLUG, ScanChannel.browser, "c:three")  # scans go on meanwhile
        await recorder.flush()
    assert await ScanDaily.all().count() == 0 and await InvalidScan.all().count() == 0
    assert await ScanVisitors.all().count() == 0
    assert sum(recorder.scans.values()) == 3 and sum(recorder.invalid.values()) == 1
    await recorder.flush()
    today = clock.today().isoformat()
    assert await daily() == {(SLUG, today, "browser"): 3}
    assert await invalid() == {(today, "unknown"): 1}
    assert await visitors() == {(SLUG, today): 3}


async def test_a_database_that_is_away_keeps_the_counts(recorder, monkeypatch):
    """The database itself failing (opening the flush transaction raises): same outcome."""
    import contextlib

    @contextlib.asynccontextmanager
    async def away():
        raise ConnectionError("database is away")
        yield  # pragma: no cover

    recorder.record(SLUG, ScanChannel.wechat, "c:one")
    monkeypatch.setattr(analytics, "in_transaction", away)
    await recorder.flush()
    monkeypatch.undo()
    assert await ScanDaily.all().count() == 0
    await recorder.flush()
    assert await daily() == {(SLUG, clock.today().isoformat(), "wechat"): 1}


@pytest.mark.parametrize("fail_on", ["invalid", "second-scan-row"])
async def test_a_flush_failing_part_way_does_not_double_count(recorder, monkeypatch, fail_on):
    recorder.record(SLUG, ScanChannel.browser, "c:one")
    recorder.record(OTHER, ScanChannel.browser, "c:one")
    recorder.record_invalid("unknown")
    real = qr_sql.add_scans
    calls = {"n": 0}

    async def flaky(table, keys, values, count):
        calls["n"] += 1
        if (fail_on == "invalid" and table == "qr_invalid_scan") or (fail_on == "second-scan-row" and calls["n"] == 2):
            raise ConnectionError("connection lost")
        await real(table, keys, values, count)

    with monkeypatch.context() as patch:
        patch.setattr(qr_sql, "add_scans", flaky)
        await recorder.flush()
    await recorder.flush()
    today = clock.today().isoformat()
    assert await daily() == {(SLUG, today, "browser"): 1, (OTHER, today, "browser"): 1}
    assert await invalid() == {(today, "unknown"): 1}


async def test_visitor_store_failure_does_not_lose_scan_counts(recorder, monkeypatch):
    async def broken(*args, **kwargs):
        raise ConnectionError("redis is away")

    monkeypatch.setattr(recorder.store, "pfadd", broken)
    recorder.record(SLUG, ScanChannel.browser, "c:one")
    await recorder.flush()  # best effort for visitors, never raised
    assert await daily() == {(SLUG, clock.today().isoformat(), "browser"): 1}
    assert await ScanVisitors.all().count() == 0
    await recorder.flush()
    assert await daily() == {(SLUG, clock.today().isoformat(), "browser"): 1}  # not counted again


async def test_visitor_ids_kept_per_key_are_capped(recorder, monkeypatch):
    monkeypatch.setattr(analytics, "MAX_VISITORS_PER_KEY", 3)
    for i in range(10):
        recorder.record(SLUG, ScanChannel.browser, f"c:visitor{i}")
    assert len(recorder.visitors[(SLUG, clock.today())]) == 3
    await recorder.flush()
    today = clock.today().isoformat()
    assert await daily() == {(SLUG, today, "browser"): 10}  # every scan still counted
    assert await visitors() == {(SLUG, today): 3}


async def test_concurrent_records_and_flushes_lose_nothing(recorder):
    async def scans(n: int) -> None:
        for i in range(n):
            recorder.record(SLUG, ScanChannel.browser, f"c:v{i % 7}")
            await asyncio.sleep(0)

    async def flushes(n: int) -> None:
        for _ in range(n):
            await recorder.flush()

    await asyncio.gather(*(scans(50) for _ in range(4)), flushes(15))
    await recorder.flush()
    today = clock.today().isoformat()
    assert await daily() == {(SLUG, today, "browser"): 200}
    assert await visitors() == {(SLUG, today): 7}


# ---------------------------------------------------------------- statistics


async def seed(rows: list[tuple[str, str, str, int]], visits: list[tuple[str, str, int]] = ()) -> None:
    for slug, day, channel, n in rows:
        await ScanDaily.create(slug=slug, day=dt.date.fromisoformat(day), channel=ScanChannel(channel), scans=n)
    for slug, day, n in visits:
        await ScanVisitors.create(slug=slug, day=dt.date.fromisoformat(day), visitors=n)


async def test_code_stats_per_day_and_channel(codes):
    await seed(
        [(SLUG, "2026-09-01", "browser", 3), (SLUG, "2026-09-01", "wechat", 5), (SLUG, "2026-09-03", "app", 2),
         (SLUG, "2026-08-31", "browser", 100), (OTHER, "2026-09-01", "browser", 7)],
        [(SLUG, "2026-09-01", 4), (SLUG, "2026-09-02", 1)],
    )  # fmt: skip
    stats = await code_stats(slug=SLUG, date_from=dt.date(2026, 9, 1), date_to=dt.date(2026, 9, 30))
    assert present.code_stats(stats) == {
        "slug": SLUG,
        "from": "2026-09-01",
        "to": "2026-09-30",
        "days": [
            {"date": "2026-09-01", "scans": 8, "by_channel": {"browser": 3, "wechat": 5}, "visitors": 4},
            {"date": "2026-09-02", "scans": 0, "by_channel": {}, "visitors": 1},
            {"date": "2026-09-03", "scans": 2, "by_channel": {"app": 2}, "visitors": 0},
        ],
        "total_scans": 10,
        "by_channel": {"browser": 3, "wechat": 5, "app": 2},
    }


async def test_code_stats_default_range_is_the_last_30_days(codes, fake_clock):
    today = clock.today()
    await seed([(SLUG, (today - dt.timedelta(days=29)).isoformat(), "browser", 1),
                (SLUG, (today - dt.timedelta(days=30)).isoformat(), "browser", 10)])  # fmt: skip
    stats = await code_stats(slug=SLUG, date_from=None, date_to=None)
    assert stats.date_to == today
    assert stats.date_from == today - dt.timedelta(days=29)
    assert stats.total_scans == 1
    only_to = await code_stats(slug=SLUG, date_from=None, date_to=today - dt.timedelta(days=1))
    assert only_to.date_from == today - dt.timedelta(days=30) and only_to.total_scans == 11


async def test_code_stats_range_limits(codes):
    start = dt.date(2026, 1, 1)
    await code_stats(slug=SLUG, date_from=start, date_to=start)
    await code_stats(slug=SLUG, date_from=start, date_to=start + dt.timedelta(days=366))
    for date_from, date_to in ((start, start - dt.timedelta(days=1)), (start, start + dt.timedelta(days=367))):
        with pytest.raises(InvalidInput) as caught:
            await code_stats(slug=SLUG, date_from=date_from, date_to=date_to)
        assert caught.value.status == 422 and "from" in caught.value.details["fields"]


@pytest.mark.parametrize("slug", ["zzzzzzzz", "ABCDEFGH", "", "../x", "a" * 1000])
async def test_code_stats_of_unknown_codes(codes, slug):
    with pytest.raises(CodeNotFound):
        await code_stats(slug=slug, date_from=None, date_to=None)


async def test_invalid_stats(recorder, fake_clock):
    for reason in ("unknown", "unknown", "exhausted"):
        recorder.record_invalid(reason)
    fake_clock.advance(days=1)
    recorder.record_invalid("disabled")
    await recorder.flush()
    rows = await invalid_stats(date_from=dt.date(2026, 9, 30), date_to=dt.date(2026, 10, 1))
    assert present.invalid_stats(rows) == [
        {"date": "2026-09-30", "reason": "exhausted", "scans": 1},
        {"date": "2026-09-30", "reason": "unknown", "scans": 2},
        {"date": "2026-10-01", "reason": "disabled", "scans": 1},
    ]
    assert await invalid_stats(date_from=dt.date(2026, 10, 1), date_to=dt.date(2026, 10, 1)) == rows[2:]

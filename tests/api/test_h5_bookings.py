"""The citizen's booking journey in the browser (no JavaScript): days, times, confirm (a double tap books
once), the ticket with its QR code and calendar entry, my bookings, cancel, reschedule, the visit to rate,
and the hall hours a guide states agreeing with the slots the hall offers.

The fake clock starts on 2026-09-30 10:00 (Asia/Shanghai), a Wednesday before the National Day holiday
(10-01..10-07); 2026-10-10 is a 调休 Saturday workday. The default calendar opens 09:00-12:00 and
13:30-17:00 in 30-minute slots with 2 seats each, stops booking 30 minutes before a slot, and checks in
from 30 minutes before a slot until 15 minutes after it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from urllib.parse import unquote

import pytest
import zxingcpp
from icalendar import Calendar
from PIL import Image

from app.booking import calendar as booking_calendar
from app.booking import tickets
from app.clock import SHANGHAI
from app.matters import service as catalogue
from app.matters.demo import demo_data
from tests import factories

pytestmark = pytest.mark.asyncio

MATTER = "4308-XK-SS-001"  # 营业执照设立登记, main hall, commercial
PHONE = "13900001111"
HALL = "张家界市政务服务中心"
ADDRESS = "永定区子午路 1 号"


def sid(day: str, hhmm: str, hall: str = "main", section: str = "commercial") -> str:
    """A slot id, e.g. main.commercial.20261008.0900."""
    return f"{hall}.{section}.{day.replace('-', '')}.{hhmm.replace(':', '')}"


def local(day: str, hhmm: str) -> dt.datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hours, minutes), SHANGHAI).astimezone(dt.UTC)


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def idem_of(html: str) -> str:
    return re.search(r'name="idem" value="([^"]+)"', html).group(1)


def ticket_path(resp) -> str:
    """Where a 303 after a booking form went: /m/me/bookings/<id>."""
    assert resp.status == 303, f"{resp.status} {resp.text[:800]}"
    return resp.headers["location"].split("?")[0]


async def sign_in(client, phone: str = PHONE, next_path: str = "/m/me"):
    """Sign in through the SMS pages as a browser does; answers the final 303."""
    _, form = await client.get("/m/login", params={"next": next_path})
    csrf = csrf_of(form.text)
    _, sent = await client.post("/m/login/code", data={"csrf": csrf, "phone": phone, "next": next_path})
    assert sent.status == 200, sent.text
    otp = re.search(r"(\d{6})", client.sanic_app.ctx.auth.sms.outbox[-1][1]).group(1)
    _, done = await client.post(
        "/m/login", data={"csrf": csrf, "phone": phone, "otp": otp, "next": next_path}, follow_redirects=False
    )
    assert done.status == 303, done.text
    return done


async def confirm_form(client, slot: str, matter: str = MATTER):
    _, resp = await client.get(f"/m/{matter}/book/confirm", params={"slot": slot})
    assert resp.status == 200, resp.text
    return resp


async def post_booking(client, slot: str, *, key: str | None = None, matter: str = MATTER, csrf: str | None = None):
    form = await confirm_form(client, slot, matter)
    data = {"csrf": csrf or csrf_of(form.text), "idem": key or idem_of(form.text), "slot": slot}
    _, resp = await client.post(f"/m/{matter}/book", data=data, follow_redirects=False)
    return resp


async def book_in_browser(client, slot: str, matter: str = MATTER) -> str:
    """Book through the pages; answers the ticket page's path."""
    return ticket_path(await post_booking(client, slot, matter=matter))


async def api_book(client, headers: dict[str, str], slot: str, matter: str = MATTER) -> dict:
    _, resp = await client.post(
        "/api/v1/bookings",
        json={"matter_code": matter, "slot_id": slot},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert resp.status == 201, resp.text
    return resp.json


async def fill(client, make_citizen, slot: str, seats: int = 2) -> None:
    """Other citizens take every seat of a slot through the API."""
    for _ in range(seats):
        _, headers = await make_citizen()
        await api_book(client, headers, slot)


# -- days and times ----------------------------------------------------------------------------------


async def test_days_page_offers_only_days_with_seats_with_their_weekdays(client, seeded, fake_clock):
    _, resp = await client.get(f"/m/{MATTER}/book")
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/html")
    text = resp.text
    assert "<h1>预约办理</h1>" in text and "营业执照设立登记" in text
    days = re.findall(rf'href="/m/{MATTER}/book\?day=(\d{{4}}-\d\d-\d\d)"[^>]*><b>(周.)</b>', text)
    assert days == [
        ("2026-09-30", "周三"),
        ("2026-10-08", "周四"),
        ("2026-10-09", "周五"),
        ("2026-10-10", "周六"),  # the 调休 Saturday works
        ("2026-10-12", "周一"),
        ("2026-10-13", "周二"),
        ("2026-10-14", "周三"),
    ]
    assert "?day=2026-10-01" not in text and "?day=2026-10-11" not in text  # holiday, Sunday
    assert "余 18 个号" in text  # today: nine slots of two seats (10:30 is inside the cutoff)
    assert "办公时间：周一至周五 09:00-12:00、13:30-17:00" in text
    assert f'href="/m/{MATTER}"' in text
    assert '<link rel="stylesheet" href="/static/book.css">' in text and "<script>" not in text
    _, css = await client.get("/static/book.css")
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")


async def test_a_day_shows_its_times_with_seats_and_the_reason_others_are_off(client, seeded, fake_clock, make_citizen):
    await fill(client, make_citizen, sid("2026-09-30", "11:00"))
    _, resp = await client.get(f"/m/{MATTER}/book", params={"day": "2026-09-30"})
    text = resp.text
    assert resp.status == 200 and "9月30日（周三）的时段" in text
    assert 'aria-current="date"' in text
    # 10:30 starts within the 30-minute cutoff; 11:00 is full; 11:30 is offered with its seats
    assert re.search(r'<span class="time off">10:30–11:00<span class="n">已停止预约</span>', text)
    assert re.search(r'<span class="time off">11:00–11:30<span class="n">已约满</span>', text)
    confirm = f'href="/m/{MATTER}/book/confirm?slot={sid("2026-09-30", "11:30")}">11:30–12:00<span class="n">余 2 个号'
    assert confirm in text
    assert "10:00–10:30" not in text  # started: not listed
    _, holiday = await client.get(f"/m/{MATTER}/book", params={"day": "2026-10-01"})
    assert holiday.status == 200 and "该日大厅不开放预约" in holiday.text and "/book/confirm" not in holiday.text


async def test_a_full_day_is_not_offered(client, app, seeded, fake_clock, make_citizen, admin_headers):
    # one 30-minute slot a day with one seat: a single booking fills 10-08
    _, put = await client.put(
        "/api/v1/admin/halls/main/schedule",
        json={"hours": {str(d): [["09:00", "09:30"]] for d in range(1, 6)}, "default_capacity": 1},
        headers=admin_headers,
    )
    assert put.status == 200, put.text
    await fill(client, make_citizen, sid("2026-10-08", "09:00"), seats=1)
    _, resp = await client.get(f"/m/{MATTER}/book")
    assert "?day=2026-10-08" not in resp.text and "?day=2026-10-09" in resp.text
    assert "已约满或已停止预约：" in resp.text and "10月8日（周四）" in resp.text
    _, day = await client.get(f"/m/{MATTER}/book", params={"day": "2026-10-08"})
    assert '<span class="time off">09:00–09:30<span class="n">已约满</span>' in day.text
    assert "/book/confirm" not in day.text


async def test_a_matter_without_booking_says_so(client, fake_clock):
    await catalogue.import_catalogue(
        client.sanic_app.ctx.catalogue, data=factories.catalogue(factories.entry("4308-XK-SS-009", booking=False))
    )
    _, resp = await client.get("/m/4308-XK-SS-009/book")
    assert resp.status == 200 and "该事项无需预约" in resp.text and "?day=" not in resp.text
    _, unknown = await client.get("/m/4308-XX-XX-999/book")
    assert unknown.status == 404 and "未找到该政务服务事项" in unknown.text


# -- sign-in on the way --------------------------------------------------------------------------


async def test_an_anonymous_choice_goes_to_sign_in_and_comes_back_to_it(client, seeded, fake_clock):
    slot = sid("2026-10-08", "09:00")
    _, go = await client.get(f"/m/{MATTER}/book/confirm", params={"slot": slot}, follow_redirects=False)
    assert go.status == 303 and go.headers["location"].startswith("/m/login?next=")
    back = unquote(go.headers["location"].split("next=", 1)[1])
    assert back == f"/m/{MATTER}/book/confirm?slot={slot}"
    done = await sign_in(client, next_path=back)
    assert done.headers["location"] == back
    form = await confirm_form(client, slot)
    assert f'value="{slot}" checked' in form.text and "10月8日（周四）" in form.text
    assert HALL in form.text and ADDRESS in form.text and "商事登记区 A1-A8 号窗口" in form.text
    assert 'name="idem"' in form.text and "确认预约" in form.text


async def test_an_anonymous_post_is_sent_to_sign_in_and_back_to_the_choice(client, seeded, fake_clock):
    confirm = f"http://testserver/m/{MATTER}/book/confirm?slot={sid('2026-10-08', '09:00')}"
    _, resp = await client.post(
        f"/m/{MATTER}/book", data={"slot": sid("2026-10-08", "09:00"), "idem": "k1"},
        headers={"Referer": confirm}, follow_redirects=False,
    )  # fmt: skip
    assert resp.status == 303 and resp.headers["location"].startswith("/m/login?next=")
    assert unquote(resp.headers["location"].split("next=", 1)[1]) == confirm.removeprefix("http://testserver")
    _, foreign = await client.post(
        f"/m/{MATTER}/book", data={"slot": "x"}, headers={"Referer": "https://evil.example.com/m/x"},
        follow_redirects=False,
    )  # fmt: skip
    assert foreign.status == 303 and foreign.headers["location"] == "/m/login?next=/m"


async def test_a_citizen_without_a_verified_phone_is_sent_to_bind_one(client, seeded, fake_clock, auth_deps):
    from auth.logins import issue_for_citizen
    from auth.models import Citizen

    wechat_only = await Citizen.create(id=uuid.uuid4(), loa=1)  # signed in through WeChat, no phone yet
    pair = await issue_for_citizen(auth_deps, citizen=wechat_only, audience="h5")
    client.cookies.set("zd_at", pair.access_token)
    slot = sid("2026-10-08", "09:00")
    _, go = await client.get(f"/m/{MATTER}/book/confirm", params={"slot": slot}, follow_redirects=False)
    assert go.status == 303 and go.headers["location"].startswith("/m/me/phone?next=")
    assert unquote(go.headers["location"].split("next=", 1)[1]) == f"/m/{MATTER}/book/confirm?slot={slot}"


# -- confirm ---------------------------------------------------------------------------------------


async def test_a_double_tap_books_once_and_both_land_on_the_ticket(client, seeded, fake_clock):
    await sign_in(client)
    slot = sid("2026-10-08", "09:00")
    form = await confirm_form(client, slot)
    data = {"csrf": csrf_of(form.text), "idem": idem_of(form.text), "slot": slot}
    _, first = await client.post(f"/m/{MATTER}/book", data=data, follow_redirects=False)
    _, second = await client.post(f"/m/{MATTER}/book", data=data, follow_redirects=False)
    assert ticket_path(first) == ticket_path(second)
    assert first.headers["location"].endswith("?done=booked")
    _, mine = await client.get("/m/me/bookings")
    assert "共 1 条" in mine.text
    _, day = await client.get(f"/m/{MATTER}/book", params={"day": "2026-10-08"})
    assert f'slot={slot}">09:00–09:30<span class="n">余 1 个号' in day.text  # one seat taken, not two
    _, ticket = await client.get(first.headers["location"])
    assert ticket.status == 200 and "预约成功" in ticket.text


async def test_two_taps_at_once_book_once(client, seeded, fake_clock):
    await sign_in(client)
    slot = sid("2026-10-09", "14:00")
    form = await confirm_form(client, slot)
    data = {"csrf": csrf_of(form.text), "idem": idem_of(form.text), "slot": slot}
    answers = await asyncio.gather(
        *(client.post(f"/m/{MATTER}/book", data=data, follow_redirects=False) for _ in range(2))
    )
    assert {ticket_path(resp) for _, resp in answers} == {ticket_path(answers[0][1])}
    _, mine = await client.get("/m/me/bookings")
    assert "共 1 条" in mine.text


async def test_the_same_form_key_for_another_time_is_refused_next_to_the_choice(client, seeded, fake_clock):
    await sign_in(client)
    key = "tap-" + uuid.uuid4().hex
    ticket_path(await post_booking(client, sid("2026-10-08", "09:00"), key=key))
    other = await post_booking(client, sid("2026-10-08", "09:30"), key=key)
    assert other.status == 422
    assert 'id="slot-err"' in other.text and "此表单已提交过另一个时段" in other.text
    assert f'value="{sid("2026-10-08", "09:30")}" checked' in other.text


async def test_a_full_slot_is_explained_next_to_the_kept_choice(client, seeded, fake_clock, make_citizen):
    await sign_in(client)
    slot = sid("2026-10-08", "10:00")
    form = await confirm_form(client, slot)  # still open when the form was shown
    await fill(client, make_citizen, slot)
    data = {"csrf": csrf_of(form.text), "idem": idem_of(form.text), "slot": slot}
    _, resp = await client.post(f"/m/{MATTER}/book", data=data, follow_redirects=False)
    assert resp.status == 409
    assert '<p class="err" id="slot-err">该时段已约满，请选择其他时段</p>' in resp.text
    assert 'aria-describedby="slot-err"' in resp.text
    assert re.search(rf'value="{slot}" checked disabled aria-invalid="true"><span>10:00–10:30</span>', resp.text)
    assert f'value="{sid("2026-10-08", "10:30")}">' in resp.text  # the rest of the day to choose from
    _, mine = await client.get("/m/me/bookings")
    assert "您还没有预约" in mine.text


async def test_already_booked_that_day_is_explained(client, seeded, fake_clock):
    await sign_in(client)
    await book_in_browser(client, sid("2026-10-08", "09:00"))
    resp = await post_booking(client, sid("2026-10-08", "15:00"))
    assert resp.status == 409 and "您当天已预约过该事项" in resp.text and 'id="slot-err"' in resp.text
    assert f'value="{sid("2026-10-08", "15:00")}" checked' in resp.text


async def test_a_time_inside_the_cutoff_is_explained(client, seeded, fake_clock):
    await sign_in(client)
    slot = sid("2026-09-30", "11:00")
    form = await confirm_form(client, slot)
    fake_clock.current = local("2026-09-30", "10:31")  # 11:00 now starts within 30 minutes
    data = {"csrf": csrf_of(form.text), "idem": idem_of(form.text), "slot": slot}
    _, resp = await client.post(f"/m/{MATTER}/book", data=data, follow_redirects=False)
    assert resp.status == 422 and "该时段开始前 30 分钟停止预约" in resp.text and 'id="slot-err"' in resp.text


async def test_a_slot_not_offered_is_explained_on_the_confirm_page(client, seeded, fake_clock):
    await sign_in(client)
    _, resp = await client.get(f"/m/{MATTER}/book/confirm", params={"slot": sid("2026-10-01", "09:00")})
    assert resp.status == 200 and "该时段不在可预约范围内" in resp.text and 'name="idem"' not in resp.text
    _, garbage = await client.get(f"/m/{MATTER}/book/confirm", params={"slot": "nonsense"})
    assert garbage.status == 200 and "该时段不在可预约范围内" in garbage.text
    _, posted = await client.post(
        f"/m/{MATTER}/book", data={"csrf": csrf_of(garbage.text), "idem": "k-1", "slot": "nonsense"},
        follow_redirects=False,
    )  # fmt: skip
    assert posted.status == 404 and "该预约时段不存在" in posted.text and 'id="slot-err"' in posted.text
    form = await confirm_form(client, sid("2026-10-08", "09:00"))
    _, nothing = await client.post(
        f"/m/{MATTER}/book", data={"csrf": csrf_of(form.text), "idem": idem_of(form.text)}, follow_redirects=False
    )
    assert nothing.status == 422 and "请选择预约时段" in nothing.text


async def test_a_post_without_the_form_token_is_refused(client, seeded, fake_clock):
    await sign_in(client)
    _, resp = await client.post(
        f"/m/{MATTER}/book", data={"slot": sid("2026-10-08", "09:00"), "idem": "x"}, follow_redirects=False
    )
    assert resp.status == 403 and "FORM_EXPIRED" in resp.text


class TestLimits:
    @pytest.fixture
    def settings(self, base_settings):
        return base_settings.replace(booking_max_active=1)

    async def test_the_active_limit_is_explained(self, client, seeded, fake_clock):
        await sign_in(client)
        await book_in_browser(client, sid("2026-10-08", "09:00"))
        resp = await post_booking(client, sid("2026-10-09", "09:00"))
        assert resp.status == 409 and "您的有效预约已达上限" in resp.text and 'id="slot-err"' in resp.text


async def test_no_shows_restriction_is_explained(client, app, seeded, fake_clock):
    await sign_in(client)
    for day in ("2026-10-08", "2026-10-09", "2026-10-10"):
        await book_in_browser(client, sid(day, "09:00"))
    fake_clock.current = local("2026-10-12", "10:00")
    await app.ctx.scheduler.run_once("booking-no-shows")
    _, mine = await client.get("/m/me/bookings")  # the session renews itself after the clock moved
    assert mine.text.count("已爽约") == 3
    resp = await post_booking(client, sid("2026-10-12", "14:00"))
    assert resp.status == 403 and "暂停预约至 2026-11-08" in resp.text and 'id="slot-err"' in resp.text


# -- the ticket ------------------------------------------------------------------------------------


async def test_the_ticket_page_shows_everything_to_bring_and_do(client, seeded, fake_clock):
    await sign_in(client)
    path = await book_in_browser(client, sid("2026-10-08", "09:00"))
    _, resp = await client.get(path)
    text = resp.text
    assert resp.status == 200 and resp.headers["cache-control"] == "no-store"
    assert "<h1>预约凭证</h1>" in text and '<span class="status">已预约</span>' in text
    assert f'<img src="{path}/ticket.svg?margin=2"' in text and 'alt="预约码二维码' in text
    assert f'href="{path}/ticket.png?size=12&amp;download=1" download>保存预约码图片' in text
    assert f'href="{path}/calendar.ics" download>' in text
    for fact in ("营业执照设立登记", "10月8日（周四） 09:00–09:30", HALL, ADDRESS, "商事登记区 A1-A8 号窗口"):
        assert fact in text, fact
    # queue rules: from 30 minutes before the slot to 15 minutes after it; cancel 30 minutes before
    assert "10月8日（周四） 08:30</b> 至 <b>10月8日（周四） 09:45" in text
    assert "请在 10月8日（周四） 08:30 前操作" in text
    assert "扫码签到后领取排队号" in text and "记为爽约" in text
    # the materials checklist of the matter's guide
    assert "请携带材料（2 项）" in text and "公司登记（备案）申请书" in text and "居民身份证" in text
    assert "复印件" in text
    assert f'href="{path}/reschedule?day=2026-10-08">改约到其他时间' in text
    assert f'href="{path}/cancel">取消预约' in text
    assert "评价本次窗口服务" not in text


async def test_the_ticket_image_is_the_signed_ticket(client, seeded, fake_clock, make_citizen):
    await sign_in(client)
    path = await book_in_browser(client, sid("2026-10-08", "09:00"))
    _, png = await client.get(f"{path}/ticket.png", params={"size": 6})
    assert png.status == 200 and png.headers["content-type"] == "image/png" and png.body[:4] == b"\x89PNG"
    assert "no-store" in png.headers["cache-control"] and "content-disposition" not in png.headers
    import io

    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.body)))
    text = decoded[0].text
    _, jwks = await client.get("/.well-known/jwks.json")
    claims = tickets.verify_offline(text, jwks.json)
    assert f"/m/me/bookings/{claims.booking_id}" == path and claims.hall == "main"
    _, headers = await make_citizen(phone=PHONE)  # the same citizen through the API: the same ticket
    _, api = await client.get(f"/api/v1{path.removeprefix('/m/me')}", headers=headers)
    assert api.json["ticket"] == text
    _, svg = await client.get(f"{path}/ticket.svg")
    assert svg.status == 200 and svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.body
    _, saved = await client.get(f"{path}/ticket.png", params={"download": 1})
    assert saved.status == 200 and saved.headers["content-disposition"].startswith("attachment; filename=")
    _, bad = await client.get(f"{path}/ticket.png", params={"size": 99})
    assert bad.status == 422
    _, other = await client.get(f"{path}/picture.png")
    assert other.status == 404


async def test_another_citizen_cannot_see_the_ticket(client, seeded, fake_clock):
    await sign_in(client)
    path = await book_in_browser(client, sid("2026-10-08", "09:00"))
    _, me = await client.get("/m/me")
    await client.post("/m/logout", data={"csrf": csrf_of(me.text)})
    await sign_in(client, phone="13900002222")
    for suffix in ("", "/ticket.png", "/calendar.ics", "/cancel", "/reschedule"):
        _, resp = await client.get(path + suffix)
        assert resp.status == 404, suffix
        assert "未找到该预约" in resp.text
    _, junk = await client.get("/m/me/bookings/not-a-uuid")
    assert junk.status == 404


async def test_the_calendar_entry_is_valid_icalendar(client, seeded, fake_clock):
    await sign_in(client)
    path = await book_in_browser(client, sid("2026-10-08", "14:00"))
    _, resp = await client.get(f"{path}/calendar.ics")
    assert resp.status == 200 and resp.headers["content-type"] == "text/calendar; charset=utf-8"
    assert resp.headers["content-disposition"] == 'attachment; filename="booking-20261008.ics"'
    body = resp.body
    assert body.startswith(b"BEGIN:VCALENDAR\r\n") and body.endswith(b"END:VCALENDAR\r\n")
    lines = body.split(b"\r\n")
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    assert all(len(line) <= 75 for line in lines)  # folded at 75 octets (RFC 5545 3.1)
    assert any(line.startswith(b" ") for line in lines)  # the long Chinese description was folded
    assert b"\r\nVERSION:2.0\r\n" in body and b"\r\nPRODID:" in body
    assert b"\r\nDTSTART:20261008T060000Z\r\n" in body and b"\r\nDTEND:20261008T063000Z\r\n" in body
    assert b"\r\nDTSTAMP:20260930T020000Z\r\n" in body
    event = Calendar.from_ical(body).walk("VEVENT")[0]
    booking_id = path.rsplit("/", 1)[1]
    assert str(event["UID"]) == f"booking-{booking_id}@testserver"
    assert str(event["SUMMARY"]) == "预约办理：营业执照设立登记"
    assert str(event["LOCATION"]) == f"{HALL} {ADDRESS}"
    assert event.decoded("DTSTART") == local("2026-10-08", "14:00")
    assert event.decoded("DTEND") == local("2026-10-08", "14:30")
    assert str(event["STATUS"]) == "CONFIRMED" and int(event["SEQUENCE"]) == 1
    description = str(event["DESCRIPTION"])
    assert "商事登记区 A1-A8 号窗口" in description and "公司登记（备案）申请书" in description
    assert f"http://testserver{path}" in description
    assert event.walk("VALARM")[0].decoded("TRIGGER") == -dt.timedelta(hours=1)


# -- my bookings, cancel, reschedule ---------------------------------------------------------------


async def test_my_bookings_newest_first_with_status_words_and_pages(client, seeded, fake_clock, make_citizen):
    await sign_in(client)
    _, headers = await make_citizen(phone=PHONE)  # the same account through the API, to make many quickly
    days = ["2026-10-08", "2026-10-09", "2026-10-10", "2026-10-12", "2026-10-13", "2026-10-14"]
    made = []
    for day in days:
        for hhmm in ("09:00", "10:00"):
            made.append(await api_book(client, headers, sid(day, hhmm)))
            # one active booking per matter and day, five at most: 09:00 and the first day's are cancelled
            if hhmm == "09:00" or day == days[0]:
                _, resp = await client.post(f"/api/v1/bookings/{made[-1]['id']}/cancel", headers=headers)
                assert resp.status == 200
                made[-1] = resp.json
    _, first = await client.get("/m/me/bookings")
    assert first.status == 200 and "共 12 条" in first.text
    listed = re.findall(r'href="/m/me/bookings/([0-9a-f-]{36})"', first.text)
    assert len(listed) == 10
    newest = sorted(made, key=lambda b: b["starts_at"], reverse=True)
    assert listed == [b["id"] for b in newest[:10]]
    words = {"booked": "已预约", "cancelled": "已取消"}
    shown = re.findall(r'</a> <span class="status">(.+?)</span>', first.text)
    assert shown == [words[b["status"]] for b in newest[:10]]
    assert shown.count("已预约") == 5 and shown.count("已取消") == 5
    assert "10月14日（周三） 10:00–10:30" in first.text
    assert 'href="/m/me/bookings?page=2">下一页' in first.text and "第 1 / 2 页" in first.text
    _, second = await client.get("/m/me/bookings", params={"page": 2})
    assert re.findall(r'href="/m/me/bookings/([0-9a-f-]{36})"', second.text) == [b["id"] for b in newest[10:]]
    assert 'href="/m/me/bookings?page=1">上一页' in second.text
    _, ticket = await client.get(f"/m/me/bookings/{newest[0]['id']}")
    _, moving = await client.get(f"/m/me/bookings/{newest[0]['id']}/reschedule", params={"day": "2026-10-13"})
    for resp in (first, ticket, moving):
        assert resp.status == 200 and len(resp.body) < 60_000


async def test_my_bookings_needs_sign_in(client, seeded):
    _, resp = await client.get("/m/me/bookings", follow_redirects=False)
    assert resp.status == 303 and resp.headers["location"] == "/m/login?next=/m/me/bookings"


async def test_cancel_asks_first_then_frees_the_seat(client, seeded, fake_clock):
    await sign_in(client)
    slot = sid("2026-10-08", "09:00")
    path = await book_in_browser(client, slot)
    _, ask = await client.get(f"{path}/cancel")
    assert ask.status == 200 and "确定要取消吗" in ask.text and "预约码随即作废" in ask.text
    _, done = await client.post(f"{path}/cancel", data={"csrf": csrf_of(ask.text)}, follow_redirects=False)
    assert done.status == 303 and done.headers["location"] == f"{path}?done=cancelled"
    _, ticket = await client.get(done.headers["location"])
    assert "已取消预约" in ticket.text and '<span class="status">已取消</span>' in ticket.text
    assert "ticket.svg" not in ticket.text and "取消预约</a>" not in ticket.text
    _, again = await client.post(f"{path}/cancel", data={"csrf": csrf_of(ask.text)}, follow_redirects=False)
    assert again.status == 303  # a repeated cancel answers the same
    _, gone = await client.get(f"{path}/ticket.png")
    assert gone.status == 409 and "BOOKING_NOT_ACTIVE" in gone.text
    _, day = await client.get(f"/m/{MATTER}/book", params={"day": "2026-10-08"})
    assert f'slot={slot}">09:00–09:30<span class="n">余 2 个号' in day.text
    _, ics = await client.get(f"{path}/calendar.ics")
    assert b"STATUS:CANCELLED" in ics.body and b"VALARM" not in ics.body


async def test_cancel_after_the_cutoff_is_explained(client, seeded, fake_clock):
    await sign_in(client)
    path = await book_in_browser(client, sid("2026-10-08", "09:00"))
    _, ask = await client.get(f"{path}/cancel")
    fake_clock.current = local("2026-10-08", "08:45")
    _, resp = await client.post(f"{path}/cancel", data={"csrf": csrf_of(ask.text)}, follow_redirects=False)
    assert resp.status == 409 and 'role="alert"' in resp.text and "已过该时段的预约、取消或改约截止时间" in resp.text
    _, ticket = await client.get(path)
    assert "已过取消和改约截止时间" in ticket.text and "/cancel" not in ticket.text


async def test_reschedule_moves_to_another_time_and_a_new_ticket(client, seeded, fake_clock):
    await sign_in(client)
    path = await book_in_browser(client, sid("2026-10-08", "09:00"))
    _, before = await client.get(f"{path}/ticket.png")
    _, days = await client.get(f"{path}/reschedule")
    assert days.status == 200 and f'href="{path}/reschedule?day=2026-10-09"' in days.text
    _, page = await client.get(f"{path}/reschedule", params={"day": "2026-10-08"})
    mine = sid("2026-10-08", "09:00")
    assert re.search(rf'value="{mine}" disabled><span>09:00–09:30</span><span class="n">当前预约', page.text)
    new = sid("2026-10-09", "15:30")
    _, moved = await client.post(
        f"{path}/reschedule", data={"csrf": csrf_of(page.text), "slot": new}, follow_redirects=False
    )
    assert moved.status == 303 and moved.headers["location"] == f"{path}?done=moved"
    _, ticket = await client.get(moved.headers["location"])
    assert "改约成功" in ticket.text and "10月9日（周五） 15:30–16:00" in ticket.text
    _, after = await client.get(f"{path}/ticket.png")
    assert after.body != before.body  # the old ticket is revoked: a new one
    _, ics = await client.get(f"{path}/calendar.ics")
    assert b"DTSTART:20261009T073000Z" in ics.body and b"SEQUENCE:2" in ics.body


async def test_reschedule_refusals_keep_the_choice(client, seeded, fake_clock, make_citizen):
    await sign_in(client)
    path = await book_in_browser(client, sid("2026-10-08", "09:00"))
    await book_in_browser(client, sid("2026-10-09", "09:00"))
    full = sid("2026-10-12", "09:00")
    await fill(client, make_citizen, full)
    _, page = await client.get(f"{path}/reschedule", params={"day": "2026-10-12"})
    csrf = csrf_of(page.text)
    _, resp = await client.post(f"{path}/reschedule", data={"csrf": csrf, "slot": full}, follow_redirects=False)
    assert resp.status == 409 and '<p class="err" id="slot-err">该时段已约满' in resp.text
    assert re.search(rf'value="{full}" checked disabled aria-invalid="true">', resp.text)
    taken = sid("2026-10-09", "10:00")  # that day already has this matter booked
    _, same_day = await client.post(f"{path}/reschedule", data={"csrf": csrf, "slot": taken}, follow_redirects=False)
    assert same_day.status == 409 and "您当天已预约过该事项" in same_day.text
    assert f'value="{taken}" checked' in same_day.text
    _, none = await client.post(f"{path}/reschedule", data={"csrf": csrf}, follow_redirects=False)
    assert none.status == 422 and "请选择新的预约时段" in none.text
    _, ticket = await client.get(path)
    assert "10月8日（周四） 09:00–09:30" in ticket.text  # nothing moved


# -- the visit to rate -----------------------------------------------------------------------------


async def test_a_checked_in_booking_leads_to_its_visit_rating(client, seeded, fake_clock, make_citizen, make_staff):
    await sign_in(client)
    path = await book_in_browser(client, sid("2026-09-30", "11:00"))
    booking_id = path.rsplit("/", 1)[1]
    _, headers = await make_citizen(phone=PHONE)
    _, before = await client.get(f"/api/v1/bookings/{booking_id}", headers=headers)
    assert before.json["checkin_id"] is None
    assert before.json["checkin_window"] == {
        "opens_at": "2026-09-30T10:30:00+08:00",
        "closes_at": "2026-09-30T11:45:00+08:00",
    }
    fake_clock.current = local("2026-09-30", "10:40")
    _, clerk = await make_staff("clerk", hall="main")
    _, scan = await client.post(
        "/api/v1/desk/checkins", json={"ticket": before.json["ticket"], "nonce": uuid.uuid4().hex}, headers=clerk
    )
    assert scan.status == 200 and scan.json["result"] == "checked_in", scan.text
    checkin_id = scan.json["checkin_id"]
    _, headers = await make_citizen(phone=PHONE)
    _, after = await client.get(f"/api/v1/bookings/{booking_id}", headers=headers)
    assert after.json["status"] == "checked_in" and after.json["checkin_id"] == checkin_id
    _, listed = await client.get("/api/v1/bookings", headers=headers)
    assert listed.json["items"][0]["checkin_id"] == checkin_id
    link = f'href="/m/rate/new?subject_type=visit&amp;subject_id={checkin_id}">评价本次窗口服务</a>'
    _, ticket = await client.get(path)
    assert link in ticket.text and '<span class="status">已签到</span>' in ticket.text
    assert scan.json["queue_no"] in ticket.text and "ticket.svg" not in ticket.text
    _, mine = await client.get("/m/me/bookings")
    assert link in mine.text
    # the same visit is what the rating service accepts
    _, rated = await client.post(
        "/api/v1/ratings",
        json={"subject_type": "visit", "subject_id": checkin_id, "level": 5, "tags": [], "comment": ""},
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert rated.status == 201, rated.text


# -- hall hours ------------------------------------------------------------------------------------


async def test_the_guide_states_the_hours_the_hall_offers_slots_in(client, seeded, fake_clock, admin_headers):
    default = "周一至周五 09:00-12:00、13:30-17:00；法定节假日休息，调休上班日照常办公"
    _, guide = await client.get(f"/api/v1/matters/{MATTER}")
    assert guide.json["hall"]["hours"] == default
    afternoon = [["08:30", "12:00"], ["14:30", "17:30"]]
    _, put = await client.put(
        "/api/v1/admin/halls/main/schedule",
        json={"hours": {**{str(d): afternoon for d in range(1, 6)}, "6": [["09:00", "12:00"]]}},
        headers=admin_headers,
    )
    assert put.status == 200, put.text
    stated = "周一至周五 08:30-12:00、14:30-17:30；周六 09:00-12:00；法定节假日休息，调休上班日照常办公"
    _, guide = await client.get(f"/api/v1/matters/{MATTER}")
    assert guide.json["hall"]["hours"] == stated  # the cached guide followed the schedule
    _, page = await client.get(f"/m/{MATTER}")
    assert stated in page.text
    _, book = await client.get(f"/m/{MATTER}/book", params={"day": "2026-10-08"})
    assert f"办公时间：{stated}" in book.text
    times = re.findall(r"(\d\d:\d\d)–\d\d:\d\d<span", book.text)
    assert times[0] == "08:30" and "12:00" not in times and times[7] == "14:30" and times[-1] == "17:00"
    assert "13:30" not in times


async def test_the_demo_halls_state_the_hours_of_their_schedules():
    """The demo catalogue's hall texts are what the halls' (default) schedules say: they cannot drift apart."""
    stated = booking_calendar.hours_text(booking_calendar.ScheduleConfig())
    for hall in demo_data()["halls"]:
        assert hall["hours"] == stated, hall["code"]
    assert "14:30" not in stated and "13:30" in stated


async def test_every_booking_page_is_documented_under_its_own_path(client):
    _, resp = await client.get("/docs/openapi.json")
    paths = resp.json["paths"]
    pages = {
        ("get", "/m/{code}/book"), ("post", "/m/{code}/book"), ("get", "/m/{code}/book/confirm"),
        ("get", "/m/me/bookings"), ("get", "/m/me/bookings/{booking_id}"),
        ("get", "/m/me/bookings/{booking_id}/{name}"), ("get", "/m/me/bookings/{booking_id}/calendar.ics"),
        ("get", "/m/me/bookings/{booking_id}/cancel"), ("post", "/m/me/bookings/{booking_id}/cancel"),
        ("get", "/m/me/bookings/{booking_id}/reschedule"), ("post", "/m/me/bookings/{booking_id}/reschedule"),
    }  # fmt: skip
    for method, path in pages:
        op = paths[path][method]
        assert op["tags"] == ["h5 页面"] and op["summary"], (method, path)
    assert paths["/m/me/bookings/{booking_id}"]["get"]["summary"].startswith("预约凭证")
    assert "SLOT_FULL" in paths["/m/{code}/book"]["post"]["responses"]["409"]["description"]
    api = paths["/api/v1/bookings/{booking_id}"]["get"]
    assert "checkin_id" in api["summary"] and "subject_type=visit" in api["description"]

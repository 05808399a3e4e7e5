"""Calling numbers (叫号) through HTTP: the call order, recall, skip and re-queue, scopes, simultaneous
calls, the staff cookie session, and the waiting-room screen with its event stream.

The clock starts at 2026-09-30 10:00 like tests/api/test_desk_api.py, whose helpers this reuses.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from app.booking.models import QueueCall
from app.web import display
from auth.staff import create_staff
from tests.api import test_desk_api as base
from tests.api.test_desk_api import at, scan

pytestmark = pytest.mark.asyncio
seeded, desk = base.seeded, base.desk  # the desk tests' fixtures

CALL = "/api/v1/desk/counters/{}/call-next"
RECALL = "/api/v1/desk/counters/{}/recall"
SKIP = "/api/v1/desk/counters/{}/skip"
QUEUE = "/api/v1/desk/queue"


async def walk_in(client, headers, section="commercial") -> str:
    _, resp = await client.post("/api/v1/desk/tickets", json={"section": section}, headers=headers)
    assert resp.status == 201, resp.text
    return resp.json["queue_no"]


async def call(client, headers, counter="B01", path=CALL):
    _, resp = await client.post(path.format(counter), headers=headers)
    return resp


async def called_no(client, headers, counter="B01") -> str | None:
    resp = await call(client, headers, counter)
    assert resp.status == 200, resp.text
    return resp.json["called"]["queue_no"] if resp.json["called"] else None


async def test_booked_numbers_are_called_by_slot_once_due_then_walk_ins_in_issue_order(client, desk, fake_clock):
    first = await desk.booking(phone="13800000001", starts="11:00")
    later = await desk.booking(phone="13800000002", starts="11:30")
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    assert (await scan(client, clerk, first["ticket"]))["queue_no"] == "B001"
    at(fake_clock, "10:50")
    assert await walk_in(client, await desk.clerk()) == "B002"
    at(fake_clock, "11:05")
    clerk = await desk.clerk()
    assert (await scan(client, clerk, later["ticket"]))["queue_no"] == "B003"  # early for its 11:30 slot
    assert await walk_in(client, clerk) == "B004"

    _, queue = await client.get(QUEUE, headers=clerk)
    assert queue.status == 200, queue.text
    assert [(e["queue_no"], e["booked"]) for e in queue.json["waiting"]] == [
        ("B001", True), ("B002", False), ("B004", False), ("B003", True),
    ]  # fmt: skip
    assert queue.json["waiting"][0]["slot_starts_at"] == "2026-09-30T11:00:00+08:00"

    resp = await call(client, clerk)
    assert resp.status == 200, resp.text
    assert resp.json["called"]["queue_no"] == "B001" and resp.json["called"]["booked"] is True
    assert resp.json["called"]["counter"] == "B01" and resp.json["called"]["state"] == "called"
    assert await called_no(client, clerk) == "B002"
    at(fake_clock, "11:31")  # the 11:30 slot has started: its booked citizen goes before the walk-in
    clerk = await desk.clerk()
    assert await called_no(client, clerk) == "B003"
    assert await called_no(client, clerk) == "B004"
    assert await called_no(client, clerk) is None

    _, queue = await client.get(QUEUE, headers=clerk)
    assert queue.json["waiting"] == []
    states = {e["queue_no"]: e["state"] for e in queue.json["called"]}
    assert states == {"B001": "done", "B002": "done", "B003": "done", "B004": "done"}  # calling on ends B004


async def test_recall_skip_and_requeue(client, desk, fake_clock):
    at(fake_clock, "10:30")
    clerk = await desk.clerk()
    assert [await walk_in(client, clerk) for _ in range(2)] == ["B001", "B002"]
    resp = await call(client, clerk, path=RECALL)
    assert resp.status == 409 and resp.json["error"]["code"] == "NOTHING_CALLED"

    assert await called_no(client, clerk) == "B001"
    resp = await call(client, clerk, path=RECALL)
    assert resp.status == 200 and resp.json["called"]["queue_no"] == "B001"
    resp = await call(client, clerk, path=SKIP)
    assert resp.status == 200 and resp.json["skipped"]["state"] == "skipped"
    skipped = resp.json["skipped"]["checkin_id"]
    actions = await QueueCall.filter(hall_code="main").order_by("id").values_list("action", "queue_no")
    assert actions == [("call", "B001"), ("recall", "B001"), ("skip", "B001")]

    assert await called_no(client, clerk) == "B002"
    _, back = await client.post(f"/api/v1/desk/queue/{skipped}/requeue", headers=clerk)
    assert back.status == 200, back.text
    assert await called_no(client, clerk) == "B001"  # back at its original place
    _, again = await client.post(f"/api/v1/desk/queue/{skipped}/requeue", headers=clerk)
    assert again.status == 409 and again.json["error"]["code"] == "NOT_SKIPPED"


async def test_scopes(client, desk, fake_clock, make_citizen, make_staff):
    at(fake_clock, "10:30")
    await walk_in(client, await desk.clerk())
    other = await desk.clerk(hall="gongjijin")
    _, resp = await client.post(CALL.format("B01"), params={"hall": "main"}, headers=other)
    assert resp.status == 403, resp.text
    _, resp = await client.get(QUEUE, params={"hall": "main"}, headers=other)
    assert resp.status == 403, resp.text
    assert await called_no(client, other) is None  # its own hall has nobody waiting
    _, citizen = await make_citizen()
    assert (await call(client, citizen)).status in (401, 403)
    _, admin = await make_staff("admin")
    _, resp = await client.post(CALL.format("B01"), headers=admin)
    assert resp.status == 422 and resp.json["error"]["code"] == "HALL_REQUIRED"
    _, resp = await client.post(CALL.format("B01"), params={"hall": "main"}, headers=admin)
    assert resp.status == 200 and resp.json["called"]["queue_no"] == "B001"
    assert (await call(client, await desk.clerk(), counter="bad-counter-too-long")).status == 422


async def test_counters_calling_at_once_never_get_the_same_number(client, desk, fake_clock):
    at(fake_clock, "10:30")
    clerk = await desk.clerk()
    issued = [await walk_in(client, clerk) for _ in range(12)]
    counters = [f"B{n:02d}" for n in range(1, 9)]
    results = await asyncio.gather(*(called_no(client, clerk, c) for c in counters * 2))
    got = [r for r in results if r is not None]
    assert len(got) == len(set(got)) == 12 and sorted(got) == issued
    assert await QueueCall.filter(hall_code="main", action="call").count() == 12


async def test_a_console_session_calls_with_its_cookie_and_another_site_cannot(client, desk, fake_clock):
    at(fake_clock, "10:30")
    await walk_in(client, await desk.clerk())
    await create_staff(username="desk1", password="clerk pass 1234", role="clerk", hall="main")
    _, form = await client.get("/console/login?next=/desk")
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text).group(1)
    data = {"csrf": token, "username": "desk1", "password": "clerk pass 1234", "next": "/desk"}
    _, done = await client.post("/console/login", data=data, follow_redirects=False)
    assert done.status == 303
    base = client.sanic_app.ctx.settings.base_url
    _, evil = await client.post(CALL.format("B01"), headers={"Origin": "https://evil.example"})
    assert evil.status == 403 and evil.json["error"]["code"] == "CSRF_REJECTED"
    _, resp = await client.post(CALL.format("B01"), headers={"Origin": base})
    assert resp.status == 200, resp.text
    assert resp.json["called"]["queue_no"] == "B001"


async def test_display_page_and_event_stream(client, desk, fake_clock, monkeypatch):
    booking = await desk.booking()
    at(fake_clock, "10:45")
    clerk = await desk.clerk()
    answer = await scan(client, clerk, booking["ticket"])
    assert answer["queue_no"] == "B001"
    _, page = await client.get("/display/main")
    assert page.status == 200 and "暂无叫号" in page.text
    monkeypatch.setattr(display, "STREAM_SECONDS", 0.05)
    monkeypatch.setattr(display, "POLL_SECONDS", 0.01)

    resp = await call(client, clerk, "B03")
    assert resp.json["called"]["queue_no"] == "B001", resp.text
    _, stream = await client.get("/display/main/events")
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    text = stream.text
    assert "retry: 3000" in text
    event_id = re.search(r"^id: (\d+)$", text, re.M).group(1)
    assert "event: call" in text and '"queue_no":"B001"' in text and '"counter":"B03"' in text

    monkeypatch.setattr(display, "HEARTBEAT_SECONDS", 0.0)
    _, resumed = await client.get("/display/main/events", headers={"Last-Event-ID": event_id})
    assert "event:" not in resumed.text and ": heartbeat" in resumed.text
    _, page = await client.get("/display/main")
    assert "B001" in page.text and "B03" in page.text
    assert f'data-last="{event_id}"' in page.text
    assert "138" not in page.text  # no personal data on a public screen
    _, missing = await client.get("/display/nowhere")
    assert missing.status == 404


async def test_desk_page_needs_a_console_session_and_knows_each_counter_s_section(client, desk, make_staff):
    _, away = await client.get("/desk", follow_redirects=False)
    assert away.status == 303 and away.headers["location"] == "/console/login?next=/desk"
    await create_staff(username="desk2", password="clerk pass 1234", role="clerk", hall="main")
    _, admin = await make_staff("admin")
    counters = {"counters": [{"code": "T01", "section": "tax"}, {"code": "B01", "section": "commercial"}]}
    _, put = await client.put("/api/v1/admin/halls/main/counters", json=counters, headers=admin)
    assert put.status == 200, put.text
    _, form = await client.get("/console/login?next=/desk")
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text).group(1)
    data = {"csrf": token, "username": "desk2", "password": "clerk pass 1234", "next": "/desk"}
    _, done = await client.post("/console/login", data=data, follow_redirects=False)
    assert done.headers["location"] == "/desk"
    _, page = await client.get("/desk")
    assert page.status == 200 and "sessionStorage" not in page.text
    assert 'id="scan"' in page.text and 'href="/display/main"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "&#34;T01&#34;:&#34;tax&#34;" in page.text  # desk.js puts the counter's own section first

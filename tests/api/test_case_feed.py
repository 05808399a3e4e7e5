"""The provincial case feed (办件上报): admin only, every event once and in order by cursor, recent ones held back."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest

from app.cases.models import Case, CaseEvent
from app.matters import service as catalogue
from auth.idcard import make_id_number
from tests import factories

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MATTER = "4308-XK-SS-001"
FEED = "/api/v1/admin/cases/feed"


@pytest.fixture
def settings(base_settings, request):
    """No lag unless a test asks for one (`parametrize("settings", [{...}], indirect=True)`)."""
    overrides = {"feed_lag_seconds": 0, **getattr(request, "param", {})}
    return base_settings.replace(**overrides)


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    return client


@pytest.fixture
async def reviewer(make_staff):
    _, headers = await make_staff("reviewer", departments=["scjgj"])
    return headers


async def submit(client, headers) -> str:
    ids = []
    for data, name in ((PDF, "申请书.pdf"), (PNG, "id.png")):
        files = {"file": (name, data, "application/octet-stream")}
        _, r = await client.post("/api/v1/uploads", headers=headers, files=files)
        assert r.status_code == 201, r.text
        ids.append(r.json["id"])
    body = {
        "matter_code": MATTER,
        "applicant": {"kind": "self", "name": "张三", "id_number": make_id_number()},
        "materials": [
            {"name": "公司登记（备案）申请书", "upload_ids": [ids[0]]},
            {"name": "居民身份证", "upload_ids": [ids[1]]},
        ],
    }
    _, r = await client.post("/api/v1/cases", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return r.json["case_no"]


async def act(client, headers, case_no: str, action: str, **args) -> None:
    _, r = await client.post(f"/api/v1/staff/cases/{case_no}/actions", json={"action": action, **args}, headers=headers)
    assert r.status_code == 200, (action, r.text)


async def feed(client, headers, **params):
    _, r = await client.get(FEED, params=params, headers=headers)
    return r


async def some_history(client, make_citizen, reviewer) -> list[tuple[str, str]]:
    """Two cases' steps, interleaved; (case_no, action) in the order they happened."""
    _, headers = await make_citizen()
    a = await submit(client, headers)
    b = await submit(client, headers)
    await act(client, reviewer, a, "accept")
    await act(client, reviewer, b, "reject", reason="材料与事项不符")
    await act(client, reviewer, a, "start_review")
    await act(client, reviewer, a, "approve")
    c = await submit(client, headers)
    await act(client, reviewer, a, "deliver")
    await act(client, reviewer, c, "require_correction", materials=["居民身份证"], reason="照片不清晰")
    return [
        (a, "submit"),
        (b, "submit"),
        (a, "accept"),
        (b, "reject"),
        (a, "start_review"),
        (a, "approve"),
        (c, "submit"),
        (a, "deliver"),
        (c, "require_correction"),
    ]


async def test_feed_is_for_administrators_only(seeded, make_staff, make_citizen, reviewer):
    r = await feed(seeded, reviewer)
    assert r.status_code == 403 and r.json["error"]["code"] == "INSUFFICIENT_ROLE", r.text
    _, clerk = await make_staff("clerk", hall="main")
    r = await feed(seeded, clerk)
    assert r.status_code == 403 and r.json["error"]["code"] == "INSUFFICIENT_ROLE", r.text
    _, citizen = await make_citizen()
    r = await feed(seeded, citizen)
    assert r.status_code == 401 and r.json["error"]["code"] == "TOKEN_INVALID", r.text  # not a staff token
    r = await feed(seeded, {})
    assert r.status_code == 401 and r.json["error"]["code"] == "TOKEN_MISSING"
    _, admin = await make_staff("admin")
    r = await feed(seeded, admin)
    assert r.status_code == 200, r.text
    assert r.json == {"items": [], "next_cursor": None}
    assert r.headers["cache-control"] == "private, no-store"


async def test_feed_lists_every_event_in_id_order_with_the_case(seeded, make_citizen, reviewer, admin_headers):
    history = await some_history(seeded, make_citizen, reviewer)
    r = await feed(seeded, admin_headers)
    assert r.status_code == 200, r.text
    items = r.json["items"]
    assert [(i["case_no"], i["action"]) for i in items] == history
    ids = [i["event_id"] for i in items]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert r.json["next_cursor"]

    by_step = {(i["case_no"], i["action"]): i for i in items}
    a = history[0][0]
    accept = by_step[(a, "accept")]
    assert (accept["from_status"], accept["status"]) == ("submitted", "accepted")
    assert accept["matter_code"] == MATTER and accept["matter_name"] == "营业执照设立登记"
    where = (accept["department"], accept["hall"], accept["online"], accept["promised_days"])
    assert where == ("scjgj", "main", True, 3)
    assert accept["due_on"] is not None and accept["at"].endswith("+08:00")
    first = by_step[(a, "submit")]
    assert first["from_status"] is None and first["status"] == "submitted"
    assert by_step[(history[1][0], "reject")]["status"] == "rejected"
    # Nothing personal leaves in the feed.
    assert "张三" not in r.text and "id_number" not in r.text and "principal" not in r.text


async def test_following_cursors_yields_every_event_exactly_once(seeded, make_citizen, reviewer, admin_headers):
    history = await some_history(seeded, make_citizen, reviewer)
    everything = (await feed(seeded, admin_headers)).json["items"]
    assert len(everything) == len(history)

    pages, cursor = [], None
    while True:
        params = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        r = await feed(seeded, admin_headers, **params)
        assert r.status_code == 200, r.text
        page = r.json
        assert len(page["items"]) <= 2
        if not page["items"]:
            assert page["next_cursor"] == cursor  # at the end: no items, the same cursor to come back with
            break
        pages.append(page["items"])
        assert page["next_cursor"] != cursor
        cursor = page["next_cursor"]
        assert len(pages) <= len(history), "the cursor does not move on"
    assert [len(p) for p in pages] == [2, 2, 2, 2, 1]
    assert [i for p in pages for i in p] == everything

    # Again at the end: still nothing, still the same cursor.
    r = await feed(seeded, admin_headers, cursor=cursor, limit=2)
    assert r.json == {"items": [], "next_cursor": cursor}

    # A new step shows up after the cursor, and only it.
    _, headers = await make_citizen()
    d = await submit(seeded, headers)
    await act(seeded, reviewer, history[0][0], "complete")
    r = await feed(seeded, admin_headers, cursor=cursor, limit=2)
    assert [(i["case_no"], i["action"]) for i in r.json["items"]] == [(d, "submit"), (history[0][0], "complete")]
    r = await feed(seeded, admin_headers, cursor=r.json["next_cursor"])
    assert r.json["items"] == []


async def test_limit_bounds(seeded, make_citizen, reviewer, admin_headers):
    await some_history(seeded, make_citizen, reviewer)
    assert len((await feed(seeded, admin_headers, limit=1)).json["items"]) == 1
    for bad in (0, 501, "x"):
        r = await feed(seeded, admin_headers, limit=bad)
        assert r.status_code == 422, (bad, r.text)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "%%%",
        "abc",  # base64 of something that is not an event cursor
        base64.urlsafe_b64encode(b"e12x").decode(),
        base64.urlsafe_b64encode(b"x12").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_garbage_cursor_is_422_cursor_invalid(seeded, admin_headers, cursor):
    r = await feed(seeded, admin_headers, cursor=cursor)
    assert r.status_code == 422, r.text
    assert r.json["error"]["code"] == "CURSOR_INVALID"


async def test_overlong_cursor_is_refused(seeded, admin_headers):
    r = await feed(seeded, admin_headers, cursor="e" * 65)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("settings", [{"feed_lag_seconds": 30}], indirect=True)
async def test_events_newer_than_the_lag_are_held_back(
    fake_clock, seeded, make_citizen, reviewer, admin_headers, settings
):
    assert settings.feed_lag_seconds == 30
    _, headers = await make_citizen()
    case_no = await submit(seeded, headers)
    r = await feed(seeded, admin_headers)
    assert r.json == {"items": [], "next_cursor": None}
    fake_clock.advance(seconds=29)
    assert (await feed(seeded, admin_headers)).json["items"] == []
    fake_clock.advance(seconds=1)
    r = await feed(seeded, admin_headers)
    assert [(i["case_no"], i["action"]) for i in r.json["items"]] == [(case_no, "submit")]
    cursor = r.json["next_cursor"]

    await act(seeded, reviewer, case_no, "accept")
    fake_clock.advance(seconds=10)
    r = await feed(seeded, admin_headers, cursor=cursor)
    assert r.json == {"items": [], "next_cursor": cursor}  # held back, the cursor stays put
    fake_clock.advance(seconds=20)
    r = await feed(seeded, admin_headers, cursor=cursor)
    assert [(i["case_no"], i["action"]) for i in r.json["items"]] == [(case_no, "accept")]
    assert r.json["next_cursor"] != cursor


@pytest.mark.parametrize("settings", [{"feed_lag_seconds": 30}], indirect=True)
async def test_a_held_back_event_does_not_hold_back_older_ones(
    fake_clock, seeded, make_citizen, reviewer, admin_headers, settings
):
    _, headers = await make_citizen()
    old = await submit(seeded, headers)
    fake_clock.advance(seconds=20)
    new = await submit(seeded, headers)
    fake_clock.advance(seconds=10)  # the first is 30 s old, the second 10 s
    r = await feed(seeded, admin_headers)
    assert [(i["case_no"], i["action"]) for i in r.json["items"]] == [(old, "submit")]
    fake_clock.advance(seconds=20)
    r = await feed(seeded, admin_headers, cursor=r.json["next_cursor"])
    assert [(i["case_no"], i["action"]) for i in r.json["items"]] == [(new, "submit")]


@pytest.mark.parametrize("settings", [{"feed_lag_seconds": 30}], indirect=True)
async def test_an_event_stamped_later_but_numbered_lower_is_not_skipped(
    fake_clock, seeded, make_citizen, admin_headers, settings
):
    """Two overlapping steps: each stamps `created_at` when it starts, the id comes at insert. The quick one
    (started at T+20) takes the lower id; the slow one (started at T+10) the higher. Following the cursor must
    still yield both, once each, whatever moment the provincial platform polls at."""
    _, headers = await make_citizen()
    case_no = await submit(seeded, headers)
    case = await Case.get(case_no=case_no)
    start = fake_clock.current
    common = {"case_id": case.id, "from_status": "submitted", "actor_kind": "staff", "public_text": "x"}
    quick_started, slow_started = start + dt.timedelta(seconds=20), start + dt.timedelta(seconds=10)
    quick = await CaseEvent.create(action="accept", to_status="accepted", created_at=quick_started, **common)
    slow = await CaseEvent.create(action="reject", to_status="rejected", created_at=slow_started, **common)
    assert quick.id < slow.id

    seen, cursor = [], None
    for _ in range(8):  # poll every 10 s for 80 s: everything is older than the lag by the end
        fake_clock.advance(seconds=10)
        r = await feed(seeded, admin_headers, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        seen += [i["event_id"] for i in r.json["items"]]
        cursor = r.json["next_cursor"]
    first = await CaseEvent.filter(case_id=case.id, action="submit").first()
    assert seen == [first.id, quick.id, slow.id]

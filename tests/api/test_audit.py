"""The audit log: each staff or admin write leaves exactly one entry (who, from where, what, which object),
written in the write's transaction, append-only in the database, redacted, searchable and exportable."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid

import pytest
from tortoise import connections
from tortoise.exceptions import BaseORMException
from tortoise.transactions import in_transaction

from app.audit import service as audit
from app.audit.models import AuditEntry
from app.errors import InvalidInput
from app.matters import service as catalogue
from auth.idcard import make_id_number
from tests import factories
from tests.api import case_helpers as ch

pytestmark = pytest.mark.asyncio

MATTER = "4308-XK-SS-001"
FOOD = "4308-XK-SS-002"
ADMIN = "/api/v1/admin"
AUDIT = f"{ADMIN}/audit"
PHONE = "13812345678"
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
async def seeded(client):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    return client


async def entries(action: str | None = None) -> list[AuditEntry]:
    rows = AuditEntry.all().order_by("id")
    return await (rows.filter(action=action) if action else rows)


async def one(action: str, staff, object_id: str | None = None) -> AuditEntry:
    """The single entry of this action; it names the staff member, the client address and the object."""
    rows = await entries(action)
    assert len(rows) == 1, [(r.action, r.object_id) for r in await entries()]
    row = rows[0]
    assert row.actor == f"staff:{staff.id}"
    assert row.actor_role == staff.role.value and row.actor_name == (staff.display_name or staff.username)
    assert row.ip  # the ASGI client's address
    assert row.request_id
    assert row.object_type and row.object_id
    if object_id is not None:
        assert row.object_id == object_id
    return row


async def all_text() -> str:
    return json.dumps([r.__dict__ for r in await entries()], default=str, ensure_ascii=False)


async def upload(client, headers, data: bytes, name: str) -> str:
    _, r = await client.post(
        "/api/v1/uploads", headers=headers, files={"file": (name, data, "application/octet-stream")}
    )
    assert r.status_code == 201, r.text
    return r.json["id"]


async def submit(client, headers, id_number: str) -> str:
    body = {
        "matter_code": MATTER,
        "applicant": {"kind": "self", "name": "张三", "id_number": id_number},
        "form": {"company_name": "张家界测试有限公司"},
        "materials": [
            {"name": "公司登记（备案）申请书", "upload_ids": [await upload(client, headers, PDF, "申请书.pdf")]},
            {"name": "居民身份证", "upload_ids": [await upload(client, headers, PNG, "id.png")]},
        ],
        "delivery": {"method": "window"},
    }
    _, r = await client.post("/api/v1/cases", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return r.json["case_no"]


# -- each wired write leaves exactly one entry ------------------------------------------------------


async def test_case_actions_are_audited_and_citizen_steps_are_not(seeded, make_citizen, make_staff):
    client = seeded
    _, citizen = await make_citizen(phone=PHONE)
    id_number = make_id_number()
    case_no = await submit(client, citizen, id_number)
    assert await entries("case.submit") == []  # a citizen's write is not a staff write
    staff, reviewer = await make_staff("reviewer", departments=["scjgj"])
    _, r = await client.post(
        f"/api/v1/staff/cases/{case_no}/actions",
        json={"action": "reject", "reason": f"证件号 {id_number} 与电话 {PHONE} 不符"},
        headers=reviewer,
    )
    assert r.status_code == 200, r.text
    row = await one("case.reject", staff, case_no)
    assert row.object_type == "case"
    assert row.changes["status"] == ["submitted", "rejected"]
    text = await all_text()
    assert id_number not in text and PHONE not in text
    assert "138****5678" in text  # masked, not dropped: the reason stays readable


async def test_catalogue_writes_are_audited(seeded, make_staff):
    client = seeded
    staff, admin = await make_staff("admin")
    _, r = await client.post(f"{ADMIN}/matters/{FOOD}/retire", headers=admin)
    assert r.status_code == 200, r.text
    await one("catalogue.retire", staff, FOOD)
    content = factories.guide(name="新事项")
    _, r = await client.post(f"{ADMIN}/matters", json={"code": "4308-GG-WJ-001", "content": content}, headers=admin)
    assert r.status_code == 201, r.text
    await one("catalogue.create", staff, "4308-GG-WJ-001")
    _, r = await client.post(f"{ADMIN}/matters/4308-GG-WJ-001/versions/1/publish", headers=admin)
    assert r.status_code == 200, r.text
    await one("catalogue.publish", staff, "4308-GG-WJ-001")
    assert await entries("code.issue") == []  # the default code the publish hook creates is part of the publish


async def test_code_admin_is_audited(seeded, make_staff):
    client = seeded
    staff, admin = await make_staff("admin")
    _, r = await client.post(f"{ADMIN}/codes", json={"matter_code": MATTER, "label": "一楼大厅"}, headers=admin)
    assert r.status_code == 201, r.text
    slug = r.json["slug"]
    await one("code.issue", staff, slug)
    _, r = await client.patch(f"{ADMIN}/codes/{slug}", json={"matter_code": FOOD}, headers=admin)
    assert r.status_code == 200, r.text
    row = await one("code.retarget", staff, slug)
    assert row.changes["matter_code"] == [MATTER, FOOD]


async def test_hall_calendar_writes_are_audited(seeded, make_staff):
    client = seeded
    staff, admin = await make_staff("admin")
    _, r = await client.put(f"{ADMIN}/halls/main/schedule", json={"capacity": {"commercial": 5}}, headers=admin)
    assert r.status_code == 200, r.text
    await one("hall.schedule", staff, "main")
    day = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    _, r = await client.post(f"{ADMIN}/halls/main/closures", json={"date": day, "reason": "检修"}, headers=admin)
    assert r.status_code == 201, r.text
    await one("hall.close", staff, "main")
    _, r = await client.post(f"{ADMIN}/halls/main/closures", json={"date": day, "reason": "检修"}, headers=admin)
    assert r.status_code == 409, r.text  # refused: its entry rolled back with it
    assert len(await entries("hall.close")) == 1
    _, r = await client.delete(f"{ADMIN}/halls/main/closures/{day}", headers=admin)
    assert r.status_code in (200, 204), r.text
    await one("hall.reopen", staff, "main")
    counters = {"counters": [{"code": "B01", "section": "commercial", "name": "一号窗口"}]}
    _, r = await client.put(f"{ADMIN}/halls/main/counters", json=counters, headers=admin)
    assert r.status_code == 200, r.text
    await one("hall.counters", staff, "main")


async def test_staff_admin_is_audited(seeded, make_staff):
    client = seeded
    staff, admin = await make_staff("admin")
    before = len(await entries("staff.create"))  # make_staff's own accounts: written by the system
    body = {"username": "clerk_new", "password": "long enough pw", "role": "clerk", "hall": "main"}
    _, r = await client.post(f"{ADMIN}/staff", json=body, headers=admin)
    assert r.status_code == 201, r.text
    created = [e for e in await entries("staff.create") if e.object_id == "clerk_new"]
    assert len(created) == 1 and len(await entries("staff.create")) == before + 1
    assert created[0].actor == f"staff:{staff.id}" and created[0].ip
    assert "long enough pw" not in await all_text()
    _, r = await client.post(f"{ADMIN}/staff/clerk_new/disable", headers=admin)
    assert r.status_code == 200, r.text
    await one("staff.disable", staff, "clerk_new")


async def test_desk_walk_in_and_undo_are_audited(seeded, make_staff):
    client = seeded
    staff, clerk = await make_staff("clerk", hall="main")
    _, r = await client.post("/api/v1/desk/tickets", json={"section": "commercial"}, headers=clerk)
    assert r.status_code == 201, r.text
    checkin_id = r.json["checkin_id"]
    await one("desk.walk_in", staff, checkin_id)
    _, r = await client.post(f"/api/v1/desk/checkins/{checkin_id}/undo", headers=clerk)
    assert r.status_code == 200, r.text
    await one("desk.undo", staff, checkin_id)


async def test_desk_check_in_is_audited_with_the_check_in(seeded, fake_clock, make_citizen, make_staff):
    client = seeded  # PostgreSQL checks in with one statement: the entry is one of its parts
    _, citizen = await make_citizen(phone=PHONE)
    slot_id = "main.commercial.20260930.1100"
    body = {"matter_code": MATTER, "slot_id": slot_id}
    _, r = await client.post("/api/v1/bookings", json=body, headers={**citizen, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    booking = r.json
    fake_clock.current = dt.datetime(2026, 9, 30, 2, 45, tzinfo=dt.UTC)  # 10:45 in the hall
    staff, clerk = await make_staff("clerk", hall="main")
    scan = {"ticket": booking["ticket"], "nonce": uuid.uuid4().hex, "counter": "B01"}
    _, r = await client.post("/api/v1/desk/checkins", json=scan, headers=clerk)
    assert r.status_code == 200 and r.json["result"] == "checked_in", r.text
    row = await one("desk.checkin", staff, booking["id"])
    assert row.changes == {"checkin_id": r.json["checkin_id"], "counter": "B01"}
    _, again = await client.post("/api/v1/desk/checkins", json={**scan, "nonce": uuid.uuid4().hex}, headers=clerk)
    assert again.json["result"] != "checked_in"  # a refused scan writes nothing to the log
    assert len(await entries("desk.checkin")) == 1
    assert PHONE not in await all_text()


async def test_question_answer_is_audited(seeded, make_citizen, make_staff):
    client = seeded
    _, citizen = await make_citizen(phone=PHONE)
    text = f"请问我的手机 {PHONE} 能收到通知吗？"
    _, r = await client.post(f"/api/v1/matters/{MATTER}/questions", json={"text": text}, headers=citizen)
    assert r.status_code == 201, r.text
    qid = r.json["id"]
    staff, reviewer = await make_staff("reviewer", departments=["scjgj"])
    answer = f"可以，已发送到 {PHONE}。"
    _, r = await client.post(f"/api/v1/staff/questions/{qid}/answer", json={"answer": answer}, headers=reviewer)
    assert r.status_code == 200, r.text
    await one("question.answer", staff, qid)
    assert PHONE not in await all_text()


async def test_rectification_steps_are_audited(client, fake_clock, make_citizen, make_staff):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=ch.catalogue())
    _, citizen = await make_citizen(phone=PHONE)
    staff, reviewer = await make_staff("reviewer", departments=["scjgj"])
    case_no = await ch.drive(client, citizen, reviewer, "completed")
    body = {"subject_type": "case", "subject_id": case_no, "level": 1, "tags": ["多次跑腿"], "comment": "跑了三次"}
    _, r = await client.post("/api/v1/ratings", json=body, headers=citizen)
    assert r.status_code == 201, r.text
    rect_id = r.json["rectification"]["id"]
    for action in ("verify", "rectify", "reply"):
        step = {"action": action, "note": f"已电话联系 {PHONE}", "reply": "已整改，感谢您的监督。"}
        if action != "reply":
            step.pop("reply")
        _, r = await client.post(f"/api/v1/staff/rectifications/{rect_id}/steps", json=step, headers=reviewer)
        assert r.status_code == 200, (action, r.text)
        await one(f"rectification.{action}", staff, rect_id)
    assert len(await entries("case.complete")) == 1  # the reviewer's case steps are in the log too
    assert PHONE not in await all_text()


# -- in the write's transaction; append-only; redacted ---------------------------------------------


async def test_an_entry_rolls_back_and_commits_with_its_transaction(seeded):
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await audit.record(action="test.write", object_type="test", object_id="1", summary="rolled back")
            raise RuntimeError("the write failed")
    assert await entries("test.write") == []
    async with in_transaction():
        await audit.record(action="test.write", object_type="test", object_id="2", summary="committed")
    assert [e.object_id for e in await entries("test.write")] == ["2"]


async def test_a_refused_service_write_leaves_no_entry(seeded):
    with pytest.raises(InvalidInput):
        # The successor check fails inside retire's transaction, after nothing else: no entry either.
        await catalogue.retire(seeded.sanic_app.ctx.catalogue, code=MATTER, successor="4308-XK-SS-999")
    assert await entries("catalogue.retire") == []


async def test_the_database_refuses_update_and_delete(seeded):
    await audit.record(action="test.write", object_type="test", object_id="1", summary="kept")
    conn = connections.get("default")
    with pytest.raises(BaseORMException):
        await conn.execute_query("UPDATE audit_log SET summary = 'changed'")
    with pytest.raises(BaseORMException):
        await conn.execute_query("DELETE FROM audit_log")
    with pytest.raises(BaseORMException):
        await AuditEntry.filter(action="test.write").update(summary="changed")
    assert [e.summary for e in await entries("test.write")] == ["kept"]
    assert not hasattr(audit, "update") and not hasattr(audit, "delete")


async def test_redaction_masks_id_numbers_and_phones_everywhere(seeded):
    id_number = make_id_number()
    await audit.record(
        action="test.write",
        object_type="test",
        object_id=PHONE,
        summary=f"身份证 {id_number}，电话 +86 {PHONE}",
        changes={
            "note": [f"id {id_number}", {"deep": PHONE}],
            "name": "张三",
            "phone": "13900001111",
            "count": 3,
            "n": 13700001111,
        },
    )
    text = await all_text()
    assert id_number not in text and PHONE not in text and "13900001111" not in text and "张三" not in text
    assert "13700001111" not in text
    row = (await entries("test.write"))[0]
    assert row.changes["name"] == "[redacted]" and row.changes["count"] == 3
    assert id_number[:3] in row.summary and "****" in row.summary


# -- search, export, access ----------------------------------------------------------------------


async def test_search_filters_and_pages(seeded, make_staff):
    client = seeded
    staff, admin = await make_staff("admin")
    _, other = await make_staff("admin", username="second_admin")
    for hall, headers in (("main", admin), ("main", other)):
        _, r = await client.put(f"{ADMIN}/halls/{hall}/schedule", json={"capacity": {"commercial": 4}}, headers=headers)
        assert r.status_code == 200, r.text
    _, r = await client.post(f"{ADMIN}/codes", json={"matter_code": MATTER}, headers=admin)
    slug = r.json["slug"]

    async def found(**params) -> list[dict]:
        _, r = await client.get(AUDIT, params=params, headers=admin)
        assert r.status_code == 200, r.text
        assert set(r.json) == {"items", "total", "page", "page_size"}
        return r.json["items"]

    mine = await found(actor=f"staff:{staff.id}")
    assert {i["action"] for i in mine} == {"hall.schedule", "code.issue"}
    assert mine[0]["action"] == "code.issue"  # newest first
    assert mine[0]["actor"] == {"subject": f"staff:{staff.id}", "name": staff.username, "role": "admin"}
    assert mine[0]["object"] == {"type": "code", "id": slug} and mine[0]["ip"]
    assert len(await found(action="hall.schedule")) == 2
    assert len(await found(action="hall")) == 2  # a prefix finds the family
    assert [i["object"]["id"] for i in await found(object_type="code", object_id=slug)] == [slug]
    today = dt.date.today()
    assert len(await found(**{"from": (today - dt.timedelta(days=1)).isoformat(), "action": "hall"})) == 2
    assert await found(**{"to": (today - dt.timedelta(days=2)).isoformat(), "action": "hall"}) == []
    _, r = await client.get(AUDIT, params={"action": "hall", "page_size": 1, "page": 2}, headers=admin)
    assert r.json["total"] == 2 and len(r.json["items"]) == 1 and r.json["page"] == 2
    _, r = await client.get(AUDIT, params={"from": "yesterday"}, headers=admin)
    assert r.status_code == 422


async def test_csv_export(seeded, make_staff):
    client = seeded
    staff, admin = await make_staff("admin")
    _, r = await client.put(f"{ADMIN}/halls/main/schedule", json={"capacity": {"commercial": 4}}, headers=admin)
    _, r = await client.get(f"{AUDIT}.csv", params={"action": "hall.schedule"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == list(audit.CSV_COLUMNS)
    assert len(rows) == 2 and rows[1][1] == f"staff:{staff.id}" and rows[1][5] == "hall.schedule"


async def test_non_admins_are_refused(seeded, make_staff):
    client = seeded
    for role in ("clerk", "reviewer"):
        _, headers = await make_staff(role)
        for path in (AUDIT, f"{AUDIT}.csv"):
            _, r = await client.get(path, headers=headers)
            assert r.status_code == 403, (role, path, r.text)
    for path in (AUDIT, f"{AUDIT}.csv"):
        _, r = await client.get(path)
        assert r.status_code == 401, r.text


# -- the console page ------------------------------------------------------------------------------


async def console_sign_in(client, username: str) -> None:
    """The console's session cookie for this staff member (two-factor sign-in has its own tests)."""
    from auth.logins import issue_for_staff
    from auth.models import Staff
    from auth.staff import staff_account

    deps = client.sanic_app.ctx.auth
    pair = await issue_for_staff(deps, staff=staff_account(await Staff.get(username=username)))
    client.cookies.set("zd_st", pair.access_token)


async def test_console_page_searches_and_links_the_export(seeded, make_staff):
    client = seeded
    _, admin = await make_staff("admin", username="audit_admin")
    _, r = await client.put(f"{ADMIN}/halls/main/schedule", json={"capacity": {"commercial": 4}}, headers=admin)
    await console_sign_in(client, "audit_admin")
    _, r = await client.get("/console/audit", params={"action": "hall"})
    assert r.status_code == 200, r.text
    assert "<h1>审计日志</h1>" in r.text and "hall.schedule" in r.text and "修改大厅 main 预约日历" in r.text
    assert 'href="/console/audit.csv?action=hall"' in r.text
    assert '<label class="f" for="q-actor">' in r.text
    _, r = await client.get("/console/audit.csv", params={"action": "hall"})
    assert r.status_code == 200 and "hall.schedule" in r.content.decode("utf-8-sig")
    _, r = await client.get("/console/audit", params={"from": "nope"})
    assert r.status_code == 422 and 'aria-invalid="true"' in r.text
    _, home = await client.get("/console")
    assert 'href="/console/audit"' in home.text


async def test_console_page_is_for_admins_only(seeded, make_staff):
    client = seeded
    await make_staff("clerk", username="audit_clerk")
    await console_sign_in(client, "audit_clerk")
    _, r = await client.get("/console/audit")
    assert r.status_code == 403


async def test_password_and_two_factor_resets_are_audited(seeded, make_staff):
    client = seeded
    staff, admin = await make_staff("admin")
    body = {"username": "rev_reset", "password": "long enough pw", "role": "reviewer", "departments": ["scjgj"]}
    _, r = await client.post(f"{ADMIN}/staff", json=body, headers=admin)
    assert r.status_code == 201, r.text
    _, r = await client.post(f"{ADMIN}/staff/rev_reset/reset-password", headers=admin)
    assert r.status_code == 200, r.text
    await one("staff.reset_password", staff, "rev_reset")
    assert r.json["password"] not in await all_text()  # the new password is never logged
    _, r = await client.post(f"{ADMIN}/staff/rev_reset/reset-2fa", headers=admin)
    assert r.status_code == 200, r.text
    await one("staff.reset_2fa", staff, "rev_reset")


async def test_queue_calls_are_audited(seeded, make_staff):
    client = seeded
    staff, clerk = await make_staff("clerk", hall="main")
    _, r = await client.post("/api/v1/desk/tickets", json={"section": "commercial"}, headers=clerk)
    assert r.status_code == 201, r.text
    checkin_id = r.json["checkin_id"]
    _, called = await client.post("/api/v1/desk/counters/B01/call-next", headers=clerk)
    assert called.status_code == 200 and called.json["called"], called.text
    row = await one("queue.call", staff, checkin_id)
    assert "B01" in row.summary
    _, skipped = await client.post("/api/v1/desk/counters/B01/skip", headers=clerk)
    assert skipped.status_code == 200, skipped.text
    await one("queue.skip", staff, checkin_id)
    _, back = await client.post(f"/api/v1/desk/queue/{checkin_id}/requeue", headers=clerk)
    assert back.status_code == 200, back.text
    await one("queue.requeue", staff, checkin_id)


async def test_retrying_a_failed_notification_is_audited(seeded, make_staff, make_citizen):
    from app import clock
    from app.notify.models import Notification, NotificationStatus

    client = seeded
    staff, admin = await make_staff("admin")
    citizen, _ = await make_citizen()
    note = await Notification.create(
        kind="case_progress", citizen_id=citizen.id, subject_type="case", subject_id="X1", payload={},
        dedupe_key="audit-retry", status=NotificationStatus.failed, send_after=clock.now(),
    )  # fmt: skip
    _, r = await client.post(f"{ADMIN}/notifications/{note.id}/retry", headers=admin)
    assert r.status_code == 200, r.text
    await one("notification.retry", staff, str(note.id))
    _, again = await client.post(f"{ADMIN}/notifications/{note.id}/retry", headers=admin)
    assert again.status_code == 409 and len(await entries("notification.retry")) == 1

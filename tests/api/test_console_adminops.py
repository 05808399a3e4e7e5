"""Console administration: the notification outbox (retry), staff accounts, the indicators report."""

from __future__ import annotations

import re
import uuid

import pytest

from app import clock
from app.notify import service as notify
from app.notify.models import Notification
from app.notify.types import NotificationStatus
from auth.logins import issue_for_staff
from auth.staff import create_staff


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


async def _console_as(client, auth_deps, role: str = "admin", **kw):
    """Sign the client's browser in to the console with the staff cookie, as the make_staff fixture mints it."""
    if role == "clerk":
        kw.setdefault("hall", "main")
    if role == "reviewer":
        kw.setdefault("departments", ["scjgj"])
    staff = await create_staff(username=f"{role}_{uuid.uuid4().hex[:6]}", password="correct horse battery",
                               role=role, **kw)  # fmt: skip
    pair = await issue_for_staff(auth_deps, staff=staff)
    client.cookies.set("zd_st", pair.access_token)
    return staff


async def _notification(status: NotificationStatus, *, error: str | None = None, attempts: int = 0):
    row = await notify.enqueue(kind="booking_reminder", citizen_id=uuid.uuid4(), subject_type="booking",
                               subject_id=uuid.uuid4().hex[:12], payload={}, dedupe_key=f"t:{uuid.uuid4()}",
                               fresh=True)  # fmt: skip
    channel = None if status == NotificationStatus.pending else "sms"
    await Notification.filter(id=row.id).update(status=status, last_error=error, attempts=attempts, channel=channel)
    return await Notification.get(id=row.id)


async def test_outbox_lists_filters_and_retries_a_failed_notification_keeping_its_key(client, auth_deps):
    failed = await _notification(NotificationStatus.failed, error="SMS_REJECTED", attempts=5)
    sent = await _notification(NotificationStatus.sent, attempts=1)
    await _console_as(client, auth_deps)

    _, everything = await client.get("/console/notifications")
    assert everything.status == 200 and str(failed.id) in everything.text and str(sent.id) in everything.text
    _, only_failed = await client.get("/console/notifications?status=failed")
    assert only_failed.status == 200
    assert str(failed.id) in only_failed.text and str(sent.id) not in only_failed.text
    assert "SMS_REJECTED" in only_failed.text and "短信" in only_failed.text and "重试" in only_failed.text
    _, bad = await client.get("/console/notifications?status=bogus")
    assert bad.status == 422

    _, done = await client.post(f"/console/notifications/{failed.id}/retry",
                                data={"csrf": _csrf(only_failed.text)}, follow_redirects=False)  # fmt: skip
    assert done.status == 303 and done.headers["location"].startswith("/console/notifications?status=pending")
    again = await Notification.get(id=failed.id)
    assert again.status == NotificationStatus.pending and again.attempts == 0
    assert again.dedupe_key == failed.dedupe_key and again.send_after <= clock.now()
    _, pending = await client.get(done.headers["location"])
    row = re.search(rf'<tr data-id="{failed.id}" data-status="(\w+)"', pending.text)
    assert row and row.group(1) == "pending" and 'role="status"' in pending.text

    # A sent notification is never retried, and a pending one is not "failed" any more.
    for target in (sent.id, failed.id):
        _, refused = await client.post(f"/console/notifications/{target}/retry",
                                       data={"csrf": _csrf(pending.text)}, follow_redirects=False)  # fmt: skip
        assert refused.status == 409 and "只有发送失败的通知可以重试" in refused.text
    assert (await Notification.get(id=sent.id)).status == NotificationStatus.sent
    _, missing = await client.post(f"/console/notifications/{uuid.uuid4()}/retry", data={"csrf": _csrf(pending.text)})
    assert missing.status == 404


async def test_the_admin_api_retries_a_failed_notification_and_refuses_a_sent_one(client, make_staff):
    failed = await _notification(NotificationStatus.failed, error="NO_CHANNEL", attempts=1)
    sent = await _notification(NotificationStatus.sent, attempts=1)
    _, admin = await make_staff("admin")
    _, ok = await client.post(f"/api/v1/admin/notifications/{failed.id}/retry", headers=admin)
    assert ok.status == 200 and ok.json["status"] == "pending" and ok.json["attempts"] == 0
    _, refused = await client.post(f"/api/v1/admin/notifications/{sent.id}/retry", headers=admin)
    assert refused.status == 409 and refused.json["error"]["code"] == "NOTIFICATION_NOT_RETRYABLE"
    _, clerk = await make_staff("clerk")
    _, forbidden = await client.post(f"/api/v1/admin/notifications/{failed.id}/retry", headers=clerk)
    assert forbidden.status == 403


@pytest.mark.parametrize("role", ["clerk", "reviewer"])
async def test_every_admin_page_refuses_other_roles(client, auth_deps, role):
    failed = await _notification(NotificationStatus.failed)
    await _console_as(client, auth_deps, role)
    for path in ("/console/notifications", "/console/staff", "/console/indicators"):
        _, refused = await client.get(path)
        assert refused.status == 403, path
    _, home = await client.get("/console")
    for path in (f"/console/notifications/{failed.id}/retry", "/console/staff", "/console/staff/x/disable",
                 "/console/staff/x/reset-password"):  # fmt: skip
        _, refused = await client.post(path, data={"csrf": _csrf(home.text), "username": "evil1", "role": "admin"})
        assert refused.status == 403, path
    assert (await Notification.get(id=failed.id)).status == NotificationStatus.failed
    assert "/console/staff" not in home.text and "/console/notifications" not in home.text


async def _login_status(client, username: str, password: str) -> int:
    _, form = await client.get("/console/login")
    data = {"csrf": _csrf(form.text), "username": username, "password": password, "next": "/console"}
    _, done = await client.post("/console/login", data=data, follow_redirects=False)
    return done.status


async def test_staff_create_shows_the_password_once_then_disable_and_reset(client, app, auth_deps):
    admin = await _console_as(client, auth_deps)
    _, listing = await client.get("/console/staff")
    assert listing.status == 200 and admin.username in listing.text
    csrf = _csrf(listing.text)

    _, missing_hall = await client.post("/console/staff", data={"csrf": csrf, "username": "desk07", "role": "clerk"})
    assert missing_hall.status == 422 and 'value="desk07"' in missing_hall.text and "大厅" in missing_hall.text
    new = {"csrf": csrf, "username": "rev07", "role": "reviewer", "display_name": "李审核", "departments": "scjgj, gaj"}
    _, created = await client.post("/console/staff", data=new)
    assert created.status == 201
    password = re.search(r"data-password>([^<]+)<", created.text).group(1)
    _, taken = await client.post("/console/staff", data={"csrf": csrf, "username": "rev07", "role": "admin"})
    assert taken.status == 422 and "用户名已存在" in taken.text
    _, shown_again = await client.get("/console/staff")
    assert password not in shown_again.text and "scjgj、gaj" in shown_again.text

    # The initial password signs in (in another browser); the admin's view of the list never shows it again.
    other = type(client)(app)
    other.cookies.clear()
    assert await _login_status(other, "rev07", password) == 303

    _, reset = await client.post("/console/staff/rev07/reset-password", data={"csrf": csrf})
    assert reset.status == 200
    new_password = re.search(r"data-password>([^<]+)<", reset.text).group(1)
    assert new_password != password
    assert await _login_status(other, "rev07", password) == 401
    assert await _login_status(other, "rev07", new_password) == 303

    _, off = await client.post("/console/staff/rev07/disable", data={"csrf": csrf}, follow_redirects=False)
    assert off.status == 303
    _, after = await client.get(off.headers["location"])
    assert "已停用" in after.text and 'role="status"' in after.text
    assert await _login_status(other, "rev07", new_password) in (401, 403)
    _, nobody = await client.post("/console/staff/nobody99/reset-password", data={"csrf": csrf})
    assert nobody.status == 404


async def test_the_admin_api_lists_staff_and_resets_a_password(client, make_staff):
    target, _ = await make_staff("clerk")
    _, admin = await make_staff("admin")
    _, listing = await client.get("/api/v1/admin/staff", headers=admin)
    assert listing.status == 200 and target.username in [s["username"] for s in listing.json["items"]]
    _, reset = await client.post(f"/api/v1/admin/staff/{target.username}/reset-password", headers=admin)
    assert reset.status == 200 and len(reset.json["password"]) >= 10
    assert reset.headers["cache-control"] == "no-store"


async def test_indicators_page_shows_the_admin_report_and_links_to_the_dashboard(client, auth_deps, make_staff):
    await _console_as(client, auth_deps)
    _, shown = await client.get("/console/indicators?from=2026-01-01&to=2026-06-30")
    assert shown.status == 200 and "最多跑一次率" in shown.text and 'id="city"' in shown.text
    _, admin = await make_staff("admin")
    _, api = await client.get("/api/v1/admin/indicators?from=2026-01-01&to=2026-06-30", headers=admin)
    assert api.json["from"] in shown.text and f"目标 {api.json['target_percent']}%" in shown.text
    # The CSV link is the admin API itself, authorised by the console's cookie session.
    csv_link = re.search(r'id="csv" href="([^"]+)"', shown.text).group(1).replace("&amp;", "&")
    _, csv = await client.get(csv_link)
    assert csv.status == 200 and "text/csv" in csv.headers["content-type"], csv.text[:200]
    link = re.search(r'id="public-stats" href="([^"]+)"', shown.text).group(1)
    _, public = await client.get(link.replace("&amp;", "&"))
    assert public.status == 200 and "改革成效" in public.text
    _, home = await client.get("/console")
    assert "/console/indicators" in home.text

"""Console staff page: an administrator resets a staff member's two-factor (same service as the admin API)."""

from __future__ import annotations

import re

from app.audit.models import AuditEntry
from auth.models import Staff
from auth.staff import create_staff
from tests.api.test_console_adminops import _console_as, _csrf
from tests.api.test_console_totp import PASSWORD, _enrol


def _row(html: str, username: str) -> str:
    return re.search(rf'<tr data-username="{username}">(.*?)</tr>', html, re.S).group(1)


async def test_admin_resets_two_factor_from_the_staff_page_and_the_account_must_enrol_again(client, app, auth_deps):
    await create_staff(username="rev2fa", password=PASSWORD, role="reviewer", departments=["scjgj"],
                                  display_name="周审核")  # fmt: skip
    other = type(client)(app)
    other.cookies.clear()
    try:
        await _enrol(other, "rev2fa")  # the reviewer's own browser, signed in with an authenticator
        _, signed_in = await other.get("/console", follow_redirects=False)
        assert signed_in.status == 200

        admin = await _console_as(client, auth_deps, display_name="钱管理")
        _, listing = await client.get("/console/staff")
        assert listing.status == 200
        row = _row(listing.text, "rev2fa")
        assert 'data-totp="on"' in row and "已绑定" in row and "重置两步验证" in row
        assert 'action="/console/staff/rev2fa/reset-2fa"' in row and "确认重置" in row
        assert 'data-totp="off"' in _row(listing.text, admin.username)  # signed in by cookie, never enrolled
        assert "/reset-2fa" not in _row(listing.text, admin.username)

        _, forged = await client.post("/console/staff/rev2fa/reset-2fa", data={"csrf": "0" * 32})
        assert forged.status == 403
        assert (await Staff.get(username="rev2fa")).totp_enrolled_at is not None

        _, done = await client.post("/console/staff/rev2fa/reset-2fa", data={"csrf": _csrf(listing.text)},
                                    follow_redirects=False)  # fmt: skip
        assert done.status == 303 and done.headers["location"] == "/console/staff?done=totp_reset&who=rev2fa"
        _, after = await client.get(done.headers["location"])
        assert 'role="status"' in after.text and "rev2fa 的两步验证已重置" in after.text
        assert 'data-totp="off"' in _row(after.text, "rev2fa") and "/reset-2fa" not in _row(after.text, "rev2fa")

        row = await Staff.get(username="rev2fa")
        assert row.totp_enrolled_at is None and row.totp_secret_enc is None and not row.totp_recovery
        _, gone = await other.get("/console", follow_redirects=False)
        assert gone.status == 303  # the reviewer's sessions ended
        entry = await AuditEntry.get(action="staff.reset_2fa", object_id="rev2fa")
        assert entry.actor == f"staff:{admin.id}" and entry.actor_name == "钱管理"

        # The next sign-in enrols a new authenticator.
        await _enrol(other, "rev2fa")
        _, listing = await client.get("/console/staff")
        assert 'data-totp="on"' in _row(listing.text, "rev2fa")

        _, nobody = await client.post("/console/staff/nobody99/reset-2fa", data={"csrf": _csrf(listing.text)})
        assert nobody.status == 404

        # Only administrators: the reviewer's own console session is refused.
        _, own = await other.get("/console")
        _, refused = await other.post("/console/staff/rev2fa/reset-2fa", data={"csrf": _csrf(own.text)},
                                      follow_redirects=False)  # fmt: skip
        assert refused.status == 403
        assert (await Staff.get(username="rev2fa")).totp_enrolled_at is not None
    finally:
        await other.aclose()


async def test_the_admin_api_staff_list_says_who_has_two_factor(client, make_staff):
    _, admin = await make_staff("admin")
    target, _ = await make_staff("clerk")
    _, listing = await client.get("/api/v1/admin/staff", headers=admin)
    assert listing.status == 200
    mine = next(s for s in listing.json["items"] if s["username"] == target.username)
    assert mine["totp_enrolled"] is False

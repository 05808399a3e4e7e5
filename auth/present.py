"""The API's JSON of the identity results (auth.types)."""

from __future__ import annotations

from typing import Any

from auth.accounts import Profile
from auth.types import StaffAccount


def staff_json(staff: StaffAccount) -> dict[str, Any]:
    """A staff account as the administration API answers it."""
    return {
        "id": str(staff.id),
        "username": staff.username,
        "display_name": staff.display_name,
        "role": staff.role.value,
        "hall": staff.hall,
        "departments": list(staff.departments),
        "disabled": staff.disabled,
        "totp_enrolled": staff.totp_enrolled,
    }


def profile_json(p: Profile) -> dict[str, Any]:
    """JSON shape of a profile (personal fields arrive masked)."""
    rn = p.real_name
    return {
        "id": str(p.id),
        "loa": p.loa,
        "phone": p.phone,
        "real_name": {"verified": rn.verified, "name": rn.name, "id_number": rn.id_number},
        "channels": [{"channel": c.channel.value, "appid": c.appid, "subscribed": c.subscribed} for c in p.channels],
        "wechat_linked": p.wechat_linked,
    }

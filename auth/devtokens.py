"""Development tokens: access tokens for local testing of clients and load tests (never in production)."""

from __future__ import annotations

import secrets
import uuid

from auth.accounts import set_phone
from auth.deps import AuthDeps
from auth.errors import StaffNotFound
from auth.logins import issue_for_citizen, issue_for_staff
from auth.models import Citizen, Staff
from auth.pii import normalize_phone
from auth.staff import staff_account


async def dev_token_for_phone(deps: AuthDeps, *, phone: str, loa: int, audience: str = "app") -> str:
    """Development: an access token for the citizen with this phone (created if needed) at a given LoA."""
    phone = normalize_phone(phone)
    bidx = deps.cipher.blind_index(phone, kind="phone")
    citizen = await Citizen.get_or_none(phone_bidx=bidx)
    if citizen is None:
        citizen = Citizen(id=uuid.uuid4())
        set_phone(deps.cipher, citizen, phone)
        await citizen.save(force_create=True)
    citizen.loa = max(2, min(loa, 3))
    await citizen.save(update_fields=["loa"])
    return (await issue_for_citizen(deps, citizen=citizen, audience=audience)).access_token


async def dev_tokens_for_new_citizens(deps: AuthDeps, *, count: int, loa: int) -> list[str]:
    """Development: `count` new citizens (random 199 phone numbers) and one access token each."""
    tokens = []
    for _ in range(count):
        phone = "199" + f"{secrets.randbelow(10**8):08d}"
        tokens.append(await dev_token_for_phone(deps, phone=phone, loa=loa))
    return tokens


async def dev_token_for_staff(deps: AuthDeps, *, username: str) -> str:
    """Development: an access token for a staff account."""
    staff = await Staff.get_or_none(username=username)
    if staff is None:
        raise StaffNotFound()
    return (await issue_for_staff(deps, staff=staff_account(staff))).access_token

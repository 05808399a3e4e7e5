"""Staff accounts: creating them (argon2id password hashes), checking passwords, disabling them."""

from __future__ import annotations

import asyncio
import functools
import re
import secrets
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.audit import service as audit
from app.errors import InvalidInput
from auth import sessions
from auth.deps import AuthDeps
from auth.errors import StaffNotFound
from auth.models import Staff
from auth.types import Role, StaffAccount

# argon2id with OWASP's first recommended setting (19 MiB, 2 passes, 1 lane). argon2-cffi's default takes
# 64 MiB per hash: each sign-in raised a worker's peak memory by that much, and a burst of sign-ins by a
# multiple of it (issue 21's 120 MiB per worker). Hashes made with other settings still verify.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    """A hash of no one's password, checked for unknown usernames so that they take as long as known ones."""
    return _hasher.hash(secrets.token_hex(16))


async def create_staff(
    *,
    username: str,
    password: str,
    role: str,
    hall: str | None = None,
    departments: list[str] | None = None,
    display_name: str = "",
) -> StaffAccount:
    """Create a staff account (password hashed with argon2id)."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{3,64}", username or ""):
        raise InvalidInput("用户名格式不正确", details={"fields": {"username": ["3-64 位字母、数字、._-"]}})
    if len(password or "") < 10:
        raise InvalidInput("密码至少 10 位", details={"fields": {"password": ["至少 10 位"]}})
    try:
        role_enum = Role(role)
    except ValueError:
        raise InvalidInput("角色不正确", details={"fields": {"role": ["clerk、reviewer 或 admin"]}}) from None
    if role_enum is Role.clerk and not hall:
        raise InvalidInput("窗口人员必须指定所属大厅", details={"fields": {"hall": ["必填"]}})
    if role_enum is Role.reviewer and not departments:
        raise InvalidInput("审核人员必须指定所属部门", details={"fields": {"departments": ["必填"]}})
    password_hash = await asyncio.to_thread(_hasher.hash, password)
    try:
        async with in_transaction():
            row = await Staff.create(
                id=uuid.uuid4(),
                username=username,
                password_hash=password_hash,
                role=role_enum,
                hall_code=hall,
                departments=list(departments or []),
                display_name=display_name or username,
            )
            await audit.record(
                action="staff.create",
                object_type="staff",
                object_id=username,
                summary=f"新建工作人员 {username}（{role_enum.value}）",
                changes={"role": role_enum.value, "hall": hall, "departments": list(departments or [])},
            )
    except IntegrityError:
        raise InvalidInput("用户名已存在", code="USERNAME_TAKEN", details={"username": username}) from None
    return staff_account(row)


def staff_account(row: Staff) -> StaffAccount:
    """A staff row as a typed account (without its password hash and lockout state)."""
    return StaffAccount(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        hall=row.hall_code,
        departments=tuple(row.departments or ()),
        disabled=row.disabled,
        totp_enrolled=row.totp_enrolled_at is not None,
    )


async def password_matches(staff: Staff | None, password: str) -> bool:
    """Whether the password is the account's; an unknown account costs the same time and never matches."""
    try:
        # argon2 is memory-hard on purpose: keep it off the event loop.
        await asyncio.to_thread(_hasher.verify, staff.password_hash if staff else _dummy_hash(), password or "")
    except (VerificationError, InvalidHashError):
        return False
    if staff is None:
        return False
    if _hasher.check_needs_rehash(staff.password_hash):
        # Made with older settings: rehashed now, so that every account costs what an unknown one costs.
        staff.password_hash = await asyncio.to_thread(_hasher.hash, password)
        await staff.save(update_fields=["password_hash"])
    return True


async def set_staff_disabled(deps: AuthDeps, *, username: str, disabled: bool) -> None:
    """Disable (revoking every session at once) or re-enable a staff account."""
    staff = await Staff.get_or_none(username=username)
    if staff is None:
        raise StaffNotFound()
    staff.disabled = disabled
    async with in_transaction():
        await staff.save(update_fields=["disabled"])
        await audit.record(
            action="staff.disable" if disabled else "staff.enable",
            object_type="staff",
            object_id=username,
            summary=f"{'停用' if disabled else '启用'}工作人员 {username}",
            changes={"disabled": disabled},
        )
    if disabled:
        await sessions.revoke_subject(f"staff:{staff.id}", reason="disabled")
        await deps.tokens.revoked()


def new_password() -> str:
    """A random initial or reset password (shown once to the administrator, never stored in clear)."""
    return secrets.token_urlsafe(12)


async def list_staff() -> tuple[StaffAccount, ...]:
    """Every staff account, by role then username."""
    return tuple(staff_account(r) for r in await Staff.all().order_by("role", "username"))


async def reset_password(deps: AuthDeps, *, username: str) -> str:
    """Give an account a new random password (answered once), lift its lockout and sign it out everywhere."""
    staff = await Staff.get_or_none(username=username)
    if staff is None:
        raise StaffNotFound()
    password = new_password()
    staff.password_hash = await asyncio.to_thread(_hasher.hash, password)
    staff.failed_attempts = 0
    staff.locked_until = None
    async with in_transaction():
        await staff.save(update_fields=["password_hash", "failed_attempts", "locked_until"])
        await audit.record(action="staff.reset_password", object_type="staff", object_id=username,
                           summary=f"重置工作人员 {username} 的密码", changes={})  # fmt: skip
    # The old password may be known to someone else: its sessions must not outlive it.
    await sessions.revoke_subject(f"staff:{staff.id}", reason="password_reset")
    await deps.tokens.revoked()
    return password

"""Two-factor sign-in for staff (TOTP, RFC 6238): enrolment with a QR code, codes, recovery codes.

The secret is kept as a PII token (AES-GCM, bound to the staff row); recovery codes only as keyed
hashes. A code is accepted within one 30-second step either side of now, and at most once: the last
accepted step is stored and a code of that step or an earlier one is refused (no replay).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import pyotp
import qrcode
import qrcode.constants
from qrcode.image.svg import SvgPathImage
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from app import clock
from app.audit import service as audit
from app.ratelimit import Limit, hit, reset
from app.settings import Settings
from auth import sessions
from auth.deps import AuthDeps
from auth.errors import StaffNotFound, TotpInvalid
from auth.models import Staff

ISSUER = "张家界政务服务"
RECOVERY_CODES = 10
TOTP_VERIFY = Limit("totp-verify", 5, 300)
_DIGITS = re.compile(r"\d{6}")
_RECOVERY = re.compile(r"[a-z0-9]{5}-?[a-z0-9]{5}")
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud and typed from paper


@dataclass(frozen=True)
class Enrolment:
    """What an enrolling staff member sees: the key to type by hand, the otpauth URI and its QR code."""

    secret: str
    uri: str
    qr_svg: str


def required(settings: Settings, role: str) -> bool:
    """Whether this role must sign in with a second factor."""
    return role in settings.staff_totp_roles


def enrolled(staff: Staff) -> bool:
    """Whether the staff member has confirmed an authenticator."""
    return staff.totp_enrolled_at is not None and bool(staff.totp_secret_enc)


def _aad(staff: Staff) -> str:
    return f"staff:{staff.id}:totp"


def _secret(deps: AuthDeps, staff: Staff) -> str:
    return deps.cipher.decrypt(staff.totp_secret_enc or "", aad=_aad(staff))


def qr_svg(data: str) -> str:
    """An inline SVG QR code (dark modules as one path, quiet zone of 4, scales with its box)."""
    qr = qrcode.QRCode(version=None, error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=10, border=4)
    qr.add_data(data)
    qr.make(fit=True)
    size = qr.modules_count + 8
    path = qr.make_image(image_factory=SvgPathImage).path.get("d")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="220" height="220" '
        f'role="img" aria-label="两步验证绑定二维码"><rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path d="{path}" fill="#000"/></svg>'
    )


async def enrolment(deps: AuthDeps, staff: Staff) -> Enrolment:
    """Start (or show again) an unconfirmed enrolment: a new secret is kept encrypted until confirmed."""
    if not staff.totp_secret_enc or staff.totp_enrolled_at is not None:
        secret = pyotp.random_base32()
        staff.totp_secret_enc = deps.cipher.encrypt(secret, aad=_aad(staff))
        staff.totp_enrolled_at = None
        staff.totp_last_step = None
        staff.totp_recovery = []
        await staff.save(update_fields=["totp_secret_enc", "totp_enrolled_at", "totp_last_step", "totp_recovery"])
    else:
        secret = _secret(deps, staff)
    uri = pyotp.TOTP(secret).provisioning_uri(name=staff.username, issuer_name=ISSUER)
    return Enrolment(secret=secret, uri=uri, qr_svg=qr_svg(uri))


def _recovery_hash(settings: Settings, staff: Staff, code: str) -> str:
    text = f"totp-recovery:{staff.id}:{code.replace('-', '').lower()}"
    return hmac.new(settings.secret_key.encode(), text.encode(), hashlib.sha256).hexdigest()


def _new_recovery_codes() -> list[str]:
    raw = ["".join(secrets.choice(_ALPHABET) for _ in range(10)) for _ in range(RECOVERY_CODES)]
    return [f"{c[:5]}-{c[5:]}" for c in raw]


async def _check_code(deps: AuthDeps, staff: Staff, code: str) -> None:
    """Accept a TOTP code of step now±1 newer than the last accepted one, recording its step."""
    secret = _secret(deps, staff)
    totp = pyotp.TOTP(secret)
    now = clock.now()
    step_now = totp.timecode(now)
    for step in (step_now - 1, step_now, step_now + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            # Conditional update: of two requests with the same code only one moves the step.
            won = await Staff.filter(Q(totp_last_step__isnull=True) | Q(totp_last_step__lt=step), id=staff.id).update(
                totp_last_step=step
            )
            if not won:
                raise TotpInvalid(details={"reason": "replayed"})
            staff.totp_last_step = step
            return
    raise TotpInvalid()


async def confirm_enrolment(deps: AuthDeps, staff: Staff, code: str) -> list[str]:
    """Confirm the authenticator with a current code; answer the recovery codes (shown this once)."""
    await hit(deps.store, TOTP_VERIFY, str(staff.id), message="验证码错误次数过多，请 5 分钟后再试")
    code = (code or "").strip().replace(" ", "")
    if not staff.totp_secret_enc or not _DIGITS.fullmatch(code):
        raise TotpInvalid()
    await _check_code(deps, staff, code)
    codes = _new_recovery_codes()
    staff.totp_enrolled_at = clock.now()
    staff.totp_recovery = [_recovery_hash(deps.settings, staff, c) for c in codes]
    await staff.save(update_fields=["totp_enrolled_at", "totp_recovery"])
    await reset(deps.store, TOTP_VERIFY, str(staff.id))
    return codes


async def verify(deps: AuthDeps, staff: Staff, code: str) -> None:
    """Check a sign-in's second factor: a TOTP code, or one unused recovery code (then spent)."""
    await hit(deps.store, TOTP_VERIFY, str(staff.id), message="验证码错误次数过多，请 5 分钟后再试")
    code = (code or "").strip().replace(" ", "").lower()
    if not enrolled(staff):
        raise TotpInvalid()
    if _DIGITS.fullmatch(code):
        await _check_code(deps, staff, code)
    elif _RECOVERY.fullmatch(code):
        await _spend_recovery(deps, staff, code)
    else:
        raise TotpInvalid()
    await reset(deps.store, TOTP_VERIFY, str(staff.id))


async def _spend_recovery(deps: AuthDeps, staff: Staff, code: str) -> None:
    given = _recovery_hash(deps.settings, staff, code)
    async with in_transaction():
        # Row lock: two uses of one code cannot both succeed.
        fresh = await Staff.select_for_update().get(id=staff.id)
        current = list(fresh.totp_recovery or [])
        if not any(hmac.compare_digest(h, given) for h in current):
            raise TotpInvalid(details={"reason": "recovery"})
        fresh.totp_recovery = [h for h in current if h != given]
        await fresh.save(update_fields=["totp_recovery"])
    staff.totp_recovery = fresh.totp_recovery


async def recovery_left(staff: Staff) -> int:
    """How many recovery codes are unused."""
    return len(staff.totp_recovery or [])


async def reset_totp(deps: AuthDeps, *, username: str) -> None:
    """Administration: forget a staff member's authenticator (next sign-in enrols again), end their sessions."""
    staff = await Staff.get_or_none(username=username)
    if staff is None:
        raise StaffNotFound()
    staff.totp_secret_enc = None
    staff.totp_enrolled_at = None
    staff.totp_last_step = None
    staff.totp_recovery = []
    async with in_transaction():
        await staff.save(update_fields=["totp_secret_enc", "totp_enrolled_at", "totp_last_step", "totp_recovery"])
        await audit.record(action="staff.reset_2fa", object_type="staff", object_id=username,
                           summary=f"重置工作人员 {username} 的两步验证", changes={})  # fmt: skip
    await sessions.revoke_subject(f"staff:{staff.id}", reason="totp_reset")
    await deps.tokens.revoked()

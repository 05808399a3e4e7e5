"""Identity rules: one citizen across channels, logins, sessions, real name, staff accounts.

Linking and merging (one person, one identity):
1. A WeChat login resolves by (app id, openid) binding first, then by unionid; a new person gets a
   new citizen (level of assurance 1) with the binding.
2. An SMS login resolves by the verified phone (blind index); a new phone gets a new citizen (LoA 2).
3. Verifying a phone while signed in links it to the caller. If another citizen already owns that
   verified phone, or a WeChat login brings a unionid another citizen owns, the two are MERGED:
   the survivor is the one with the higher level of assurance (then the older); the other's
   bindings, phone, unionid and real name move to it, it is disabled with `merged_into`, and its
   sessions are revoked. Two citizens real-named with different ID numbers are never merged
   (409 IDENTITY_CONFLICT).
4. Real name is never merged on an ID number alone (name + number is weak evidence): a number
   already bound to another citizen answers 409 ID_NUMBER_BOUND.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import cache as cache_bus
from app import clock
from app.errors import InvalidInput, NotFound
from app.jsontext import dumps
from app.ratelimit import Limit, hit, reset
from app.settings import Settings
from app.store import Store
from auth import sessions
from auth.errors import (
    AccountDisabled,
    AccountLocked,
    BadCredentials,
    ClientUnauthorized,
    IdentityConflict,
    IdNumberBound,
    OtpInvalid,
    RealNameMismatch,
    StaffNotFound,
    StateInvalid,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
)
from auth.idcard import validate_id_number
from auth.models import AuthSession, Channel, ChannelBinding, Citizen, Role, Staff
from auth.pii import PiiCipher, mask_id_number, mask_name, mask_phone, normalize_phone
from auth.realname import RealNameVerifier
from auth.sms import SmsSender
from auth.tokens import CITIZEN_AUDIENCES, STAFF_AUDIENCE, Principal, TokenAuthority

log = logging.getLogger("auth.service")

OTP_SEND_PHONE_MINUTE = Limit("otp-send-phone-1m", 1, 60)
OTP_SEND_PHONE_HOUR = Limit("otp-send-phone-1h", 5, 3600)
OTP_SEND_IP_HOUR = Limit("otp-send-ip-1h", 20, 3600)
OTP_VERIFY = Limit("otp-verify", 5, 300)
STAFF_LOGIN_IP = Limit("staff-login-ip", 30, 600)
STAFF_MAX_FAILS = 5
STAFF_LOCK_MINUTES = 15
OTP_TTL = 300
STATE_TTL = 600
NEXT_PATH = re.compile(r"^/(?!/)[A-Za-z0-9/_\-.~%]*(\?[A-Za-z0-9_\-.~%=&]*)?$")

_hasher = PasswordHasher()  # argon2id, memory-hard
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

PROFILES = "profiles"  # per-worker cache of /me answers, invalidated key by key

MergeHook = Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]
MERGE_HOOKS: list[MergeHook] = []  # other domains move their rows from source to target here


@dataclass
class AuthDeps:
    """What identity services need from the running app."""

    settings: Settings
    store: Store
    tokens: TokenAuthority
    cipher: PiiCipher
    sms: SmsSender
    verifier: RealNameVerifier
    wechat: Any = None  # app.wechat.client.WeChatClient


@dataclass(frozen=True)
class TokenPair:
    """What a successful sign-in answers."""

    access_token: str
    expires_in: int
    refresh_token: str
    audience: str
    subject: str

    def as_dict(self) -> dict[str, Any]:
        """JSON shape (OAuth-style)."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "audience": self.audience,
        }


# ---------------------------------------------------------------- tokens for accounts


def _citizen_claims(citizen: Citizen) -> dict[str, Any]:
    return {"loa": citizen.loa}


def _staff_claims(staff: Staff) -> dict[str, Any]:
    return {
        "role": staff.role.value,
        "hall": staff.hall_code,
        "departments": list(staff.departments or []),
        "name": staff.display_name or staff.username,
    }


async def _issue(deps: AuthDeps, *, subject: str, audience: str, claims: dict[str, Any]) -> TokenPair:
    rotation = await sessions.open_session(
        subject=subject, audience=audience, refresh_days=deps.settings.refresh_token_days
    )
    access, ttl = await deps.tokens.issue(
        subject=subject, audience=audience, session_id=str(rotation.session.id), extra=claims
    )
    return TokenPair(access, ttl, rotation.refresh_token, audience, subject)


async def issue_for_citizen(deps: AuthDeps, *, citizen: Citizen, audience: str) -> TokenPair:
    """Open a session for a citizen on one client."""
    if audience not in CITIZEN_AUDIENCES:
        raise InvalidInput(details={"audience": audience})
    return await _issue(deps, subject=f"citizen:{citizen.id}", audience=audience, claims=_citizen_claims(citizen))


async def issue_for_staff(deps: AuthDeps, *, staff: Staff) -> TokenPair:
    """Open a staff session."""
    return await _issue(deps, subject=f"staff:{staff.id}", audience=STAFF_AUDIENCE, claims=_staff_claims(staff))


async def refresh(deps: AuthDeps, *, refresh_token: str) -> TokenPair:
    """Rotate a refresh token and mint a new access token with the account's current claims."""
    rotation, _ = await sessions.rotate(refresh_token=refresh_token, refresh_days=deps.settings.refresh_token_days)
    session = rotation.session
    kind, _, ident = session.subject.partition(":")
    if kind == "citizen":
        account: Any = await Citizen.get_or_none(id=ident)
        claims = _citizen_claims(account) if account else {}
    else:
        account = await Staff.get_or_none(id=ident)
        claims = _staff_claims(account) if account else {}
    if account is None or account.disabled:
        await sessions.revoke_session(session.id, reason="disabled")
        raise TokenRevoked()
    access, ttl = await deps.tokens.issue(
        subject=session.subject, audience=session.audience, session_id=str(session.id), extra=claims
    )
    return TokenPair(access, ttl, rotation.refresh_token, session.audience, session.subject)


async def logout(deps: AuthDeps, *, principal: Principal) -> None:
    """End the caller's session at once (every worker drops the cached token)."""
    await sessions.revoke_session(principal.session_id, reason="logout")
    await deps.tokens.revoked()


# ---------------------------------------------------------------- citizens


async def _new_citizen(**fields: Any) -> Citizen:
    return await Citizen.create(id=uuid.uuid4(), **fields)


def _reveal(cipher: PiiCipher, citizen: Citizen, name: str) -> str | None:
    """Decrypt one personal field of a citizen (the row id is the associated data)."""
    token = getattr(citizen, f"{name}_enc")
    return cipher.decrypt(token, aad=f"citizen:{citizen.id}:{name}") if token else None


def _set_phone(cipher: PiiCipher, citizen: Citizen, phone: str) -> None:
    citizen.phone_enc = cipher.encrypt(phone, aad=f"citizen:{citizen.id}:phone")
    citizen.phone_bidx = cipher.blind_index(phone, kind="phone")
    citizen.phone_verified_at = clock.now()
    citizen.loa = max(citizen.loa, 2)


async def resolve_wechat(deps: AuthDeps, *, channel: Channel, appid: str, openid: str, unionid: str | None) -> Citizen:
    """The citizen behind a WeChat identity, creating or merging per the module rules."""
    async with in_transaction():
        binding = await ChannelBinding.filter(appid=appid, openid=openid).select_for_update().first()
        owner = await Citizen.get_or_none(unionid=unionid) if unionid else None
        if binding is not None:
            citizen = await Citizen.get(id=binding.citizen_id)  # type: ignore[attr-defined]
            if citizen.merged_into:
                citizen = await Citizen.get(id=citizen.merged_into)
            if unionid and owner is not None and owner.id != citizen.id:
                citizen = await _merge(deps, citizen, owner)
            elif unionid and citizen.unionid is None:
                citizen.unionid = unionid
                await citizen.save(update_fields=["unionid", "updated_at"])
            binding.last_login_at = clock.now()
            binding.unionid = unionid or binding.unionid
            binding.subscribed = True
            await binding.save(update_fields=["last_login_at", "unionid", "subscribed"])
        else:
            citizen = owner or await _new_citizen(unionid=unionid)
            await ChannelBinding.create(
                citizen=citizen,
                channel=channel,
                appid=appid,
                openid=openid,
                unionid=unionid,
                last_login_at=clock.now(),
            )
    await _profile_changed(citizen.id)  # bindings, unionid or subscription may have changed
    if citizen.disabled:
        raise AccountDisabled()
    return citizen


async def login_miniprogram(deps: AuthDeps, *, code: str) -> TokenPair:
    """Mini program: wx.login code -> jscode2session -> our tokens."""
    session = await deps.wechat.code2session(js_code=code)
    citizen = await resolve_wechat(
        deps,
        channel=Channel.miniprogram,
        appid=deps.settings.wechat_mini_appid,
        openid=session.openid,
        unionid=session.unionid,
    )
    return await issue_for_citizen(deps, citizen=citizen, audience="miniprogram")


def safe_next(next_path: str | None) -> str:
    """Only our own absolute paths may follow a login: never another host (no open redirect)."""
    if not next_path or len(next_path) > 512 or "\\" in next_path or not NEXT_PATH.match(next_path):
        return "/m"
    return next_path


def _state_mac(settings: Settings, stamp: str) -> str:
    return hmac.new(settings.secret_key.encode(), f"oauth-state:{stamp}".encode(), hashlib.sha256).hexdigest()[:24]


async def oauth_start(deps: AuthDeps, *, next_path: str | None) -> str:
    """The WeChat authorize URL with a signed, expiring, single-use state.

    WeChat passes `state` through only as [A-Za-z0-9]{,128}, so it carries expiry, nonce and MAC;
    the page to return to is kept server-side under the nonce.
    """
    stamp = f"{int(clock.now().timestamp()) + STATE_TTL:010d}{secrets.token_hex(8)}"
    await deps.store.set(f"oauth-state:{stamp[10:]}", safe_next(next_path), ex=STATE_TTL)
    redirect_uri = f"{deps.settings.base_url}/api/v1/auth/wechat/callback"
    return deps.wechat.oauth_authorize_url(redirect_uri=redirect_uri, state=stamp + _state_mac(deps.settings, stamp))


async def oauth_finish(deps: AuthDeps, *, code: str, state: str) -> tuple[TokenPair, str]:
    """Official-account H5: exchange the code, sign the citizen in, and say where to go next."""
    if not re.fullmatch(r"\d{10}[0-9a-f]{16}[0-9a-f]{24}", state or ""):
        raise StateInvalid()
    stamp, mac = state[:26], state[26:]
    if not hmac.compare_digest(mac, _state_mac(deps.settings, stamp)) or int(stamp[:10]) < clock.now().timestamp():
        raise StateInvalid()
    next_path = await deps.store.getdel(f"oauth-state:{stamp[10:]}")  # single use
    if next_path is None:
        raise StateInvalid()
    token = await deps.wechat.oauth_exchange(code=code)
    citizen = await resolve_wechat(
        deps,
        channel=Channel.official_account,
        appid=deps.settings.wechat_mp_appid,
        openid=token.openid,
        unionid=token.unionid,
    )
    pair = await issue_for_citizen(deps, citizen=citizen, audience="h5")
    return pair, safe_next(next_path.decode() if isinstance(next_path, bytes) else next_path)


# ---------------------------------------------------------------- SMS one-time passwords


def _otp_hash(settings: Settings, bidx: str, otp: str) -> str:
    return hmac.new(settings.secret_key.encode(), f"otp:{bidx}:{otp}".encode(), hashlib.sha256).hexdigest()


async def sms_send(deps: AuthDeps, *, phone: str, ip: str) -> dict[str, Any]:
    """Send a 6-digit code, valid 5 minutes; limited per phone and per IP (fail closed)."""
    phone = normalize_phone(phone)
    bidx = deps.cipher.blind_index(phone, kind="phone")
    await hit(deps.store, OTP_SEND_IP_HOUR, ip)
    await hit(deps.store, OTP_SEND_PHONE_MINUTE, bidx, message="验证码发送过于频繁，请 1 分钟后再试")
    await hit(deps.store, OTP_SEND_PHONE_HOUR, bidx)
    otp = f"{secrets.randbelow(1_000_000):06d}"
    await deps.store.set(f"otp:{bidx}", _otp_hash(deps.settings, bidx, otp), ex=OTP_TTL)
    await reset(deps.store, OTP_VERIFY, bidx)
    await deps.sms.send(phone=phone, text=f"【张家界政务服务】您的验证码为 {otp}，5 分钟内有效。请勿告诉他人。")
    return {"phone": mask_phone(phone), "expires_in": OTP_TTL}


async def _check_otp(deps: AuthDeps, *, phone: str, otp: str) -> str:
    phone = normalize_phone(phone)
    bidx = deps.cipher.blind_index(phone, kind="phone")
    await hit(deps.store, OTP_VERIFY, bidx, message="验证码错误次数过多，请重新获取")
    stored = await deps.store.get(f"otp:{bidx}")
    given = _otp_hash(deps.settings, bidx, otp if re.fullmatch(r"\d{6}", otp or "") else "x")
    if stored is None or not hmac.compare_digest(stored.decode() if isinstance(stored, bytes) else stored, given):
        raise OtpInvalid()
    await deps.store.delete(f"otp:{bidx}")
    return phone


async def sms_verify(
    deps: AuthDeps, *, phone: str, otp: str, current: Principal | None, audience: str = "app"
) -> TokenPair:
    """Verify a code: sign in by phone, or link the phone to the signed-in citizen (merging if needed)."""
    phone = await _check_otp(deps, phone=phone, otp=otp)
    bidx = deps.cipher.blind_index(phone, kind="phone")
    async with in_transaction():
        owner = await Citizen.filter(phone_bidx=bidx).select_for_update().first()
        if current is not None and current.kind == "citizen":
            citizen = await Citizen.get(id=current.id)
            if owner is not None and owner.id != citizen.id:
                citizen = await _merge(deps, citizen, owner)
            elif owner is None:
                _set_phone(deps.cipher, citizen, phone)
                await citizen.save()
            audience = current.audience
        elif owner is not None:
            citizen = owner
        else:
            citizen = Citizen(id=uuid.uuid4())
            _set_phone(deps.cipher, citizen, phone)
            try:
                await citizen.save(force_create=True)
            except IntegrityError:
                citizen = await Citizen.get(phone_bidx=bidx)
    await _profile_changed(citizen.id, *([current.id] if current is not None else []))
    if citizen.disabled:
        raise AccountDisabled()
    return await issue_for_citizen(deps, citizen=citizen, audience=audience)


# ---------------------------------------------------------------- merging


async def _merge(deps: AuthDeps, a: Citizen, b: Citizen) -> Citizen:
    """Merge two citizens (inside the caller's transaction); returns the survivor."""
    if a.id_number_bidx and b.id_number_bidx and a.id_number_bidx != b.id_number_bidx:
        raise IdentityConflict()
    target, source = (a, b) if (a.loa, -a.created_at.timestamp()) >= (b.loa, -b.created_at.timestamp()) else (b, a)
    cipher = deps.cipher
    moved: dict[str, Any] = {}
    if source.phone_enc and not target.phone_enc:
        moved["phone"] = _reveal(cipher, source, "phone")
    if source.id_number_enc and not target.id_number_enc:
        moved["id_number"] = _reveal(cipher, source, "id_number")
        moved["name"] = _reveal(cipher, source, "name") or ""
        moved["real"] = (source.real_name_at, source.real_name_ref, source.id_number_bidx)
    unionid = target.unionid or source.unionid
    # Free the unique columns on the source before the target takes them.
    source.unionid = source.phone_bidx = source.id_number_bidx = None
    source.phone_enc = source.name_enc = source.id_number_enc = None
    source.disabled = True
    source.merged_into = target.id
    await source.save()
    target.unionid = unionid
    if "phone" in moved:
        _set_phone(cipher, target, moved["phone"])
    if "id_number" in moved:
        target.id_number_enc = cipher.encrypt(moved["id_number"], aad=f"citizen:{target.id}:id_number")
        target.name_enc = cipher.encrypt(moved["name"], aad=f"citizen:{target.id}:name") if moved["name"] else None
        target.real_name_at, target.real_name_ref, target.id_number_bidx = moved["real"]
    target.loa = max(target.loa, source.loa)
    await target.save()
    await ChannelBinding.filter(citizen_id=source.id).update(citizen_id=target.id)
    for hook in MERGE_HOOKS:
        await hook(source.id, target.id)
    await sessions.revoke_subject(f"citizen:{source.id}", reason="merged")
    await deps.tokens.revoked()
    await _profile_changed(source.id, target.id)
    log.info("citizen merged", extra={"route": "merge"})
    return target


# ---------------------------------------------------------------- profile and real name


async def profile_json(deps: AuthDeps, *, principal: Principal) -> bytes:
    """The caller's profile as JSON bytes, from the per-worker cache (no database on a hit)."""
    cache = deps.tokens.cache
    hit = cache.get(PROFILES, principal.id)
    if hit is not None:
        return hit
    epoch = cache.epoch(PROFILES)
    body = dumps(await profile(deps, principal=principal))
    cache.put(PROFILES, principal.id, body, epoch=epoch)
    return body


async def _profile_changed(*citizen_ids: Any) -> None:
    for citizen_id in citizen_ids:
        await cache_bus.changed_key(PROFILES, str(citizen_id))


async def profile(deps: AuthDeps, *, principal: Principal) -> dict[str, Any]:
    """The caller's own profile, every personal field masked."""
    citizen = await Citizen.get_or_none(id=principal.id)
    if citizen is None:
        raise NotFound()
    cipher = deps.cipher
    phone = _reveal(cipher, citizen, "phone")
    name = _reveal(cipher, citizen, "name")
    idn = _reveal(cipher, citizen, "id_number")
    bindings = await ChannelBinding.filter(citizen_id=citizen.id).order_by("id")
    return {
        "id": str(citizen.id),
        "loa": citizen.loa,
        "phone": mask_phone(phone) if phone else None,
        "real_name": {
            "verified": citizen.real_name_at is not None,
            "name": mask_name(name) if name else None,
            "id_number": mask_id_number(idn) if idn else None,
        },
        "channels": [{"channel": b.channel.value, "appid": b.appid, "subscribed": b.subscribed} for b in bindings],
        "wechat_linked": citizen.unionid is not None or bool(bindings),
    }


async def real_name(deps: AuthDeps, *, principal: Principal, name: str, id_number: str) -> dict[str, Any]:
    """Validate the ID number, ask the verifier, and raise the caller to level of assurance 3."""
    name = (name or "").strip()
    if not re.fullmatch(r"[\u4e00-\u9fff·]{2,30}", name):
        raise InvalidInput("姓名格式不正确", details={"fields": {"name": ["应为 2-30 个汉字"]}})
    parsed = validate_id_number(id_number, today=clock.today())
    result = await deps.verifier.verify(name=name, id_number=parsed.number)
    if not result.ok:
        raise RealNameMismatch(details={"reason": result.reason or "mismatch"})
    bidx = deps.cipher.blind_index(parsed.number, kind="id_number")
    async with in_transaction():
        citizen = await Citizen.filter(id=principal.id).select_for_update().first()
        if citizen is None:
            raise NotFound()
        other = await Citizen.filter(id_number_bidx=bidx).exclude(id=citizen.id).exists()
        if other or (citizen.id_number_bidx and citizen.id_number_bidx != bidx):
            raise IdNumberBound()
        citizen.name_enc = deps.cipher.encrypt(name, aad=f"citizen:{citizen.id}:name")
        citizen.id_number_enc = deps.cipher.encrypt(parsed.number, aad=f"citizen:{citizen.id}:id_number")
        citizen.id_number_bidx = bidx
        citizen.real_name_at = clock.now()
        citizen.real_name_ref = (result.reference or "")[:100] or None
        citizen.loa = 3
        await citizen.save()
    await _profile_changed(principal.id)
    # Tokens carry the LoA: the client refreshes to get one that says 3.
    return await profile(deps, principal=principal)


# ---------------------------------------------------------------- staff


async def create_staff(
    *,
    username: str,
    password: str,
    role: str,
    hall: str | None = None,
    departments: list[str] | None = None,
    display_name: str = "",
) -> Staff:
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
    try:
        return await Staff.create(
            id=uuid.uuid4(),
            username=username,
            password_hash=await asyncio.to_thread(_hasher.hash, password),
            role=role_enum,
            hall_code=hall,
            departments=list(departments or []),
            display_name=display_name or username,
        )
    except IntegrityError:
        raise InvalidInput("用户名已存在", code="USERNAME_TAKEN", details={"username": username}) from None


async def staff_login(deps: AuthDeps, *, username: str, password: str, ip: str) -> TokenPair:
    """Password sign-in with per-IP throttling and per-account lockout."""
    await hit(deps.store, STAFF_LOGIN_IP, ip)
    staff = await Staff.get_or_none(username=(username or "")[:64])
    now = clock.now()
    if staff is not None and staff.locked_until and staff.locked_until > now:
        retry = int((staff.locked_until - now).total_seconds()) + 1
        raise AccountLocked(headers={"Retry-After": str(retry)}, details={"retry_after": retry})
    try:
        # argon2 is memory-hard on purpose (~0.3 s): keep it off the event loop.
        await asyncio.to_thread(_hasher.verify, staff.password_hash if staff else _DUMMY_HASH, password or "")
        ok = staff is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or staff is None:
        if staff is not None:
            staff.failed_attempts += 1
            if staff.failed_attempts >= STAFF_MAX_FAILS:
                staff.locked_until = now + dt.timedelta(minutes=STAFF_LOCK_MINUTES)
                staff.failed_attempts = 0
            await staff.save(update_fields=["failed_attempts", "locked_until"])
        raise BadCredentials()
    if staff.disabled:
        raise AccountDisabled()
    if staff.failed_attempts or staff.locked_until:
        staff.failed_attempts = 0
        staff.locked_until = None
        await staff.save(update_fields=["failed_attempts", "locked_until"])
    return await issue_for_staff(deps, staff=staff)


async def set_staff_disabled(deps: AuthDeps, *, username: str, disabled: bool) -> None:
    """Disable (revoking every session at once) or re-enable a staff account."""
    staff = await Staff.get_or_none(username=username)
    if staff is None:
        raise StaffNotFound()
    staff.disabled = disabled
    await staff.save(update_fields=["disabled"])
    if disabled:
        await sessions.revoke_subject(f"staff:{staff.id}", reason="disabled")
        await deps.tokens.revoked()


async def set_citizen_disabled(deps: AuthDeps, *, citizen_id: str, disabled: bool) -> None:
    """Disable or re-enable a citizen account."""
    updated = await Citizen.filter(id=citizen_id).update(disabled=disabled)
    if not updated:
        raise NotFound()
    if disabled:
        await sessions.revoke_subject(f"citizen:{citizen_id}", reason="disabled")
        await deps.tokens.revoked()
    await _profile_changed(citizen_id)


# ---------------------------------------------------------------- partner systems


async def introspect(deps: AuthDeps, *, client_id: str, client_secret: str, token: str) -> dict[str, Any]:
    """RFC 7662 introspection for partner systems with client credentials."""
    expected = deps.settings.partner_clients.get(client_id or "")
    if expected is None or not hmac.compare_digest(expected.encode(), (client_secret or "").encode()):
        raise ClientUnauthorized(headers={"WWW-Authenticate": 'Basic realm="introspect"'})
    try:
        principal = await deps.tokens.verify(token or "", audiences=CITIZEN_AUDIENCES | {STAFF_AUDIENCE})
    except (TokenInvalid, TokenRevoked, TokenExpired):
        return {"active": False}
    claims = principal.claims
    return {
        "active": True,
        "sub": claims["sub"],
        "aud": claims["aud"],
        "iss": claims["iss"],
        "exp": claims["exp"],
        "iat": claims["iat"],
        "token_type": "access_token",
        **({"loa": principal.loa} if principal.kind == "citizen" else {"role": principal.role}),
    }


# ---------------------------------------------------------------- development helpers


async def dev_token_for_phone(deps: AuthDeps, *, phone: str, loa: int, audience: str = "app") -> str:
    """Development: an access token for the citizen with this phone (created if needed) at a given LoA."""
    phone = normalize_phone(phone)
    bidx = deps.cipher.blind_index(phone, kind="phone")
    citizen = await Citizen.get_or_none(phone_bidx=bidx)
    if citizen is None:
        citizen = Citizen(id=uuid.uuid4())
        _set_phone(deps.cipher, citizen, phone)
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
    return (await issue_for_staff(deps, staff=staff)).access_token


async def session_count(subject: str) -> int:
    """Open sessions of a subject (tests and admin)."""
    return await AuthSession.filter(subject=subject, revoked_at__isnull=True).count()

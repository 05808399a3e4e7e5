"""Sign-ins and sessions: mini program, official-account OAuth, SMS codes, staff passwords; refresh,
logout and token introspection for partner systems.

Who a sign-in resolves to (creating or merging citizens) is auth.accounts' rule; this module checks
the credentials and opens the session.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from app import clock
from app.errors import InvalidInput
from app.ratelimit import Limit, count, hit, peek, reset
from app.settings import Settings
from auth import accounts, sessions, totp
from auth import staff as staff_accounts
from auth.deps import AuthDeps, TokenPair
from auth.errors import (
    AccountDisabled,
    AccountLocked,
    BadCredentials,
    ClientUnauthorized,
    OtpInvalid,
    SignInPending,
    StateInvalid,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    TotpNotEnrolled,
    TotpRequired,
)
from auth.models import Channel, Citizen, Staff
from auth.pii import mask_phone, normalize_phone
from auth.sms import SIGNATURE
from auth.tokens import CITIZEN_AUDIENCES, STAFF_AUDIENCE, Principal
from auth.types import StaffAccount

OTP_SEND_PHONE_MINUTE = Limit("otp-send-phone-1m", 1, 60)
OTP_SEND_PHONE_HOUR = Limit("otp-send-phone-1h", 5, 3600)
OTP_SEND_IP_HOUR = Limit("otp-send-ip-1h", 20, 3600)
OTP_VERIFY = Limit("otp-verify", 5, 300)
# Wrong staff passwords (known and unknown usernames alike): per (username, address) pair, per address
# across usernames, per username across addresses; the last two spare addresses the account signed in from.
STAFF_FAILS_PAIR = Limit("staff-fail-pair", 5, 900)
STAFF_FAILS_IP = Limit("staff-fail-ip", 30, 900)
STAFF_FAILS_ACCOUNT = Limit("staff-fail-account", 100, 3600)
STAFF_TRUSTED_DAYS = 30
OTP_TTL = 300
STATE_TTL = 600
PENDING_TTL = 300  # seconds between a right password and the second factor
NEXT_PATH = re.compile(r"^/(?!/)[A-Za-z0-9/_\-.~%]*(\?[A-Za-z0-9/_\-.~%=&]*)?$")


@dataclass(frozen=True)
class OAuthLogin:
    """A finished official-account sign-in: the tokens and the page to go to next.

    `tokens` is None when the silent sign-in must be asked again with `snsapi_userinfo` (`ask_again`).
    """

    tokens: TokenPair | None
    next_path: str
    ask_again: str | None = None


@dataclass(frozen=True)
class OtpSent:
    """A one-time code went out: to which (masked) phone, valid how many seconds."""

    masked_phone: str
    expires_in: int


@dataclass(frozen=True)
class Introspection:
    """What RFC 7662 introspection says of a token; only `active` is meaningful when it is not."""

    active: bool
    subject: str = ""
    audience: str = ""
    issuer: str = ""
    expires_at: int = 0
    issued_at: int = 0
    kind: str = ""  # "citizen" (then `loa` applies) or "staff" (then `role`)
    loa: int = 0
    role: str | None = None


INACTIVE = Introspection(active=False)


# ---------------------------------------------------------------- sessions and tokens


def _citizen_claims(citizen: Citizen) -> dict[str, Any]:
    return {"loa": citizen.loa}


def _staff_claims(staff: StaffAccount) -> dict[str, Any]:
    return {
        "role": staff.role.value,
        "hall": staff.hall,
        "departments": list(staff.departments),
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


async def issue_for_staff(deps: AuthDeps, *, staff: StaffAccount) -> TokenPair:
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
        claims = _staff_claims(staff_accounts.staff_account(account)) if account else {}
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


# ---------------------------------------------------------------- WeChat


async def login_miniprogram(deps: AuthDeps, *, code: str) -> TokenPair:
    """Mini program: wx.login code -> jscode2session -> our tokens."""
    session = await deps.wechat.code2session(js_code=code)
    citizen = await accounts.resolve_wechat(
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


OAUTH_SCOPES = ("snsapi_base", "snsapi_userinfo")


def _browser_hash(settings: Settings, browser: str) -> str:
    """What the server keeps of the browser cookie bound to a state (never the cookie itself)."""
    return hmac.new(settings.secret_key.encode(), f"oauth-browser:{browser}".encode(), hashlib.sha256).hexdigest()


async def oauth_start(deps: AuthDeps, *, next_path: str | None, browser: str, scope: str = "snsapi_base") -> str:
    """The WeChat authorize URL with a signed, expiring, single-use state bound to this browser.

    WeChat passes `state` through only as [A-Za-z0-9]{,128}, so it carries expiry, nonce and MAC;
    the page to return to and a hash of the browser's cookie are kept server-side under the nonce,
    so a callback URL opened in another browser (login CSRF) signs nobody in.
    """
    if not browser or len(browser) < 16:
        raise StateInvalid()
    if scope not in OAUTH_SCOPES:
        raise InvalidInput(details={"scope": scope[:32]})
    stamp = f"{int(clock.now().timestamp()) + STATE_TTL:010d}{secrets.token_hex(8)}"
    value = f"{_browser_hash(deps.settings, browser)} {scope} {safe_next(next_path)}"
    await deps.store.set(f"oauth-state:{stamp[10:]}", value, ex=STATE_TTL)
    redirect_uri = f"{deps.settings.base_url}/api/v1/auth/wechat/callback"
    return deps.wechat.oauth_authorize_url(
        redirect_uri=redirect_uri, state=stamp + _state_mac(deps.settings, stamp), scope=scope
    )


async def oauth_finish(deps: AuthDeps, *, code: str, state: str, browser: str | None) -> OAuthLogin:
    """Official-account H5: check the state belongs to this browser, exchange the code, sign the citizen in."""
    if not re.fullmatch(r"\d{10}[0-9a-f]{16}[0-9a-f]{24}", state or ""):
        raise StateInvalid()
    stamp, mac = state[:26], state[26:]
    if not hmac.compare_digest(mac, _state_mac(deps.settings, stamp)) or int(stamp[:10]) < clock.now().timestamp():
        raise StateInvalid()
    stored = await deps.store.getdel(f"oauth-state:{stamp[10:]}")  # single use
    if stored is None:
        raise StateInvalid()
    bound, scope, next_path = (stored.decode() if isinstance(stored, bytes) else stored).split(" ", 2)
    if not browser or not hmac.compare_digest(bound, _browser_hash(deps.settings, browser)):
        # Another browser opened this callback: refuse before WeChat's code is spent, set nothing.
        raise StateInvalid(code="OAUTH_STATE_FOREIGN", message="登录链接不是在本浏览器中发起的，请重新登录")
    token = await deps.wechat.oauth_exchange(code=code)
    appid = deps.settings.wechat_mp_appid
    if (
        scope == "snsapi_base"
        and token.unionid is None
        and await accounts.citizen_for_openid(deps, appid=appid, openid=token.openid) is None
    ):
        # A first visit that the silent grant cannot link to the citizen's mini-program account (no
        # unionid for a non-follower): ask once with the consent page, which returns the unionid.
        return OAuthLogin(None, safe_next(next_path), ask_again="snsapi_userinfo")
    citizen = await accounts.resolve_wechat(
        deps,
        channel=Channel.official_account,
        appid=appid,
        openid=token.openid,
        unionid=token.unionid,
    )
    pair = await issue_for_citizen(deps, citizen=citizen, audience="h5")
    return OAuthLogin(pair, safe_next(next_path))


# ---------------------------------------------------------------- SMS one-time passwords


def _otp_hash(settings: Settings, bidx: str, otp: str) -> str:
    return hmac.new(settings.secret_key.encode(), f"otp:{bidx}:{otp}".encode(), hashlib.sha256).hexdigest()


async def sms_send(deps: AuthDeps, *, phone: str, ip: str) -> OtpSent:
    """Send a 6-digit code, valid 5 minutes; limited per phone and per IP (fail closed)."""
    phone = normalize_phone(phone)
    bidx = deps.cipher.blind_index(phone, kind="phone")
    await hit(deps.store, OTP_SEND_IP_HOUR, ip)
    await hit(deps.store, OTP_SEND_PHONE_MINUTE, bidx, message="验证码发送过于频繁，请 1 分钟后再试")
    await hit(deps.store, OTP_SEND_PHONE_HOUR, bidx)
    otp = f"{secrets.randbelow(1_000_000):06d}"
    await deps.store.set(f"otp:{bidx}", _otp_hash(deps.settings, bidx, otp), ex=OTP_TTL)
    await reset(deps.store, OTP_VERIFY, bidx)
    await deps.sms.send(phone=phone, text=f"{SIGNATURE}您的验证码为 {otp}，5 分钟内有效。请勿告诉他人。")
    return OtpSent(masked_phone=mask_phone(phone), expires_in=OTP_TTL)


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
    citizen = await accounts.resolve_phone(deps, phone=phone, current=current)
    if current is not None and current.kind == "citizen":
        audience = current.audience  # linking keeps the client the citizen is signed in on
    return await issue_for_citizen(deps, citizen=citizen, audience=audience)


# ---------------------------------------------------------------- staff


def _staff_name_key(deps: AuthDeps, username: str) -> str:
    """What the throttle keeps of a submitted username (known or not): a keyed hash, never the name."""
    mac = hmac.new(deps.settings.secret_key.encode(), f"staff-login:{username}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]


async def _staff_throttle(deps: AuthDeps, *, who: str, ip: str) -> None:
    """Refuse before any password is checked when this username, address or pair has failed too often.

    The (username, address) pair has a few tries; an address has more across usernames, and a username
    has more across addresses. An address the account signed in from lately (the hall) is exempt from
    the latter two, so an attacker elsewhere can neither lock a clerk out of the hall nor tell known
    usernames from unknown ones (both are counted and refused alike).
    """
    store = deps.store
    try:
        trusted = bool(await store.exists(f"staff-trusted:{who}:{ip}"))
    except Exception:
        trusted = False  # the checks below then fail closed
    checks = [(STAFF_FAILS_PAIR, f"{who}:{ip}")]
    if not trusted:
        checks += [(STAFF_FAILS_IP, ip), (STAFF_FAILS_ACCOUNT, who)]
    for limit, key in checks:
        value, retry = await peek(store, limit, key)
        if value >= limit.count:
            raise AccountLocked(headers={"Retry-After": str(retry)}, details={"retry_after": retry})


async def _staff_password(deps: AuthDeps, *, username: str, password: str, ip: str) -> Staff:
    """The account these credentials open; known and unknown usernames are throttled and answered alike."""
    username = (username or "")[:64]
    who = _staff_name_key(deps, username)
    await _staff_throttle(deps, who=who, ip=ip)
    staff = await Staff.get_or_none(username=username)
    if not await staff_accounts.password_matches(staff, password) or staff is None:
        for limit, key in ((STAFF_FAILS_PAIR, f"{who}:{ip}"), (STAFF_FAILS_IP, ip), (STAFF_FAILS_ACCOUNT, who)):
            await count(deps.store, limit, key)
        raise BadCredentials()
    await reset(deps.store, STAFF_FAILS_PAIR, f"{who}:{ip}")
    with contextlib.suppress(Exception):  # remembering the address is a convenience, never a failure
        await deps.store.set(f"staff-trusted:{who}:{ip}", "1", ex=STAFF_TRUSTED_DAYS * 86400)
    if staff.disabled:
        raise AccountDisabled()
    return staff


async def staff_login(deps: AuthDeps, *, username: str, password: str, ip: str, code: str | None = None) -> TokenPair:
    """Password sign-in (API); a role that needs two-factor also needs a current TOTP or recovery `code`."""
    staff = await _staff_password(deps, username=username, password=password, ip=ip)
    if totp.required(deps.settings, staff.role):
        if not totp.enrolled(staff):
            raise TotpNotEnrolled()
        if not code:
            raise TotpRequired(details={"field": "totp"})
        await totp.verify(deps, staff, code)
    return await issue_for_staff(deps, staff=staff_accounts.staff_account(staff))


# ---------------------------------------------------------------- the console's sign-in steps


@dataclass(frozen=True)
class SecondStep:
    """The password was right but the role needs two-factor: `enrol` (no authenticator yet) or `code`."""

    step: str
    next_path: str


def _pending_key(deps: AuthDeps, browser: str) -> str:
    mac = hmac.new(deps.settings.secret_key.encode(), f"staff-2fa:{browser}".encode(), hashlib.sha256)
    return f"staff-2fa:{mac.hexdigest()}"


async def console_login(
    deps: AuthDeps, *, username: str, password: str, ip: str, browser: str, next_path: str
) -> TokenPair | SecondStep:
    """Console password step: a session now, or a short-lived pending sign-in bound to this browser."""
    staff = await _staff_password(deps, username=username, password=password, ip=ip)
    if not totp.required(deps.settings, staff.role):
        return await issue_for_staff(deps, staff=staff_accounts.staff_account(staff))
    if not browser or len(browser) < 16:
        raise SignInPending()
    await deps.store.set(_pending_key(deps, browser), f"{staff.id} {safe_next(next_path)}", ex=PENDING_TTL)
    return SecondStep("code" if totp.enrolled(staff) else "enrol", safe_next(next_path))


async def _pending(deps: AuthDeps, browser: str) -> tuple[Staff, str]:
    stored = await deps.store.get(_pending_key(deps, browser)) if browser else None
    if stored is None:
        raise SignInPending()
    staff_id, _, next_path = (stored.decode() if isinstance(stored, bytes) else stored).partition(" ")
    staff = await Staff.get_or_none(id=staff_id)
    if staff is None or staff.disabled:
        raise SignInPending()
    return staff, next_path


async def console_pending_step(deps: AuthDeps, *, browser: str) -> SecondStep:
    """Which second step this browser's pending sign-in is at (SignInPending when none)."""
    staff, next_path = await _pending(deps, browser)
    return SecondStep("code" if totp.enrolled(staff) else "enrol", next_path)


async def console_enrolment(deps: AuthDeps, *, browser: str) -> totp.Enrolment:
    """The authenticator to add (QR code and key) for the pending, not yet enrolled staff member."""
    staff, _ = await _pending(deps, browser)
    if totp.enrolled(staff):
        raise SignInPending()
    return await totp.enrolment(deps, staff)


async def console_confirm_enrolment(deps: AuthDeps, *, browser: str, code: str) -> tuple[TokenPair, list[str], str]:
    """Confirm the authenticator with a code: the session, the recovery codes (shown once), where next."""
    staff, next_path = await _pending(deps, browser)
    if totp.enrolled(staff):
        raise SignInPending()
    codes = await totp.confirm_enrolment(deps, staff, code)
    await deps.store.delete(_pending_key(deps, browser))
    return await issue_for_staff(deps, staff=staff_accounts.staff_account(staff)), codes, next_path


async def console_second_factor(deps: AuthDeps, *, browser: str, code: str) -> tuple[TokenPair, str]:
    """Finish a pending sign-in with a TOTP or recovery code: the session and where next."""
    staff, next_path = await _pending(deps, browser)
    await totp.verify(deps, staff, code)
    await deps.store.delete(_pending_key(deps, browser))
    return await issue_for_staff(deps, staff=staff_accounts.staff_account(staff)), next_path


async def console_active(deps: AuthDeps, *, session_id: str) -> bool:
    """Note a console request; False (and the session revoked) when it was unused past the idle limit."""
    key = f"console-seen:{session_id}"
    now = clock.now().timestamp()
    seen = await deps.store.get(key)
    if seen is not None and now - float(seen) > deps.settings.console_idle_minutes * 60:
        await deps.store.delete(key)
        await sessions.revoke_session(session_id, reason="idle")
        await deps.tokens.revoked()
        return False
    await deps.store.set(key, str(now), ex=deps.settings.refresh_token_days * 86400)
    return True


async def logout_everywhere(deps: AuthDeps, *, principal: Principal) -> int:
    """End every session of the caller's account, on every device (every worker drops cached tokens)."""
    count = await sessions.revoke_subject(principal.subject, reason="logout_all")
    await deps.tokens.revoked()
    return count


# ---------------------------------------------------------------- partner systems


async def introspect(deps: AuthDeps, *, client_id: str, client_secret: str, token: str) -> Introspection:
    """RFC 7662 introspection for partner systems with client credentials."""
    expected = deps.settings.partner_clients.get(client_id or "")
    if expected is None or not hmac.compare_digest(expected.encode(), (client_secret or "").encode()):
        raise ClientUnauthorized(headers={"WWW-Authenticate": 'Basic realm="introspect"'})
    try:
        principal = await deps.tokens.verify(token or "", audiences=CITIZEN_AUDIENCES | {STAFF_AUDIENCE})
    except (TokenInvalid, TokenRevoked, TokenExpired):
        return INACTIVE
    return Introspection(
        active=True,
        subject=principal.subject,
        audience=principal.audience,
        issuer=deps.settings.jwt_issuer,  # what the token's `iss` was checked against
        expires_at=principal.expires_at,
        issued_at=principal.issued_at,
        kind=principal.kind,
        loa=principal.loa,
        role=principal.role,
    )

"""Citizen accounts: one person across channels, merging, profile, real name, channel bindings, disabling.

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
   already bound to another citizen is refused, answered exactly as a mismatch (see `real_name`).
5. A follower of the official account who signed in elsewhere (mini program, H5) is bound through
   the unionid when they subscribe; (un)subscribing changes their profile at once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app import clock
from app.audit import service as audit
from app.errors import InvalidInput, NotFound
from app.ratelimit import Limit, TooManyRequests, hit
from app.wechat.errors import WeChatError
from auth import sessions
from auth.deps import AuthDeps
from auth.errors import AccountDisabled, IdentityConflict, RealNameDone, RealNameMismatch
from auth.idcard import validate_id_number
from auth.models import Channel, ChannelBinding, Citizen
from auth.pii import PiiCipher, mask_id_number, mask_name, mask_phone
from auth.tokens import Principal

log = logging.getLogger("auth.accounts")

PROFILES = "profiles"  # per-worker cache of profiles, invalidated key by key (citizen id)

MergeHook = Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]
MERGE_HOOKS: list[MergeHook] = []  # other domains move their rows from source to target here


@dataclass(frozen=True)
class RealName:
    """Whether the citizen is real-named, and the masked name and ID number."""

    verified: bool
    name: str | None
    id_number: str | None


@dataclass(frozen=True)
class ChannelLink:
    """One WeChat identity bound to the citizen."""

    channel: Channel
    appid: str
    subscribed: bool


@dataclass(frozen=True)
class Profile:
    """A citizen's own account, every personal field masked."""

    id: uuid.UUID
    loa: int
    phone: str | None  # masked
    real_name: RealName
    channels: tuple[ChannelLink, ...]
    wechat_linked: bool


# ---------------------------------------------------------------- personal fields


def reveal(cipher: PiiCipher, citizen: Citizen, name: str) -> str | None:
    """Decrypt one personal field of a citizen (the row id is the associated data)."""
    token = getattr(citizen, f"{name}_enc")
    return cipher.decrypt(token, aad=f"citizen:{citizen.id}:{name}") if token else None


def set_phone(cipher: PiiCipher, citizen: Citizen, phone: str) -> None:
    """Give a citizen a verified phone (encrypted, blind-indexed), raising them to level of assurance 2."""
    citizen.phone_enc = cipher.encrypt(phone, aad=f"citizen:{citizen.id}:phone")
    citizen.phone_bidx = cipher.blind_index(phone, kind="phone")
    citizen.phone_verified_at = clock.now()
    citizen.loa = max(citizen.loa, 2)


async def _profile_changed(deps: AuthDeps, *citizen_ids: Any) -> None:
    for citizen_id in citizen_ids:
        await deps.cache.invalidate_key(PROFILES, str(citizen_id))


# ---------------------------------------------------------------- resolving a sign-in to a citizen


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
            citizen = owner or await Citizen.create(id=uuid.uuid4(), unionid=unionid)
            await ChannelBinding.create(
                citizen=citizen,
                channel=channel,
                appid=appid,
                openid=openid,
                unionid=unionid,
                last_login_at=clock.now(),
            )
    await _profile_changed(deps, citizen.id)  # bindings, unionid or subscription may have changed
    if citizen.disabled:
        raise AccountDisabled()
    return citizen


async def resolve_phone(deps: AuthDeps, *, phone: str, current: Principal | None) -> Citizen:
    """The citizen a verified phone signs in, or the signed-in citizen it is linked to (merging if needed)."""
    bidx = deps.cipher.blind_index(phone, kind="phone")
    async with in_transaction():
        owner = await Citizen.filter(phone_bidx=bidx).select_for_update().first()
        if current is not None and current.kind == "citizen":
            citizen = await Citizen.get(id=current.id)
            if owner is not None and owner.id != citizen.id:
                citizen = await _merge(deps, citizen, owner)
            elif owner is None:
                set_phone(deps.cipher, citizen, phone)
                await citizen.save()
        elif owner is not None:
            citizen = owner
        else:
            citizen = Citizen(id=uuid.uuid4())
            set_phone(deps.cipher, citizen, phone)
            try:
                await citizen.save(force_create=True)
            except IntegrityError:
                citizen = await Citizen.get(phone_bidx=bidx)
    await _profile_changed(deps, citizen.id, *([current.id] if current is not None else []))
    if citizen.disabled:
        raise AccountDisabled()
    return citizen


async def _merge(deps: AuthDeps, a: Citizen, b: Citizen) -> Citizen:
    """Merge two citizens (inside the caller's transaction); returns the survivor."""
    if a.id_number_bidx and b.id_number_bidx and a.id_number_bidx != b.id_number_bidx:
        raise IdentityConflict()
    target, source = (a, b) if (a.loa, -a.created_at.timestamp()) >= (b.loa, -b.created_at.timestamp()) else (b, a)
    cipher = deps.cipher
    moved: dict[str, Any] = {}
    if source.phone_enc and not target.phone_enc:
        moved["phone"] = reveal(cipher, source, "phone")
    if source.id_number_enc and not target.id_number_enc:
        moved["id_number"] = reveal(cipher, source, "id_number")
        moved["name"] = reveal(cipher, source, "name") or ""
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
        set_phone(cipher, target, moved["phone"])
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
    await _profile_changed(deps, source.id, target.id)
    log.info("citizen merged", extra={"route": "merge"})
    return target


# ---------------------------------------------------------------- profile and real name


async def profile(deps: AuthDeps, *, principal: Principal) -> Profile:
    """The caller's own profile, from the per-worker cache (no database on a hit)."""
    cache = deps.cache
    hit = cache.get(PROFILES, principal.id)
    if hit is not None:
        return hit
    epoch = cache.epoch(PROFILES)
    result = await _load_profile(deps, citizen_id=principal.id)
    cache.put(PROFILES, principal.id, result, epoch=epoch)
    return result


async def _load_profile(deps: AuthDeps, *, citizen_id: str) -> Profile:
    citizen = await Citizen.get_or_none(id=citizen_id)
    if citizen is None:
        raise NotFound()
    cipher = deps.cipher
    phone = reveal(cipher, citizen, "phone")
    name = reveal(cipher, citizen, "name")
    idn = reveal(cipher, citizen, "id_number")
    bindings = await ChannelBinding.filter(citizen_id=citizen.id).order_by("id")
    return Profile(
        id=citizen.id,
        loa=citizen.loa,
        phone=mask_phone(phone) if phone else None,
        real_name=RealName(
            verified=citizen.real_name_at is not None,
            name=mask_name(name) if name else None,
            id_number=mask_id_number(idn) if idn else None,
        ),
        channels=tuple(ChannelLink(channel=b.channel, appid=b.appid, subscribed=b.subscribed) for b in bindings),
        wechat_linked=citizen.unionid is not None or bool(bindings),
    )


def _realname_limits(settings: Any) -> tuple[Limit, Limit, Limit]:
    """Attempts a day per account, per client address and per ID number (its blind index)."""
    return (
        Limit("realname-attempts", settings.realname_attempts_per_account_day, 86400),
        Limit("realname-ip", settings.realname_attempts_per_address_day, 86400),
        Limit("realname-id", settings.realname_attempts_per_id_day, 86400),
    )


async def _realname_attempt(deps: AuthDeps, *, citizen_id: str, ip: str, bidx: str) -> None:
    """Count one attempt that will reach the platform; one 429 whichever limit refuses (none is named)."""
    account, address, number = _realname_limits(deps.settings)
    for limit, key in ((account, citizen_id), (address, ip), (number, bidx)):
        try:
            await hit(deps.store, limit, key)
        except TooManyRequests as exc:
            retry = exc.details.get("retry_after", 86400)
            raise TooManyRequests(
                "实名认证尝试次数过多，请明天再试",
                details={"limit": "realname-attempts", "retry_after": retry},
                headers={"Retry-After": str(retry)},
            ) from None


async def real_name(deps: AuthDeps, *, principal: Principal, name: str, id_number: str, ip: str) -> Profile:
    """Validate the ID number, ask the verifier, and raise the caller to level of assurance 3.

    Not an oracle for other people's name/number pairs: a verified account cannot ask again (staff
    clear a verification with `reset_real_name`); attempts are limited a day per account, per client
    address and per ID number (through its blind index); and a number already bound to another account
    is answered exactly as a mismatch, after the platform was asked as for any other number, so neither
    the answer nor its timing tells whether the pair matched or whether the number has an account here.
    """
    if await Citizen.filter(id=principal.id, real_name_at__isnull=False).exists():
        raise RealNameDone()
    name = (name or "").strip()
    if not re.fullmatch(r"[\u4e00-\u9fff·]{2,30}", name):
        raise InvalidInput("姓名格式不正确", details={"fields": {"name": ["应为 2-30 个汉字"]}})
    parsed = validate_id_number(id_number, today=clock.today())
    bidx = deps.cipher.blind_index(parsed.number, kind="id_number")
    await _realname_attempt(deps, citizen_id=str(principal.id), ip=ip, bidx=bidx)
    bound = await Citizen.filter(id_number_bidx=bidx).exclude(id=principal.id).exists()
    result = await deps.verifier.verify(name=name, id_number=parsed.number)
    if not result.ok or bound:
        if result.ok:
            log.info("real name refused: the number is bound to another account", extra={"route": "real_name"})
        raise RealNameMismatch(details={"reason": "mismatch" if result.ok else result.reason or "mismatch"})
    async with in_transaction():
        citizen = await Citizen.filter(id=principal.id).select_for_update().first()
        if citizen is None:
            raise NotFound()
        if citizen.real_name_at is not None:  # verified meanwhile by a concurrent request
            raise RealNameDone()
        other = await Citizen.filter(id_number_bidx=bidx).exclude(id=citizen.id).exists()
        if other or (citizen.id_number_bidx and citizen.id_number_bidx != bidx):
            raise RealNameMismatch(details={"reason": "mismatch"})
        citizen.name_enc = deps.cipher.encrypt(name, aad=f"citizen:{citizen.id}:name")
        citizen.id_number_enc = deps.cipher.encrypt(parsed.number, aad=f"citizen:{citizen.id}:id_number")
        citizen.id_number_bidx = bidx
        citizen.real_name_at = clock.now()
        citizen.real_name_ref = (result.reference or "")[:100] or None
        citizen.loa = 3
        await citizen.save()
    await _profile_changed(deps, principal.id)
    # Tokens carry the LoA: the client refreshes to get one that says 3.
    return await _load_profile(deps, citizen_id=principal.id)


async def citizen_for_id_number(deps: AuthDeps, *, id_number: str) -> uuid.UUID:
    """The account an ID number is verified on (found by its blind index), for the support process."""
    parsed = validate_id_number(id_number, today=clock.today())
    bidx = deps.cipher.blind_index(parsed.number, kind="id_number")
    citizen = await Citizen.get_or_none(id_number_bidx=bidx)
    if citizen is None:
        raise NotFound("没有账号以该身份证号完成实名认证")
    return citizen.id


async def reset_real_name(deps: AuthDeps, *, citizen_id: uuid.UUID | str, reason: str) -> None:
    """Support process: clear an account's real name (audited) so that its owner can verify again.

    Used after staff checked the person's identity document at a counter, e.g. when someone else
    verified an account with this person's number. The account drops to level of assurance 2 with a
    verified phone, else 1; its sessions are revoked so that no token keeps saying 3.
    """
    if not (reason or "").strip():
        raise InvalidInput("请填写重置原因", details={"fields": {"reason": ["必填"]}})
    async with in_transaction():
        citizen = await Citizen.filter(id=citizen_id).select_for_update().first()
        if citizen is None:
            raise NotFound()
        citizen.name_enc = citizen.id_number_enc = citizen.id_number_bidx = None
        citizen.real_name_at = None
        citizen.real_name_ref = None
        citizen.loa = 2 if citizen.phone_verified_at else 1
        await citizen.save()
        await audit.record(action="citizen.reset_real_name", object_type="citizen", object_id=str(citizen.id),
                           summary="重置公民账号的实名认证", changes={"reason": reason.strip()[:200]})  # fmt: skip
    await sessions.revoke_subject(f"citizen:{citizen.id}", reason="real_name_reset")
    await deps.tokens.revoked()
    await _profile_changed(deps, citizen.id)


# ---------------------------------------------------------------- official-account followers


async def citizen_for_openid(deps: AuthDeps, *, appid: str, openid: str) -> uuid.UUID | None:
    """The citizen a WeChat identity (app id + openid) is bound to, if any."""
    row = await ChannelBinding.filter(appid=appid, openid=openid).first()
    return row.citizen_id if row else None  # type: ignore[attr-defined]


async def set_subscription(deps: AuthDeps, *, appid: str, openid: str, subscribed: bool) -> uuid.UUID | None:
    """Record that a follower (un)subscribed the official account; the bound citizen, if any.

    Unsubscribed, the outbox stops sending them template messages. A new follower who already
    signed in elsewhere (mini program, H5) is bound through their unionid.
    """
    where = {"channel": Channel.official_account, "appid": appid, "openid": openid}
    changed = await ChannelBinding.filter(**where).update(
        subscribed=subscribed, unsubscribed_at=None if subscribed else clock.now()
    )
    if changed:
        citizen_ids = await ChannelBinding.filter(**where).values_list("citizen_id", flat=True)
        await _profile_changed(deps, *citizen_ids)
        return citizen_ids[0] if citizen_ids else None  # type: ignore[return-value]
    if subscribed:
        return await _bind_by_unionid(deps, appid=appid, openid=openid)
    return None


async def _bind_by_unionid(deps: AuthDeps, *, appid: str, openid: str) -> uuid.UUID | None:
    try:
        info = await deps.wechat.user_info(openid=openid)
    except WeChatError as exc:
        log.info("user/info for a new subscriber failed (%s): bound at their first H5 sign-in instead", exc.code)
        return None
    unionid = info.get("unionid")
    citizen = await Citizen.get_or_none(unionid=unionid, disabled=False) if unionid else None
    if citizen is None:
        return None
    target = citizen.merged_into or citizen.id
    with contextlib.suppress(IntegrityError):  # bound meanwhile (the same event twice, or an H5 sign-in)
        await ChannelBinding.create(
            citizen_id=target, channel=Channel.official_account, appid=appid,
            openid=openid, unionid=unionid, subscribed=True,
        )  # fmt: skip
    await _profile_changed(deps, target)
    return target


# ---------------------------------------------------------------- reaching a citizen


async def notice_phone(cipher: PiiCipher, *, citizen_id: uuid.UUID | str) -> str | None:
    """The verified phone a citizen's notifications may be texted to, decrypted now; None without one.

    A merged account's phone moved to the account it was merged into, so that one is asked.
    """
    citizen = await Citizen.get_or_none(id=citizen_id)
    if citizen is not None and citizen.merged_into:
        citizen = await Citizen.get_or_none(id=citizen.merged_into)
    if citizen is None or citizen.phone_verified_at is None:
        return None
    return reveal(cipher, citizen, "phone")


# ---------------------------------------------------------------- disabling


async def set_citizen_disabled(deps: AuthDeps, *, citizen_id: str, disabled: bool) -> None:
    """Disable or re-enable a citizen account."""
    updated = await Citizen.filter(id=citizen_id).update(disabled=disabled)
    if not updated:
        raise NotFound()
    if disabled:
        await sessions.revoke_subject(f"citizen:{citizen_id}", reason="disabled")
        await deps.tokens.revoked()
    await _profile_changed(deps, citizen_id)

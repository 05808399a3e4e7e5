"""The outbox delivery worker: claims due notifications and sends them through WeChat, or by SMS.

Every worker process runs it. A claim is one transaction that picks due rows with
`SELECT … FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite has one writer) and stamps them with a
claim token and a lease, so no two workers hold the same row. A row is marked sent only by the
worker whose claim token it carries. A worker that dies after claiming leaves the lease to run
out, and the row is sent by whoever claims it next. Official-account template messages carry
the notification id as `client_msg_id`, so WeChat drops a duplicate of a send whose answer was lost.
A citizen WeChat cannot reach (no binding, or they unsubscribed) is texted at their verified phone
under the same claim, retry and once-only rules; the row records the channel used.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from app import clock
from app.notify.deps import NotifyDeps
from app.notify.models import Notification, NotificationStatus
from app.notify.templates import RENDERERS, SMS_RENDERERS, Rendered, sms_link
from app.notify.types import DeliveryChannel
from app.settings import Settings
from app.wechat.errors import WeChatError, WeChatQuotaExhausted, WeChatRateLimited, WeChatUnavailable
from auth import accounts
from auth.models import Channel, ChannelBinding
from auth.sms import SmsUnavailable

log = logging.getLogger("app.notify")

LEASE_SECONDS = 60  # far longer than one WeChat call (at most 5 s)
MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600
# errcodes that no retry can fix: invalid openid, user refused/unsubscribed, template missing or invalid
PERMANENT_ERRCODES = frozenset({40003, 40037, 43004, 43101, 47003})


@dataclass
class Outcome:
    """What one delivery round did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0


def backoff(attempts: int) -> dt.timedelta:
    """Wait before the next try: 30 s, 1 min, 2 min … capped at an hour."""
    return dt.timedelta(seconds=min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


async def claim(*, batch: int, lease: float = LEASE_SECONDS) -> list[Notification]:
    """Take up to `batch` due notifications for this worker."""
    now = clock.now()
    token = uuid.uuid4()
    due = Q(status=NotificationStatus.pending, send_after__lte=now) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    async with in_transaction():
        # A model query, not `values_list`: Tortoise drops `select_for_update` from values queries,
        # and without the row locks two workers read the same ids (one then claims nothing).
        locked = await (
            Notification.filter(due).order_by("send_after").limit(batch).select_for_update(skip_locked=True).only("id")
        )
        ids = [row.id for row in locked]
        if not ids:
            return []
        # Conditional too: on SQLite (no row locks) two workers may have read the same ids.
        await Notification.filter(Q(id__in=ids) & due).update(
            claim_token=token,
            claimed_until=now + dt.timedelta(seconds=lease),
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    return await Notification.filter(id__in=ids, claim_token=token, status=NotificationStatus.pending)


async def _renew(row: Notification, lease: float = LEASE_SECONDS) -> bool:
    """Extend our lease on a row just before sending it; False when the lease ran out and another took it.

    A batch is sent one row after another, so a row's turn may come after its claim's lease has
    run out (slow WeChat): another worker may have claimed and sent it meanwhile.
    """
    now = clock.now()
    return bool(
        await Notification.filter(
            id=row.id, claim_token=row.claim_token, status=NotificationStatus.pending, claimed_until__gt=now
        ).update(claimed_until=now + dt.timedelta(seconds=lease), updated_at=now)
    )


async def _mark(row: Notification, **fields: object) -> None:
    """Record the outcome, only while our claim still holds the row."""
    await Notification.filter(id=row.id, claim_token=row.claim_token).update(
        claimed_until=None, updated_at=clock.now(), **fields
    )


async def _binding(citizen_id: uuid.UUID, settings: Settings) -> ChannelBinding | None:
    """Where to reach a citizen: the subscribed official account first, else the mini program."""
    rows = await ChannelBinding.filter(citizen_id=citizen_id).order_by("-last_login_at", "-id")
    for channel, appid in (
        (Channel.official_account, settings.wechat_mp_appid),
        (Channel.miniprogram, settings.wechat_mini_appid),
    ):
        for row in rows:
            if (
                row.channel == channel
                and row.appid == appid
                and (channel != Channel.official_account or row.subscribed)
            ):
                return row
    return None


async def send_one(deps: NotifyDeps, row: Notification) -> str:
    """Send one claimed notification; answers `sent`, `retry` or `failed`.

    WeChat first (the subscribed official account, else the mini program); a citizen WeChat cannot
    reach is texted at their verified phone; with neither the row fails as NO_CHANNEL.
    """
    render = RENDERERS.get(row.kind)
    if render is None:
        await _mark(row, status=NotificationStatus.failed, last_error="NO_TEMPLATE")
        return "failed"
    binding = await _binding(row.citizen_id, deps.settings)
    if binding is not None:
        return await _send_wechat(deps, row, binding, render(row.payload))
    if deps.sms is not None and deps.cipher is not None and row.kind in SMS_RENDERERS:
        phone = await accounts.notice_phone(deps.cipher, citizen_id=row.citizen_id)  # decrypted for this send only
        if phone:
            return await _send_sms(deps, row, phone)
    await _mark(row, status=NotificationStatus.failed, last_error="NO_CHANNEL")
    return "failed"


async def _send_wechat(deps: NotifyDeps, row: Notification, binding: ChannelBinding, content: Rendered) -> str:
    """A template message (official account) or a subscribe message (mini program)."""
    settings, wechat = deps.settings, deps.wechat
    channel = DeliveryChannel(binding.channel.value)
    templates = (
        settings.wechat_templates
        if binding.channel == Channel.official_account
        else settings.wechat_subscribe_templates
    )
    template_id = templates.get(row.kind)
    if not template_id:
        await _mark(row, status=NotificationStatus.failed, channel=channel, last_error="NO_TEMPLATE")
        return "failed"
    try:
        if binding.channel == Channel.official_account:
            msgid = await wechat.send_template(
                openid=binding.openid,
                template_id=template_id,
                data=content.mp_data,
                url=content.url,
                client_msg_id=str(row.id),
            )
        else:
            await wechat.send_subscribe(
                openid=binding.openid, template_id=template_id, data=content.mini_data, page=content.page
            )
            msgid = None
    except WeChatError as exc:
        permanent = isinstance(exc, WeChatQuotaExhausted) or exc.errcode in PERMANENT_ERRCODES
        wait = dt.timedelta(seconds=exc.retry_after) if isinstance(exc, WeChatRateLimited) else None
        transient = isinstance(exc, WeChatUnavailable | WeChatRateLimited)
        error = f"{exc.code} {exc.errcode or ''}".strip()
        return await _not_sent(row, channel, error, permanent=permanent, at_least=wait, expected=transient)
    await _mark(
        row,
        status=NotificationStatus.sent,
        channel=channel,
        msgid=str(msgid) if msgid is not None else None,
        sent_at=clock.now(),
        last_error=None,
    )
    return "sent"


async def _send_sms(deps: NotifyDeps, row: Notification, phone: str) -> str:
    """A text to the citizen's verified phone, linking to their own page of the subject.

    SMS has no `client_msg_id`: the notification id goes to the gateway as the message's reference
    (HttpSender: the `Idempotency-Key` header), so a gateway that honours it drops the repeat of a
    send whose answer was lost. Two workers never send one row: the claim and lease rules above.
    """
    assert deps.sms is not None  # checked by send_one
    link = sms_link(deps.settings.base_url, row.subject_type, row.subject_id)
    text = SMS_RENDERERS[row.kind](row.payload, link)
    try:
        await deps.sms.send(phone=phone, text=text, ref=str(row.id))
    except SmsUnavailable as exc:
        return await _not_sent(row, DeliveryChannel.sms, exc.code, permanent=False, at_least=None, expected=True)
    await _mark(
        row, status=NotificationStatus.sent, channel=DeliveryChannel.sms, msgid=None, sent_at=clock.now(),
        last_error=None,
    )  # fmt: skip
    return "sent"


async def _not_sent(
    row: Notification,
    channel: DeliveryChannel,
    error: str,
    *,
    permanent: bool,
    at_least: dt.timedelta | None,
    expected: bool,
) -> str:
    """A failed send: retried with backoff, or failed for good when permanent or out of attempts.

    `at_least` is a wait the channel asked for; `expected` failures (outage, rate limit) log at INFO.
    """
    error = error[:300]
    if permanent or row.attempts >= MAX_ATTEMPTS:
        await _mark(row, status=NotificationStatus.failed, channel=channel, last_error=error)
        log.warning("notification %s failed for good: %s", row.id, error)
        return "failed"
    wait = backoff(row.attempts)
    if at_least is not None:
        wait = max(wait, at_least)
    await _mark(row, channel=channel, last_error=error, send_after=clock.now() + wait)
    log.log(
        logging.INFO if expected else logging.WARNING, "notification %s will be retried in %s: %s", row.id, wait, error
    )
    return "retry"


async def deliver(deps: NotifyDeps, *, batch: int = 20) -> Outcome:
    """One round: claim due notifications and send them one by one."""
    outcome = Outcome()
    for row in await claim(batch=batch):
        if not await _renew(row):
            continue  # our lease ran out before its turn: it is someone else's now
        try:
            result = await send_one(deps, row)
        except Exception:  # an unexpected error must not stall the batch (and the oldest row with it)
            log.exception("notification %s: delivery error", row.id)
            await _mark(row, last_error="INTERNAL_ERROR", send_after=clock.now() + backoff(row.attempts))
            result = "retry"
        if result == "sent":
            outcome.sent += 1
        elif result == "retry":
            outcome.retried += 1
        else:
            outcome.failed += 1
    return outcome

"""Pluggable SMS senders: the console in development, an HTTP gateway in production."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from app.errors import ServiceUnavailable
from app.settings import Settings

log = logging.getLogger("auth.sms")

SIGNATURE = "【张家界政务服务】"  # every text we send opens with it (gateways require a registered signature)


class SmsUnavailable(ServiceUnavailable):
    code, message = "SMS_UNAVAILABLE", "短信发送失败，请稍后再试"


class SmsSender(Protocol):
    """Sends one text message to a mainland mobile number."""

    async def send(self, *, phone: str, text: str, ref: str | None = None) -> None:
        """Deliver or raise SmsUnavailable; `ref` names the message so a gateway can drop a repeated send."""


@dataclass
class ConsoleSender:
    """Development: prints the message (developers read the code there) and keeps it for tests."""

    outbox: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, *, phone: str, text: str, ref: str | None = None) -> None:
        """Print to stderr, never to the log (logs must not carry codes)."""
        self.outbox.append((phone, text))
        print(f"[dev sms] to {phone}: {text}", file=sys.stderr, flush=True)


@dataclass
class HttpSender:
    """An SMS gateway reached over HTTP: POST {"phone", "text"} with a bearer key, 2xx = accepted.

    A message with a `ref` carries it as the `Idempotency-Key` header: a retry after a lost answer
    repeats the key, so a gateway that honours it sends the text once.
    """

    url: str
    key: str | None
    timeout: float = 5.0

    async def send(self, *, phone: str, text: str, ref: str | None = None) -> None:
        """Post to the gateway."""
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        if ref:
            headers["Idempotency-Key"] = ref
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                resp = await client.post(self.url, json={"phone": phone, "text": text}, headers=headers)
        except httpx.HTTPError:
            log.warning("sms gateway unreachable")
            raise SmsUnavailable() from None
        if resp.status_code >= 300:
            log.warning("sms gateway answered %s", resp.status_code)
            raise SmsUnavailable()


def make_sender(settings: Settings) -> SmsSender:
    """The sender these settings ask for."""
    if settings.sms_sender == "http" and settings.sms_gateway_url:
        return HttpSender(settings.sms_gateway_url, settings.sms_gateway_key)
    return ConsoleSender()

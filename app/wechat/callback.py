"""The official account's message callback: prove it is WeChat, read the message once, answer within 5 s.

wechatpy does the crypto (AES in safe and compatible mode), parsing and reply XML. On top of it:
constant-time signature checks, a timestamp window, nonces remembered in the store (a reused one is
refused), no DTDs at all (WeChat never sends one; an XML bomb never reaches the parser), the
message deduplicated on `MsgId` (or sender + time + event) with the first answer kept for WeChat's
retries, and a time budget after which the callback answers `success` and lets the work finish in
the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xmltodict

from app import clock
from app.errors import DomainError, Forbidden, ServiceUnavailable
from app.settings import Settings
from app.store import Store

if TYPE_CHECKING:  # wechatpy (with requests) is imported on the first message: workers that never get one skip ~7 MiB
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.messages import BaseMessage

log = logging.getLogger("app.wechat.callback")

MAX_BODY = 64 * 1024  # WeChat's messages are a few KB at most
SUCCESS = b"success"  # what WeChat takes for "received, no reply"
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class CallbackForbidden(Forbidden):
    code, message = "WECHAT_SIGNATURE_INVALID", "微信回调签名校验失败"


class CallbackStale(Forbidden):
    code, message = "WECHAT_TIMESTAMP_INVALID", "微信回调时间戳无效或已过期"


class CallbackReplayed(Forbidden):
    code, message = "WECHAT_NONCE_REUSED", "微信回调 nonce 已使用"


class CallbackPlaintextRefused(Forbidden):
    code, message = "WECHAT_PLAINTEXT_REFUSED", "本公众号只接受加密（安全模式）消息"


class CallbackAppIdMismatch(Forbidden):
    code, message = "WECHAT_APPID_MISMATCH", "消息不属于本公众号"


class CallbackMalformed(DomainError):
    code, message, status = "WECHAT_MESSAGE_MALFORMED", "微信回调消息格式不正确", 400


class CallbackTooLarge(DomainError):
    code, message, status = "WECHAT_MESSAGE_TOO_LARGE", "微信回调消息过大", 413


ERRORS = [
    CallbackForbidden,
    CallbackStale,
    CallbackReplayed,
    CallbackAppIdMismatch,
    CallbackMalformed,
    CallbackTooLarge,
]

Reply = str | list[dict[str, str]] | None  # text, news articles, or nothing (`success`)
Responder = Callable[["BaseMessage"], Awaitable[Reply]]


def _sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 - WeChat's signature scheme


def _same(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def _check_time(settings: Settings, timestamp: str | None) -> None:
    try:
        sent = int(timestamp or "")
    except ValueError:
        raise CallbackStale() from None
    if abs(clock.now().timestamp() - sent) > settings.wechat_callback_window:
        raise CallbackStale(details={"window_seconds": settings.wechat_callback_window})


def handshake(settings: Settings, *, signature: str | None, timestamp: str | None, nonce: str | None,
              echostr: str | None) -> str:  # fmt: skip
    """The server-address check of the WeChat console: echo `echostr` when the signature is ours."""
    if not (timestamp and nonce and echostr) or not _same(signature, _sha1(settings.wechat_mp_token, timestamp, nonce)):
        raise CallbackForbidden()
    _check_time(settings, timestamp)
    return echostr


@dataclass
class Incoming:
    """A verified request: the message's XML, and how to wrap the answer."""

    xml: str
    encrypted: bool
    nonce: str
    timestamp: str


def _has_dtd(xml: bytes) -> bool:
    """A DTD can only stand before the root element; text inside messages may say `<!DOCTYPE` freely."""
    root = xml.find(b"<xml")
    return bool(_DTD.search(xml if root < 0 else xml[:root]))


def _outer(body: bytes) -> dict[str, Any]:
    if _has_dtd(body):
        raise CallbackMalformed(details={"reason": "dtd"})
    try:
        data = xmltodict.parse(body, disable_entities=True)
    except Exception:  # expat errors, bad encodings: all just malformed input
        raise CallbackMalformed(details={"reason": "xml"}) from None
    xml = data.get("xml") if isinstance(data, dict) else None
    if not isinstance(xml, dict):
        raise CallbackMalformed(details={"reason": "root"})
    return xml


def verify(settings: Settings, *, query: dict[str, str], body: bytes) -> Incoming:
    """Everything that needs no store: size, signatures, time, structure, decryption and our app id."""
    if len(body) > MAX_BODY:
        raise CallbackTooLarge(details={"max_bytes": MAX_BODY})
    token, timestamp, nonce = settings.wechat_mp_token, query.get("timestamp"), query.get("nonce")
    if not (timestamp and nonce) or not _same(query.get("signature"), _sha1(token, timestamp, nonce)):
        raise CallbackForbidden()
    _check_time(settings, timestamp)
    outer = _outer(body)
    if query.get("encrypt_type", "raw").lower() != "aes":
        # Plaintext signs only the token, time and nonce, not the message: where safe mode is on, refuse it.
        if settings.wechat_mp_encrypted_only:
            raise CallbackPlaintextRefused()
        return Incoming(body.decode("utf-8", "replace"), False, nonce, timestamp)
    # Safe and compatible mode: only the encrypted part counts (the plaintext copy is not signed).
    encrypt = outer.get("Encrypt")
    if not isinstance(encrypt, str) or not _same(query.get("msg_signature"), _sha1(token, timestamp, nonce, encrypt)):
        raise CallbackForbidden()
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

    crypto = WeChatCrypto(token, settings.wechat_mp_aes_key, settings.wechat_mp_appid)
    try:
        xml = crypto.decrypt_message(body.decode(), query["msg_signature"], timestamp, nonce)
    except InvalidAppIdException:
        raise CallbackAppIdMismatch() from None
    except InvalidSignatureException:
        raise CallbackForbidden() from None
    except Exception:  # padding, base64, UTF-8: not a message we can read
        raise CallbackMalformed(details={"reason": "decrypt"}) from None
    if _has_dtd(xml.encode()):
        raise CallbackMalformed(details={"reason": "dtd"})
    return Incoming(xml, True, nonce, timestamp)


def parse(xml: str) -> BaseMessage:
    """The message object (an unknown type is wechatpy's UnknownMessage, answered `success`)."""
    from wechatpy import parse_message

    try:
        message = parse_message(xml)
    except Exception:
        raise CallbackMalformed(details={"reason": "message"}) from None
    if message is None:  # empty content: wechatpy answers None rather than raising
        raise CallbackMalformed(details={"reason": "empty"})
    return message


def dedupe_key(message: BaseMessage) -> str:
    """What WeChat's retries of one message share: its MsgId, or for events the sender, time and event."""
    raw = getattr(message, "_data", {}) or {}
    if raw.get("MsgId"):
        return f"wx:msg:{raw['MsgId']}"
    return f"wx:evt:{message.source}:{raw.get('CreateTime')}:{raw.get('Event', '')}:{raw.get('EventKey', '')}"


_background: set[asyncio.Future[Any]] = set()


class Callback:
    """One official account's callback: the verified transport around a responder."""

    def __init__(self, settings: Settings, store: Store, respond: Responder) -> None:
        self.settings = settings
        self.store = store
        self.respond = respond
        self._crypto: WeChatCrypto | None = None

    @property
    def crypto(self) -> WeChatCrypto:
        """wechatpy's crypto for this account's token, key and appid (made on first use)."""
        if self._crypto is None:
            from wechatpy.crypto import WeChatCrypto

            settings = self.settings
            self._crypto = WeChatCrypto(settings.wechat_mp_token, settings.wechat_mp_aes_key, settings.wechat_mp_appid)
        return self._crypto

    async def _remember(self, key: str, value: str | bytes, ttl: int) -> bool:
        """SET NX in the store; 503 when it is down (a nonce or a duplicate cannot be told apart then)."""
        try:
            return bool(await self.store.set(key, value, nx=True, ex=ttl))
        except Exception:
            log.warning("store unavailable: refusing the WeChat callback (WeChat retries)")
            raise ServiceUnavailable(code="STORE_UNAVAILABLE") from None

    async def handshake(self, *, signature: str | None, timestamp: str | None, nonce: str | None,
                        echostr: str | None) -> str:  # fmt: skip
        """The console's server check, its nonce spent too (a logged handshake cannot sign a message later)."""
        echo = handshake(self.settings, signature=signature, timestamp=timestamp, nonce=nonce, echostr=echostr)
        if not await self._remember(f"wx:nonce:{nonce}", "handshake", 2 * self.settings.wechat_callback_window):
            raise CallbackReplayed()
        return echo

    async def _recall(self, key: str) -> bytes | None:
        try:
            return await self.store.get(key)
        except Exception:
            raise ServiceUnavailable(code="STORE_UNAVAILABLE") from None

    async def handle(self, *, query: dict[str, str], body: bytes) -> bytes:
        """Answer one POST: the reply XML (encrypted in safe mode), or `success`."""
        incoming = verify(self.settings, query=query, body=body)
        window = self.settings.wechat_callback_window
        # A nonce names one request. WeChat resends a request it got no answer to byte for byte, so the
        # very same request again is a retry (deduplication below answers it without processing it again);
        # the nonce with anything else is a replay and refused.
        digest = hashlib.sha256(
            f"{query.get('signature')}|{query.get('msg_signature')}|{incoming.timestamp}|".encode() + body
        ).hexdigest()
        nonce_key = f"wx:nonce:{incoming.nonce}"
        if not await self._remember(nonce_key, digest, 2 * window) and await self._recall(nonce_key) != digest.encode():
            raise CallbackReplayed()
        message = parse(incoming.xml)
        if query.get("openid") and query["openid"] != message.source:  # WeChat names the sender in the query too
            raise CallbackForbidden(details={"reason": "openid"})
        key = dedupe_key(message)
        if not await self._remember(key, b"", 2 * window):
            # WeChat's retry of a message already taken: its first answer when there is one, else `success`.
            return await self._recall(key) or SUCCESS
        try:
            answer = await self._answer_in_time(message, incoming)
        except Exception:
            with contextlib.suppress(Exception):
                await self.store.delete(key)  # not answered: WeChat's retry may try again
            raise
        if answer != SUCCESS:
            try:  # kept for WeChat's retries; without it a retry answers `success`, which is still correct
                await self.store.set(key, answer, xx=True, ex=2 * window)
            except Exception:
                log.warning("could not keep the WeChat reply for retries (store unavailable)")
        return answer

    async def _answer_in_time(self, message: BaseMessage, incoming: Incoming) -> bytes:
        task = asyncio.ensure_future(self._render(message, incoming))
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout=self.settings.wechat_reply_budget)
        except TimeoutError:
            # WeChat waits 5 s and then retries: answer now, let the work finish on its own.
            _background.add(task)
            task.add_done_callback(_finished_late)
            log.warning("WeChat callback %s over budget: answered success", type(message).__name__)
            return SUCCESS
        except DomainError as exc:
            log.info("WeChat callback answered with nothing: %s", exc.code)
            return SUCCESS

    async def _render(self, message: BaseMessage, incoming: Incoming) -> bytes:
        from wechatpy import create_reply

        content = await self.respond(message)
        if content is None:
            return SUCCESS
        xml = create_reply(content, message=message, render=True)
        if incoming.encrypted:
            xml = self.crypto.encrypt_message(xml, incoming.nonce, incoming.timestamp)
        return xml.encode()


def _finished_late(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("late WeChat callback work failed: %r", task.exception())

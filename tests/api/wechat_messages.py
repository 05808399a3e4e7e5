"""Messages built the way WeChat builds them (wechatpy's crypto), signed for the app's settings."""

from __future__ import annotations

import hashlib
import uuid

import xmltodict
from wechatpy.crypto import WeChatCrypto

from app import clock

OA_ID = "gh_zjjzwfw0001"


def _sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def text_xml(openid: str, content: str, msg_id: int, *, at: int | None = None) -> str:
    """A text message."""
    at = at or int(clock.now().timestamp())
    return (
        f"<xml><ToUserName><![CDATA[{OA_ID}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{at}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


def event_xml(openid: str, event: str, key: str | None = None, *, at: int | None = None) -> str:
    """An event (subscribe, SCAN, unsubscribe, CLICK, VIEW ...)."""
    at = at or int(clock.now().timestamp())
    extra = f"<EventKey><![CDATA[{key}]]></EventKey>" if key is not None else ""
    if event in {"SCAN", "subscribe"} and key:
        extra += "<Ticket><![CDATA[gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2tUb1p4WG5sZmE]]></Ticket>"
    return (
        f"<xml><ToUserName><![CDATA[{OA_ID}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>{extra}</xml>"
    )


def signed(
    settings, xml: str, *, mode: str = "raw", nonce: str | None = None, timestamp: str | None = None,
    appid: str | None = None,
) -> tuple[dict[str, str], bytes]:  # fmt: skip
    """(query, body) of a POST as WeChat sends it in plaintext (`raw`), compatible or safe (`aes`) mode."""
    timestamp = timestamp or str(int(clock.now().timestamp()))
    nonce = nonce or uuid.uuid4().hex[:10]
    token = settings.wechat_mp_token
    query = {"signature": _sha1(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
    query["openid"] = xmltodict.parse(xml)["xml"].get("FromUserName", "")
    if mode == "raw":
        return query, xml.encode()
    crypto = WeChatCrypto(token, settings.wechat_mp_aes_key, appid or settings.wechat_mp_appid)
    encrypted = xmltodict.parse(crypto.encrypt_message(xml, nonce, timestamp))["xml"]["Encrypt"]
    query.update(encrypt_type="aes", msg_signature=_sha1(token, timestamp, nonce, encrypted))
    if mode == "compatible":  # the plaintext fields and the encrypted copy side by side
        body = xml.replace("</xml>", f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
    else:
        body = f"<xml><ToUserName><![CDATA[{OA_ID}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    return query, body.encode()


def open_reply(settings, body: bytes, query: dict[str, str]) -> dict:
    """The reply as a dict (decrypted in safe mode)."""
    if query.get("encrypt_type") == "aes":
        crypto = WeChatCrypto(settings.wechat_mp_token, settings.wechat_mp_aes_key, settings.wechat_mp_appid)
        outer = xmltodict.parse(body)["xml"]
        xml = crypto.decrypt_message(body, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
        return xmltodict.parse(xml)["xml"]
    return xmltodict.parse(body)["xml"]

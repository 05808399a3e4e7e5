"""The callback as an attacker and a flaky network see it: signatures, time, nonces, app id, hostile XML,
oversized bodies, tampered ciphertext, the untrusted plaintext copy of compatible mode, WeChat's retries and
the 5-second budget.

Every refused request must leave nothing behind: the responder never ran and the same message, correctly
signed afterwards (with the same nonce when the refusal came before the nonce was taken), is processed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import resource
import time
import tracemalloc
import uuid
from typing import Any

import pytest
import xmltodict
from wechatpy.crypto import WeChatCrypto

from app import clock
from app.matters import service as catalogue
from app.wechat import callback as wx_callback
from auth.models import Channel, ChannelBinding
from qr import service as qr_service
from qr.models import ScanDaily
from tests import factories
from tests.api.wechat_messages import OA_ID, event_xml, open_reply, signed, text_xml

MODES = ["raw", "compatible", "aes"]
AES_MODES = ["compatible", "aes"]
KEYWORD, GUIDE_TITLE = "公积金", "住房公积金提取"  # a text answered with one news article
MATTER = "4308-XK-SS-001"

_msg_ids = itertools.count(8_000_000_000_000_000)
_times = itertools.count(1_790_000_000)


def msg_id() -> int:
    return next(_msg_ids)


def at() -> int:
    return next(_times)


def openid() -> str:
    return "o" + uuid.uuid4().hex[:27]


def fresh_nonce() -> str:
    return uuid.uuid4().hex[:10]


def sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


@pytest.fixture
async def seeded(client, fake_clock):
    await catalogue.import_catalogue(client.sanic_app.ctx.catalogue, data=factories.small_catalogue())
    return client


@pytest.fixture
def calls(client, monkeypatch) -> list[Any]:
    """Messages the app's responder was asked to answer (the real responder still answers)."""
    cb = client.sanic_app.ctx.wechat_callback
    real, seen = cb.respond, []

    async def counting(message):
        seen.append(message)
        return await real(message)

    monkeypatch.setattr(cb, "respond", counting)
    return seen


async def post(client, query: dict[str, str], body: bytes):
    _, r = await client.post("/wechat/callback", params=query, content=body)
    return r


def error_code(r) -> str:
    return r.json["error"]["code"]


def refused(r, status: int, code: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    if code is not None:
        assert error_code(r) == code, r.text


def guide_reply(settings, r, query, to: str) -> None:
    """The keyword's answer: one news article, the 公积金 guide, addressed to `to`."""
    assert r.status_code == 200, r.text
    reply = open_reply(settings, r.content, query)
    assert reply["MsgType"] == "news" and reply["ToUserName"] == to and reply["FromUserName"] == OA_ID
    assert reply["Articles"]["item"]["Title"] == GUIDE_TITLE


# ---- building requests by hand (for bodies the helper cannot sign: broken, hostile, tampered) ----


def encrypt(settings, plaintext: str, *, appid: str | None = None) -> str:
    """The Encrypt value WeChat would send for `plaintext` (any string, well-formed or not)."""
    appid = settings.wechat_mp_appid if appid is None else appid
    crypto = WeChatCrypto(settings.wechat_mp_token, settings.wechat_mp_aes_key, appid)
    return xmltodict.parse(crypto.encrypt_message(plaintext, "n", "1"))["xml"]["Encrypt"]


def query_for(settings, *, nonce: str | None = None, timestamp: str | None = None, encrypted: str | None = None):
    timestamp = timestamp or str(int(clock.now().timestamp()))
    nonce = nonce or fresh_nonce()
    token = settings.wechat_mp_token
    query = {"signature": sha1(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, "openid": "o"}
    if encrypted is not None:
        query.update(encrypt_type="aes", msg_signature=sha1(token, timestamp, nonce, encrypted))
    return query


def envelope(encrypted: str, plaintext_fields: str = "") -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[{OA_ID}]]></ToUserName>{plaintext_fields}"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    ).encode()


def sealed(settings, inner: str, mode: str, *, nonce: str | None = None) -> tuple[dict[str, str], bytes]:
    """(query, body) carrying `inner` as the message: as is in raw mode, encrypted otherwise."""
    if mode == "raw":
        return query_for(settings, nonce=nonce), inner.encode()
    enc = encrypt(settings, inner)
    return query_for(settings, nonce=nonce, encrypted=enc), envelope(enc)


async def processed_afterwards(client, settings, calls, mode: str, xml: str, to: str, *, nonce: str | None = None):
    """Nothing ran for the refused request, and the same keyword message correctly signed is answered."""
    assert calls == []
    query, body = signed(settings, xml, mode=mode, nonce=nonce)
    guide_reply(settings, await post(client, query, body), query, to)
    assert len(calls) == 1


# ---------------------------------------------------------------- signatures


def _wrong_signature(settings, q):
    return {**q, "signature": "0" * 40}


def _missing_signature(settings, q):
    return {k: v for k, v in q.items() if k != "signature"}


def _other_token(settings, q):
    return {**q, "signature": sha1("someoneelsestoken", q["timestamp"], q["nonce"])}


def _signature_of_another_nonce(settings, q):
    return {**q, "signature": sha1(settings.wechat_mp_token, q["timestamp"], "othernonce")}


def _empty_signature(settings, q):
    return {**q, "signature": ""}


def _missing_nonce(settings, q):
    return {k: v for k, v in q.items() if k != "nonce"}


def _missing_timestamp(settings, q):
    return {k: v for k, v in q.items() if k != "timestamp"}


@pytest.mark.parametrize(
    "forge",
    [
        _wrong_signature,
        _missing_signature,
        _other_token,
        _signature_of_another_nonce,
        _empty_signature,
        _missing_nonce,
        _missing_timestamp,
    ],
)
@pytest.mark.parametrize("mode", MODES)
async def test_wrong_or_missing_signature_is_403(seeded, settings, calls, mode, forge):
    oid, nonce = openid(), fresh_nonce()
    xml = text_xml(oid, KEYWORD, msg_id())
    query, body = signed(settings, xml, mode=mode, nonce=nonce)
    refused(await post(seeded, forge(settings, query), body), 403, "WECHAT_SIGNATURE_INVALID")
    await processed_afterwards(seeded, settings, calls, mode, xml, oid, nonce=nonce)


@pytest.mark.parametrize(
    "forge",
    [
        lambda settings, q, body: {**q, "msg_signature": "0" * 40},
        lambda settings, q, body: {k: v for k, v in q.items() if k != "msg_signature"},
        lambda settings, q, body: {**q, "msg_signature": ""},
        # the signature of another ciphertext (another message of ours), or of this one under another nonce
        lambda settings, q, body: {
            **q,
            "msg_signature": sha1(settings.wechat_mp_token, q["timestamp"], q["nonce"], encrypt(settings, "<xml/>")),
        },
        lambda settings, q, body: {
            **q,
            "msg_signature": sha1(
                settings.wechat_mp_token, q["timestamp"], "othernonce", xmltodict.parse(body)["xml"]["Encrypt"]
            ),
        },
        # a plain signature right is not enough: the ciphertext's must be right too
        lambda settings, q, body: {**q, "msg_signature": q["signature"]},
    ],
    ids=["wrong", "missing", "empty", "other-ciphertext", "other-nonce", "plain-signature"],
)
@pytest.mark.parametrize("mode", AES_MODES)
async def test_wrong_msg_signature_in_encrypted_modes_is_403(seeded, settings, calls, mode, forge):
    oid, nonce = openid(), fresh_nonce()
    xml = text_xml(oid, KEYWORD, msg_id())
    query, body = signed(settings, xml, mode=mode, nonce=nonce)
    refused(await post(seeded, forge(settings, query, body), body), 403, "WECHAT_SIGNATURE_INVALID")
    await processed_afterwards(seeded, settings, calls, mode, xml, oid, nonce=nonce)


@pytest.mark.parametrize("mode", AES_MODES)
async def test_encrypted_mode_without_a_ciphertext_is_refused(seeded, settings, calls, mode):
    # encrypt_type=aes with a plaintext body: nothing signed to read, so nothing is read.
    oid, nonce = openid(), fresh_nonce()
    xml = text_xml(oid, KEYWORD, msg_id())
    query, _ = signed(settings, xml, mode=mode, nonce=nonce)
    refused(await post(seeded, query, xml.encode()), 403, "WECHAT_SIGNATURE_INVALID")
    refused(await post(seeded, query, envelope("")), 403, "WECHAT_SIGNATURE_INVALID")
    await processed_afterwards(seeded, settings, calls, mode, xml, oid, nonce=nonce)


# ---------------------------------------------------------------- time and nonces


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("offset", ["past", "future", "way-past", "not-a-number", "zero"])
async def test_timestamp_outside_the_window_is_403(seeded, settings, calls, fake_clock, mode, offset):
    now, window = int(fake_clock.current.timestamp()), settings.wechat_callback_window
    timestamp = {
        "past": str(now - window - 1),
        "future": str(now + window + 1),
        "way-past": "1700000000",
        "not-a-number": "17x0000000",
        "zero": "0",
    }[offset]
    oid, nonce = openid(), fresh_nonce()
    xml = text_xml(oid, KEYWORD, msg_id())
    query, body = signed(settings, xml, mode=mode, nonce=nonce, timestamp=timestamp)
    r = await post(seeded, query, body)
    refused(r, 403, "WECHAT_TIMESTAMP_INVALID")
    await processed_afterwards(seeded, settings, calls, mode, xml, oid, nonce=nonce)


@pytest.mark.parametrize("mode", MODES)
async def test_timestamps_at_the_edges_of_the_window_are_accepted(seeded, settings, calls, fake_clock, mode):
    now, window = int(fake_clock.current.timestamp()), settings.wechat_callback_window
    for timestamp in (now - window, now + window):
        oid = openid()
        query, body = signed(settings, text_xml(oid, KEYWORD, msg_id()), mode=mode, timestamp=str(timestamp))
        guide_reply(settings, await post(seeded, query, body), query, oid)
    assert len(calls) == 2


async def test_handshake_checks_time_and_signature(client, settings, fake_clock):
    now = int(fake_clock.current.timestamp())
    query = query_for(settings)
    _, r = await client.get("/wechat/callback", params={**query, "echostr": "echo42"})
    assert r.status_code == 200 and r.text == "echo42"
    old = query_for(settings, timestamp=str(now - settings.wechat_callback_window - 1))
    _, r = await client.get("/wechat/callback", params={**old, "echostr": "echo42"})
    refused(r, 403, "WECHAT_TIMESTAMP_INVALID")
    _, r = await client.get("/wechat/callback", params=query)  # no echostr
    refused(r, 403, "WECHAT_SIGNATURE_INVALID")
    _, r = await client.get("/wechat/callback", params={**query, "signature": "0" * 40, "echostr": "echo42"})
    refused(r, 403, "WECHAT_SIGNATURE_INVALID")


@pytest.mark.parametrize("mode", MODES)
async def test_reused_nonce_is_403_and_consumes_nothing_else(seeded, settings, calls, mode):
    nonce = fresh_nonce()
    first_oid, second_oid = openid(), openid()
    q1, b1 = signed(settings, text_xml(first_oid, KEYWORD, msg_id()), mode=mode, nonce=nonce)
    first = await post(seeded, q1, b1)
    guide_reply(settings, first, q1, first_oid)
    assert len(calls) == 1

    second = text_xml(second_oid, KEYWORD, msg_id())
    q2, b2 = signed(settings, second, mode=mode, nonce=nonce)
    refused(await post(seeded, q2, b2), 403, "WECHAT_NONCE_REUSED")
    # The very same request again is how WeChat retries: its first answer, nothing processed twice.
    again = await post(seeded, q1, b1)
    assert again.status_code == 200 and again.content == first.content
    for other in MODES:  # a nonce is spent whatever the mode it came in
        q, b = signed(settings, second, mode=other, nonce=nonce)
        refused(await post(seeded, q, b), 403, "WECHAT_NONCE_REUSED")
    assert len(calls) == 1

    q3, b3 = signed(settings, second, mode=mode)  # the refused message, now with a nonce of its own
    guide_reply(settings, await post(seeded, q3, b3), q3, second_oid)
    assert len(calls) == 2


# ---------------------------------------------------------------- app id


@pytest.mark.parametrize("mode", AES_MODES)
@pytest.mark.parametrize("appid", ["wxsomeoneelse", "", "wxdevofficialacct2", "wxdevminiprogram"])
async def test_a_message_encrypted_for_another_app_is_403(seeded, settings, calls, mode, appid):
    oid, nonce = openid(), fresh_nonce()
    xml = text_xml(oid, KEYWORD, msg_id())
    enc = encrypt(settings, xml, appid=appid)
    query = query_for(settings, nonce=nonce, encrypted=enc)
    body = envelope(enc, xml[5:-6] if mode == "compatible" else "")
    refused(await post(seeded, query, body), 403, "WECHAT_APPID_MISMATCH")
    await processed_afterwards(seeded, settings, calls, mode, xml, oid, nonce=nonce)


# ---------------------------------------------------------------- hostile and broken XML

BROKEN = {
    "not-xml": "not xml at all",
    "unclosed": "<xml><ToUserName>x</xml>",
    "empty-root": "<xml/>",
    "empty-root-pair": "<xml></xml>",
    "other-root": "<root><MsgType>text</MsgType></root>",
    "no-msgtype": "<xml><Content>hi</Content></xml>",
    "nested-msgtype": "<xml><MsgType><a>1</a></MsgType></xml>",
    "two-roots": "<xml><MsgType>text</MsgType></xml><xml/>",
    "empty": "",
    "blank": "   ",
}


@pytest.mark.parametrize("inner", list(BROKEN.values()), ids=list(BROKEN))
@pytest.mark.parametrize("mode", MODES)
async def test_malformed_xml_is_400(seeded, settings, calls, mode, inner):
    query, body = sealed(settings, inner, mode)
    r = await post(seeded, query, body)
    refused(r, 400, "WECHAT_MESSAGE_MALFORMED")
    oid = openid()
    await processed_afterwards(seeded, settings, calls, mode, text_xml(oid, KEYWORD, msg_id()), oid)


@pytest.mark.parametrize("body", [b"\xff\xfe\x00garbage", b"<xml>\xc3\x28</xml>", b"\x00" * 64, b"<?xml?>"])
async def test_malformed_outer_bytes_are_400(seeded, settings, calls, body):
    for mode in MODES:
        query = query_for(settings, encrypted=None if mode == "raw" else "abc")
        refused(await post(seeded, query, body), 400, "WECHAT_MESSAGE_MALFORMED")
    assert calls == []


def billion_laughs(root: str = "<xml><MsgType>text</MsgType><Content>&lol9;</Content></xml>") -> str:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    ]
    return f'<?xml version="1.0"?>\n<!DOCTYPE xml [\n{chr(10).join(entities)}\n]>\n{root}'


XXE = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    f"<xml><ToUserName><![CDATA[{OA_ID}]]></ToUserName><FromUserName><![CDATA[oX]]></FromUserName>"
    "<CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"
)


def _measure():
    tracemalloc.start()
    return time.monotonic(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measured(start) -> tuple[float, int, int]:
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    elapsed = time.monotonic() - start[0]
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start[1]
    return elapsed, peak, grown_kb


@pytest.mark.parametrize("kind", ["billion-laughs", "xxe", "utf16-billion-laughs", "lowercase-doctype"])
@pytest.mark.parametrize("mode", MODES)
async def test_xml_bombs_are_400_fast_and_small(seeded, settings, calls, mode, kind):
    nonce = fresh_nonce()
    bomb = XXE if kind == "xxe" else billion_laughs()
    if kind == "lowercase-doctype":
        bomb = bomb.replace("<!DOCTYPE", "<!doctype").replace("<!ENTITY", "<!entity")
    if mode == "raw":
        query = query_for(settings, nonce=nonce)
        body = bomb.encode("utf-16") if kind == "utf16-billion-laughs" else bomb.encode()
    elif mode == "aes":  # the bomb inside the ciphertext
        query, body = sealed(settings, bomb, mode, nonce=nonce)
    else:  # compatible: a valid ciphertext, the bomb in the plaintext copy around it
        oid = openid()
        enc = encrypt(settings, text_xml(oid, KEYWORD, msg_id()))
        query = query_for(settings, nonce=nonce, encrypted=enc)
        outer = billion_laughs(
            f"<xml><ToUserName>{OA_ID}</ToUserName><Content>&lol9;</Content><Encrypt>{enc}</Encrypt></xml>"
        )
        if kind == "xxe":
            outer = XXE.replace("</xml>", f"<Encrypt>{enc}</Encrypt></xml>")
        if kind == "lowercase-doctype":
            outer = outer.replace("<!DOCTYPE", "<!doctype").replace("<!ENTITY", "<!entity")
        body = outer.encode("utf-16") if kind == "utf16-billion-laughs" else outer.encode()

    start = _measure()
    r = await post(seeded, query, body)
    elapsed, peak, grown_kb = _measured(start)
    assert r.status_code == 400, r.text
    assert error_code(r) == "WECHAT_MESSAGE_MALFORMED"
    assert b"root:" not in r.content  # nothing of /etc/passwd
    assert elapsed < 1.0, elapsed
    assert peak < 20 * 1024 * 1024, peak
    assert grown_kb < 50 * 1024, grown_kb
    oid = openid()
    # refused before its nonce was taken: the same nonce still serves a real message
    await processed_afterwards(seeded, settings, calls, mode, text_xml(oid, KEYWORD, msg_id()), oid, nonce=nonce)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [1024 * 1024, wx_callback.MAX_BODY + 1])
async def test_oversized_body_is_413(seeded, settings, calls, mode, size):
    oid, nonce = openid(), fresh_nonce()
    if mode == "raw":
        query = query_for(settings, nonce=nonce)
        head = text_xml(oid, KEYWORD, msg_id())
        body = head.replace("</xml>", "<Pad>" + "x" * (size - len(head.encode()) - 11) + "</Pad></xml>").encode()
    else:
        enc = encrypt(settings, text_xml(oid, KEYWORD + " " + "x" * size, msg_id()))
        query = query_for(settings, nonce=nonce, encrypted=enc)
        body = envelope(enc)
    assert len(body) >= size
    start = time.monotonic()
    r = await post(seeded, query, body)
    refused(r, 413, "WECHAT_MESSAGE_TOO_LARGE")
    assert time.monotonic() - start < 2.0
    await processed_afterwards(seeded, settings, calls, mode, text_xml(oid, KEYWORD, msg_id()), oid, nonce=nonce)


async def test_a_body_just_under_the_limit_is_read(seeded, settings, calls):
    oid = openid()
    head = text_xml(oid, KEYWORD, msg_id())
    pad = wx_callback.MAX_BODY - len(head.encode()) - len("<Pad></Pad>")
    query, body = query_for(settings), head.replace("</xml>", "<Pad>" + "x" * pad + "</Pad></xml>").encode()
    query["openid"] = oid  # WeChat names the sender in the query as in the message
    assert len(body) == wx_callback.MAX_BODY
    guide_reply(settings, await post(seeded, query, body), query, oid)


# ---------------------------------------------------------------- tampered ciphertext


def _flip(enc: str, index: int) -> str:
    raw = bytearray(base64.b64decode(enc))
    raw[index] ^= 0x5A
    return base64.b64encode(bytes(raw)).decode()


TAMPER = {
    "first-block": lambda enc: _flip(enc, 3),
    "length-field": lambda enc: _flip(enc, 1),  # block 0 flips block 1's first bytes: the length
    "xml-start": lambda enc: _flip(enc, 6),  # ... and the message's first characters
    "middle": lambda enc: _flip(enc, len(base64.b64decode(enc)) // 2),
    "last-block": lambda enc: _flip(enc, len(base64.b64decode(enc)) - 1),
    "padding-block": lambda enc: _flip(enc, len(base64.b64decode(enc)) - 17),
    "truncated-block": lambda enc: base64.b64encode(base64.b64decode(enc)[:-16]).decode(),
    "odd-length": lambda enc: base64.b64encode(base64.b64decode(enc)[:-5]).decode(),
    "one-block": lambda enc: base64.b64encode(base64.b64decode(enc)[:16]).decode(),
    "extended": lambda enc: base64.b64encode(base64.b64decode(enc) + b"\x00" * 16).decode(),
    "not-base64": lambda enc: "%%%" + enc[3:],
    "bad-base64-length": lambda enc: enc.rstrip("=") + "A",
    "spliced": lambda enc: enc[: len(enc) // 2] + enc[: len(enc) // 2],
}


@pytest.mark.parametrize("how", list(TAMPER))
@pytest.mark.parametrize("mode", AES_MODES)
async def test_tampered_ciphertext_is_refused_never_5xx(seeded, settings, calls, mode, how):
    oid = openid()
    xml = text_xml(oid, KEYWORD, msg_id())
    enc = encrypt(settings, xml)
    bad = TAMPER[how](enc)
    assert bad != enc
    plain = xml[5:-6] if mode == "compatible" else ""
    # As an outsider can: the ciphertext changed, the signature is the original's.
    query = query_for(settings, encrypted=enc)
    refused(await post(seeded, query, envelope(bad, plain)), 403, "WECHAT_SIGNATURE_INVALID")
    # Even signed for the tampered bytes (the token leaked, not the AES key): refused, never a 5xx.
    query = query_for(settings, encrypted=bad)
    r = await post(seeded, query, envelope(bad, plain))
    assert r.status_code in (400, 403), (r.status_code, r.text)
    assert error_code(r) in {"WECHAT_MESSAGE_MALFORMED", "WECHAT_APPID_MISMATCH", "WECHAT_SIGNATURE_INVALID"}
    assert calls == []
    await processed_afterwards(seeded, settings, calls, mode, xml, oid)


# ---------------------------------------------------------------- compatible mode: only the ciphertext counts


async def test_compatible_mode_answers_the_encrypted_message_not_the_plaintext_copy(seeded, settings, calls):
    sender, impostor = openid(), openid()
    real = text_xml(sender, "营业执照", msg_id())
    query, body = signed(settings, real, mode="compatible")
    forged = body.decode().replace("营业执照", KEYWORD).replace(sender, impostor).encode()
    assert forged.count(KEYWORD.encode()) == 1 and impostor.encode() in forged
    r = await post(seeded, query, forged)
    assert r.status_code == 200, r.text
    reply = open_reply(settings, r.content, query)
    assert r.content.lstrip().startswith(b"<xml>\n<Encrypt>")  # answered encrypted, as it was asked
    assert reply["ToUserName"] == sender
    assert reply["Articles"]["item"]["Title"] == "营业执照设立登记"
    [message] = calls
    assert message.source == sender and message.content == "营业执照"


async def test_compatible_plaintext_cannot_unsubscribe_someone_else(seeded, settings, calls, make_citizen):
    citizen, _ = await make_citizen()
    victim = openid()
    await ChannelBinding.create(
        citizen=citizen, channel=Channel.official_account, appid=settings.wechat_mp_appid, openid=victim
    )
    attacker = openid()
    query, body = signed(settings, text_xml(attacker, KEYWORD, msg_id()), mode="compatible")
    enc = xmltodict.parse(body)["xml"]["Encrypt"]
    plain = event_xml(victim, "unsubscribe", at=at())[5:-6]
    r = await post(seeded, query, envelope(enc, plain))
    guide_reply(settings, r, query, attacker)
    assert (await ChannelBinding.get(openid=victim)).subscribed is True
    assert [m.source for m in calls] == [attacker]


async def test_compatible_plaintext_msgid_does_not_decide_deduplication(seeded, settings, calls):
    oid = openid()
    encrypted_id, plaintext_id = msg_id(), msg_id()
    query, body = signed(settings, text_xml(oid, KEYWORD, encrypted_id), mode="compatible")
    forged = body.replace(f"<MsgId>{encrypted_id}</MsgId>".encode(), f"<MsgId>{plaintext_id}</MsgId>".encode(), 1)
    assert forged != body
    guide_reply(settings, await post(seeded, query, forged), query, oid)
    # The id in the plaintext copy was never taken: a message with that id is new.
    q2, b2 = signed(settings, text_xml(oid, KEYWORD, plaintext_id), mode="raw")
    guide_reply(settings, await post(seeded, q2, b2), q2, oid)
    # The encrypted id was: its retry gets the kept answer without a second run.
    q3, b3 = signed(settings, text_xml(oid, KEYWORD, encrypted_id), mode="raw")
    assert (await post(seeded, q3, b3)).status_code == 200
    assert len(calls) == 2


# ---------------------------------------------------------------- deduplication


@pytest.mark.parametrize("mode", MODES)
async def test_same_msgid_three_times_is_processed_once_with_the_same_reply(seeded, settings, calls, mode):
    oid, mid = openid(), msg_id()
    replies = []
    for _ in range(3):
        query, body = signed(settings, text_xml(oid, KEYWORD, mid), mode=mode)  # a fresh nonce each time
        r = await post(seeded, query, body)
        guide_reply(settings, r, query, oid)
        replies.append((r.content, open_reply(settings, r.content, query)))
    assert len(calls) == 1
    assert replies[0][0] == replies[1][0] == replies[2][0]
    assert replies[0][1] == replies[1][1] == replies[2][1]


async def test_retries_arriving_while_the_first_is_answered_do_not_run_it_again(seeded, settings, client, monkeypatch):
    cb = client.sanic_app.ctx.wechat_callback
    real, seen = cb.respond, []

    async def slowish(message):
        seen.append(message)
        await asyncio.sleep(0.3)
        return await real(message)

    monkeypatch.setattr(cb, "respond", slowish)
    oid, mid = openid(), msg_id()
    requests = [signed(settings, text_xml(oid, KEYWORD, mid)) for _ in range(3)]
    responses = await asyncio.gather(*(post(seeded, q, b) for q, b in requests))
    assert len(seen) == 1
    assert all(r.status_code == 200 for r in responses)
    news = [r for r in responses if r.content != b"success"]
    assert len(news) == 1  # the others were told `success` while the first was still being answered
    q, b = signed(settings, text_xml(oid, KEYWORD, mid))  # a later retry gets the kept answer
    assert (await post(seeded, q, b)).content == news[0].content
    assert len(seen) == 1


async def test_different_msgids_are_each_processed(seeded, settings, calls):
    oid = openid()
    for _ in range(3):
        query, body = signed(settings, text_xml(oid, KEYWORD, msg_id()))
        guide_reply(settings, await post(seeded, query, body), query, oid)
    assert len(calls) == 3


@pytest.mark.parametrize("mode", MODES)
async def test_events_are_deduplicated_on_sender_and_create_time(seeded, settings, calls, mode):
    slug = (await qr_service.ensure_default_code(MATTER)).slug
    oid, moment = openid(), at()
    answers = []
    for _ in range(3):
        query, body = signed(settings, event_xml(oid, "SCAN", slug, at=moment), mode=mode)
        r = await post(seeded, query, body)
        assert r.status_code == 200, r.text
        answers.append(open_reply(settings, r.content, query))
    assert len(calls) == 1
    assert answers[0] == answers[1] == answers[2] and answers[0]["MsgType"] == "news"

    for sender, when in ((oid, at()), (openid(), moment)):  # another time, or another sender: new events
        query, body = signed(settings, event_xml(sender, "SCAN", slug, at=when), mode=mode)
        assert (await post(seeded, query, body)).status_code == 200
    assert len(calls) == 3
    await seeded.sanic_app.ctx.scans.flush()
    assert sum(r.scans for r in await ScanDaily.filter(slug=slug)) == 3  # the retries were not counted


async def test_event_answered_with_nothing_is_still_taken_once(seeded, settings, calls, make_citizen):
    citizen, _ = await make_citizen()
    oid, moment = openid(), at()
    await ChannelBinding.create(
        citizen=citizen, channel=Channel.official_account, appid=settings.wechat_mp_appid, openid=oid
    )
    for _ in range(3):
        query, body = signed(settings, event_xml(oid, "unsubscribe", at=moment))
        r = await post(seeded, query, body)
        assert r.status_code == 200 and r.content == b"success"
    assert len(calls) == 1
    # subscribing again later is a new event, and a retry of the old unsubscribe does not undo it
    query, body = signed(settings, event_xml(oid, "subscribe", at=at()))
    assert (await post(seeded, query, body)).status_code == 200
    query, body = signed(settings, event_xml(oid, "unsubscribe", at=moment))
    assert (await post(seeded, query, body)).content == b"success"
    assert len(calls) == 2
    assert (await ChannelBinding.get(openid=oid)).subscribed is True


# ---------------------------------------------------------------- the reply budget


class TestReplyBudget:
    """With a 0.5 s budget a slow answer becomes `success` at once and the work finishes in the background."""

    @pytest.fixture
    def settings(self, base_settings):
        return base_settings.replace(wechat_reply_budget=0.5)

    @pytest.fixture
    async def bound(self, make_citizen, settings):
        citizen, _ = await make_citizen()
        oid = openid()
        await ChannelBinding.create(
            citizen=citizen, channel=Channel.official_account, appid=settings.wechat_mp_appid, openid=oid
        )
        return oid

    @staticmethod
    def slow_responder(client, monkeypatch, seconds: float):
        cb = client.sanic_app.ctx.wechat_callback
        real = cb.respond
        state: dict[str, Any] = {"calls": 0, "done": asyncio.Event()}

        async def slow(message):
            state["calls"] += 1
            await asyncio.sleep(seconds)
            result = await real(message)
            state["done"].set()
            return result

        monkeypatch.setattr(cb, "respond", slow)
        return state

    @pytest.mark.parametrize(("mode", "seconds"), [("raw", 10.0), ("compatible", 2.0), ("aes", 2.0)])
    async def test_slow_work_answers_success_in_time_and_still_completes(
        self, seeded, settings, client, monkeypatch, bound, mode, seconds
    ):
        assert client.sanic_app.ctx.settings.wechat_reply_budget == 0.5
        state = self.slow_responder(client, monkeypatch, seconds)
        xml = event_xml(bound, "unsubscribe", at=at())
        query, body = signed(settings, xml, mode=mode)
        start = time.monotonic()
        r = await post(seeded, query, body)
        elapsed = time.monotonic() - start
        assert r.status_code == 200 and r.content == b"success", r.text
        assert r.headers["content-type"].startswith("text/plain")
        assert 0.4 <= elapsed < 2.0, elapsed  # waited for the budget, answered well before WeChat's 5 s
        assert not state["done"].is_set()
        assert (await ChannelBinding.get(openid=bound)).subscribed is True  # not yet

        # WeChat's retry while the work is still running: `success` at once, no second run.
        q2, b2 = signed(settings, xml, mode=mode)
        start = time.monotonic()
        r2 = await post(seeded, q2, b2)
        assert r2.content == b"success" and time.monotonic() - start < 1.0
        assert state["calls"] == 1

        await asyncio.wait_for(state["done"].wait(), timeout=seconds + 5)
        for _ in range(100):  # the background task ends right after the responder returns
            if not wx_callback._background:
                break
            await asyncio.sleep(0.02)
        row = await ChannelBinding.get(openid=bound)
        assert row.subscribed is False and row.unsubscribed_at is not None
        assert not wx_callback._background  # nothing left running

        q3, b3 = signed(settings, xml, mode=mode)
        assert (await post(seeded, q3, b3)).content == b"success"
        assert state["calls"] == 1

    @pytest.mark.parametrize("mode", MODES)
    async def test_work_within_the_budget_is_answered_normally(self, seeded, settings, client, monkeypatch, mode):
        state = self.slow_responder(client, monkeypatch, 0.1)
        oid = openid()
        query, body = signed(settings, text_xml(oid, KEYWORD, msg_id()), mode=mode)
        guide_reply(settings, await post(seeded, query, body), query, oid)
        assert state["calls"] == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_body_in_another_declared_encoding_is_read_or_refused_never_5xx(seeded, settings, calls, mode):
    oid = openid()
    xml = '<?xml version="1.0" encoding="GBK"?>' + text_xml(oid, KEYWORD, msg_id())
    if mode == "raw":
        query, body = query_for(settings), xml.encode("gbk")
    else:
        enc = encrypt(settings, text_xml(oid, KEYWORD, msg_id()))
        query = query_for(settings, encrypted=enc)
        plain = text_xml(oid, KEYWORD, msg_id())[5:-6] if mode == "compatible" else "<Note>备注</Note>"
        body = ('<?xml version="1.0" encoding="GBK"?>' + envelope(enc, plain).decode()).encode("gbk")
    r = await post(seeded, query, body)
    assert r.status_code in (200, 400), (r.status_code, r.text)
    if r.status_code == 200:
        guide_reply(settings, r, query, oid)
    else:
        assert error_code(r) == "WECHAT_MESSAGE_MALFORMED"


@pytest.mark.parametrize("mode", MODES)
async def test_refused_events_change_nothing_and_the_same_events_then_work(seeded, settings, calls, make_citizen, mode):
    citizen, _ = await make_citizen()
    oid = openid()
    await ChannelBinding.create(
        citizen=citizen, channel=Channel.official_account, appid=settings.wechat_mp_appid, openid=oid
    )
    slug = (await qr_service.ensure_default_code(MATTER)).slug
    scans = seeded.sanic_app.ctx.scans
    old = str(int(clock.now().timestamp()) - settings.wechat_callback_window - 60)
    for xml in (event_xml(oid, "unsubscribe", at=at()), event_xml(oid, "SCAN", slug, at=at())):
        nonce = fresh_nonce()
        subscribed = (await ChannelBinding.get(openid=oid)).subscribed
        attempts = []
        q, b = signed(settings, xml, mode=mode, nonce=nonce)
        attempts.append(({**q, "signature": "f" * 40}, b, 403))
        attempts.append((*signed(settings, xml, mode=mode, nonce=nonce, timestamp=old), 403))
        padded = xml.replace("</xml>", "<Pad>" + "p" * (wx_callback.MAX_BODY + 10) + "</Pad></xml>")
        attempts.append((*signed(settings, padded, mode=mode, nonce=nonce), 413))
        if mode != "raw":
            attempts.append(({**q, "msg_signature": "f" * 40}, b, 403))
            attempts.append((*signed(settings, xml, mode=mode, nonce=nonce, appid="wxsomeoneelse"), 403))
        for query, body, status in attempts:
            assert (await post(seeded, query, body)).status_code == status
        assert calls == []
        assert (await ChannelBinding.get(openid=oid)).subscribed is subscribed
        assert not scans.scans and not scans.invalid

        q, b = signed(settings, xml, mode=mode, nonce=nonce)  # the same message and nonce, signed right
        r = await post(seeded, q, b)
        assert r.status_code == 200, r.text
        calls.clear()

    row = await ChannelBinding.get(openid=oid)
    assert row.subscribed is False and row.unsubscribed_at is not None
    await scans.flush()
    assert {r.channel.value: r.scans for r in await ScanDaily.filter(slug=slug)} == {"wechat": 1}

"""The wechat phase (README: "The wechat phase"): SCAN events posted to the official account's callback in safe mode.
The messages are generated in the setup with wechatpy's WeChatCrypto (the server's token, EncodingAESKey and app id
come from the phase's env), one per request, and sent once each by bench/lua/wechat_scan.lua; the check reads the
WeChat scans the server counted in qr_scan_daily (bench.stores)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from . import stores
from .harness import (
    BASELINE,
    EXIT_SERVER,
    BenchError,
    BenchPath,
    Config,
    Context,
    WrkResult,
    count_answers,
    counts_text,
    lua_string,
    report_lines,
    sum_counts,
)

# The wechat phase (see the README): SCAN events of the picked matter's default QR code posted to the official
# account's callback in safe mode, every one a message of its own (new nonce, new subscriber), generated in the setup
# with the server's token, EncodingAESKey and app id (set explicitly in the phase's env, so the bench knows them).
WECHAT_TOKEN = "zuiduobenchwechat2024"  # WECHAT_MP_TOKEN: 3-32 letters or digits
WECHAT_AES_KEY = base64.b64encode(b"zuiduo-bench-wechat-aes-key-0032").decode().rstrip("=")  # 43 chars: 32 bytes
WECHAT_APPID = "wxbenchofficialacct"
WECHAT_OA = "gh_zjjzwfwbench"  # the official account's id (ToUserName)
WECHAT_WINDOW = 3600  # WECHAT_CALLBACK_WINDOW (the most the service allows): the messages' timestamps stay valid
PER_MESSAGE_S = 0.0005  # the most generating (encrypting, signing, writing) one message may take
SCAN_FLUSH_S = 2.0  # every worker's ScanRecorder flushes its counts to qr_scan_daily this often (app/server.py)
SCAN_FLUSH_WAIT = 3 * SCAN_FLUSH_S + 2  # the most the check waits for the last scans to reach qr_scan_daily
SCAN_TOLERANCE = 0  # scans answered 200 that may be missing from qr_scan_daily after that wait (see the README)
WECHAT_TICKET = "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2tUb1p4WG5sZmE"  # a QR code ticket, as WeChat sends
_REPLY_FIELD_RE = {
    name: re.compile(rf"<{name}>(?:<!\[CDATA\[)?([^<\]]*)(?:\]\]>)?</{name}>")
    for name in ("Encrypt", "MsgSignature", "TimeStamp", "Nonce")
}


def _sha1(*parts: str) -> str:
    """WeChat's signature: the SHA-1 of the sorted parts, concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def wechat_setup_s(cfg: Config) -> float:
    """The most generating the messages, the preflight and the check (with its wait for the scan flush) take."""
    return 30 + PER_MESSAGE_S * cfg.wechat_count + SCAN_FLUSH_WAIT + 60


def scan_event_xml(openid: str, slug: str, at: str) -> str:
    """A SCAN event (a subscriber scanning a parametric QR code whose scene is the code's slug), as WeChat sends it."""
    return (
        f"<xml><ToUserName><![CDATA[{WECHAT_OA}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{at}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event>"
        f"<EventKey><![CDATA[{slug}]]></EventKey><Ticket><![CDATA[{WECHAT_TICKET}]]></Ticket></xml>"
    )


@dataclass(frozen=True)
class WeChatSigner:
    """Safe-mode messages signed and encrypted with the server's callback credentials (wechatpy's WeChatCrypto)."""

    token: str
    crypto: Any  # wechatpy.crypto.WeChatCrypto

    @classmethod
    def of(cls, ctx: Context) -> WeChatSigner:
        """The signer for the server of this phase (WECHAT_MP_TOKEN, WECHAT_MP_AES_KEY, WECHAT_MP_APPID of its env)."""
        env = ctx.server_env
        names = ("WECHAT_MP_TOKEN", "WECHAT_MP_AES_KEY", "WECHAT_MP_APPID")
        if not all(env.get(n) for n in names):
            raise BenchError(f"wechat_scan needs {', '.join(names)} in its phase's env", EXIT_SERVER)
        try:
            from wechatpy.crypto import WeChatCrypto
        except ImportError:
            raise BenchError("wechatpy is not importable: run bench.py with the venv's python", EXIT_SERVER) from None
        token, key, appid = (env[n] for n in names)
        return cls(token, WeChatCrypto(token, key, appid))

    def message(self, xml: str, nonce: str, timestamp: str, openid: str) -> tuple[str, str]:
        """(the callback's path with the signed query, the Encrypt value of the body) of one message."""
        envelope = self.crypto.encrypt_message(xml, nonce, timestamp)
        encrypt = _REPLY_FIELD_RE["Encrypt"].search(envelope)
        assert encrypt is not None, envelope
        query = (
            f"signature={_sha1(self.token, timestamp, nonce)}&timestamp={timestamp}&nonce={nonce}&openid={openid}"
            f"&encrypt_type=aes&msg_signature={_sha1(self.token, timestamp, nonce, encrypt.group(1))}"
        )
        return f"/wechat/callback?{query}", encrypt.group(1)

    def open_reply(self, body: bytes) -> Any:
        """The decrypted reply's XML root; raises ValueError when it is not an encrypted reply we can read."""
        text = body.decode("utf-8", "replace")
        found = [rx.search(text) for rx in _REPLY_FIELD_RE.values()]
        fields = [m.group(1) for m in found if m is not None]
        if len(fields) != len(found):
            raise ValueError(f"not an encrypted reply: {text[:200]!r}")
        _, sig, ts, nonce = fields  # Encrypt, MsgSignature, TimeStamp, Nonce
        try:  # the server's own reply (wechatpy's template, no DTD)
            return ElementTree.fromstring(self.crypto.decrypt_message(text, sig, ts, nonce))
        except Exception as exc:  # signature, padding, app id, XML
            raise ValueError(f"the reply does not decrypt: {exc!r}") from None


def _wechat_body(encrypt: str) -> str:
    """A safe-mode message's body: the official account and the encrypted message only."""
    return f"<xml><ToUserName><![CDATA[{WECHAT_OA}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"


def _news_problem(ctx: Context, signer: WeChatSigner, body: bytes) -> str | None:
    """What is wrong with a scan's answer, or None when it is an encrypted news reply (one article) linking to the
    picked matter's guide."""
    try:
        root = signer.open_reply(body)
    except ValueError as exc:
        return str(exc)
    url = root.findtext("Articles/item/Url") or ""
    kind, articles = root.findtext("MsgType"), root.findtext("ArticleCount")
    if kind != "news" or articles != "1" or f"/m/{ctx.matter_code}" not in url:
        content = (root.findtext("Content") or "")[:80]
        return f"reply MsgType {kind}, {articles} articles, Url {url!r}" + (f", Content {content!r}" if content else "")
    return None


def wechat_setup(ctx: Context) -> dict[str, str]:
    """wechat_scan's data: BENCH_WECHAT_MESSAGES SCAN events of the picked matter's default QR code, each from a
    subscriber of its own with a nonce of its own, all stamped with the current time, signed and encrypted for the
    server, in one Lua file per wrk thread; plus one message for the preflight, and the code's WeChat scans so far."""
    signer = WeChatSigner.of(ctx)
    cfg = ctx.cfg
    window = int(ctx.server_env.get("WECHAT_CALLBACK_WINDOW", "300"))
    lasts = len(WECHAT_PATHS) * (cfg.measured_s + (cfg.rounds + 1) * 15)  # from now to the end of the phase's last run
    if lasts > window - 60:
        raise BenchError(
            f"the wechat phase would send messages up to {lasts} s after generating them; their timestamps stay "
            f"valid for WECHAT_CALLBACK_WINDOW={window} s (shorten BENCH_DURATION, BENCH_ROUNDS or BENCH_WARMUP)",
            EXIT_SERVER,
        )
    slug = ctx.qr_slug()
    before = stores.wechat_scans(ctx.deadline, slug)
    threads = cfg.threads
    count = max(cfg.wechat_count, threads)
    region = count // threads
    salt = secrets.token_hex(4)
    timestamp = str(int(time.time()))
    started = time.monotonic()
    end = started + ctx.deadline.clip(30 + PER_MESSAGE_S * count)
    data = ctx.work_dir / "wechat_scan"
    head, tail = _wechat_body("@").split("@")
    widths: set[tuple[int, int]] = set()
    for tid in range(threads):
        records = []
        for i in range(tid * region, (tid + 1) * region):
            if time.monotonic() > end:
                raise BenchError("generating wechat_scan's messages took too long", EXIT_SERVER)
            openid = f"obench-{salt}-{i:07d}"  # fixed widths: every message of the phase has the same length
            path, encrypt = signer.message(scan_event_xml(openid, slug, timestamp), f"{salt}{i:07d}", timestamp, openid)
            widths.add((len(path), len(encrypt)))
            records.append(path + encrypt)
        if len(widths) != 1:
            raise BenchError(f"wechat_scan's messages differ in length: {sorted(widths)}", EXIT_SERVER)
        (path_len, encrypt_len) = next(iter(widths))
        # One long string per thread (records of fixed width): LuaJIT reads it several times faster than as many
        # small strings, and wrk runs a thread's init() while the threads started before it already send.
        Path(f"{data}.{tid}.lua").write_text(
            f"return {{n={len(records)}, path_len={path_len}, encrypt_len={encrypt_len}, head={lua_string(head)}, "
            f"tail={lua_string(tail)}, blob={lua_string(''.join(records))}}}\n",
            "utf-8",
        )
    openid = f"obench-{salt}-preflight"
    preflight = signer.message(scan_event_xml(openid, slug, timestamp), f"{salt}pre", timestamp, openid)
    ctx.state["wechat"] = {
        "signer": signer, "slug": slug, "before": before, "messages": region * threads, "preflight": preflight,
    }  # fmt: skip
    print(
        f"wechat: {region * threads} SCAN events of code {slug} ({threads} x {region}, timestamp {timestamp}) signed "
        f"and encrypted in {time.monotonic() - started:.1f} s; the code's WeChat scans so far: {before}",
        flush=True,
    )
    return {"bench_data": str(data), "bench_state": str(ctx.work_dir / "wechat_scan.state")}


def wechat_preflight(ctx: Context) -> tuple[int, bytes]:
    """One SCAN event of a subscriber of its own: 200, an encrypted news reply linking to the matter's guide."""
    w = ctx.state["wechat"]
    path, encrypt = w["preflight"]
    status, body = ctx.request("POST", path, body=_wechat_body(encrypt).encode(), headers={"Content-Type": "text/xml"})
    if status == 200 and (problem := _news_problem(ctx, w["signer"], body)):
        raise BenchError(f"the preflight scan's answer is not an encrypted news reply: {problem}", EXIT_SERVER)
    return status, body


def wechat_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Every answer 200 with an encrypted reply (the replies kept by the script decrypt to news of the matter), and
    every one of them counted as a WeChat scan of the code in qr_scan_daily once the workers have flushed."""
    w = ctx.state["wechat"]
    signer: WeChatSigner = w["signer"]
    counts = sum_counts(runs)
    answered, sent = count_answers(counts), counts.get("sent", 0)
    in_flight = max(sent - answered, 0)
    ok = counts.get("result_encrypted", 0)
    problems: list[str] = []
    if counts.get("wrapped"):
        problems.append(
            f"ran out of fresh messages: {counts['wrapped']} requests resent a message (raise BENCH_WECHAT_MESSAGES)"
        )
    if counts.get("code_WECHAT_TIMESTAMP_INVALID"):
        problems.append(f"{counts['code_WECHAT_TIMESTAMP_INVALID']} answers: the messages' timestamps went stale")
    if ok != answered:
        problems.append(f"{answered - ok} of {answered} answers are not 200 with an encrypted reply")
    samples = report_lines(runs, "reply")
    wrong = [p for p in (_news_problem(ctx, signer, s.encode()) for s in samples) if p]
    if wrong:
        problems.append(f"{len(wrong)} of {len(samples)} replies decrypted are not news of the matter: {wrong[0]}")
    expected = ok + 1  # every scan answered with a reply, and the preflight's
    started = time.monotonic()
    while True:  # each worker flushes its scan counters every SCAN_FLUSH_S: wait for the last ones
        scans = stores.wechat_scans(ctx.deadline, w["slug"]) - w["before"]
        waited = time.monotonic() - started
        if scans >= expected or waited >= SCAN_FLUSH_WAIT:
            break
        time.sleep(0.5)
    if scans < expected - SCAN_TOLERANCE:
        problems.append(
            f"qr_scan_daily counts {scans} WeChat scans of code {w['slug']} after {waited:.1f} s, "
            f"expected at least {expected} ({ok} replies + the preflight)"
        )
    if scans > sent + 1:
        problems.append(f"qr_scan_daily counts {scans} WeChat scans for {sent} requests sent (+ the preflight)")
    facts = {
        "messages": w["messages"], "sent": sent, "answered": answered, "in_flight_unanswered": in_flight,
        "encrypted_replies": ok, "success_no_reply": counts.get("result_success", 0),
        "replies_decrypted": len(samples), "replies_not_news": len(wrong), "wechat_scans_counted": scans,
        "scans_expected_at_least": expected, "flush_wait_s": round(waited, 1),
    }  # fmt: skip
    counted = (
        f"= {ok} replies + 1 preflight + {scans - expected} of the {in_flight} requests left unanswered"
        if scans >= expected
        else f"< {expected} = {ok} replies + 1 preflight"
    )
    summary = (
        f"{answered} scans of {w['messages']} messages ({counts_text(counts)}): {ok} x 200 with an encrypted reply, "
        f"{len(samples) - len(wrong)} of {len(samples)} decrypted news of {ctx.matter_code}; qr_scan_daily counts "
        f"{scans} new WeChat scans of code {w['slug']} (after {waited:.1f} s) {counted}"
    )
    return {"summary": summary, "problems": problems, "facts": facts}


# The wechat phase's paths: SCAN events posted to the official account's callback in safe mode, each a message of its
# own generated in the setup; report only.
WECHAT_SCAN = BenchPath(
    "wechat_scan", "POST", "/wechat/callback", None, script="lua/wechat_scan.lua", expect_status=200,
    report_only=True, setup=wechat_setup, preflight=wechat_preflight,
    check=wechat_check, wrk_timeout_s=10, setup_s=wechat_setup_s,
)  # fmt: skip
WECHAT_PATHS: list[BenchPath] = [BASELINE, WECHAT_SCAN]

"""Real-name verifiers: the dev verifier's rules, and HttpVerifier against a real local HTTP server."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from app import clock
from app.settings import Settings, SettingsError
from auth.idcard import make_id_number
from auth.realname import (
    DevVerifier,
    HttpVerifier,
    RealNameUnavailable,
    RealNameVerifier,
    VerifyResult,
    is_valid_name,
    make_verifier,
)

NAME = "张三"
ID_NUMBER = make_id_number("430802", dt.date(1990, 1, 1), "123")
MISMATCH = make_id_number("430802", dt.date(1990, 1, 1), "999")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 must not be routed through a proxy from the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


# --- DevVerifier -------------------------------------------------------------------------------


async def test_dev_accepts_valid_pair():
    result = await DevVerifier().verify(name=NAME, id_number=ID_NUMBER)
    assert result.ok and result.reason is None
    assert result.reference and result.reference.startswith("dev-")
    assert ID_NUMBER[-4:] not in result.reference


@pytest.mark.parametrize("name", ["张三", "欧阳娜娜", "阿卜杜拉·买买提", "𠈌三", "张" * 30])
async def test_dev_accepts_chinese_names(name):
    assert (await DevVerifier().verify(name=name, id_number=ID_NUMBER)).ok


@pytest.mark.parametrize(
    "name", ["", "张", "Zhang San", "张三1", "张 三", "·张三", "张三·", "张··三", "张" * 31, "张三\n", "ｚｈａｎｇ"]
)
async def test_dev_rejects_bad_names(name):
    assert not is_valid_name(name)
    assert await DevVerifier().verify(name=name, id_number=ID_NUMBER) == VerifyResult(ok=False, reason="invalid_name")


async def test_dev_rejects_invalid_number():
    bad = ID_NUMBER[:17] + ("0" if ID_NUMBER[17] != "0" else "1")
    result = await DevVerifier().verify(name=NAME, id_number=bad)
    assert result == VerifyResult(ok=False, reason="invalid_id_number")


async def test_dev_simulates_mismatch_with_sequence_999():
    assert MISMATCH[14:17] == "999"
    result = await DevVerifier().verify(name=NAME, id_number=MISMATCH)
    assert result == VerifyResult(ok=False, reason="mismatch")
    # Lower-case x in the input is fine too.
    other = next(n for n in (make_id_number(seq=f"{s:03d}") for s in range(1000)) if n.endswith("X"))
    assert (await DevVerifier().verify(name=NAME, id_number=other.lower())).ok


async def test_dev_uses_service_clock_for_birth_dates():
    born = dt.date(2030, 6, 1)
    number = make_id_number(birth=born)
    assert not (await DevVerifier().verify(name=NAME, id_number=number)).ok
    clock.set_clock(lambda: dt.datetime(2031, 1, 1, tzinfo=dt.UTC))
    try:
        assert (await DevVerifier().verify(name=NAME, id_number=number)).ok
    finally:
        clock.set_clock(None)
    assert (await DevVerifier(today=lambda: dt.date(2030, 6, 1)).verify(name=NAME, id_number=number)).ok


def test_verifiers_satisfy_protocol():
    assert isinstance(DevVerifier(), RealNameVerifier)
    assert isinstance(HttpVerifier("http://127.0.0.1:1/verify"), RealNameVerifier)


# --- make_verifier -----------------------------------------------------------------------------


def test_make_verifier_dev_by_default():
    assert isinstance(make_verifier(Settings()), DevVerifier)


def test_make_verifier_http():
    verifier = make_verifier(Settings(realname_verifier="http", realname_verifier_url="https://idv.example.gov.cn/v"))
    assert isinstance(verifier, HttpVerifier)
    assert verifier.url == "https://idv.example.gov.cn/v"
    assert verifier.timeout == 5


def test_make_verifier_from_env():
    env = {"REALNAME_VERIFIER": "http", "REALNAME_VERIFIER_URL": "http://10.0.0.5/verify"}
    assert isinstance(make_verifier(Settings.from_env(env)), HttpVerifier)


@pytest.mark.parametrize(
    "changes", [{"realname_verifier": "http", "realname_verifier_url": None}, {"realname_verifier": "carrier-pigeon"}]
)
def test_make_verifier_rejects(changes):
    with pytest.raises(SettingsError):  # Settings itself refuses these now
        make_verifier(Settings(**changes))


def test_http_verifier_needs_absolute_url():
    with pytest.raises(ValueError):
        HttpVerifier("idv.example.gov.cn/verify")


# --- HttpVerifier against a real local server ------------------------------------------------


@dataclass
class FakePlatform:
    """A tiny provincial platform on 127.0.0.1: scripted status/body/delay, requests recorded."""

    url: str
    status: int = 200
    body: bytes = b'{"match": true, "reference": "REF-1"}'
    delay: float = 0.0
    requests: list[dict] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def answer(self, status: int = 200, body: object = None, delay: float = 0.0) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.delay = delay


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    state: FakePlatform

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            state.requests.append(
                {"path": self.path, "content_type": self.headers.get("content-type"), "json": json.loads(raw)}
            )
            if state.delay:
                state.release.wait(state.delay)
            try:
                self.send_response(state.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(state.body)))
                self.end_headers()
                self.wfile.write(state.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = FakePlatform(url=f"http://127.0.0.1:{server.server_address[1]}/idv/verify")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_http_match(platform):
    platform.answer(200, {"match": True, "reference": "ZJ-2026-000123"})
    result = await HttpVerifier(platform.url).verify(name=NAME, id_number=ID_NUMBER)
    assert result == VerifyResult(ok=True, reason=None, reference="ZJ-2026-000123")
    [request] = platform.requests
    assert request["path"] == "/idv/verify"
    assert request["content_type"].startswith("application/json")
    assert request["json"] == {"name": NAME, "id_number": ID_NUMBER}


async def test_http_mismatch(platform):
    platform.answer(200, {"match": False, "reference": "ZJ-2026-000124"})
    result = await HttpVerifier(platform.url).verify(name=NAME, id_number=ID_NUMBER)
    assert result == VerifyResult(ok=False, reason="mismatch", reference="ZJ-2026-000124")


async def test_http_missing_reference_is_tolerated(platform):
    platform.answer(200, {"match": True})
    assert await HttpVerifier(platform.url).verify(name=NAME, id_number=ID_NUMBER) == VerifyResult(ok=True)


async def test_http_with_shared_client(platform):
    platform.answer(200, {"match": True, "reference": "R"})
    async with httpx.AsyncClient() as client:
        verifier = HttpVerifier(platform.url, client=client)
        assert (await verifier.verify(name=NAME, id_number=ID_NUMBER)).ok
        assert (await verifier.verify(name=NAME, id_number=ID_NUMBER)).ok
    assert len(platform.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 400, 401, 404, 429])
async def test_http_error_status_is_unavailable(platform, status):
    platform.answer(status, {"match": True, "reference": "R"})
    with pytest.raises(RealNameUnavailable) as info:
        await HttpVerifier(platform.url).verify(name=NAME, id_number=ID_NUMBER)
    assert (info.value.code, info.value.status) == ("REALNAME_UNAVAILABLE", 503)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>gateway</html>",
        b"",
        b"[]",
        b'"match"',
        b"{}",
        b'{"match": "true", "reference": "R"}',
        b'{"match": 1, "reference": "R"}',
        b'{"match": null}',
    ],
)
async def test_http_unexpected_body_is_unavailable(platform, body):
    platform.answer(200, body)
    with pytest.raises(RealNameUnavailable):
        await HttpVerifier(platform.url).verify(name=NAME, id_number=ID_NUMBER)


async def test_http_timeout_is_unavailable(platform):
    platform.answer(200, {"match": True, "reference": "R"}, delay=1.0)
    started = time.monotonic()
    with pytest.raises(RealNameUnavailable):
        await HttpVerifier(platform.url, timeout=0.2).verify(name=NAME, id_number=ID_NUMBER)
    assert time.monotonic() - started < 0.9


async def test_http_connection_refused_is_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RealNameUnavailable):
        await HttpVerifier(f"http://127.0.0.1:{port}/verify", timeout=2).verify(name=NAME, id_number=ID_NUMBER)


async def test_http_failures_never_log_the_pair(platform, caplog):
    caplog.set_level(logging.DEBUG)
    platform.answer(500, {"error": "boom"})
    with pytest.raises(RealNameUnavailable):
        await HttpVerifier(platform.url).verify(name=NAME, id_number=ID_NUMBER)
    platform.answer(200, b"not json")
    with pytest.raises(RealNameUnavailable):
        await HttpVerifier(platform.url).verify(name=NAME, id_number=ID_NUMBER)
    assert "real-name platform" in caplog.text
    assert ID_NUMBER not in caplog.text
    assert NAME not in caplog.text

"""SMS senders: the HTTP gateway sender against a real local HTTP server, the console sender."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.settings import Settings, SettingsError
from auth.sms import ConsoleSender, HttpSender, SmsUnavailable, make_sender


class _Gateway(BaseHTTPRequestHandler):
    received: list[tuple[dict, str]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((json.loads(body), self.headers.get("Authorization", "")))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway():
    _Gateway.received = []
    _Gateway.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/send", _Gateway
    server.shutdown()
    server.server_close()


async def test_http_sender_posts_phone_and_text_with_bearer_key(gateway):
    url, handler = gateway
    await HttpSender(url, "gw-key").send(phone="13812345678", text="验证码 123456")
    assert handler.received == [({"phone": "13812345678", "text": "验证码 123456"}, "Bearer gw-key")]


async def test_http_sender_gateway_error_is_503(gateway):
    url, handler = gateway
    handler.status = 500
    with pytest.raises(SmsUnavailable):
        await HttpSender(url, None).send(phone="13812345678", text="x")


async def test_http_sender_gateway_down_is_503():
    with pytest.raises(SmsUnavailable):
        await HttpSender("http://127.0.0.1:1/send", None, timeout=1).send(phone="13812345678", text="x")


async def test_console_sender_keeps_messages(capsys):
    sender = ConsoleSender()
    await sender.send(phone="13812345678", text="hello")
    assert sender.outbox == [("13812345678", "hello")]
    assert "hello" in capsys.readouterr().err


def test_make_sender_from_environment():
    http = make_sender(Settings.from_env({"SMS_SENDER": "http", "SMS_GATEWAY_URL": "http://127.0.0.1:9/x"}))
    assert isinstance(http, HttpSender)
    assert isinstance(make_sender(Settings.from_env({})), ConsoleSender)
    with pytest.raises(SettingsError):
        Settings.from_env({"SMS_SENDER": "http"})

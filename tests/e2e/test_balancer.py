"""The balancer's template with Debian's nginx in front of two stand-in upstreams (not the service).

The stand-ins are `http.server` threads on free ports: they answer as told per path and record what reached
them, so these tests show nginx's own behaviour with the project's `deploy/nginx/zuiduo.conf.template` (rendered
and run by tests/e2e/cluster.py's `Nginx`): which answers pass through, which failures move a request to the
other instance, what the client gets when neither answers, and which headers an instance receives.
Neither PostgreSQL nor Redis is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.e2e.cluster import NGINX, LbEntry, Nginx

# Skipped without nginx on a developer's machine only: in CI (scripts/test.sh installs it) a missing nginx fails.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(NGINX).is_file() and not os.environ.get("CI"), reason="needs nginx"),
]


@dataclass
class Seen:
    """One request as an upstream received it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names; a repeated header's values joined with ", "
    body_sha256: str


@dataclass
class StandIn:
    """A tiny HTTP upstream: `/status/<code>` answers that code with a JSON body of its own, anything else 200."""

    name: str
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def addr(self) -> str:
        """host:port, as nginx's $upstream_addr names it."""
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> StandIn:
        """Listen on a free port of 127.0.0.1, serving from a thread."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.0: each connection closes after its answer, so a stopped stand-in refuses the next request
            # (a kept-alive connection would outlive the listening socket).
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers: dict[str, str] = {}
                for key, value in self.headers.items():
                    k = key.lower()
                    headers[k] = f"{headers[k]}, {value}" if k in headers else value
                digest = hashlib.sha256(body).hexdigest()
                owner.seen.append(Seen(self.command, self.path, headers, digest))
                found = re.fullmatch(r"/status/(\d{3})", self.path)
                status = int(found.group(1)) if found else 200
                if found:
                    payload = {"error": {"code": f"STAND_IN_{status}", "message": owner.name, "details": {}}}
                else:
                    payload = {"upstream": owner.name, "sha256": digest}
                out = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("X-Stand-In", owner.name)
                if found:
                    self.send_header("Retry-After", "7")  # the instance's own, not the balancer's
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: connections to its port are refused from now on."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@dataclass
class Balancer:
    """nginx with the template in front of stand-ins a and b."""

    nginx: Nginx
    a: StandIn
    b: StandIn
    secret: str
    names: dict[str, str]  # $upstream_addr -> stand-in (kept: a stopped stand-in has no address)

    def name_of(self, upstream: str) -> str:
        """Which stand-in an $upstream_addr is."""
        return self.names[upstream]

    def entries(self, count: int) -> list[LbEntry]:
        """The access log once it has `count` lines (nginx writes a line after its answer went out)."""
        deadline = time.monotonic() + 5
        while len(found := self.nginx.entries()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(found) >= count, found
        return found


@pytest.fixture
def lb(tmp_path: Path) -> Iterator[Balancer]:
    """Two stand-ins and nginx in front, all stopped afterwards."""
    a, b = StandIn("a").start(), StandIn("b").start()
    secret = secrets.token_hex(16)
    nginx = Nginx(tmp_path / "nginx", [a.addr, b.addr], secret)
    balancer = Balancer(nginx, a, b, secret, {a.addr: "a", b.addr: "b"})
    try:
        nginx.start()  # it waits with a GET /healthz of its own: one line of the log, one request upstream
        balancer.entries(1)
        yield balancer
    finally:
        nginx.stop()
        a.stop()
        b.stop()


def test_an_instances_own_502_and_503_pass_through_and_leave_it_in_the_rotation(lb):
    """The service answers 503 when Redis or the bucket is down (both instances alike) and 502 when WeChat is:
    answers, not failures; counted as failures, two of them would take both instances out and refuse all."""
    start = len(lb.entries(1))
    began = time.monotonic()
    with httpx.Client(base_url=lb.nginx.url, timeout=5) as client:
        failed = [client.get(f"/status/{code}") for code in (503, 503, 502, 502)]
        after = [client.get(f"/ok/{i}") for i in range(6)]
    elapsed = time.monotonic() - began
    # fail_timeout is 3 s: everything above must have happened inside the window a failure would open
    assert elapsed < 3, f"too slow to tell ({elapsed:.1f} s)"

    for resp, code in zip(failed, (503, 503, 502, 502), strict=True):
        assert resp.status_code == code
        assert resp.headers["x-stand-in"] in {"a", "b"}  # the instance's answer, as it sent it
        assert resp.headers["retry-after"] == "7"
        assert resp.json()["error"]["code"] == f"STAND_IN_{code}"
    # round robin: each instance answered one of each; none was asked twice for the same request
    assert sorted(r.headers["x-stand-in"] for r in failed) == ["a", "a", "b", "b"]
    entries = lb.entries(start + 10)[start:]
    assert [len(e.upstreams) for e in entries[:4]] == [1, 1, 1, 1], entries[:4]
    # and both stay in: the next requests reach both
    assert all(r.status_code == 200 for r in after)
    assert {r.json()["upstream"] for r in after} == {"a", "b"}
    assert {lb.name_of(e.upstreams[0]) for e in entries[4:]} == {"a", "b"}


def test_a_post_to_a_stopped_instance_is_answered_by_the_other_and_nothing_is_lost(lb):
    lb.a.stop()
    start = len(lb.entries(1))
    before = len(lb.b.seen)
    # one body larger than client_body_buffer_size (128 KiB): nginx kept it on disk and sends it again in full
    bodies = [json.dumps({"n": i, "pad": "办" * (60_000 if i == 0 else 10)}).encode() for i in range(4)]
    with httpx.Client(base_url=lb.nginx.url, timeout=5) as client:
        answers = [client.post("/api/v1/cases", content=body, headers={"content-type": "application/json"})
                   for body in bodies]  # fmt: skip
    for resp, body in zip(answers, bodies, strict=True):
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"upstream": "b", "sha256": hashlib.sha256(body).hexdigest()}
    # b received each body exactly once, whole
    received = [s.body_sha256 for s in lb.b.seen[before:] if s.method == "POST"]
    assert received == [hashlib.sha256(body).hexdigest() for body in bodies]
    # nginx did try a first (connection refused: 502 in its log), then sent the same POST to b
    entries = [e for e in lb.entries(start + 4)[start:] if e.method == "POST"]
    tried_a = [e for e in entries if len(e.upstreams) == 2]
    assert tried_a, entries
    for entry in tried_a:
        assert [lb.name_of(u) for u in entry.upstreams] == ["a", "b"]
        assert entry.upstream_statuses == ("502", "200") and entry.status == 200


def _cjk(text: str) -> bool:
    return bool(re.search(r"[\u4e00-\u9fff]", text))


def test_with_no_instance_left_the_balancer_answers_503_as_the_service_would(lb):
    lb.a.stop()
    lb.b.stop()
    with httpx.Client(base_url=lb.nginx.url, timeout=10) as client:
        for method in ("GET", "POST"):
            app = client.request(method, "/api/v1/matters", headers={"accept": "application/json"}, content=b"{}")
            assert app.status_code == 503, app.text
            assert int(app.headers["retry-after"]) > 0
            assert app.headers["content-type"].startswith("application/json")
            assert "no-store" in app.headers["cache-control"]
            error = app.json()["error"]
            assert error["code"] == "SERVICE_UNAVAILABLE" and _cjk(error["message"])

        page = client.get("/m/ZD-001", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert page.status_code == 503
        assert int(page.headers["retry-after"]) > 0
        assert page.headers["content-type"].startswith("text/html")
        assert 'lang="zh-CN"' in page.text and _cjk(page.text)

        # anything else (no Accept, or */*) gets the JSON, which every client of the API reads
        bare = client.get("/q/abc", headers={"accept": "*/*"})
        assert bare.status_code == 503 and bare.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


def test_the_instance_receives_the_clients_address_with_the_secret_and_no_client_sent_forwarding(lb):
    before = len(lb.a.seen) + len(lb.b.seen)
    forged = {
        "x-forwarded-for": "203.0.113.66",
        "forwarded": 'for="203.0.113.66";secret="guessed"',
        "accept": "application/json",
    }
    with httpx.Client(base_url=lb.nginx.url, timeout=5) as client:
        for _ in range(2):  # one request to each instance
            assert client.get("/api/v1/me", headers=forged).status_code == 200
    seen = (lb.a.seen + lb.b.seen)[before:]
    assert len(seen) == 2
    for request in seen:
        assert "x-forwarded-for" not in request.headers
        # nginx's header replaces the client's: only its own, with the secret the instances trust
        assert request.headers["forwarded"] == f'for="127.0.0.1";proto=http;secret="{lb.secret}"'
        assert request.headers["host"] == lb.nginx.url.removeprefix("http://")

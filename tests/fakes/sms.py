"""A local fake SMS gateway speaking `auth.sms.HttpSender`'s wire format: POST {"phone", "text"}, 2xx = accepted.

Like a real gateway that honours the `Idempotency-Key` header, it delivers a repeated key once. Tests
make it refuse the next calls with `fail(times)` and read `received` (every call) and `delivered`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Call:
    """One POST the gateway received."""

    phone: str
    text: str
    key: str | None
    authorization: str | None


class FakeSmsGateway:
    """An HTTP server on 127.0.0.1 recording texts, with injectable failures."""

    def __init__(self) -> None:
        """Not started yet: use it as a context manager."""
        self.received: list[Call] = []
        self.delivered: list[Call] = []
        self._faults: list[int] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Where HttpSender posts."""
        if self._server is None:
            raise RuntimeError("FakeSmsGateway is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/send"

    def fail(self, times: int = 1, status: int = 502) -> None:
        """Answer the next `times` calls with an HTTP error (nothing delivered)."""
        with self._lock:
            self._faults.extend([status] * times)

    def _answer(self, call: Call) -> int:
        with self._lock:
            self.received.append(call)
            if self._faults:
                return self._faults.pop(0)
            if call.key is None or all(d.key != call.key for d in self.delivered):
                self.delivered.append(call)
            return 200

    def __enter__(self) -> FakeSmsGateway:
        """Start serving on a free port."""
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body: dict[str, Any] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                call = Call(body["phone"], body["text"], self.headers.get("Idempotency-Key"),
                            self.headers.get("Authorization"))  # fmt: skip
                self.send_response(gateway._answer(call))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

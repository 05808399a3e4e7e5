"""A local fake of WeChat's HTTP API that speaks the real wire format, for tests and for development.

It runs `http.server.ThreadingHTTPServer` on its own thread, so it answers whatever the test's event
loop is doing. Paths, query parameters, JSON shapes and errcode/errmsg follow WeChat's documentation.

Standalone (so client developers can log in without WeChat):

    python -m tests.fakes.wechat --port 9100 \
        --app wxdevofficialacct:dev-mp-secret --app wxdevminiprogram:dev-mini-secret

then run the service with WECHAT_API_BASE and WECHAT_OAUTH_BASE set to the printed URL, register a
login code with `POST /__fake__/codes {"code", "openid", "unionid", "appid"}` (or describe a user with
`POST /__fake__/users {"openid", "unionid", "subscribe"}`) and read what the
service called with `GET /__fake__/calls`. `/connect/oauth2/authorize` redirects straight back with
a fresh code (pass a non-standard `fake_openid` query parameter, or set `FakeWeChat.oauth_openid`, to
choose the user).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from app.settings import Settings

log = logging.getLogger("app.wechat.fake")

ERRMSG = {
    0: "ok",
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40014: "invalid access_token",
    40016: "invalid button size",
    40029: "invalid code",
    40037: "invalid template_id",
    40097: "invalid args",
    40125: "invalid appsecret",
    40163: "code been used",
    40169: "invalid length for scene, or the data is not json string",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    43101: "user refuse to accept the msg",
    44002: "empty post data",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    48001: "api unauthorized",
}

JSON_TYPE = "application/json; encoding=utf-8"  # sic: WeChat's own header
TOKEN_PATHS = {
    "/cgi-bin/qrcode/create",
    "/wxa/getwxacodeunlimit",
    "/cgi-bin/message/template/send",
    "/cgi-bin/message/subscribe/send",
    "/cgi-bin/menu/create",
}


class Call(NamedTuple):
    """One recorded request: method, path, query (first value of each parameter) and parsed JSON body."""

    method: str
    path: str
    query: dict[str, str]
    json: Any


@dataclass(frozen=True)
class RecordedRequest:
    """A recorded request with its raw body and headers (to check the exact bytes a client sent)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    body: bytes
    headers: dict[str, str]


@dataclass
class _Token:
    appid: str
    expires_at: float
    revoked: bool = False


@dataclass
class _Code:
    appid: str | None
    openid: str
    unionid: str | None
    scope: str
    used: bool = False


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def _json(data: Any, status: int = 200, content_type: str = JSON_TYPE) -> _Reply:
    return _Reply(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), content_type)


def _error(errcode: int, errmsg: str | None = None) -> _Reply:
    # Real answers end with a request id; clients must not parse errmsg.
    message = errmsg or ERRMSG.get(errcode, "fake error")
    return _json({"errcode": errcode, "errmsg": f"{message} rid: {secrets.token_hex(4)}-{secrets.token_hex(4)}"})


def _ok(**extra: Any) -> _Reply:
    return _json({"errcode": 0, "errmsg": "ok", **extra})


def _png(text: str, width: int) -> bytes:
    """A real QR code PNG of `text`, about `width` pixels wide."""
    import qrcode

    qr = qrcode.QRCode(border=2)
    qr.add_data(text)
    qr.make(fit=True)
    image = qr.make_image().get_image()
    size = max(64, min(width, 1280))
    buffer = io.BytesIO()
    image.resize((size, size)).save(buffer, format="PNG")
    return buffer.getvalue()


def dev_apps() -> dict[str, str]:
    """The development app ids and secrets of app/settings.py."""
    dev = Settings()
    return {dev.wechat_mp_appid: dev.wechat_mp_secret, dev.wechat_mini_appid: dev.wechat_mini_secret}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 stalls bursts of concurrent connects for a second
    fake: FakeWeChat

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up (a client timing out is a normal test case)."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        log.exception("fake WeChat failed to handle a request")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx's pool expects of the real server
    server_version = "FakeWeChat/1"
    timeout = 30  # an idle keep-alive connection frees its thread eventually
    server: _Server

    def setup(self) -> None:
        """Track the connection so `stop()` can cut it."""
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        """Forget the connection."""
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Log through logging at debug level, with credentials kept out."""
        log.debug("fake WeChat: %s", re.sub(r"\?\S*", "", format % args))

    def do_GET(self) -> None:
        """Answer a GET."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Answer a POST."""
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.fake._handle(method, parts.path, query, body, headers)
        if reply is None:  # the fake is stopping while this request was delayed
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)


class FakeWeChat:
    """WeChat's API on 127.0.0.1: tokens, login codes, QR codes, messages and menus, plus fault injection."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        apps: dict[str, str] | None = None,
        token_ttl: int = 7200,
    ) -> None:
        """`apps` maps app id to secret (default: the development apps of app/settings.py)."""
        self.host = host
        self.port = port
        self.apps = dict(apps if apps is not None else dev_apps())
        self.token_ttl = token_ttl
        self.sent: list[dict[str, Any]] = []
        self._client_msgs: dict[tuple[str, str, str], int] = {}
        self.menus: dict[str, dict[str, Any]] = {}
        self.qrcodes: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}  # openid -> extra profile fields (e.g. unionid) for user/info
        # Who the OAuth page signs in when the URL has no `fake_openid` (None: one fixed dev user per app id).
        self.oauth_openid: str | None = None
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._tokens: dict[str, _Token] = {}
        self._stable: dict[str, str] = {}
        self._codes: dict[str, _Code] = {}
        self._faults: dict[str, deque[_Reply]] = {}
        self._delays: dict[str, deque[float]] = {}
        self._msgid = 2_000_000_000
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes: dict[str, tuple[str, Callable[[dict[str, str], bytes], _Reply]]] = {
            "/cgi-bin/token": ("GET", self._token),
            "/cgi-bin/stable_token": ("POST", self._stable_token),
            "/sns/jscode2session": ("GET", self._jscode2session),
            "/sns/oauth2/access_token": ("GET", self._oauth_access_token),
            "/cgi-bin/qrcode/create": ("POST", self._qrcode_create),
            "/wxa/getwxacodeunlimit": ("POST", self._wxacode),
            "/cgi-bin/message/template/send": ("POST", self._template_send),
            "/cgi-bin/message/subscribe/send": ("POST", self._subscribe_send),
            "/cgi-bin/menu/create": ("POST", self._menu_create),
            "/cgi-bin/user/info": ("GET", self._user_info),
            "/connect/oauth2/authorize": ("GET", self._authorize),
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeWeChat:
        """Listen and serve on a background thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-wechat-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and free the port."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            # Keep-alive connections would otherwise go on being served after the port is closed.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:54321."""
        if self._server is None:
            raise RuntimeError("FakeWeChat is not started")
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> FakeWeChat:
        """Start on entry."""
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop on exit."""
        self.stop()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # ------------------------------------------------------------------ test controls

    def add_code(
        self,
        code: str,
        *,
        openid: str,
        unionid: str | None = None,
        appid: str | None = None,
        scope: str = "snsapi_base",
    ) -> None:
        """Register a single-use login code (mini-program js_code or official-account OAuth code)."""
        with self._lock:
            self._codes[code] = _Code(appid=appid, openid=openid, unionid=unionid, scope=scope)

    def inject(self, path: str, errcode: int, times: int = 1, *, errmsg: str | None = None) -> None:
        """Answer the next `times` calls of `path` with this errcode (after recording them)."""
        self._add_fault(path, _error(errcode, errmsg), times)

    def fail(self, path: str, status: int = 502, times: int = 1, *, body: bytes = b"<html>Bad Gateway</html>") -> None:
        """Answer the next `times` calls of `path` with an HTTP status and a non-JSON body."""
        self._add_fault(path, _Reply(status, body, "text/html"), times)

    def delay(self, path: str, seconds: float, times: int = 1) -> None:
        """Hold the next `times` answers of `path` for `seconds`."""
        with self._lock:
            self._delays.setdefault(path, deque()).extend([seconds] * times)

    def _add_fault(self, path: str, reply: _Reply, times: int) -> None:
        with self._lock:
            self._faults.setdefault(path, deque()).extend([reply] * times)

    def expire_tokens(self) -> None:
        """Make every access token issued so far expired (WeChat then answers 42001)."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = 0.0
            self._stable.clear()

    def revoke(self, token: str) -> None:
        """Make one access token invalid (WeChat then answers 40001)."""
        with self._lock:
            if token in self._tokens:
                self._tokens[token].revoked = True
            self._stable = {appid: t for appid, t in self._stable.items() if t != token}

    def token_appid(self, token: str) -> str | None:
        """The app id an access token was issued to (None if this fake never issued it)."""
        with self._lock:
            issued = self._tokens.get(token)
            return issued.appid if issued else None

    @property
    def calls(self) -> list[Call]:
        """Every recorded API call, oldest first."""
        with self._lock:
            return [Call(r.method, r.path, dict(r.query), r.json) for r in self._requests]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every recorded API call with raw body and headers."""
        with self._lock:
            return list(self._requests)

    def count(self, path: str) -> int:
        """How many calls of `path` were recorded."""
        with self._lock:
            return sum(1 for r in self._requests if r.path == path)

    # ------------------------------------------------------------------ dispatch

    def _handle(
        self, method: str, path: str, query: dict[str, str], body: bytes, headers: dict[str, str]
    ) -> _Reply | None:
        if path.startswith("/__fake__/"):
            return self._dev(method, path, body)
        try:
            parsed = json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            parsed = None
        with self._lock:
            self._requests.append(RecordedRequest(method, path, dict(query), parsed, body, headers))
            delays = self._delays.get(path)
            pause = delays.popleft() if delays else 0.0
        if pause and self._stopping.wait(pause):
            return None
        with self._lock:
            faults = self._faults.get(path)
            if faults:
                return faults.popleft()
        route = self._routes.get(path)
        if route is None:
            return _json({"errcode": 40066, "errmsg": "invalid url"}, status=404)
        expected, handler = route
        if method != expected:
            return _error(43001 if expected == "GET" else 43002)
        if expected == "POST":
            if not body:
                return _error(44002)
            if not isinstance(parsed, dict):
                return _error(47001)
        if path in TOKEN_PATHS:
            denied = self._check_token(query.get("access_token", ""))
            if denied is not None:
                return denied
        return handler(query, body)

    def _check_token(self, token: str) -> _Reply | None:
        if not token:
            return _error(41001)
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None or issued.revoked:
                return _error(40001)
            if time.time() >= issued.expires_at:
                return _error(42001)
        return None

    def _app_error(self, appid: str | None, secret: str | None) -> _Reply | None:
        if not appid:
            return _error(41002)
        if appid not in self.apps:
            return _error(40013)
        if not secret:
            return _error(41004)
        if secret != self.apps[appid]:
            return _error(40125)
        return None

    def _issue(self, appid: str) -> tuple[str, int]:
        token = secrets.token_urlsafe(96)[:128]  # the real ones are opaque and long
        with self._lock:
            self._tokens[token] = _Token(appid=appid, expires_at=time.time() + self.token_ttl)
        return token, self.token_ttl

    def _appid_of(self, query: dict[str, str]) -> str:
        return self.token_appid(query.get("access_token", "")) or ""

    # ------------------------------------------------------------------ endpoints

    def _token(self, query: dict[str, str], body: bytes) -> _Reply:
        if query.get("grant_type") != "client_credential":
            return _error(40002)
        denied = self._app_error(query.get("appid"), query.get("secret"))
        if denied is not None:
            return denied
        token, expires_in = self._issue(query["appid"])
        return _json({"access_token": token, "expires_in": expires_in})

    def _stable_token(self, query: dict[str, str], body: bytes) -> _Reply:
        data = json.loads(body)
        if data.get("grant_type") != "client_credential":
            return _error(40002)
        appid, secret = data.get("appid"), data.get("secret")
        denied = self._app_error(appid, secret)
        if denied is not None:
            return denied
        force = data.get("force_refresh", False)
        if not isinstance(force, bool):
            return _error(47001)
        with self._lock:
            current = self._stable.get(appid)
            issued = self._tokens.get(current) if current else None
            now = time.time()
            # Normal mode hands out the same token while it is valid; force mode replaces (and revokes) it.
            if issued and not force and not issued.revoked and now < issued.expires_at:
                return _json({"access_token": current, "expires_in": int(issued.expires_at - now)})
            if issued and force:
                issued.revoked = True
            token, expires_in = self._issue(appid)
            self._stable[appid] = token
        return _json({"access_token": token, "expires_in": expires_in})

    def _take_code(self, appid: str, code: str) -> _Code | _Reply:
        if not code:
            return _error(41008)
        with self._lock:
            known = self._codes.get(code)
            if known is None or (known.appid is not None and known.appid != appid):
                return _error(40029)
            if known.used:
                return _error(40163)
            known.used = True
            return known

    def _jscode2session(self, query: dict[str, str], body: bytes) -> _Reply:
        denied = self._app_error(query.get("appid"), query.get("secret"))
        if denied is not None:
            return denied
        if query.get("grant_type") != "authorization_code":
            return _error(40002)
        code = self._take_code(query["appid"], query.get("js_code", ""))
        if isinstance(code, _Reply):
            return code
        answer = {"openid": code.openid, "session_key": base64.b64encode(secrets.token_bytes(16)).decode()}
        if code.unionid:
            answer["unionid"] = code.unionid
        return _json(answer, content_type="text/plain")  # sic: WeChat labels this JSON text/plain

    def _oauth_access_token(self, query: dict[str, str], body: bytes) -> _Reply:
        denied = self._app_error(query.get("appid"), query.get("secret"))
        if denied is not None:
            return denied
        if query.get("grant_type") != "authorization_code":
            return _error(40002)
        code = self._take_code(query["appid"], query.get("code", ""))
        if isinstance(code, _Reply):
            return code
        answer: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(64),  # a web token: not valid for /cgi-bin calls
            "expires_in": 7200,
            "refresh_token": secrets.token_urlsafe(64),
            "openid": code.openid,
            "scope": code.scope,
        }
        if code.unionid:
            answer["unionid"] = code.unionid
        return _json(answer)

    def _qrcode_create(self, query: dict[str, str], body: bytes) -> _Reply:
        data = json.loads(body)
        action = data.get("action_name")
        scene = (data.get("action_info") or {}).get("scene") or {}
        if action in ("QR_STR_SCENE", "QR_LIMIT_STR_SCENE"):
            value = scene.get("scene_str")
            if not isinstance(value, str) or not 1 <= len(value) <= 64:
                return _error(40097)
        elif action in ("QR_SCENE", "QR_LIMIT_SCENE"):
            value = scene.get("scene_id")
            if not isinstance(value, int) or value <= 0:
                return _error(40097)
        else:
            return _error(40097)
        ticket = base64.b64encode(secrets.token_bytes(42)).decode()
        url = f"http://weixin.qq.com/q/{secrets.token_urlsafe(16)}"
        record = {"appid": self._appid_of(query), "action_name": action, "scene": value, "url": url}
        answer: dict[str, Any] = {"ticket": ticket, "url": url}
        if action in ("QR_SCENE", "QR_STR_SCENE"):
            answer["expire_seconds"] = min(int(data.get("expire_seconds") or 60), 2_592_000)
        with self._lock:
            self.qrcodes[ticket] = record
        return _json(answer)

    def _user_info(self, query: dict[str, str], body: bytes) -> _Reply:
        openid = query.get("openid") or ""
        if not openid:
            return _error(40003)
        with self._lock:
            extra = dict(self.users.get(openid, {}))
        return _json({"subscribe": 1, "openid": openid, "language": "zh_CN", "subscribe_time": 1767225600, **extra})

    def _wxacode(self, query: dict[str, str], body: bytes) -> _Reply:
        data = json.loads(body)
        scene = data.get("scene")
        if not isinstance(scene, str) or not 1 <= len(scene) <= 32:
            return _error(40169)
        page = data.get("page") or "pages/index/index"
        try:
            width = int(data.get("width") or 430)
        except (TypeError, ValueError):
            return _error(47001)
        return _Reply(200, _png(f"{page}?scene={scene}", width), "image/png")

    def _next_msgid(self) -> int:
        with self._lock:
            self._msgid += 1
            return self._msgid

    def _message(self, kind: str, query: dict[str, str], body: bytes) -> tuple[_Reply | None, int]:
        data = json.loads(body)
        if not isinstance(data.get("touser"), str) or not data["touser"]:
            return _error(40003), 0
        if not isinstance(data.get("template_id"), str) or not data["template_id"]:
            return _error(40037), 0
        if not isinstance(data.get("data"), dict):
            return _error(47001), 0
        appid = self._appid_of(query)
        # Like WeChat: one message per openid and client_msg_id (a retried send gets the first msgid).
        dedupe = (appid, data["touser"], data.get("client_msg_id")) if data.get("client_msg_id") else None
        with self._lock:
            if dedupe is not None and dedupe in self._client_msgs:
                return None, self._client_msgs[dedupe]
        msgid = self._next_msgid()
        with self._lock:
            self.sent.append({"kind": kind, "appid": appid, "msgid": msgid, **data})
            if dedupe is not None:
                self._client_msgs[dedupe] = msgid
        return None, msgid

    def _template_send(self, query: dict[str, str], body: bytes) -> _Reply:
        error, msgid = self._message("template", query, body)
        return error or _ok(msgid=msgid)

    def _subscribe_send(self, query: dict[str, str], body: bytes) -> _Reply:
        error, _ = self._message("subscribe", query, body)
        return error or _ok()

    def _menu_create(self, query: dict[str, str], body: bytes) -> _Reply:
        data = json.loads(body)
        buttons = data.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return _error(40016)
        with self._lock:
            self.menus[self._appid_of(query)] = data
        return _ok()

    def _authorize(self, query: dict[str, str], body: bytes) -> _Reply:
        """The OAuth page, reduced to "the user agreed": redirect back at once with a fresh code."""
        appid, redirect_uri = query.get("appid", ""), query.get("redirect_uri", "")
        if appid not in self.apps or not redirect_uri.startswith(("http://", "https://")):
            return _Reply(400, "参数错误（appid 或 redirect_uri）".encode(), "text/plain; charset=utf-8")
        scope = query.get("scope", "snsapi_base")
        openid = (
            query.get("fake_openid")
            or self.oauth_openid
            or "o" + hashlib.sha256(f"{appid}:dev-user".encode()).hexdigest()[:27]
        )
        code = secrets.token_hex(16)
        # As WeChat: the unionid comes with snsapi_userinfo, and with snsapi_base only for a follower.
        user = self.users.get(openid, {})
        unionid = user.get("unionid") if scope == "snsapi_userinfo" or user.get("subscribe") else None
        self.add_code(code, openid=openid, appid=appid, scope=scope, unionid=unionid)
        parts = urlsplit(redirect_uri)
        extra = urlencode({"code": code, "state": query.get("state", "")})
        location = urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))
        return _Reply(302, b"", "text/plain", (("Location", location),))

    # ------------------------------------------------------------------ development endpoints

    def _dev(self, method: str, path: str, body: bytes) -> _Reply:
        if method == "POST" and path == "/__fake__/codes":
            try:
                data = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError):
                return _json({"error": "body must be JSON"}, status=400)
            if not isinstance(data, dict) or not data.get("openid"):
                return _json({"error": "openid is required"}, status=400)
            code = str(data.get("code") or secrets.token_hex(16))
            self.add_code(
                code,
                openid=str(data["openid"]),
                unionid=data.get("unionid") or None,
                appid=data.get("appid") or None,
                scope=str(data.get("scope") or "snsapi_base"),
            )
            return _json({"code": code}, status=201)
        if method == "POST" and path == "/__fake__/users":
            try:
                data = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError):
                return _json({"error": "body must be JSON"}, status=400)
            if not isinstance(data, dict) or not data.get("openid"):
                return _json({"error": "openid is required"}, status=400)
            fields = {k: data[k] for k in ("unionid", "subscribe", "nickname") if k in data}
            with self._lock:
                self.users.setdefault(str(data["openid"]), {}).update(fields)
            return _json({"openid": data["openid"], **fields}, status=201)
        if method == "GET" and path == "/__fake__/calls":
            return _json([c._asdict() for c in self.calls])
        if method == "GET" and path == "/__fake__/sent":
            with self._lock:
                return _json(list(self.sent))
        return _json({"error": "not found"}, status=404)


def _parse_app(value: str) -> tuple[str, str]:
    appid, sep, secret = value.partition(":")
    if not sep or not appid or not secret:
        raise argparse.ArgumentTypeError("--app must look like appid:secret")
    return appid, secret


def main(argv: list[str] | None = None) -> None:
    """Run the fake in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.wechat", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--app", type=_parse_app, action="append", default=None, metavar="APPID:SECRET")
    parser.add_argument("--token-ttl", type=int, default=7200)
    args = parser.parse_args(argv)
    fake = FakeWeChat(args.host, args.port, apps=dict(args.app) if args.app else None, token_ttl=args.token_ttl)
    fake.start()
    print(f"fake WeChat API listening on {fake.url}", flush=True)
    print(f"  apps: {', '.join(fake.apps)}", flush=True)
    print(f"  export WECHAT_API_BASE={fake.url} WECHAT_OAUTH_BASE={fake.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()

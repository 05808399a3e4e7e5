"""The async WeChat HTTP API client: one shared httpx.AsyncClient, access tokens shared through the store.

wechatpy's own HTTP client is blocking and refreshes tokens without a lock (ARCHITECTURE.md, "Facts
about our dependencies"), so the handful of endpoints we need are called here. The access token of
each app id lives in the store (`wechat:token:{appid}`) so every worker and host uses the same one; it is fetched from
`/cgi-bin/stable_token` by one caller at a time under redis-py's lock in the store, and force-refreshed
only after WeChat rejected it (40001/42001), replacing it only if it is still the one that failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from redis.exceptions import LockNotOwnedError, RedisError, WatchError

from app.settings import Settings
from app.store import Store
from app.wechat.errors import (
    WeChatCodeInvalid,
    WeChatError,
    WeChatQuotaExhausted,
    WeChatRateLimited,
    WeChatTokenInvalid,
    WeChatUnavailable,
)
from auth.redact import RedactingFilter, redact

log = logging.getLogger("app.wechat")

MAX_TIMEOUT = 5.0  # WeChat retries callbacks after 5 s; a handler must never wait longer on WeChat
TOKEN_MARGIN = 300  # refresh five minutes before WeChat's expiry so no caller holds a dying token
TOKEN_MIN_TTL = 60
LOCK_TIMEOUT = 10
LOCK_WAIT = 6
LOCK_POLL = 0.05

TOKEN_ERRCODES = frozenset({40001, 42001, 40014})
FORCE_REFRESH_ERRCODES = frozenset({40001, 42001})
RATE_LIMIT_ERRCODES = frozenset({45009, 45011})
QUOTA_ERRCODES = frozenset({43101})
CODE_ERRCODES = frozenset({40029, 40163})

OAUTH_SCOPES = frozenset({"snsapi_base", "snsapi_userinfo"})
_STATE = re.compile(r"^[A-Za-z0-9]{1,128}$")  # WeChat only passes a-zA-Z0-9 state values through


def _install_log_redaction() -> None:
    # httpx logs each URL at INFO (`HTTP Request: POST https://…?access_token=…`), and logger filters only see
    # records logged on that exact logger, so each httpx/httpcore logger gets the one log redactor.
    for name in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


@dataclass(frozen=True)
class Session:
    """A mini-program login (`code2session`); session_key is a secret and stays out of repr and logs."""

    openid: str
    session_key: str = field(repr=False)
    unionid: str | None = None


@dataclass(frozen=True)
class OAuthToken:
    """An official-account web authorisation (`oauth2/access_token`); the tokens stay out of repr."""

    openid: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    scope: str
    unionid: str | None = None


@dataclass(frozen=True)
class SceneQr:
    """A permanent string-scene QR code of the official account: `url` is the content to encode."""

    ticket: str
    url: str


class WeChatClient:
    """Calls WeChat's HTTP API without blocking the event loop; one instance per worker, closed with `aclose`."""

    def __init__(self, settings: Settings, store: Store, *, http: httpx.AsyncClient | None = None) -> None:
        """Use `http` when given (its owner closes it), else one pooled client of our own."""
        self._settings = settings
        self._store = store
        self._base = settings.wechat_api_base.rstrip("/")
        self._timeout = min(max(settings.wechat_timeout, 0.05), MAX_TIMEOUT)
        # httpx applies the timeout per phase (connect, write, read, pool); this bounds the whole call.
        self._deadline = self._timeout + 1.0
        self._owns_http = http is None
        self._http = (
            http
            if http is not None
            else httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=10, keepalive_expiry=30),
                headers={"User-Agent": "zuiduo-wechat/1"},
            )
        )
        self._secrets = {
            settings.wechat_mp_appid: settings.wechat_mp_secret,
            settings.wechat_mini_appid: settings.wechat_mini_secret,
        }
        self._local_locks: dict[str, asyncio.Lock] = {}
        # Used only while the store is unreachable, so WeChat calls keep working on one worker.
        self._fallback: dict[str, tuple[str, float]] = {}
        _install_log_redaction()

    async def aclose(self) -> None:
        """Close the HTTP connection pool if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    @property
    def mp_appid(self) -> str:
        """The official account's app id."""
        return self._settings.wechat_mp_appid

    @property
    def mini_appid(self) -> str:
        """The mini program's app id."""
        return self._settings.wechat_mini_appid

    # ------------------------------------------------------------------ access tokens

    async def access_token(self, *, appid: str) -> str:
        """The app's access token: from the store, else fetched once (one caller across all workers)."""
        secret = self._secret(appid)
        cached = await self._cached_token(appid)
        if cached:
            return cached
        async with self._local_lock(appid), self._store_lock(appid):
            # Whoever held the lock before us has probably cached a token already.
            cached = await self._cached_token(appid)
            if cached:
                return cached
            return await self._fetch_token(appid, secret, force_refresh=False)

    async def refresh_access_token(self, *, appid: str, rejected: str, force_refresh: bool = True) -> str:
        """A new token after WeChat rejected `rejected`; a no-op if another caller already replaced it.

        `force_refresh=True` (after 40001/42001) makes WeChat invalidate the old token and is limited
        per day, so it happens only while the cached token is still the rejected one.
        """
        secret = self._secret(appid)
        async with self._local_lock(appid), self._store_lock(appid):
            current = await self._cached_token(appid)
            if current and current != rejected:
                return current
            await self._forget_token(appid, rejected)
            return await self._fetch_token(appid, secret, force_refresh=force_refresh)

    def _secret(self, appid: str) -> str:
        secret = self._secrets.get(appid)
        if not secret:
            raise WeChatError("未配置该微信应用", details={"appid": appid})
        return secret

    @staticmethod
    def _token_key(appid: str) -> str:
        return f"wechat:token:{appid}"

    async def _cached_token(self, appid: str) -> str | None:
        try:
            value = await self._store.get(self._token_key(appid))
        except RedisError:
            log.warning("store unavailable: using this worker's copy of the %s access token", appid)
            token, until = self._fallback.get(appid, ("", 0.0))
            return token if token and time.monotonic() < until else None
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def _forget_token(self, appid: str, rejected: str) -> None:
        """Compare-and-delete: drop the cached token only if it is still the rejected one."""
        if self._fallback.get(appid, ("", 0.0))[0] == rejected:
            self._fallback.pop(appid, None)
        key = self._token_key(appid)
        try:
            await self._compare_and_delete(key, rejected.encode())
        except RedisError:
            log.warning("store unavailable: could not drop the rejected %s access token", appid)

    async def _fetch_token(self, appid: str, secret: str, *, force_refresh: bool) -> str:
        body = {"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force_refresh}
        data = await self._send("POST", "/cgi-bin/stable_token", body=body)
        assert isinstance(data, dict)
        # A token errcode here means our credentials are wrong, not that a token expired: no retry.
        self._check(data, "/cgi-bin/stable_token", hide=(secret,), retry_token=False)
        token = data.get("access_token")
        try:
            expires_in = int(data.get("expires_in", 0))
        except (TypeError, ValueError):
            expires_in = 0
        if not isinstance(token, str) or not token or expires_in <= 0:
            raise _garbled("/cgi-bin/stable_token")
        ttl = max(expires_in - TOKEN_MARGIN, TOKEN_MIN_TTL)
        self._fallback[appid] = (token, time.monotonic() + ttl)
        try:
            await self._store.set(self._token_key(appid), token, ex=ttl)
        except RedisError:
            log.warning("store unavailable: the new %s access token is kept by this worker only", appid)
        log.info("fetched a WeChat access token for %s (force_refresh=%s, ttl %ss)", appid, force_refresh, ttl)
        return token

    def _local_lock(self, appid: str) -> asyncio.Lock:
        # Coroutines of this worker queue here, so only one of them polls the store lock.
        lock = self._local_locks.get(appid)
        if lock is None:
            lock = self._local_locks[appid] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def _store_lock(self, appid: str) -> AsyncIterator[None]:
        """A lock across workers and hosts: redis-py's `Lock` (SET NX PX, released by a Lua compare-and-delete)."""
        lock = self._store.lock(
            f"wechat:token-lock:{appid}", timeout=LOCK_TIMEOUT, sleep=LOCK_POLL, blocking_timeout=LOCK_WAIT
        )
        try:
            held = await lock.acquire()
        except RedisError:
            # Without the store there is no shared lock; this worker's own lock still serialises its callers.
            log.warning("store unavailable: refreshing the %s access token without the shared lock", appid)
            held = None
        if held is False:
            raise WeChatUnavailable("微信接口凭证正在刷新，请稍后再试", details={"reason": "token_lock_busy"})
        try:
            yield
        finally:
            if held:
                try:
                    await lock.release()
                except LockNotOwnedError:
                    log.warning("the token lock of %s expired before the refresh ended", appid)
                except RedisError:
                    log.warning("store unavailable: the token lock of %s will expire by itself", appid)

    async def _compare_and_delete(self, key: str, expected: bytes) -> bool:
        """Delete `key` only if it still holds `expected` (WATCH/MULTI: no Lua needed)."""
        async with self._store.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                current = await pipe.get(key)
                if current != expected:
                    await pipe.unwatch()
                    return False
                pipe.multi()
                pipe.delete(key)
                await pipe.execute()
                return True
            except WatchError:
                # Someone changed the key between our GET and DEL: it is no longer ours to delete.
                return False

    # ------------------------------------------------------------------ logins

    async def code2session(self, *, js_code: str) -> Session:
        """Exchange a mini-program `wx.login` code for the user's openid and session key."""
        appid = self.mini_appid
        secret = self._secret(appid)
        params = {"appid": appid, "secret": secret, "js_code": js_code, "grant_type": "authorization_code"}
        data = await self._send("GET", "/sns/jscode2session", params=params)
        assert isinstance(data, dict)
        self._check(data, "/sns/jscode2session", hide=(secret, js_code), retry_token=False)
        openid, session_key = data.get("openid"), data.get("session_key")
        if not isinstance(openid, str) or not openid or not isinstance(session_key, str) or not session_key:
            raise _garbled("/sns/jscode2session")
        return Session(openid=openid, session_key=session_key, unionid=data.get("unionid") or None)

    async def oauth_exchange(self, *, code: str) -> OAuthToken:
        """Exchange an official-account web authorisation code for the user's openid (and web token)."""
        appid = self.mp_appid
        secret = self._secret(appid)
        params = {"appid": appid, "secret": secret, "code": code, "grant_type": "authorization_code"}
        data = await self._send("GET", "/sns/oauth2/access_token", params=params)
        assert isinstance(data, dict)
        self._check(data, "/sns/oauth2/access_token", hide=(secret, code), retry_token=False)
        try:
            return OAuthToken(
                openid=str(data["openid"]),
                access_token=str(data["access_token"]),
                refresh_token=str(data.get("refresh_token") or ""),
                expires_in=int(data.get("expires_in") or 0),
                scope=str(data.get("scope") or ""),
                unionid=data.get("unionid") or None,
            )
        except (KeyError, TypeError, ValueError):
            raise _garbled("/sns/oauth2/access_token") from None

    def oauth_authorize_url(self, *, redirect_uri: str, state: str, scope: str = "snsapi_base") -> str:
        """The official account's authorisation page URL (parameters in the order WeChat insists on)."""
        if scope not in OAUTH_SCOPES:
            raise ValueError(f"scope must be one of {sorted(OAUTH_SCOPES)}")
        if not _STATE.match(state):
            raise ValueError("state must be 1-128 characters of a-zA-Z0-9")
        return (
            f"{self._settings.wechat_oauth_base.rstrip('/')}/connect/oauth2/authorize"
            f"?appid={quote(self.mp_appid, safe='')}&redirect_uri={quote(redirect_uri, safe='')}"
            f"&response_type=code&scope={scope}&state={state}#wechat_redirect"
        )

    # ------------------------------------------------------------------ codes and messages

    async def create_scene_qrcode(self, *, scene_str: str) -> SceneQr:
        """A permanent official-account QR code whose scan event carries `scene_str` (1-64 characters)."""
        if not 1 <= len(scene_str) <= 64:
            raise ValueError("scene_str must be 1-64 characters")
        body = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene_str}}}
        data = await self._call(self.mp_appid, "POST", "/cgi-bin/qrcode/create", body=body)
        assert isinstance(data, dict)
        ticket, url = data.get("ticket"), data.get("url")
        if not isinstance(ticket, str) or not isinstance(url, str) or not ticket or not url:
            raise _garbled("/cgi-bin/qrcode/create")
        return SceneQr(ticket=ticket, url=url)

    async def wxa_code_unlimited(self, *, scene: str, page: str, width: int = 430) -> bytes:
        """A mini-program code image opening `page` with `scene` (at most 32 characters)."""
        if not 1 <= len(scene) <= 32:
            raise ValueError("scene must be 1-32 characters")
        body = {"scene": scene, "page": page, "width": width, "check_path": False}
        data = await self._call(self.mini_appid, "POST", "/wxa/getwxacodeunlimit", body=body, binary=True)
        if not isinstance(data, bytes):
            raise _garbled("/wxa/getwxacodeunlimit")
        return data

    async def send_template(
        self,
        *,
        openid: str,
        template_id: str,
        data: Mapping[str, str | Mapping[str, str]],
        url: str | None = None,
        miniprogram: Mapping[str, str] | None = None,
        client_msg_id: str | None = None,
    ) -> int:
        """Send an official-account template message; returns WeChat's msgid.

        `data` values may be plain strings (wrapped as `{"value": …}`); `client_msg_id` lets WeChat
        drop a duplicate when the outbox retries a send whose answer was lost.
        """
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": _template_data(data)}
        if url:
            body["url"] = url
        if miniprogram:
            body["miniprogram"] = dict(miniprogram)
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        answer = await self._call(self.mp_appid, "POST", "/cgi-bin/message/template/send", body=body)
        assert isinstance(answer, dict)
        try:
            return int(answer["msgid"])
        except (KeyError, TypeError, ValueError):
            raise _garbled("/cgi-bin/message/template/send") from None

    async def send_subscribe(
        self,
        *,
        openid: str,
        template_id: str,
        data: Mapping[str, str | Mapping[str, str]],
        page: str | None = None,
        miniprogram_state: str | None = None,
    ) -> None:
        """Send a mini-program subscribe message (43101 → WeChatQuotaExhausted: the user did not subscribe)."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": _template_data(data)}
        if page:
            body["page"] = page
        if miniprogram_state:
            body["miniprogram_state"] = miniprogram_state
        await self._call(self.mini_appid, "POST", "/cgi-bin/message/subscribe/send", body=body)

    async def user_info(self, *, openid: str) -> dict[str, Any]:
        """A subscriber's profile from the official account (`unionid` when it is linked to the open platform)."""
        data = await self._call(self.mp_appid, "GET", "/cgi-bin/user/info", params={"openid": openid, "lang": "zh_CN"})
        if not isinstance(data, dict) or data.get("openid") != openid:
            raise _garbled("/cgi-bin/user/info")
        return data

    async def create_menu(self, *, menu: Mapping[str, Any]) -> None:
        """Replace the official account's custom menu (`{"button": [...]}`)."""
        await self._call(self.mp_appid, "POST", "/cgi-bin/menu/create", body=dict(menu))

    # ------------------------------------------------------------------ transport

    async def _call(
        self,
        appid: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        binary: bool = False,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any] | bytes:
        """Call an endpoint that takes `?access_token=`: refresh once and retry once if WeChat rejects the token."""
        token = await self.access_token(appid=appid)
        for attempt in (1, 2):
            query = {"access_token": token, **(params or {})}
            result = await self._send(method, path, params=query, body=body, binary=binary)
            if isinstance(result, bytes):
                return result
            errcode = _errcode(result, path)
            if errcode in TOKEN_ERRCODES and attempt == 1:
                log.info("WeChat rejected the %s token on %s (errcode %s): refreshing once", appid, path, errcode)
                token = await self.refresh_access_token(
                    appid=appid, rejected=token, force_refresh=errcode in FORCE_REFRESH_ERRCODES
                )
                continue
            self._check(result, path, hide=(token,), retry_token=True)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        binary: bool = False,
    ) -> dict[str, Any] | bytes:
        """One HTTP exchange; transport failures become WeChatUnavailable. Logs only the path, never the query."""
        content = headers = None
        if body is not None:
            # WeChat mangles `\uXXXX` escapes in message text: send real UTF-8.
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers = {"Content-Type": "application/json; charset=utf-8"}
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._deadline):
                response = await self._http.request(
                    method, self._base + path, params=params, content=content, headers=headers
                )
        except (httpx.TimeoutException, TimeoutError):
            log.warning("WeChat %s %s timed out after %.2f s", method, path, time.monotonic() - started)
            raise WeChatUnavailable(
                "微信服务响应超时，请稍后再试", details={"api": path, "reason": "timeout"}
            ) from None
        except httpx.HTTPError as exc:
            # The exception text may carry the URL, hence only its type is logged.
            log.warning("WeChat %s %s failed: %s", method, path, type(exc).__name__)
            raise WeChatUnavailable(details={"api": path, "reason": "network"}) from None
        elapsed_ms = round((time.monotonic() - started) * 1000)
        log.debug("WeChat %s %s -> %s in %d ms", method, path, response.status_code, elapsed_ms)
        if response.status_code >= 500:
            log.warning("WeChat %s %s answered HTTP %s", method, path, response.status_code)
            raise WeChatUnavailable(details={"api": path, "reason": "http_status", "http_status": response.status_code})
        if response.status_code != 200:
            log.warning("WeChat %s %s answered HTTP %s", method, path, response.status_code)
            raise WeChatError(details={"api": path, "http_status": response.status_code})
        content_type = response.headers.get("content-type", "").lower()
        raw = response.content
        if binary and not content_type.startswith(("application/json", "text/")) and not raw.lstrip().startswith(b"{"):
            if not raw:
                raise _garbled(path, "empty")
            return raw
        try:
            # WeChat labels some JSON answers text/plain (jscode2session): parse by content, not by label.
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            log.warning("WeChat %s %s answered something that is not a JSON object", method, path)
            raise _garbled(path)
        return data

    def _check(self, data: dict[str, Any], path: str, *, hide: tuple[str, ...], retry_token: bool) -> None:
        """Raise the DomainError for a nonzero errcode (credentials scrubbed from WeChat's errmsg)."""
        errcode = _errcode(data, path)
        if errcode == 0:
            return
        errmsg = str(data.get("errmsg", ""))
        for value in hide:
            if value:
                errmsg = errmsg.replace(value, "***")
        errmsg = redact(errmsg)
        details = {"api": path}
        log.warning("WeChat %s answered errcode %s: %s", path, errcode, errmsg)
        if errcode in RATE_LIMIT_ERRCODES:
            raise WeChatRateLimited(errcode=errcode, errmsg=errmsg, details=details)
        if errcode in QUOTA_ERRCODES:
            raise WeChatQuotaExhausted(errcode=errcode, errmsg=errmsg, details=details)
        if errcode in CODE_ERRCODES:
            raise WeChatCodeInvalid(errcode=errcode, errmsg=errmsg, details=details)
        if retry_token and errcode in TOKEN_ERRCODES:
            raise WeChatTokenInvalid(errcode=errcode, errmsg=errmsg, details=details)
        raise WeChatError(f"微信接口返回错误（{errcode}）", errcode=errcode, errmsg=errmsg, details=details)


def _garbled(path: str, reason: str = "bad_response") -> WeChatUnavailable:
    """The error for an answer we cannot read (WeChat is then as good as unavailable)."""
    return WeChatUnavailable("微信服务返回了无法识别的内容", details={"api": path, "reason": reason})


def _errcode(data: dict[str, Any], path: str) -> int:
    try:
        return int(data.get("errcode") or 0)
    except (TypeError, ValueError):
        raise _garbled(path, "bad_errcode") from None


def _template_data(data: Mapping[str, str | Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Template fields as WeChat wants them: `{"name": {"value": "…"}}`."""
    return {key: {"value": value} if isinstance(value, str) else dict(value) for key, value in data.items()}

"""Real-name verification (实名核验): does this name belong to this identity card number?

The service talks to a `RealNameVerifier`; `make_verifier(settings)` picks one by
`settings.realname_verifier`:

* ``dev`` → `DevVerifier`, for development and tests only (settings refuse it in production). It
  accepts every structurally valid identity card number together with a 2-30 character name made
  of Chinese characters and "·" (as in "阿卜杜拉·买买提"). To simulate a mismatch, use a number
  whose sequence digits (positions 15-17) are ``999``, e.g.
  ``make_id_number(seq="999")``: the answer is ``ok=False, reason="mismatch"``.
* ``http`` → `HttpVerifier(settings.realname_verifier_url)`, the provincial identity platform.

Contract the provincial platform (or an adapter in front of it) must implement::

    POST <REALNAME_VERIFIER_URL>
    Content-Type: application/json
    {"name": "张三", "id_number": "43080219900101123X"}

    200 OK
    Content-Type: application/json
    {"match": true, "reference": "<the platform's id for this check, kept for the audit trail>"}

``match`` must be a JSON boolean: ``false`` means the name and number do not belong together
(``VerifyResult(ok=False, reason="mismatch")``). Any other answer (a network error, a timeout, a
non-2xx status, a body that is not JSON or lacks a boolean ``match``) is treated as "the platform
is unavailable" and raises `RealNameUnavailable` (503): the citizen is asked to try again later,
and is never told a mismatch the platform did not state. Neither the name nor the number is ever
logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx

from app import clock
from app.errors import ServiceUnavailable
from app.settings import SettingsError
from auth.idcard import InvalidIdNumber, validate_id_number

log = logging.getLogger("auth.realname")

MISMATCH_SEQUENCE = "999"
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_NAME = re.compile(rf"[{_HAN}]+(?:·[{_HAN}]+)*")
_MAX_REFERENCE = 128


class RealNameUnavailable(ServiceUnavailable):
    """The real-name verification platform could not give an answer."""

    code, message = "REALNAME_UNAVAILABLE", "实名核验服务暂时不可用，请稍后再试"


@dataclass(frozen=True)
class VerifyResult:
    """The verifier's answer: `ok`, a stable `reason` when not ok, and the platform's `reference`."""

    ok: bool
    reason: str | None = None
    reference: str | None = None


@runtime_checkable
class RealNameVerifier(Protocol):
    """Checks that a name and an identity card number belong to the same person."""

    async def verify(self, *, name: str, id_number: str) -> VerifyResult:
        """Answer whether `name` matches `id_number`; raise `RealNameUnavailable` when unable to tell."""
        ...


def is_valid_name(name: str) -> bool:
    """True for a 2-30 character name of Chinese characters, optionally joined by "·"."""
    return isinstance(name, str) and 2 <= len(name) <= 30 and _NAME.fullmatch(name) is not None


class DevVerifier:
    """Development verifier: any valid number and Chinese name match, except sequence "999" (mismatch)."""

    def __init__(self, today: Callable[[], dt.date] = clock.today) -> None:
        """`today` dates the birth-date check (the service clock by default)."""
        self._today = today

    async def verify(self, *, name: str, id_number: str) -> VerifyResult:
        """Return ok for a valid pair; reasons: invalid_name, invalid_id_number, mismatch."""
        if not is_valid_name(name):
            return VerifyResult(ok=False, reason="invalid_name")
        try:
            parsed = validate_id_number(id_number, today=self._today())
        except InvalidIdNumber:
            return VerifyResult(ok=False, reason="invalid_id_number")
        if parsed.number[14:17] == MISMATCH_SEQUENCE:
            return VerifyResult(ok=False, reason="mismatch")
        return VerifyResult(ok=True, reference=f"dev-{uuid.uuid4().hex[:16]}")


class HttpVerifier:
    """Asks the provincial identity platform over HTTP (contract in the module docstring)."""

    def __init__(self, url: str, timeout: float = 5, *, client: httpx.AsyncClient | None = None) -> None:
        """`client` lets the app share one connection pool; by default each call opens its own."""
        if not url or not url.startswith(("http://", "https://")):
            raise ValueError("the real-name verifier URL must be an absolute http(s) URL")
        self.url = url
        self.timeout = timeout
        self._client = client

    async def verify(self, *, name: str, id_number: str) -> VerifyResult:
        """POST {"name", "id_number"} and read {"match", "reference"}; raise `RealNameUnavailable` on failure."""
        body = {"name": name, "id_number": id_number}
        try:
            if self._client is not None:
                response = await self._client.post(self.url, json=body, timeout=self.timeout)
            else:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            log.warning("real-name platform unreachable: %s", type(exc).__name__)
            raise RealNameUnavailable() from None
        if not response.is_success:
            log.warning("real-name platform answered HTTP %s", response.status_code)
            raise RealNameUnavailable()
        return self._result(response)

    @staticmethod
    def _result(response: httpx.Response) -> VerifyResult:
        try:
            data: Any = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("match"), bool):
            log.warning("real-name platform answered an unexpected body (HTTP %s)", response.status_code)
            raise RealNameUnavailable()
        reference = data.get("reference")
        reference = reference[:_MAX_REFERENCE] if isinstance(reference, str) and reference else None
        if data["match"]:
            return VerifyResult(ok=True, reference=reference)
        return VerifyResult(ok=False, reason="mismatch", reference=reference)


def make_verifier(settings: Any) -> RealNameVerifier:
    """The verifier `settings.realname_verifier` names ("dev" or "http")."""
    kind = settings.realname_verifier
    if kind == "dev":
        return DevVerifier()
    if kind == "http":
        if not settings.realname_verifier_url:
            raise SettingsError("REALNAME_VERIFIER=http requires REALNAME_VERIFIER_URL")
        return HttpVerifier(settings.realname_verifier_url)
    raise SettingsError(f"unknown real-name verifier {kind!r}")

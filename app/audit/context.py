"""Where a write comes from: the request middleware sets it once per request, the audit log reads it."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any


class Origin:
    """The client address, the request id and the request's context (its `principal`, once a guard set it).

    A plain class with slots, not a frozen dataclass: one is made per request, and a frozen dataclass's
    `__init__` sets each field through `object.__setattr__`.
    """

    __slots__ = ("holder", "request", "request_id")

    def __init__(self, request_id: str = "", holder: Any = None, request: Any = None) -> None:
        self.request_id = request_id
        self.holder = holder  # the request's ctx namespace: read late, after the sign-in guard ran
        self.request = request  # the Sanic request, whose client address is resolved only when a write is audited

    @property
    def ip(self) -> str:
        """The client's address (behind a trusted proxy, the one it forwarded); resolved on first use."""
        if self.request is None:
            return ""
        return self.request.remote_addr or self.request.ip or ""

    @property
    def principal(self) -> Any:
        """The signed-in caller of this request, if any."""
        return getattr(self.holder, "principal", None)


_NOWHERE = Origin()
_ORIGIN: ContextVar[Origin | None] = ContextVar("audit_origin", default=None)


def set_origin(origin: Origin) -> None:
    """Name where the writes of this task (one request) come from."""
    _ORIGIN.set(origin)


def current() -> Origin:
    """Where the current task's writes come from (an empty origin outside a request: CLI, jobs)."""
    return _ORIGIN.get() or _NOWHERE

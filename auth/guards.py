"""Guards handlers use to say what they need.

Until staff accounts exist, administration is guarded by one admin token from settings.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from sanic import Request

from app.errors import Forbidden, Unauthorized


class AdminTokenRequired(Unauthorized):
    code, message = "ADMIN_TOKEN_REQUIRED", "需要管理员凭证"


class AdminTokenInvalid(Forbidden):
    code, message = "ADMIN_TOKEN_INVALID", "管理员凭证无效"


def admin_required(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Require `Authorization: Bearer <ADMIN_TOKEN>`."""

    @functools.wraps(handler)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AdminTokenRequired(headers={"WWW-Authenticate": "Bearer"})
        expected = request.app.ctx.settings.admin_token
        if not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise AdminTokenInvalid()
        return await handler(request, *args, **kwargs)

    return wrapper

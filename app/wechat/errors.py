"""WeChat API failures as DomainErrors with stable codes (callers never see httpx or raw errcodes)."""

from __future__ import annotations

from typing import Any

from app.errors import DomainError

RETRY_AFTER_SECONDS = 60


class WeChatError(DomainError):
    """WeChat answered with an error we cannot handle; `errcode`/`errmsg` are kept in details."""

    code, message, status = "WECHAT_ERROR", "微信接口调用失败，请稍后再试", 502

    def __init__(
        self,
        message: str | None = None,
        *,
        errcode: int | None = None,
        errmsg: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        merged = dict(details or {})
        if errcode is not None:
            merged["errcode"] = errcode
        if errmsg is not None:
            merged["errmsg"] = errmsg
        super().__init__(message, details=merged, headers=headers)
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatUnavailable(WeChatError):
    """WeChat could not be reached in time, answered 5xx, or answered something unreadable."""

    code, message, status = "WECHAT_UNAVAILABLE", "微信服务暂时不可用，请稍后再试", 503


class WeChatRateLimited(WeChatError):
    """WeChat's call quota is used up for now (45009 daily, 45011 per minute): back off, do not retry at once."""

    code, message, status = "WECHAT_RATE_LIMITED", "微信接口调用过于频繁，请稍后再试", 503

    def __init__(
        self,
        message: str | None = None,
        *,
        errcode: int | None = None,
        errmsg: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: int = RETRY_AFTER_SECONDS,
    ) -> None:
        super().__init__(
            message,
            errcode=errcode,
            errmsg=errmsg,
            details={**(details or {}), "retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class WeChatQuotaExhausted(WeChatError):
    """43101: the user refused or used up their subscription quota; permanent, never retried."""

    code, message, status = "WECHAT_QUOTA_EXHAUSTED", "用户未订阅该消息或订阅次数已用完", 502


class WeChatCodeInvalid(WeChatError):
    """40029 / 40163: the login code is unknown, expired or already used; the client must log in again."""

    code, message, status = "WECHAT_CODE_INVALID", "微信登录凭证无效或已使用，请重新登录", 401


class WeChatTokenInvalid(WeChatError):
    """WeChat still rejected the access token after one refresh and retry (internal: a configuration problem)."""

    code, message, status = "WECHAT_TOKEN_INVALID", "微信接口凭证无效，请联系管理员", 502

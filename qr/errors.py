"""QR code errors (stable codes, Chinese messages)."""

from __future__ import annotations

from app.errors import DomainError, InvalidInput, NotFound


class CodeNotFound(NotFound):
    code, message = "CODE_NOT_FOUND", "二维码不存在或已失效，请确认后重新扫码"


class CodeGone(DomainError):
    code, message, status = "CODE_GONE", "二维码已失效", 410


class CodeDisabled(CodeGone):
    code, message = "CODE_DISABLED", "该二维码已停用"


class CodeExpired(CodeGone):
    code, message = "CODE_EXPIRED", "该二维码已过有效期"


class CodeNotYetValid(CodeGone):
    code, message = "CODE_NOT_YET_VALID", "该二维码尚未启用"


class CodeExhausted(CodeGone):
    code, message = "CODE_EXHAUSTED", "该二维码的可用次数已用完"


class TargetInvalid(InvalidInput):
    code, message = "TARGET_INVALID", "二维码指向的事项不存在或未发布"


class ValidityEnded(InvalidInput):
    code, message = "CODE_VALIDITY_ENDED", "有效期结束时间已过，不能设置已经结束的有效期"

"""Domain errors with stable codes, and the one JSON error envelope."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A business error: a stable code, a Chinese message, an HTTP status and details."""

    code: str = "DOMAIN_ERROR"
    message: str = "请求无法处理"
    status: int = 400

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.details = details or {}
        self.code = code or self.code
        self.status = status or self.status
        self.headers = headers or {}
        super().__init__(f"{self.code}: {self.message}")

    def envelope(self) -> dict[str, Any]:
        """The JSON body every error response carries."""
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Shape `{"error": {"code", "message", "details"}}`."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


class NotFound(DomainError):
    code, message, status = "NOT_FOUND", "请求的资源不存在", 404


class InvalidInput(DomainError):
    code, message, status = "INVALID_INPUT", "输入不合法", 422


class Conflict(DomainError):
    code, message, status = "CONFLICT", "与当前状态冲突", 409


class Unauthorized(DomainError):
    code, message, status = "UNAUTHORIZED", "请先登录", 401


class Forbidden(DomainError):
    code, message, status = "FORBIDDEN", "无权执行此操作", 403


class ServiceUnavailable(DomainError):
    code, message, status = "SERVICE_UNAVAILABLE", "服务暂时不可用，请稍后再试", 503


class DatabaseUnavailable(ServiceUnavailable):
    code, message = "DATABASE_UNAVAILABLE", "系统繁忙或数据库暂时不可用，请稍后重试（重试不会重复办理）"

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": "2"})
        super().__init__(message, **kwargs)


class MatterNotFound(NotFound):
    code, message = "MATTER_NOT_FOUND", "未找到该政务服务事项"


class VersionNotFound(NotFound):
    code, message = "VERSION_NOT_FOUND", "未找到该事项的此版本"


class GuideInvalid(InvalidInput):
    code, message = "GUIDE_INVALID", "办事指南内容不完整或不合法"


class BundleInvalid(InvalidInput):
    code, message = "BUNDLE_INVALID", "「一件事」与其成员事项的时限或状态不一致"


class MatterCodeTaken(Conflict):
    code, message = "MATTER_CODE_TAKEN", "事项编码已存在"


class VersionNotDraft(Conflict):
    code, message = "VERSION_NOT_DRAFT", "只有草稿版本可以修改或发布"


class MatterInBundle(Conflict):
    code, message = "MATTER_IN_BUNDLE", "该事项是已发布“一件事”的成员，请先修改或取消该“一件事”"


class MatterRetired(Conflict):
    code, message = "MATTER_RETIRED", "该事项已取消"


class ImportInvalid(InvalidInput):
    code, message = "IMPORT_INVALID", "导入文件中有不合法的条目，未导入任何内容"


_ZH_MESSAGES = {
    "missing": "必填",
    "extra_forbidden": "不允许的字段",
    "greater_than_equal": "应大于或等于 {ge}",
    "greater_than": "应大于 {gt}",
    "less_than_equal": "应小于或等于 {le}",
    "less_than": "应小于 {lt}",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "bool_parsing": "应为布尔值（true/false）",
    "bool_type": "应为布尔值",
    "string_type": "应为字符串",
    "string_too_long": "长度不能超过 {max_length}",
    "string_too_short": "长度不能少于 {min_length}",
    "string_pattern_mismatch": "格式不正确",
    "enum": "应为以下之一：{expected}",
    "literal_error": "应为以下之一：{expected}",
    "too_short": "至少需要 {min_length} 项",
    "too_long": "最多 {max_length} 项",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "list_type": "应为数组",
    "tuple_type": "应为数组",
    "json_invalid": "不是合法的 JSON",
}


def _zh(item: dict[str, Any]) -> str:
    kind = item.get("type", "")
    if kind == "value_error":
        # Our own validators already speak Chinese.
        return str(item.get("ctx", {}).get("error", item.get("msg", "")))
    template = _ZH_MESSAGES.get(kind)
    if template is None:
        return "取值不合法"
    try:
        ctx = {k: str(v).replace("'", "").replace(" or ", ", ") for k, v in item.get("ctx", {}).items()}
        return template.format(**ctx)
    except (KeyError, IndexError):
        return template


def pydantic_details(exc: Any) -> dict[str, Any]:
    """Turn a pydantic ValidationError into per-field details (field path -> Chinese reasons)."""
    fields: dict[str, list[str]] = {}
    for item in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in item.get("loc", ())) or "__root__"
        fields.setdefault(loc, []).append(_zh(item))
    return {"fields": fields}

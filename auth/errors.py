"""Authentication and authorisation errors (stable codes, Chinese messages)."""

from __future__ import annotations

from app.errors import Conflict, DomainError, Forbidden, NotFound, Unauthorized


class TokenMissing(Unauthorized):
    code, message = "TOKEN_MISSING", "请先登录"


class TokenInvalid(Unauthorized):
    code, message = "TOKEN_INVALID", "登录凭证无效，请重新登录"


class TokenExpired(Unauthorized):
    code, message = "TOKEN_EXPIRED", "登录已过期，请重新登录"


class TokenRevoked(Unauthorized):
    code, message = "TOKEN_REVOKED", "登录已失效，请重新登录"


class RefreshReused(Unauthorized):
    code, message = "REFRESH_TOKEN_REUSED", "检测到登录凭证被重复使用，已退出所有相关登录"


class WrongRole(Forbidden):
    code, message = "INSUFFICIENT_ROLE", "当前账号无权执行此操作"


class OutOfScope(Forbidden):
    code, message = "OUT_OF_SCOPE", "超出当前账号的管辖范围"


class AssuranceTooLow(Forbidden):
    code, message = "ASSURANCE_TOO_LOW", "请先完成身份认证"


class BadCredentials(Unauthorized):
    code, message = "BAD_CREDENTIALS", "用户名或密码错误"


class AccountLocked(DomainError):
    code, message, status = "ACCOUNT_LOCKED", "登录失败次数过多，请稍后再试", 429


class AccountDisabled(Forbidden):
    code, message = "ACCOUNT_DISABLED", "账号已停用"


class OtpInvalid(Unauthorized):
    code, message = "OTP_INVALID", "验证码错误或已过期"


class IdentityConflict(Conflict):
    code, message = "IDENTITY_CONFLICT", "该身份已与其他实名账号绑定，无法合并"


class RealNameDone(Conflict):
    code, message = "REALNAME_ALREADY_VERIFIED", "您已完成实名认证，无需重复认证"


class RealNameMismatch(DomainError):
    code, message, status = "REALNAME_MISMATCH", "姓名与身份证号不一致，或该身份证号已绑定其他账号", 422


class StateInvalid(DomainError):
    code, message, status = "OAUTH_STATE_INVALID", "授权请求已失效，请重新进入", 400


class ClientUnauthorized(Unauthorized):
    code, message = "CLIENT_UNAUTHORIZED", "调用方凭证无效"


class StaffNotFound(NotFound):
    code, message = "STAFF_NOT_FOUND", "未找到该工作人员账号"


# What a guarded endpoint can answer before its handler runs (listed in every operation's docs).
STAFF_AUTH_ERRORS = [TokenMissing, TokenInvalid, TokenExpired, TokenRevoked, WrongRole]
CITIZEN_AUTH_ERRORS = [TokenMissing, TokenInvalid, TokenExpired, TokenRevoked, WrongRole, AssuranceTooLow]


class TotpRequired(Unauthorized):
    code, message = "TOTP_REQUIRED", "该账号需要两步验证：请同时提交动态验证码（totp）"


class TotpInvalid(Unauthorized):
    code, message = "TOTP_INVALID", "验证码错误、已过期或已使用过"


class TotpNotEnrolled(Forbidden):
    code, message = "TOTP_ENROLMENT_REQUIRED", "该账号需要两步验证，请先在工作台登录页完成绑定"


class SignInPending(Unauthorized):
    code, message = "SIGN_IN_EXPIRED", "登录步骤已过期，请重新输入用户名和密码"

"""Case and upload errors with stable codes."""

from __future__ import annotations

from app.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound, ServiceUnavailable


class UploadNotFound(NotFound):
    code, message = "UPLOAD_NOT_FOUND", "未找到该上传文件"


class UploadTooLarge(DomainError):
    code, message, status = "UPLOAD_TOO_LARGE", "文件超过大小上限", 413


class UploadInvalid(InvalidInput):
    code, message = "UPLOAD_INVALID", "上传内容不合法，请以 multipart/form-data 提交一个名为 file 的文件"


class FileTypeMismatch(InvalidInput):
    code, message = "FILE_TYPE_MISMATCH", "文件的实际类型与允许的类型不符"


class UploadInUse(Conflict):
    code, message = "UPLOAD_IN_USE", "该文件已用于其他办件"


class CaseNotFound(NotFound):
    code, message = "CASE_NOT_FOUND", "未找到该办件"


class OnlineApplyNotOffered(InvalidInput):
    code, message = "ONLINE_APPLY_NOT_OFFERED", "该事项暂不支持网上申报"


class MaterialsMissing(InvalidInput):
    code, message = "MATERIALS_MISSING", "缺少必需的申请材料"


class MaterialUnknown(InvalidInput):
    code, message = "MATERIAL_UNKNOWN", "办事指南中没有该材料"


class DeliveryNotOffered(InvalidInput):
    code, message = "DELIVERY_NOT_OFFERED", "该事项不提供邮寄送达，请选择窗口领取"


class IllegalTransition(Conflict):
    code, message = "ILLEGAL_TRANSITION", "办件当前状态不允许此操作"


class ActionInvalid(InvalidInput):
    code, message = "ACTION_INVALID", "办件操作的参数不完整"


class CaseOutOfScope(Forbidden):
    code, message = "CASE_OUT_OF_SCOPE", "该办件不属于您负责的部门或大厅"


class CaseChanged(Conflict):
    code, message = "CASE_CHANGED", "办件刚被他人处理，请刷新后重试"


class CursorInvalid(InvalidInput):
    code, message = "CURSOR_INVALID", "游标无效"


class ProgressNotFound(NotFound):
    code, message = "PROGRESS_NOT_FOUND", "办件编号或查询码不正确"


class ReceiptCodeInvalid(ProgressNotFound):
    """What a page opened by a receipt's QR code says when the code fails: nobody typed a number or a code there.

    The API keeps one PROGRESS_NOT_FOUND for every failed query; the progress page names the QR code instead.
    """

    code, message = "RECEIPT_CODE_INVALID", "回执二维码无效或已失效，请核对回执，或输入办件编号和查询码查询"


class StorageUnavailable(ServiceUnavailable):
    code, message = "STORAGE_UNAVAILABLE", "文件存储暂时不可用，请稍后重试"

"""Consultation, rating and rectification errors with stable codes."""

from __future__ import annotations

from app.errors import Conflict, Forbidden, InvalidInput, NotFound


class QuestionNotFound(NotFound):
    code, message = "QUESTION_NOT_FOUND", "未找到该咨询"


class QuestionAnswered(Conflict):
    code, message = "QUESTION_ANSWERED", "该咨询已答复"


class QuestionNotAnswered(Conflict):
    code, message = "QUESTION_NOT_ANSWERED", "该咨询尚未答复，不能公开为常见问题"


class QuestionOutOfScope(Forbidden):
    code, message = "QUESTION_OUT_OF_SCOPE", "该咨询不属于您所在部门"


class ConsultNotOffered(InvalidInput):
    code, message = "CONSULT_NOT_OFFERED", "该事项已停止办理，暂不接受咨询"


class RatingSubjectNotFound(NotFound):
    code, message = "RATING_SUBJECT_NOT_FOUND", "未找到可评价的办件、签到或咨询"


class RatingNotFound(NotFound):
    code, message = "RATING_NOT_FOUND", "未找到该评价"


class NotRateableYet(Conflict):
    code, message = "NOT_RATEABLE_YET", "办理尚未完成，暂不能评价"


class AlreadyRated(Conflict):
    code, message = "ALREADY_RATED", "已评价过（一次一评），可追加一次评价"


class RatingWindowClosed(Conflict):
    code, message = "RATING_WINDOW_CLOSED", "已超过评价期限"


class AddendumExists(Conflict):
    code, message = "ADDENDUM_EXISTS", "已追加过评价，评价不能修改"


class RectificationNotFound(NotFound):
    code, message = "RECTIFICATION_NOT_FOUND", "未找到该整改单"


class RectificationOutOfScope(Forbidden):
    code, message = "RECTIFICATION_OUT_OF_SCOPE", "该整改单不属于您所在部门"


class StepOutOfOrder(Conflict):
    code, message = "RECTIFICATION_STEP_OUT_OF_ORDER", "整改步骤顺序不正确"


class RectificationChanged(Conflict):
    code, message = "RECTIFICATION_CHANGED", "整改单刚被他人处理，请刷新后重试"


class RangeInvalid(InvalidInput):
    code, message = "RANGE_INVALID", "日期范围不正确"

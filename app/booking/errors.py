"""Booking errors with stable codes."""

from __future__ import annotations

from app.errors import Conflict, DomainError, InvalidInput, NotFound


class SlotNotFound(NotFound):
    code, message = "SLOT_NOT_FOUND", "该预约时段不存在"


class HallNotFound(NotFound):
    code, message = "HALL_NOT_FOUND", "未找到该办事大厅"


class BookingNotFound(NotFound):
    code, message = "BOOKING_NOT_FOUND", "未找到该预约"


class CheckInNotFound(NotFound):
    code, message = "CHECKIN_NOT_FOUND", "未找到该签到记录"


class SlotInPast(InvalidInput):
    code, message = "SLOT_IN_PAST", "该时段已过，请选择其他时段"


class SlotOutsideWindow(InvalidInput):
    code, message = "SLOT_OUTSIDE_WINDOW", "该时段不在可预约范围内"


class SlotNotForMatter(InvalidInput):
    code, message = "SLOT_NOT_FOR_MATTER", "该时段不属于此事项的办理大厅或业务板块"


class BookingNotOffered(InvalidInput):
    code, message = "BOOKING_NOT_OFFERED", "该事项暂不提供预约办理"


class RangeInvalid(InvalidInput):
    code, message = "RANGE_INVALID", "日期范围不合法"


class SlotFull(Conflict):
    code, message = "SLOT_FULL", "该时段已约满，请选择其他时段"


class BookingExists(Conflict):
    code, message = "BOOKING_EXISTS", "您当天已预约过该事项"


class BookingLimitReached(Conflict):
    code, message = "BOOKING_LIMIT_REACHED", "您的有效预约已达上限，请先办理或取消已有预约"


class BookingBusy(Conflict):
    code, message = "BOOKING_BUSY", "您的其他预约正在同时提交，请稍后重试"


class CutoffPassed(Conflict):
    code, message = "BOOKING_CUTOFF_PASSED", "已过该时段的预约、取消或改约截止时间"


class BookingNotActive(Conflict):
    code, message = "BOOKING_NOT_ACTIVE", "该预约已签到、取消或爽约，不能再操作"


class UndoExpired(Conflict):
    code, message = "UNDO_EXPIRED", "已超过可撤销的时间"


class CheckInUndone(Conflict):
    code, message = "CHECKIN_ALREADY_UNDONE", "该签到已撤销"


class BookingRestricted(DomainError):
    code, message, status = "BOOKING_RESTRICTED", "近期爽约次数过多，暂停预约", 403


class CounterUnknown(InvalidInput):
    code, message = "COUNTER_UNKNOWN", "该窗口不属于本大厅"


class NothingCalled(Conflict):
    code, message = "NOTHING_CALLED", "本窗口当前没有正在呼叫的号码"


class QueueTicketNotFound(NotFound):
    code, message = "QUEUE_TICKET_NOT_FOUND", "该排队号不存在或不属于本大厅"

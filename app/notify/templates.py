"""What each kind of notification says, as an official-account template message and a mini-program
subscribe message (template ids come from settings; the field names follow the templates we apply for)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rendered:
    """The two renderings of one notification."""

    mp_data: dict[str, str]
    mini_data: dict[str, str]
    url: str | None = None
    page: str | None = None


def _thing(text: Any, limit: int = 20) -> str:
    """WeChat's `thing` fields take at most 20 characters."""
    value = str(text or "")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _when(iso: str | None) -> str:
    """`2026-10-08T09:00:00+08:00` -> `2026-10-08 09:00` (the `time` field format)."""
    return (iso or "")[:16].replace("T", " ")


def booking_reminder(p: dict[str, Any]) -> Rendered:
    """The day-before reminder of a booking."""
    return Rendered(
        mp_data={
            "first": "您预约的事项明天办理，请按时前往",
            "keyword1": p.get("matter_name", ""),
            "keyword2": _when(p.get("starts_at")),
            "keyword3": f"{p.get('hall_name', '')} {p.get('hall_address', '')}".strip(),
            "remark": "请携带申请材料，凭预约码到窗口扫码签到。如不能前往，请提前取消预约。",
        },
        mini_data={
            "thing1": _thing(p.get("matter_name")),
            "time2": _when(p.get("starts_at")),
            "thing3": _thing(p.get("hall_name")),
            "thing4": "请携带材料按时签到，不能前往请提前取消",
        },
        url=p.get("url"),
    )


def booking_no_show(p: dict[str, Any]) -> Rendered:
    """A booking nobody checked in for."""
    rule = f"{p.get('days', 90)} 天内爽约 {p.get('limit', 3)} 次将暂停预约"
    return Rendered(
        mp_data={
            "first": "您有一次预约未按时签到，已记为爽约",
            "keyword1": p.get("matter_name", ""),
            "keyword2": _when(p.get("starts_at")),
            "keyword3": p.get("hall_name", ""),
            "remark": f"{rule}。如需办理，请重新预约。",
        },
        mini_data={
            "thing1": _thing(p.get("matter_name")),
            "time2": _when(p.get("starts_at")),
            "thing3": _thing(p.get("hall_name")),
            "thing4": _thing(rule),
        },
    )


def case_progress(p: dict[str, Any]) -> Rendered:
    """A step of a case (办件进度): accepted, a correction asked for, decided, delivered, completed …"""
    return Rendered(
        mp_data={
            "first": p.get("text", ""),
            "keyword1": p.get("case_no", ""),
            "keyword2": p.get("matter_name", ""),
            "keyword3": p.get("status_name", ""),
            "keyword4": _when(p.get("at")),
            "remark": "点击查看办件进度详情",
        },
        mini_data={
            "character_string1": p.get("case_no", "")[:32],
            "thing2": _thing(p.get("matter_name")),
            "phrase3": _thing(p.get("status_name"), 5),
            "time4": _when(p.get("at")),
            "thing5": _thing(p.get("text")),
        },
        url=p.get("url"),
    )


def consult_answered(p: dict[str, Any]) -> Rendered:
    """The department answered a question (咨询答复)."""
    return Rendered(
        mp_data={
            "first": "您的咨询已答复",
            "keyword1": p.get("matter_name", ""),
            "keyword2": p.get("question", ""),
            "keyword3": _when(p.get("at")),
            "remark": p.get("answer", ""),
        },
        mini_data={
            "thing1": _thing(p.get("matter_name")),
            "thing2": _thing(p.get("question")),
            "thing3": _thing(p.get("answer")),
            "time4": _when(p.get("at")),
        },
        url=p.get("url"),
    )


def rating_reply(p: dict[str, Any]) -> Rendered:
    """The department's reply to a bad rating after rectifying (差评整改答复)."""
    return Rendered(
        mp_data={
            "first": "您的评价已收到整改答复",
            "keyword1": p.get("level_name", ""),
            "keyword2": _when(p.get("at")),
            "remark": p.get("reply", ""),
        },
        mini_data={
            "thing1": _thing(p.get("level_name")),
            "thing2": _thing(p.get("reply")),
            "time3": _when(p.get("at")),
        },
        url=p.get("url"),
    )


RENDERERS = {
    "booking_reminder": booking_reminder,
    "booking_no_show": booking_no_show,
    "case_progress": case_progress,
    "consult_answered": consult_answered,
    "rating_reply": rating_reply,
}

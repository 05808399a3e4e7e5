"""What each kind of notification says, as an official-account template message and a mini-program
subscribe message (template ids come from settings; the field names follow the templates we apply for),
and as a text message for citizens WeChat cannot reach."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auth.sms import SIGNATURE


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


# ---------------------------------------------------------------- text messages
#
# One short text per kind: the signature and the message fit one 70-character SMS where they can,
# then the link to the citizen's own page (sign-in required). A text never carries the query code
# or the signed progress link (either opens the case without signing in), nor more personal data
# than the template message shows; the answer of a consultation or a reply stays behind the link.

SMS_LIMIT = 70  # characters of one UCS-2 text message, the link aside
SMS_PAGES = {
    "case": "/m/me/cases/{id}",
    "booking": "/m/me/bookings/{id}",
    "consultation": "/m/me/questions/{id}",
    "rating": "/m/me/ratings/{id}",
}  # the H5 page of each subject
SMS_FALLBACK_PAGE = "/m/me"  # subjects without a page of their own


def sms_link(base_url: str, subject_type: str, subject_id: str) -> str:
    """The citizen's own page of what a notification is about."""
    return base_url.rstrip("/") + SMS_PAGES.get(subject_type, SMS_FALLBACK_PAGE).format(id=subject_id)


def _day(iso: str | None) -> str:
    """`2026-10-08T09:00:00+08:00` -> `10月8日09:00` (short for a text)."""
    if not iso or len(iso) < 16:
        return ""
    return f"{int(iso[5:7])}月{int(iso[8:10])}日{iso[11:16]}"


_LEAD = "详情："  # before the link
_WIDE = r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]"  # CJK characters and full-width punctuation
_CJK_SPACE = re.compile(rf"(?<={_WIDE}) +| +(?={_WIDE})")  # spaces a text needs no room for


def _room(head: str, tail: str = "") -> int:
    """Characters left for the flexible part of a text."""
    return SMS_LIMIT - len(SIGNATURE) - len(head) - len(tail) - len(_LEAD)


def _text(head: str, flexible: str = "", tail: str = "", *, link: str) -> str:
    """Signature, head, as much of `flexible` as fits the limit, tail, then the link."""
    room = _room(head, tail)
    flexible = flexible if len(flexible) <= room else (flexible[: room - 1] + "…" if room > 1 else "")
    return f"{SIGNATURE}{head}{flexible}{tail}{_LEAD}{link}"


def booking_reminder_sms(p: dict[str, Any], link: str) -> str:
    """The day-before reminder of a booking."""
    head = f"您预约的{_thing(p.get('matter_name'), 12)}将于{_day(p.get('starts_at'))}在"
    return _text(head, str(p.get("hall_name") or "大厅"), "办理，请按时签到，不能前往请提前取消。", link=link)


def booking_no_show_sms(p: dict[str, Any], link: str) -> str:
    """A booking nobody checked in for."""
    head = f"您预约的{_thing(p.get('matter_name'), 12)}（{_day(p.get('starts_at'))}）未签到，已记爽约。"
    return _text(head, f"{p.get('days', 90)}天内爽约{p.get('limit', 3)}次将暂停预约。", link=link)


def case_progress_sms(p: dict[str, Any], link: str) -> str:
    """A step of a case: the case number (and the matter when the whole step text still fits), then the step."""
    text = _CJK_SPACE.sub("", str(p.get("text") or p.get("status_name") or "").strip())
    text = text if text.endswith(("。", "！", "？")) else text + "。"
    head = f"您的办件{p.get('case_no', '')}（{_thing(p.get('matter_name'), 12)}）："
    if len(text) > _room(head):
        head = f"您的办件{p.get('case_no', '')}："  # what the step says matters more than the matter's name
    return _text(head, text, link=link)


def consult_answered_sms(p: dict[str, Any], link: str) -> str:
    """The department answered a question; the answer is read behind the link."""
    return _text(f"您关于{_thing(p.get('matter_name'), 12)}的咨询已答复，请登录查看。", link=link)


def rating_reply_sms(p: dict[str, Any], link: str) -> str:
    """The department replied to a bad rating; the reply is read behind the link."""
    return _text(f"您的评价（{p.get('level_name', '')}）已收到整改答复，请登录查看。", link=link)


SMS_RENDERERS: dict[str, Callable[[dict[str, Any], str], str]] = {
    "booking_reminder": booking_reminder_sms,
    "booking_no_show": booking_no_show_sms,
    "case_progress": case_progress_sms,
    "consult_answered": consult_answered_sms,
    "rating_reply": rating_reply_sms,
}

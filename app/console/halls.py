"""Console pages of the halls' booking calendars (administrators): weekly hours, capacity, closures, counters.

The pages call the same service functions as /api/v1/admin/halls (app.booking.admin via app.booking.views).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import ValidationError
from sanic import Blueprint, HTTPResponse, Request

from app.booking import admin
from app.booking.errors import HallNotFound
from app.booking.views import ClosureBody, CounterItem
from app.console.kit import page, see_other, staff_page
from app.errors import DomainError, InvalidInput, pydantic_details
from app.http import doc
from app.matters import service as catalogue
from app.matters.schemas import SECTION_NAMES, Section
from app.web.kit import field_errors, form_data

bp = Blueprint("console_halls", url_prefix="")
TAG = "console 工作台"
WEEKDAYS = {"1": "周一", "2": "周二", "3": "周三", "4": "周四", "5": "周五", "6": "周六", "7": "周日"}
PERIOD_RE = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–~至]\s*(\d{1,2}:\d{2})\s*$")
NUMBERS = ("slot_minutes", "default_capacity", "window_days", "cutoff_minutes")


def hours_text(periods: Any) -> str:
    """A day's periods as the form shows them: 09:00-12:00, 13:30-17:00."""
    return "，".join(f"{start}-{end}" for start, end in periods)


def _periods(text: str, day: str, errors: dict[str, str]) -> list[list[str]]:
    out = []
    for part in re.split(r"[,，;；]", text or ""):
        if not part.strip():
            continue
        match = PERIOD_RE.match(part)
        if match is None:
            errors[f"hours_{day}"] = f"「{part.strip()[:20]}」应写成 09:00-12:00"
            continue
        out.append([f"{int(t.split(':')[0]):02d}:{t.split(':')[1]}" for t in match.groups()])
    return out


def _config_from_form(data: dict[str, Any], current: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The schedule's config from the form (fields the form lacks keep their current value)."""
    errors: dict[str, str] = {}
    config = dict(current)
    config["hours"] = {d: p for d in WEEKDAYS if (p := _periods(str(data.get(f"hours_{d}", "")), d, errors))}
    for key in NUMBERS:
        raw = str(data.get(key, "")).strip()
        config[key] = int(raw) if raw.isdigit() else raw
    config["same_day"] = data.get("same_day") == "1"
    capacity: dict[str, Any] = {}
    for section in Section:
        raw = str(data.get(f"cap_{section.value}", "")).strip()
        if raw:
            capacity[section.value] = int(raw) if raw.isdigit() else raw
    config["capacity"] = capacity
    return config, errors


def _schedule_errors(exc: DomainError) -> dict[str, str]:
    """Schedule errors on the form's fields (capacity.tax -> cap_tax, hours.3 -> hours_3)."""
    out: dict[str, str] = {}
    for path, message in field_errors(exc).items():
        parts = path.split(".")
        if parts[0] == "capacity":
            named = parts[1] if len(parts) > 1 else next((x.value for x in Section if message.startswith(x.value)), "")
            key = f"cap_{named}" if named in Section.__members__ else "schedule"
        elif parts[0] == "hours":
            # The schedule checks the week as a whole and names the weekday in its message.
            day = parts[1] if len(parts) > 1 else (re.search(r"星期 ([1-7])", message) or [None, ""])[1]
            key = f"hours_{day}" if day in WEEKDAYS else "hours"
        elif parts[0] in NUMBERS:
            key = parts[0]
        else:
            key = "schedule"
        out[key] = f"{out[key]}；{message}" if key in out else message
    return out


async def _hall_page(request: Request, hall: str, *, status: int = 200, errors: dict[str, str] | None = None,
                     typed: dict[str, Any] | None = None) -> HTTPResponse:  # fmt: skip
    halls = {h.code: h for h in await catalogue.list_halls()}
    if hall not in halls:
        raise HallNotFound(details={"hall": hall[:40]})
    schedule = await admin.get_schedule(hall=hall)
    done = {
        "schedule": "预约日历已保存。",
        "closure": "已设置闭厅。",
        "reopened": "已取消闭厅。",
        "counters": "窗口已保存。",
    }
    return page(request, "hall.html", status=status, hall=halls[hall], schedule=schedule,
                config=schedule.config.model_dump(mode="json"), closures=await admin.list_closures(hall=hall),
                counters=await admin.get_counters(hall=hall), errors=errors or {}, typed=typed or {},
                weekdays=WEEKDAYS, sections={s.value: SECTION_NAMES[s] for s in Section}, hours_text=hours_text,
                notice=done.get(request.args.get("done", ""), ""))  # fmt: skip


@bp.get("/console/halls")
@doc(tag=TAG, summary="大厅预约日历：选择大厅")
@staff_page("admin")
async def halls(request: Request) -> HTTPResponse:
    """Every hall, linking to its calendar."""
    return page(request, "halls.html", halls=await catalogue.list_halls())


@bp.get("/console/halls/<hall:str>")
@doc(tag=TAG, summary="大厅预约日历：每周办公时段、各板块号数、闭厅、窗口", errors=[HallNotFound])
@staff_page("admin")
async def hall(request: Request, hall: str) -> HTTPResponse:
    """A hall's weekly schedule, capacities, closures and counters."""
    return await _hall_page(request, hall)


@bp.post("/console/halls/<hall:str>/schedule")
@doc(tag=TAG, summary="保存大厅预约日历（今后时段的号数随即更新）", errors=[HallNotFound, admin.ScheduleInvalid])
@staff_page("admin")
async def schedule(request: Request, hall: str) -> HTTPResponse:
    """Replace the hall's schedule with the form's hours and capacities."""
    data = form_data(request)
    current = (await admin.get_schedule(hall=hall)).config.model_dump(mode="json")
    config, errors = _config_from_form(data, current)
    if errors:
        return await _hall_page(request, hall, status=422, errors=errors, typed=data)
    try:
        await admin.put_schedule(request.app.ctx.booking, hall=hall, config=config)
    except admin.ScheduleInvalid as exc:
        return await _hall_page(request, hall, status=exc.status, errors=_schedule_errors(exc), typed=data)
    return see_other(request, f"/console/halls/{hall}?done=schedule")


@bp.post("/console/halls/<hall:str>/closures")
@doc(tag=TAG, summary="设置临时闭厅", errors=[HallNotFound, InvalidInput, admin.ClosureExists])
@staff_page("admin")
async def add_closure(request: Request, hall: str) -> HTTPResponse:
    """Close the hall on a date, with the reason citizens are shown."""
    data = form_data(request)
    try:
        body = ClosureBody.model_validate({"date": data.get("date") or None, "reason": data.get("reason", "")})
    except ValidationError as exc:
        errors = {k: "；".join(v) for k, v in pydantic_details(exc)["fields"].items()}
        return await _hall_page(request, hall, status=422, errors=errors, typed=data)
    try:
        await admin.add_closure(request.app.ctx.booking, hall=hall, day=body.date, reason=body.reason)
    except (InvalidInput, admin.ClosureExists) as exc:
        return await _hall_page(request, hall, status=exc.status, errors=field_errors(exc, "date"), typed=data)
    return see_other(request, f"/console/halls/{hall}?done=closure")


@bp.post("/console/halls/<hall:str>/closures/<day:str>/remove")
@doc(tag=TAG, summary="取消临时闭厅", errors=[HallNotFound, InvalidInput, admin.ClosureNotFound])
@staff_page("admin")
async def remove_closure(request: Request, hall: str, day: str) -> HTTPResponse:
    """Reopen the hall on a date."""
    form_data(request)
    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise InvalidInput("日期应为 YYYY-MM-DD", code="DATE_INVALID") from None
    await admin.remove_closure(request.app.ctx.booking, hall=hall, day=date)
    return see_other(request, f"/console/halls/{hall}?done=reopened")


@bp.post("/console/halls/<hall:str>/counters")
@doc(tag=TAG, summary="保存大厅窗口（整体替换：编号、业务板块、名称、启用）", errors=[HallNotFound, InvalidInput])
@staff_page("admin")
async def counters(request: Request, hall: str) -> HTTPResponse:
    """Replace the hall's counters with the form's rows (an empty code drops the row)."""
    data = form_data(request)

    def column(name: str) -> list[str]:
        value = data.get(name)
        return [] if value is None else [str(v) for v in value] if isinstance(value, list) else [str(value)]

    rows, errors = [], {}
    active = set(column("c_active"))
    for index, (code, section, name) in enumerate(zip(column("c_code"), column("c_section"), column("c_name"),
                                                      strict=False)):  # fmt: skip
        if not code.strip():
            continue
        try:
            item = CounterItem.model_validate({"code": code, "section": section, "name": name,
                                               "active": str(index) in active})  # fmt: skip
            rows.append(item.model_dump(mode="json"))
        except ValidationError as exc:
            reasons = pydantic_details(exc)["fields"]
            errors["counters"] = f"第 {index + 1} 行：" + "；".join(f"{k} {'、'.join(v)}" for k, v in reasons.items())
    if not errors:
        try:
            await admin.put_counters(request.app.ctx.booking, hall=hall, counters=rows)
        except InvalidInput as exc:
            errors = {"counters": exc.message}
    if errors:
        return await _hall_page(request, hall, status=422, errors=errors)
    return see_other(request, f"/console/halls/{hall}?done=counters")

"""Due dates of cases: promised working days from acceptance on the Chinese calendar, plus suspensions."""

from __future__ import annotations

import datetime as dt
import math

from app import workdays
from app.cases import lifecycle
from app.cases.models import Case
from app.cases.types import CaseStatus, Sla
from app.settings import Settings


def _warn_days(settings: Settings, promised: int) -> int:
    return math.ceil(promised * settings.case_warn_percent / 100)


def schedule(settings: Settings, case: Case) -> None:
    """Set the due and warning dates from acceptance, the promised days and the suspended days."""
    assert case.accepted_on is not None
    case.due_on = workdays.add_workdays(case.accepted_on, case.promised_days + case.suspended_days)
    case.warn_on = workdays.add_workdays(
        case.accepted_on, _warn_days(settings, case.promised_days) + case.suspended_days
    )


def sla(case: Case, today: dt.date) -> Sla:
    """Where a case stands against its promised time: green, yellow (80 % used), red (overdue) or paused."""
    if case.due_on is None:
        return Sla("not_started", None, None)
    if case.status is CaseStatus.suspended:
        return Sla("paused", None, None, suspended_on=case.suspended_on)
    running = lifecycle.PART_CLOCK_RUNNING if case.kind == lifecycle.PART else lifecycle.CLOCK_RUNNING
    if case.status in running:
        if today > case.due_on:
            state, left = "red", -workdays.workdays_between(case.due_on, today)
        else:
            state = "yellow" if case.warn_on is not None and today >= case.warn_on else "green"
            left = workdays.workdays_between(today, case.due_on)
        return Sla(state, case.due_on, left)
    return Sla("stopped", case.due_on, None)

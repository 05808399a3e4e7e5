"""Due dates on the Chinese calendar (chinese-calendar 1.11 knows 2026).

The calendar around National Day 2026, as the State Council published it:

    09-25 Fri .. 09-27 Sun  Mid-Autumn Festival, closed
    09-28 Mon .. 09-30 Wed  working days
    10-01 Thu .. 10-07 Wed  National Day, closed
    10-08 Thu, 10-09 Fri    working days
    10-10 Sat               调休: a working day
    10-11 Sun               closed
    10-12 Mon .. 10-16 Fri  working days
    10-17 Sat, 10-18 Sun    closed
    10-19 Mon .. 10-23 Fri  working days

The promised time counts working days after acceptance (`_schedule`), the warning comes once
`case_warn_percent` (80 %) of it is used, a suspension (特殊环节) pushes both by the working days it
lasted, and `sla` says green / yellow / red, or paused while suspended.
"""

from __future__ import annotations

import datetime as dt

import pytest

from app import workdays
from app.cases.due import schedule as _schedule
from app.cases.due import sla
from app.cases.models import Case, CaseStatus
from app.cases.present import sla_json
from app.matters import service as matters
from tests.api import case_helpers as h

D = dt.date
ACCEPTED = D(2026, 9, 30)  # Wednesday, the last working day before National Day


def make_case(
    *,
    accepted_on: dt.date | None = ACCEPTED,
    promised: int = 3,
    suspended_days: int = 0,
    status: CaseStatus = CaseStatus.accepted,
    suspended_on: dt.date | None = None,
) -> Case:
    return Case(
        accepted_on=accepted_on,
        promised_days=promised,
        suspended_days=suspended_days,
        status=status,
        suspended_on=suspended_on,
    )


def scheduled(settings, **kw) -> Case:
    case = make_case(**kw)
    _schedule(settings, case)
    return case


# ---------------------------------------------------------------- the calendar itself


def test_the_calendar_around_national_day_2026():
    assert workdays.is_workday(D(2026, 9, 30))
    assert not any(workdays.is_workday(D(2026, 10, n)) for n in range(1, 8))
    assert workdays.day_kind(D(2026, 10, 10)) == "makeup"
    assert not workdays.is_workday(D(2026, 10, 11))
    # Working days after 09-30: 10-08 Thu (1), 10-09 Fri (2), 10-10 调休 Sat (3), 10-12 Mon (4).
    assert [workdays.add_workdays(ACCEPTED, n) for n in range(5)] == [
        D(2026, 9, 30),
        D(2026, 10, 8),
        D(2026, 10, 9),
        D(2026, 10, 10),
        D(2026, 10, 12),
    ]


# ---------------------------------------------------------------- _schedule: due and warning dates


@pytest.mark.parametrize(
    ("accepted_on", "promised", "due", "warn"),
    [
        # 10-08 (1), 10-09 (2), 10-10 the 调休 Saturday (3). 80 % of 3 = 2.4, rounded up: warn on day 3 too.
        (ACCEPTED, 3, D(2026, 10, 10), D(2026, 10, 10)),
        # 10-08 (1), 10-09 (2). 80 % of 2 = 1.6 -> 2.
        (ACCEPTED, 2, D(2026, 10, 9), D(2026, 10, 9)),
        # 10-08, 10-09, 10-10, 10-12, 10-13, 10-14, 10-15, 10-16 (8 = 80 %), 10-19, 10-20 (10).
        (ACCEPTED, 10, D(2026, 10, 20), D(2026, 10, 16)),
        # 5 days: 10-08, 10-09, 10-10, 10-12 (4 = 80 %), 10-13 (5).
        (ACCEPTED, 5, D(2026, 10, 13), D(2026, 10, 12)),
        # Accepted Friday 10-09: the next working day is the 调休 Saturday 10-10, not Monday.
        (D(2026, 10, 9), 1, D(2026, 10, 10), D(2026, 10, 10)),
        # Accepted Thursday 09-24: Mid-Autumn 09-25..27 closed; 09-28 (1), 09-29 (2), 09-30 (3).
        (D(2026, 9, 24), 3, D(2026, 9, 30), D(2026, 9, 30)),
        # Accepted on a closed day (10-03): the holiday is not counted, 10-08 is the first day.
        (D(2026, 10, 3), 1, D(2026, 10, 8), D(2026, 10, 8)),
        # 即办件 (0 days): due the day it is accepted.
        (ACCEPTED, 0, ACCEPTED, ACCEPTED),
    ],
)
def test_due_and_warning_dates_count_working_days(settings, accepted_on, promised, due, warn):
    case = scheduled(settings, accepted_on=accepted_on, promised=promised)
    assert (case.due_on, case.warn_on) == (due, warn)
    assert case.due_on == workdays.add_workdays(accepted_on, promised)
    # The promised days are exactly the working days between acceptance and the due date.
    assert workdays.workdays_between(accepted_on, case.due_on) == promised


@pytest.mark.parametrize(
    ("suspended_days", "due", "warn"),
    [
        (0, D(2026, 10, 20), D(2026, 10, 16)),
        # One working day stopped: 10-21 and 10-19 (the weekend 10-17/18 is skipped).
        (1, D(2026, 10, 21), D(2026, 10, 19)),
        # Three: 10-23 and 10-21.
        (3, D(2026, 10, 23), D(2026, 10, 21)),
        # Four: past the weekend 10-24/25 to Monday 10-26; warning 10-22.
        (4, D(2026, 10, 26), D(2026, 10, 22)),
    ],
)
def test_suspended_days_push_both_dates_by_working_days(settings, suspended_days, due, warn):
    case = scheduled(settings, promised=10, suspended_days=suspended_days)
    assert (case.due_on, case.warn_on) == (due, warn)


@pytest.mark.parametrize(
    ("percent", "warn"),
    [
        (80, D(2026, 10, 16)),  # 8 of 10
        (50, D(2026, 10, 13)),  # 5 of 10: 10-08, 10-09, 10-10, 10-12, 10-13
        (25, D(2026, 10, 10)),  # 2.5 -> 3: the 调休 Saturday
        (100, D(2026, 10, 20)),  # the due date itself
    ],
)
def test_the_warning_follows_the_setting(settings, percent, warn):
    case = scheduled(settings.replace(case_warn_percent=percent), promised=10)
    assert case.warn_on == warn
    assert case.due_on == D(2026, 10, 20)


def test_the_default_warning_share_is_80_percent(settings):
    assert settings.case_warn_percent == 80


# ---------------------------------------------------------------- sla: green, yellow, red, paused


@pytest.mark.parametrize(
    ("today", "state", "days_left"),
    [
        (D(2026, 9, 30), "green", 10),  # accepted today: all 10 days ahead
        (D(2026, 10, 5), "green", 10),  # the holiday uses none of them
        (D(2026, 10, 8), "green", 9),
        (D(2026, 10, 15), "green", 3),  # 7 used (70 %): 10-16, 10-19, 10-20 left
        (D(2026, 10, 16), "yellow", 2),  # 8 used (80 %)
        (D(2026, 10, 17), "yellow", 2),  # the weekend uses nothing
        (D(2026, 10, 20), "yellow", 0),  # due today
        (D(2026, 10, 21), "red", -1),  # one working day late
        (D(2026, 10, 26), "red", -4),  # 10-21, 10-22, 10-23, 10-26
    ],
)
def test_sla_of_a_ten_day_case(settings, today, state, days_left):
    case = scheduled(settings, promised=10)
    assert sla_json(sla(case, today)) == {"state": state, "due_on": "2026-10-20", "days_left": days_left}


@pytest.mark.parametrize(
    ("today", "state", "days_left"),
    [
        (D(2026, 10, 8), "green", 2),  # 1 of 3 used
        (D(2026, 10, 9), "green", 1),  # 2 of 3 used: 67 %, below 80 %
        (D(2026, 10, 10), "yellow", 0),  # the 调休 Saturday is the due date
        (D(2026, 10, 11), "red", 0),  # Sunday: overdue, though no working day late yet
        (D(2026, 10, 12), "red", -1),
    ],
)
def test_sla_of_a_three_day_case_over_the_makeup_saturday(settings, today, state, days_left):
    case = scheduled(settings, promised=3)
    assert sla_json(sla(case, today)) == {"state": state, "due_on": "2026-10-10", "days_left": days_left}


@pytest.mark.parametrize(
    "status", [CaseStatus.accepted, CaseStatus.under_review, CaseStatus.approved, CaseStatus.denied]
)
def test_the_clock_runs_until_the_decision_is_delivered(settings, status):
    case = scheduled(settings, promised=3, status=status)
    assert sla(case, D(2026, 10, 12)).state == "red"
    assert sla(case, D(2026, 10, 10)).state == "yellow"


@pytest.mark.parametrize("status", [CaseStatus.delivered, CaseStatus.completed])
def test_the_clock_stops_at_delivery(settings, status):
    case = scheduled(settings, promised=3, status=status)
    assert sla_json(sla(case, D(2026, 10, 30))) == {"state": "stopped", "due_on": "2026-10-10", "days_left": None}


def test_a_suspended_case_is_paused_even_past_its_due_date(settings):
    case = scheduled(settings, promised=3, status=CaseStatus.suspended, suspended_on=D(2026, 10, 9))
    for today in (D(2026, 10, 9), D(2026, 10, 12), D(2026, 12, 1)):
        assert sla_json(sla(case, today)) == {
            "state": "paused",
            "due_on": None,
            "days_left": None,
            "suspended_on": "2026-10-09",
        }


@pytest.mark.parametrize("status", [CaseStatus.submitted, CaseStatus.correction_required, CaseStatus.resubmitted])
def test_no_clock_before_acceptance(status):
    case = make_case(accepted_on=None, status=status)
    assert sla_json(sla(case, D(2026, 12, 1))) == {"state": "not_started", "due_on": None, "days_left": None}


# ---------------------------------------------------------------- through the API, with the clock moved


@pytest.fixture
async def desk(fake_clock, client, make_citizen, make_staff, auth_deps):
    """A citizen, a scjgj reviewer and the catalogue, at 2026-09-30 10:00 Asia/Shanghai."""
    await matters.import_catalogue(client.sanic_app.ctx.catalogue, data=h.catalogue())
    _, citizen = await make_citizen()
    reviewer, _ = await make_staff("reviewer", departments=["scjgj"])

    class Desk:
        clock = fake_clock

        async def headers(self) -> dict[str, str]:
            return await h.staff_headers(auth_deps, reviewer)  # a fresh token after the clock moved

        async def act(self, case_no: str, action: str, **args):
            r = await h.act(client, await self.headers(), case_no, action, **args)
            assert r.status_code == 200, (action, r.text)
            return r.json

    desk = Desk()
    desk.client, desk.citizen = client, citizen
    return desk


async def test_accepted_before_national_day_is_due_on_the_makeup_saturday(desk):
    case_no = (await h.submit(desk.client, desk.citizen))["case_no"]
    body = await desk.act(case_no, "accept")
    assert body["accepted_on"] == "2026-09-30"
    assert body["sla"] == {"state": "green", "due_on": "2026-10-10", "days_left": 3}
    assert body["next_step"]["expected_by"] == "2026-10-10"
    assert "2026-10-10" in body["timeline"][-1]["text"]  # the citizen is told the date


@pytest.mark.parametrize(
    ("resume_after", "stopped", "due"),
    [
        (0, 0, "2026-10-10"),  # resumed the same day: nothing stopped
        # Suspended 09-30, resumed 10-08: eight calendar days, one working day (10-08). 3 + 1 days
        # from 09-30: 10-08, 10-09, 10-10, 10-12.
        (8, 1, "2026-10-12"),
        # Resumed 10-12: 10-08, 10-09, 10-10 (调休), 10-12 stopped = 4. 3 + 4 = 7 days: ... 10-15.
        (12, 4, "2026-10-15"),
    ],
)
async def test_a_suspension_over_the_holiday_adds_only_working_days(desk, resume_after, stopped, due):
    case_no = (await h.submit(desk.client, desk.citizen))["case_no"]
    await desk.act(case_no, "accept")
    body = await desk.act(case_no, "suspend", **h.ARGS["suspend"])
    assert body["sla"] == {"state": "paused", "due_on": None, "days_left": None, "suspended_on": "2026-09-30"}
    desk.clock.advance(days=resume_after)
    body = await desk.act(case_no, "resume")
    assert body["status"] == "accepted"
    assert body["suspended_days"] == stopped
    assert body["timeline"][-1]["data"]["stopped_days"] == stopped
    assert body["sla"]["due_on"] == due
    assert due in body["timeline"][-1]["text"]


async def test_two_suspensions_add_up(desk):
    case_no = (await h.submit(desk.client, desk.citizen, matter=h.LONG_MATTER))["case_no"]
    await desk.act(case_no, "accept")  # 10 days: due 10-20
    await desk.act(case_no, "suspend", **h.ARGS["suspend"])  # 09-30
    desk.clock.advance(days=9)
    await desk.act(case_no, "resume")  # 10-09: 10-08, 10-09 stopped (2) -> due 10-22
    await desk.act(case_no, "start_review")
    desk.clock.advance(days=3)
    await desk.act(case_no, "suspend", **h.ARGS["suspend"])  # 10-12
    desk.clock.advance(days=1)
    body = await desk.act(case_no, "resume")  # 10-13: 1 more (3) -> 10 + 3 from 09-30 = 10-23
    assert body["status"] == "under_review"
    assert body["suspended_days"] == 3
    assert body["sla"]["due_on"] == "2026-10-23"


async def test_yellow_red_and_paused_through_the_api(desk):
    case_no = (await h.submit(desk.client, desk.citizen, matter=h.LONG_MATTER))["case_no"]
    await desk.act(case_no, "accept")  # warn 10-16, due 10-20

    async def state() -> dict:
        return (await h.staff_case(desk.client, await desk.headers(), case_no))["sla"]

    desk.clock.advance(days=15)  # 10-15
    assert (await state())["state"] == "green"
    desk.clock.advance(days=1)  # 10-16: 8 of 10 used
    assert await state() == {"state": "yellow", "due_on": "2026-10-20", "days_left": 2}
    desk.clock.advance(days=5)  # 10-21
    assert await state() == {"state": "red", "due_on": "2026-10-20", "days_left": -1}
    await desk.act(case_no, "suspend", **h.ARGS["suspend"])
    assert (await state())["state"] == "paused"
    assert await h.staff_list(desk.client, await desk.headers(), view="overdue") == []
    desk.clock.advance(days=1)  # 10-22: one working day stopped, due moves to 10-21
    body = await desk.act(case_no, "resume")
    assert body["sla"] == {"state": "red", "due_on": "2026-10-21", "days_left": -1}
    assert await h.staff_list(desk.client, await desk.headers(), view="overdue") == [case_no]

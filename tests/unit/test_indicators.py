"""The reform indicators (app.stats.indicators) against a small catalogue and activity built by hand.

Every expected number below is worked out by hand from the rows `seed_march()` inserts (the arithmetic is
in the comments), never copied from the code's output. The period is March 2026 (Asia/Shanghai): no
statutory holiday and no 调休 weekend workday in it, so working days are Monday to Friday
(2026-03-01 is a Sunday; checked by `test_march_2026_is_a_plain_month`).

Timestamps are stored as the app stores them (aware UTC, from `clock.now()`); `at()` turns a Shanghai
wall-clock time into that.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import uuid
from typing import Any

import pytest

from app import clock, workdays
from app.booking.models import Booking, BookingStatus, CheckIn
from app.cases.models import Case, CaseEvent, CaseStatus
from app.feedback.errors import RangeInvalid
from app.feedback.models import Rating, SubjectType
from app.matters.models import Department, Matter, MatterStatus
from app.settings import Settings
from app.stats import indicators, present
from app.stats.types import IndicatorReport
from qr.models import Code, ScanChannel, ScanDaily

FROM, TO = dt.date(2026, 3, 1), dt.date(2026, 3, 31)
D = dt.date

# code: (section, department, visits, online_depth)
M1, M2, M3, M4, M5 = "4308-XK-SS-001", "4308-XK-SS-002", "4308-GG-SB-003", "4308-GG-ZF-004", "4308-GG-ZF-005"
RETIRED, DRAFT = "4308-XK-SS-009", "4308-XK-SS-008"
MATTERS = {
    M1: ("commercial", "scjgj", 1, 3),
    M2: ("commercial", "scjgj", 0, 4),
    M3: ("social_security", "scjgj", 2, 2),
    M4: ("social_security", "gjjzx", 0, 3),
    M5: ("social_security", "gjjzx", 2, 1),
}
DEPARTMENT_NAMES = {"scjgj": "市市场监督管理局", "gjjzx": "张家界市住房公积金管理中心"}


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0, second: int = 0) -> dt.datetime:
    """A wall-clock time in Asia/Shanghai, as the app stores it (aware UTC)."""
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=clock.SHANGHAI).astimezone(dt.UTC)


# ---------------------------------------------------------------- row makers


async def make_department(code: str) -> None:
    await Department.create(code=code, name=DEPARTMENT_NAMES[code])


async def make_matter(
    code: str,
    *,
    section: str,
    department: str,
    visits: int,
    online_depth: int,
    status: MatterStatus = MatterStatus.active,
    published: bool = True,
) -> None:
    await Matter.create(
        code=code, name=f"事项 {code}", section=section, department_code=department, hall_code="main",
        visits=visits, online_depth=online_depth, status=status, published_no=1 if published else None,
    )  # fmt: skip


async def make_case(
    no: str,
    matter: str,
    *,
    submitted: dt.datetime,
    status: CaseStatus,
    accepted_on: dt.date | None = None,
    due_on: dt.date | None = None,
    promised_days: int = 3,
    suspended_days: int = 0,
    delivered: dt.datetime | None = None,
) -> uuid.UUID:
    """A case of `matter` (its section and department), with a `deliver` event at `delivered`."""
    section, department = MATTERS[matter][:2]
    case = await Case.create(
        id=uuid.uuid4(), case_no=no, matter_code=matter, matter_name=f"事项 {matter}", guide_version=1,
        department_code=department, hall_code="main", section=section, citizen_id=uuid.uuid4(),
        principal_kind="person", principal_name_enc="x", principal_id_enc="x", principal_id_bidx=uuid.uuid4().hex,
        form={}, delivery={"method": "window"}, status=status, promised_days=promised_days,
        accepted_on=accepted_on, due_on=due_on, suspended_days=suspended_days, query_code_hash="h" * 64,
        submitted_at=submitted, updated_at=delivered or submitted,
    )  # fmt: skip
    await CaseEvent.create(
        case_id=case.id, action="submit", to_status="submitted", actor_kind="citizen", public_text="提交申请",
        created_at=submitted,
    )  # fmt: skip
    if delivered is not None:
        await CaseEvent.create(
            case_id=case.id, action="deliver", from_status="approved", to_status="delivered", actor_kind="staff",
            public_text="已送达", created_at=delivered,
        )  # fmt: skip
    return case.id


async def make_booking(matter: str, day: dt.date, status: BookingStatus, *, section: str | None = None) -> uuid.UUID:
    starts = dt.datetime.combine(day, dt.time(9), tzinfo=clock.SHANGHAI).astimezone(dt.UTC)
    booking = await Booking.create(
        id=uuid.uuid4(), citizen_id=uuid.uuid4(), matter_code=matter, hall_code="main",
        section=section or MATTERS[matter][0], slot_id=f"main:{day}:0900", day=day, starts_at=starts,
        ends_at=starts + dt.timedelta(minutes=30), noshow_at=starts + dt.timedelta(minutes=30), status=status,
    )  # fmt: skip
    return booking.id


async def make_checkin(
    section: str, created: dt.datetime, *, booking: uuid.UUID | None = None, undone: dt.datetime | None = None
) -> None:
    await CheckIn.create(
        id=uuid.uuid4(), booking_id=booking, hall_code="main", section=section,
        day=created.astimezone(clock.SHANGHAI).date(), queue_no="B001", staff_id=uuid.uuid4(),
        kind="booking" if booking else "walk_in", created_at=created, undone_at=undone,
    )  # fmt: skip


async def make_rating(matter: str, level: int, created: dt.datetime, *, excluded: bool = False) -> None:
    await Rating.create(
        id=uuid.uuid4(), subject_type=SubjectType.visit, subject_id=str(uuid.uuid4()), citizen_id=uuid.uuid4(),
        level=level, matter_code=matter, department_code=MATTERS[matter][1], hall_code="main",
        excluded=excluded, created_at=created,
    )  # fmt: skip


async def make_scans(slug: str, day: dt.date, scans: int, channel: ScanChannel = ScanChannel.wechat) -> None:
    await ScanDaily.create(slug=slug, day=day, channel=channel, scans=scans)


# ---------------------------------------------------------------- the March 2026 data set


async def seed_march() -> None:
    """Five offered matters, a retired and a never-published one, and a month of activity around them."""
    for code in DEPARTMENT_NAMES:
        await make_department(code)
    for code, (section, department, visits, depth) in MATTERS.items():
        await make_matter(code, section=section, department=department, visits=visits, online_depth=depth)
    # Neither counts in the catalogue shares: retired, and active but never published (no guide on offer).
    await make_matter(RETIRED, section="commercial", department="scjgj", visits=0, online_depth=4,
                      status=MatterStatus.retired)  # fmt: skip
    await make_matter(DRAFT, section="commercial", department="scjgj", visits=0, online_depth=4, published=False)

    # Cases. March 2026: Mon 2, Tue 3, Wed 4, Thu 5, Fri 6, Mon 9 ... Mon 16, Fri 20, Mon 30, Tue 31.
    # C1 on time: accepted Mon 03-02, due 03-02 + 3 workdays = Thu 03-05, delivered Wed 03-04 -> 2 workdays.
    await make_case("C1", M1, submitted=at(2026, 3, 2, 9), status=CaseStatus.completed, accepted_on=D(2026, 3, 2),
                    due_on=D(2026, 3, 5), delivered=at(2026, 3, 4, 15))  # fmt: skip
    # C2 delivered on its due date (on time): accepted 03-02, due 03-05, delivered Thu 03-05 16:00 -> 3 workdays.
    await make_case("C2", M2, submitted=at(2026, 3, 2, 11), status=CaseStatus.delivered, accepted_on=D(2026, 3, 2),
                    due_on=D(2026, 3, 5), delivered=at(2026, 3, 5, 16))  # fmt: skip
    # C3 late: accepted Tue 03-03, promised 2, due Thu 03-05, delivered Tue 03-10 -> 03-04,05,06,09,10 = 5 workdays.
    await make_case("C3", M3, submitted=at(2026, 3, 3), status=CaseStatus.delivered, accepted_on=D(2026, 3, 3),
                    due_on=D(2026, 3, 5), promised_days=2, delivered=at(2026, 3, 10, 14))  # fmt: skip
    # C4 suspended 2 workdays then resumed: accepted Mon 03-09, due 03-09 + (3 + 2) workdays = Mon 03-16,
    # delivered Mon 03-16 09:00 (on time); 03-10,11,12,13,16 = 5 workdays minus 2 suspended = 3.
    await make_case("C4", M4, submitted=at(2026, 3, 9, 8, 30), status=CaseStatus.completed,
                    accepted_on=D(2026, 3, 9), due_on=D(2026, 3, 16), suspended_days=2,
                    delivered=at(2026, 3, 16, 9))  # fmt: skip
    # C5 still under review, C6 suspended now: submitted in March (online), not finished.
    await make_case("C5", M4, submitted=at(2026, 3, 20), status=CaseStatus.under_review, accepted_on=D(2026, 3, 20),
                    due_on=D(2026, 3, 25))  # fmt: skip
    await make_case("C6", M5, submitted=at(2026, 3, 11), status=CaseStatus.suspended, accepted_on=D(2026, 3, 11),
                    due_on=D(2026, 3, 17), suspended_days=1)  # fmt: skip
    # C7 submitted Fri 02-27 (before the period: not an online case of March), accepted Mon 03-02, due 03-05,
    # delivered Tue 03-03 (finished in March, on time): 1 workday.
    await make_case("C7", M1, submitted=at(2026, 2, 27, 15), status=CaseStatus.completed,
                    accepted_on=D(2026, 3, 2), due_on=D(2026, 3, 5), delivered=at(2026, 3, 3, 14))  # fmt: skip
    # C8 delivered in February: neither online nor finished in March.
    await make_case("C8", M1, submitted=at(2026, 2, 9), status=CaseStatus.completed, accepted_on=D(2026, 2, 9),
                    due_on=D(2026, 2, 12), delivered=at(2026, 2, 11))  # fmt: skip
    # C9 submitted Mon 03-30 (online), delivered Wed 04-01 (after the period: not finished in March).
    await make_case("C9", M2, submitted=at(2026, 3, 30), status=CaseStatus.delivered, accepted_on=D(2026, 3, 30),
                    due_on=D(2026, 4, 2), delivered=at(2026, 4, 1, 10))  # fmt: skip
    # C10 rejected at intake: an online case of March, never accepted.
    await make_case("C10", M1, submitted=at(2026, 3, 12), status=CaseStatus.rejected)

    # Bookings due in March: B1 checked in, B2 checked in, B3 no-show, B4 no-show, B5 checked in.
    b1 = await make_booking(M1, D(2026, 3, 5), BookingStatus.checked_in)
    b2 = await make_booking(M4, D(2026, 3, 6), BookingStatus.checked_in)
    await make_booking(M2, D(2026, 3, 10), BookingStatus.no_show)
    await make_booking(M5, D(2026, 3, 12), BookingStatus.no_show)
    b5 = await make_booking(M3, D(2026, 3, 13), BookingStatus.checked_in)
    # Not due: cancelled in March, still booked in March, no-shows on 02-28 and 04-01 (outside).
    await make_booking(M1, D(2026, 3, 16), BookingStatus.cancelled)
    await make_booking(M5, D(2026, 3, 20), BookingStatus.booked)
    await make_booking(M2, D(2026, 2, 28), BookingStatus.no_show)
    await make_booking(M4, D(2026, 4, 1), BookingStatus.no_show)

    # Counter visits (check-ins): K1 walk-in commercial, K2 B1's, K3 B2's, K6 B5's, K7 walk-in social.
    await make_checkin("commercial", at(2026, 3, 4, 10))  # K1
    await make_checkin("commercial", at(2026, 3, 5, 9, 5), booking=b1)  # K2
    await make_checkin("social_security", at(2026, 3, 6, 9, 5), booking=b2)  # K3
    await make_checkin("social_security", at(2026, 3, 6, 11), undone=at(2026, 3, 6, 11, 2))  # K4 undone
    await make_checkin("commercial", at(2026, 2, 27, 10))  # K5 February
    await make_checkin("social_security", at(2026, 3, 13, 9, 5), booking=b5)  # K6
    await make_checkin("social_security", at(2026, 3, 20, 10))  # K7

    # Ratings (好评: 3, 4, 5): R1 5, R2 3, R3 2, R4 4, R5 1 in March; excluded, February and April ones not.
    await make_rating(M1, 5, at(2026, 3, 5, 12))
    await make_rating(M2, 3, at(2026, 3, 6, 12))
    await make_rating(M3, 2, at(2026, 3, 11, 12))
    await make_rating(M4, 4, at(2026, 3, 17, 12))
    await make_rating(M5, 1, at(2026, 3, 18, 12))
    await make_rating(M4, 5, at(2026, 3, 19, 12), excluded=True)  # an upheld contest: never counts
    await make_rating(M1, 1, at(2026, 2, 20, 12))
    await make_rating(M2, 5, at(2026, 4, 2, 12))

    # QR codes: two for M1, one each for M4, M5 and the retired matter.
    for slug, matter in (("qm1a", M1), ("qm1b", M1), ("qm4", M4), ("qm5", M5), ("qretired", RETIRED)):
        await Code.create(slug=slug, matter_code=matter)
    await make_scans("qm1a", D(2026, 3, 1), 10)  # first day of the period: counts
    await make_scans("qm1a", D(2026, 3, 1), 2, ScanChannel.browser)
    await make_scans("qm1b", D(2026, 3, 15), 3)
    await make_scans("qm4", D(2026, 3, 31), 7)  # last day: counts
    await make_scans("qm4", D(2026, 2, 28), 100)  # before
    await make_scans("qm5", D(2026, 4, 1), 50)  # after
    await make_scans("qretired", D(2026, 3, 10), 40)  # a retired matter's code
    await make_scans("qgone", D(2026, 3, 10), 20)  # a slug no code has


# Numerators and denominators, worked out from the rows above.
#   catalogue: M1 (commercial, scjgj, visits 1, depth 3), M2 (commercial, scjgj, 0, 4), M3 (social, scjgj, 2, 2),
#              M4 (social, gjjzx, 0, 3), M5 (social, gjjzx, 2, 1)
#   online cases (submitted in March): C1 C2 C9 C10 (commercial, scjgj), C3 (social, scjgj), C4 C5 C6 (social, gjjzx)
#   counter visits: K1 K2 (commercial), K3 K6 K7 (social); by department through the booking's matter:
#                   K2 (B1, M1) and K6 (B5, M3) -> scjgj, K3 (B2, M4) -> gjjzx; walk-ins have no department
#   finished: C1 (2 days, on time), C2 (3, on time), C7 (1, on time) commercial/scjgj; C3 (5, late) social/scjgj;
#             C4 (3, on time) social/gjjzx
#   bookings due: B1 (M1 checked in), B3 (M2 no-show) commercial/scjgj; B5 (M3 checked in) social/scjgj;
#                 B2 (M4 checked in), B4 (M5 no-show) social/gjjzx
#   ratings: R1 5 (M1), R2 3 (M2) commercial/scjgj; R3 2 (M3) social/scjgj; R4 4 (M4), R5 1 (M5) social/gjjzx
#   scans: M1 10 + 2 + 3 = 15, M4 7 (retired matter's 40, unknown slug's 20 and out-of-period rows not counted)
COUNTS: dict[str, dict[str, int]] = {
    "city": dict(matters=5, one_visit=3, zero_visit=2, deep=3, online_cases=8, counter_visits=5, finished=5,
                 on_time=4, days_total=2 + 3 + 1 + 5 + 3, bookings_due=5, no_shows=2, ratings=5, good=3, scans=22),
    "section:commercial": dict(matters=2, one_visit=2, zero_visit=1, deep=2, online_cases=4, counter_visits=2,
                               finished=3, on_time=3, days_total=2 + 3 + 1, bookings_due=2, no_shows=1, ratings=2,
                               good=2, scans=15),
    "section:social_security": dict(matters=3, one_visit=1, zero_visit=1, deep=1, online_cases=4, counter_visits=3,
                                    finished=2, on_time=1, days_total=5 + 3, bookings_due=3, no_shows=1, ratings=3,
                                    good=1, scans=7),
    "department:gjjzx": dict(matters=2, one_visit=1, zero_visit=1, deep=1, online_cases=3, counter_visits=1,
                             finished=1, on_time=1, days_total=3, bookings_due=2, no_shows=1, ratings=2, good=1,
                             scans=7),
    "department:scjgj": dict(matters=3, one_visit=2, zero_visit=1, deep=2, online_cases=5, counter_visits=2,
                             finished=4, on_time=3, days_total=2 + 3 + 5 + 1, bookings_due=3, no_shows=1, ratings=3,
                             good=2, scans=15),
}  # fmt: skip

# The indicators: shares rounded to 4 places, averages to 2.
VALUES: dict[str, dict[str, float | None]] = {
    "city": {
        "one_visit_rate": 0.6,  # 3 / 5
        "zero_visit_rate": 0.4,  # 2 / 5
        "online_depth_rate": 0.6,  # 3 / 5
        "online_case_rate": 0.6154,  # 8 / (8 + 5) = 0.61538
        "on_time_rate": 0.8,  # 4 / 5
        "bundle_on_time_rate": None,  # no 一件事 in the seed
        "avg_days_to_complete": 2.8,  # 14 / 5
        "no_show_rate": 0.4,  # 2 / 5
        "satisfaction_rate": 0.6,  # 3 / 5
        "scans_per_matter": 4.4,  # 22 / 5
    },
    "section:commercial": {
        "one_visit_rate": 1.0,  # 2 / 2
        "zero_visit_rate": 0.5,  # 1 / 2
        "online_depth_rate": 1.0,  # 2 / 2
        "online_case_rate": 0.6667,  # 4 / (4 + 2)
        "on_time_rate": 1.0,  # 3 / 3
        "bundle_on_time_rate": None,  # no 一件事 in the seed
        "avg_days_to_complete": 2.0,  # 6 / 3
        "no_show_rate": 0.5,  # 1 / 2
        "satisfaction_rate": 1.0,  # 2 / 2
        "scans_per_matter": 7.5,  # 15 / 2
    },
    "section:social_security": {
        "one_visit_rate": 0.3333,  # 1 / 3
        "zero_visit_rate": 0.3333,  # 1 / 3
        "online_depth_rate": 0.3333,  # 1 / 3
        "online_case_rate": 0.5714,  # 4 / (4 + 3) = 0.571428
        "on_time_rate": 0.5,  # 1 / 2
        "bundle_on_time_rate": None,  # no 一件事 in the seed
        "avg_days_to_complete": 4.0,  # 8 / 2
        "no_show_rate": 0.3333,  # 1 / 3
        "satisfaction_rate": 0.3333,  # 1 / 3
        "scans_per_matter": 2.33,  # 7 / 3 = 2.333
    },
    "department:gjjzx": {
        "one_visit_rate": 0.5,  # 1 / 2
        "zero_visit_rate": 0.5,  # 1 / 2
        "online_depth_rate": 0.5,  # 1 / 2
        "online_case_rate": 0.75,  # 3 / (3 + 1)
        "on_time_rate": 1.0,  # 1 / 1
        "bundle_on_time_rate": None,  # no 一件事 in the seed
        "avg_days_to_complete": 3.0,  # 3 / 1
        "no_show_rate": 0.5,  # 1 / 2
        "satisfaction_rate": 0.5,  # 1 / 2
        "scans_per_matter": 3.5,  # 7 / 2
    },
    "department:scjgj": {
        "one_visit_rate": 0.6667,  # 2 / 3
        "zero_visit_rate": 0.3333,  # 1 / 3
        "online_depth_rate": 0.6667,  # 2 / 3
        "online_case_rate": 0.7143,  # 5 / (5 + 2) = 0.714285
        "on_time_rate": 0.75,  # 3 / 4
        "bundle_on_time_rate": None,  # no 一件事 in the seed
        "avg_days_to_complete": 2.75,  # 11 / 4
        "no_show_rate": 0.3333,  # 1 / 3
        "satisfaction_rate": 0.6667,  # 2 / 3
        "scans_per_matter": 5.0,  # 15 / 3
    },
}
TARGETED = {
    "one_visit_rate",
    "online_depth_rate",
    "online_case_rate",
    "on_time_rate",
    "bundle_on_time_rate",
    "satisfaction_rate",
}
# Target 95 % in 2026 (year 9 of a reform started in 2018): met only at 0.95 or more (the shares met, by scope).
MET_2026 = {
    "city": set(),
    "section:commercial": {"one_visit_rate", "online_depth_rate", "on_time_rate", "satisfaction_rate"},
    "section:social_security": set(),
    "department:gjjzx": {"on_time_rate"},  # 1 / 1
    "department:scjgj": set(),
}


def scopes(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's scopes keyed like COUNTS: city, section:<section>, department:<code>."""
    out = {"city": report["city"]}
    out.update({f"section:{s['section']}": s for s in report["by_section"]})
    out.update({f"department:{d['department']}": d for d in report["by_department"]})
    return out


def mismatches(report: dict[str, Any], *, target: float) -> list[str]:
    """Every value, count, target and met that differs from the hand-worked expectation."""
    found = []
    got = scopes(report)
    for scope, counts in COUNTS.items():
        for key, want in counts.items():
            have = got[scope]["counts"].get(key)
            if have != want:
                found.append(f"{scope} counts.{key}: {have!r} != expected {want!r}")
        for key, want in VALUES[scope].items():
            item = got[scope]["indicators"][key]
            if item["value"] != want:
                found.append(f"{scope} {key}: {item['value']!r} != expected {want!r}")
            want_target = target if key in TARGETED else None
            if item["target"] != want_target:
                found.append(f"{scope} {key} target: {item['target']!r} != expected {want_target!r}")
            want_met = (want >= target) if key in TARGETED and want is not None else None
            if item["met"] is not want_met:
                found.append(f"{scope} {key} met: {item['met']!r} != expected {want_met!r}")
    return found


# ---------------------------------------------------------------- tests


async def _typed(services, settings: Settings, **period: Any) -> IndicatorReport:
    """The report computed with these settings (the workers' other dependencies)."""
    return await indicators.compute(dataclasses.replace(services.stats, settings=settings), **period)


async def _report(services, settings: Settings, **period: Any) -> dict[str, Any]:
    """The report as the API's JSON: what these tests assert."""
    return present.report_json(await _typed(services, settings, **period))


def test_march_2026_is_a_plain_month():
    """The hand counts of working days assume Monday to Friday work in March 2026, no holiday, no 调休."""
    for n in range(31):
        day = FROM + dt.timedelta(days=n)
        assert workdays.is_workday(day) == (day.isoweekday() <= 5), day
    assert FROM.isoweekday() == 7  # 2026-03-01 is a Sunday


async def test_every_indicator_for_city_sections_and_departments(settings, services):
    await seed_march()
    report = await _report(services, settings, date_from=FROM, date_to=TO)

    assert report["from"] == "2026-03-01" and report["to"] == "2026-03-31"
    assert report["target_percent"] == 95 and report["year_of_reform"] == 9  # 2026 - 2018 + 1
    assert report["names"] == indicators.NAMES
    # Only the sections and departments with something to count, sections in their fixed order.
    assert [(s["section"], s["name"]) for s in report["by_section"]] == [
        ("commercial", "商事登记"), ("social_security", "社会保障")
    ]  # fmt: skip
    assert [(d["department"], d["name"]) for d in report["by_department"]] == [
        ("gjjzx", "张家界市住房公积金管理中心"), ("scjgj", "市市场监督管理局")
    ]  # fmt: skip
    assert set(report["city"]["indicators"]) == set(indicators.NAMES)
    found = mismatches(report, target=0.95)
    assert not found, "\n".join(found)
    for scope, met in MET_2026.items():
        indicators_ = scopes(report)[scope]["indicators"]
        assert {k for k in TARGETED if indicators_[k]["met"] is True} == met, scope
        # No 一件事 in the seed: its rate has no value, so it is neither met nor missed.
        assert {k for k in TARGETED if indicators_[k]["met"] is False} == TARGETED - met - {"bundle_on_time_rate"}
        assert indicators_["bundle_on_time_rate"]["met"] is None, scope


async def test_counter_visits_of_a_booking_count_for_its_matters_department(settings, services):
    """网上申报办件占比 of a department: its online cases against its online cases and its counter visits.

    A check-in of a booking is a visit for the booked matter, so for the matter's department; a department
    whose matters drew counter visits cannot show 100 % online.
    """
    await seed_march()
    report = await _report(services, settings, date_from=FROM, date_to=TO)
    by_department = {d["department"]: d for d in report["by_department"]}
    # scjgj: 5 online cases, check-ins K2 (booking B1 of M1) and K6 (booking B5 of M3): 5 / 7
    assert by_department["scjgj"]["counts"]["counter_visits"] == 2
    assert by_department["scjgj"]["indicators"]["online_case_rate"]["value"] == 0.7143
    # gjjzx: 3 online cases, check-in K3 (booking B2 of M4): 3 / 4
    assert by_department["gjjzx"]["counts"]["counter_visits"] == 1
    assert by_department["gjjzx"]["indicators"]["online_case_rate"]["value"] == 0.75


async def test_year_targets_and_met(settings, services):
    await seed_march()
    # A reform that started in 2026: year 1, target 80 %; on-time 4 / 5 = 0.8 meets it exactly (>=).
    first_year = settings.replace(reform_start_year=2026)
    report = await _report(services, first_year, date_from=FROM, date_to=TO)
    assert report["target_percent"] == 80 and report["year_of_reform"] == 1
    city = report["city"]["indicators"]
    assert city["on_time_rate"] == {"value": 0.8, "target": 0.8, "met": True}
    assert city["one_visit_rate"] == {"value": 0.6, "target": 0.8, "met": False}
    assert city["zero_visit_rate"] == {"value": 0.4, "target": None, "met": None}  # no target for 零跑路率
    assert city["no_show_rate"]["target"] is None and city["no_show_rate"]["met"] is None
    assert city["avg_days_to_complete"] == {"value": 2.8, "target": None, "met": None}
    assert city["scans_per_matter"] == {"value": 4.4, "target": None, "met": None}

    # REFORM_TARGETS=60,75 from 2025: 2026 is year 2, target 75 %.
    configured = Settings.from_env({"REFORM_TARGETS": "60,75", "REFORM_START_YEAR": "2025"})
    assert configured.reform_targets == (60, 75) and configured.reform_start_year == 2025
    custom = settings.replace(reform_targets=configured.reform_targets, reform_start_year=2025)
    report = await _report(services, custom, date_from=FROM, date_to=TO)
    assert report["target_percent"] == 75 and report["year_of_reform"] == 2
    got = scopes(report)
    assert got["city"]["indicators"]["one_visit_rate"] == {"value": 0.6, "target": 0.75, "met": False}
    assert got["city"]["indicators"]["on_time_rate"] == {"value": 0.8, "target": 0.75, "met": True}
    assert got["department:scjgj"]["indicators"]["on_time_rate"] == {"value": 0.75, "target": 0.75, "met": True}
    assert got["section:social_security"]["indicators"]["on_time_rate"]["met"] is False  # 0.5
    assert got["section:commercial"]["indicators"]["online_case_rate"]["met"] is False  # 0.6667 < 0.75


def test_target_for_each_year_of_the_reform(settings):
    assert settings.reform_start_year == 2018 and settings.reform_targets == (80, 90, 95)
    assert indicators.target_for(settings, 2018) == 80  # year 1
    assert indicators.target_for(settings, 2019) == 90  # year 2
    assert indicators.target_for(settings, 2020) == 95  # year 3
    assert indicators.target_for(settings, 2026) == 95  # and every year after
    assert indicators.target_for(settings, 2017) == 80  # before the reform: the first year's
    custom = settings.replace(reform_targets=(70, 85, 90, 98), reform_start_year=2020)
    assert [indicators.target_for(custom, y) for y in (2020, 2021, 2022, 2023, 2030)] == [70, 85, 90, 98, 98]
    with pytest.raises(Exception, match="REFORM_TARGETS"):
        Settings.from_env({"REFORM_TARGETS": "80,101"})
    with pytest.raises(Exception, match="REFORM_TARGETS"):
        Settings.from_env({"REFORM_TARGETS": "80,ninety"})


@pytest.mark.parametrize(
    ("date_from", "date_to", "percent", "share", "year"),
    [
        (D(2018, 1, 1), D(2018, 12, 31), 80, 0.8, 1),
        (D(2018, 12, 1), D(2019, 1, 31), 90, 0.9, 2),  # the year of the period's end
        (D(2019, 1, 1), D(2019, 6, 30), 90, 0.9, 2),
        (D(2026, 1, 1), D(2026, 3, 31), 95, 0.95, 9),
        (D(2017, 1, 1), D(2017, 12, 31), 80, 0.8, 1),  # before the reform: year 1 at the earliest
    ],
)
async def test_target_of_a_period_is_its_end_years(settings, date_from, date_to, percent, share, year, services):
    await make_department("scjgj")
    await make_matter(M1, section="commercial", department="scjgj", visits=1, online_depth=3)
    report = await _report(services, settings, date_from=date_from, date_to=date_to)
    assert report["target_percent"] == percent and report["year_of_reform"] == year
    # one matter with visits 1: 最多跑一次率 1 / 1, met whatever the target
    assert report["city"]["indicators"]["one_visit_rate"] == {"value": 1.0, "target": share, "met": True}
    assert report["city"]["indicators"]["zero_visit_rate"] == {"value": 0.0, "target": None, "met": None}


async def test_nothing_to_count(settings, services):
    report = await _report(services, settings, date_from=FROM, date_to=TO)
    assert report["by_section"] == [] and report["by_department"] == []
    for key, item in report["city"]["indicators"].items():
        assert item["value"] is None and item["met"] is None, key
        assert item["target"] == (0.95 if key in TARGETED else None), key
    assert set(report["city"]["counts"].values()) == {0}


async def test_range_boundaries_are_whole_days_in_shanghai(settings, services):
    """from and to are inclusive dates in Asia/Shanghai: [from 00:00 +08:00, to + 1 day 00:00 +08:00)."""
    await make_department("scjgj")
    await make_matter(M1, section="commercial", department="scjgj", visits=1, online_depth=3)
    inside = [at(2026, 3, 1, 0, 0, 30), at(2026, 3, 1, 7, 30), at(2026, 3, 31, 23, 59, 30)]  # 2 of them Feb 28 UTC
    outside = [at(2026, 2, 28, 23, 59, 30), at(2026, 4, 1, 0, 0, 30)]  # the latter is still 03-31 in UTC
    for n, when in enumerate(inside + outside):
        await make_case(f"S{n}", M1, submitted=when, status=CaseStatus.submitted)
        await make_checkin("commercial", when)
    for when in inside:
        await make_rating(M1, 5, when)
    for when in outside:
        await make_rating(M1, 1, when)
    # Deliveries: E1 (03-01 00:00:30) and E1b (03-01 07:30) accepted Sun 03-01 -> 0 workdays, due 03-04;
    # E3 (03-31 23:59:30) accepted Mon 03-30 -> 1 workday, due 04-02; E2 (02-28 23:59:30) and
    # E4 (04-01 00:00:30) fall outside. The day of a delivery is its Shanghai date: E5 at Thu 03-05 23:30
    # is on time for due 03-05 (3 workdays from 03-02), E6 at Fri 03-06 00:30 (still 03-05 in UTC) is late
    # (4 workdays).
    deliveries = [
        ("E1", D(2026, 3, 1), D(2026, 3, 4), at(2026, 3, 1, 0, 0, 30)),
        ("E1b", D(2026, 3, 1), D(2026, 3, 4), at(2026, 3, 1, 7, 30)),
        ("E2", D(2026, 2, 26), D(2026, 3, 3), at(2026, 2, 28, 23, 59, 30)),
        ("E3", D(2026, 3, 30), D(2026, 4, 2), at(2026, 3, 31, 23, 59, 30)),
        ("E4", D(2026, 3, 31), D(2026, 4, 3), at(2026, 4, 1, 0, 0, 30)),
        ("E5", D(2026, 3, 2), D(2026, 3, 5), at(2026, 3, 5, 23, 30)),
        ("E6", D(2026, 3, 2), D(2026, 3, 5), at(2026, 3, 6, 0, 30)),
    ]
    for no, accepted, due, when in deliveries:
        await make_case(no, M1, submitted=at(2026, 2, 2), status=CaseStatus.delivered, accepted_on=accepted,
                        due_on=due, delivered=when)  # fmt: skip
    for day in (D(2026, 2, 28), D(2026, 3, 1), D(2026, 3, 31), D(2026, 4, 1)):
        await make_booking(M1, day, BookingStatus.no_show)
    await Code.create(slug="qm1", matter_code=M1)
    for day, scans in ((D(2026, 2, 28), 1), (D(2026, 3, 1), 10), (D(2026, 3, 31), 100), (D(2026, 4, 1), 1000)):
        await make_scans("qm1", day, scans)

    report = await _report(services, settings, date_from=FROM, date_to=TO)
    counts = {k: v for k, v in report["city"]["counts"].items() if k not in {"one_visit", "zero_visit", "deep"}}
    assert counts == {
        "matters": 1,
        "online_cases": 3,  # the 3 submissions inside
        "counter_visits": 3,  # the 3 check-ins inside
        "ratings": 3,  # the 3 good ratings inside, neither bad one outside
        "good": 3,
        "finished": 5,  # E1, E1b, E3, E5, E6
        "on_time": 4,  # E6 late
        "days_total": 8,  # 0 + 0 + 1 + 3 + 4
        "bookings_due": 2,  # 03-01 and 03-31
        "no_shows": 2,
        "scans": 110,  # 10 + 100
        "bundles_finished": 0,
        "bundles_on_time": 0,
    }
    city = {k: v["value"] for k, v in report["city"]["indicators"].items()}
    assert city["online_case_rate"] == 0.5  # 3 / (3 + 3)
    assert city["on_time_rate"] == 0.8  # 4 / 5
    assert city["avg_days_to_complete"] == 1.6  # 8 / 5
    assert city["satisfaction_rate"] == 1.0  # 3 / 3

    # A one-day period: only that Shanghai day.
    day = await _report(services, settings, date_from=FROM, date_to=FROM)
    counts = day["city"]["counts"]
    got = {k: counts[k] for k in ("online_cases", "counter_visits", "ratings", "finished", "days_total", "scans",
                                  "bookings_due")}  # fmt: skip
    assert got == {"online_cases": 2, "counter_visits": 2, "ratings": 2, "finished": 2, "days_total": 0, "scans": 10,
                   "bookings_due": 1}  # fmt: skip


def test_period_defaults_and_errors(fake_clock):
    # The fake clock stands at 2026-09-30 10:00 in Shanghai.
    assert indicators.period(None, None) == (D(2026, 1, 1), D(2026, 9, 30))
    assert indicators.period(None, D(2025, 6, 30)) == (D(2025, 1, 1), D(2025, 6, 30))
    assert indicators.period(D(2026, 3, 1), None) == (D(2026, 3, 1), D(2026, 9, 30))
    assert indicators.period(FROM, FROM) == (FROM, FROM)  # a single day
    assert indicators.period(D(2016, 1, 1), D(2026, 2, 15)) == (D(2016, 1, 1), D(2026, 2, 15))  # 3698 days
    with pytest.raises(RangeInvalid) as info:
        indicators.period(D(2026, 3, 31), D(2026, 3, 1))
    assert info.value.code == "RANGE_INVALID" and info.value.status == 422
    assert info.value.details == {"from": "2026-03-31", "to": "2026-03-01"}
    with pytest.raises(RangeInvalid):
        indicators.period(D(2026, 10, 1), None)  # from after today (the default end)
    # At most 3700 days from `from` to `to`: 2016-01-01 + 3700 days = 2026-02-17.
    assert indicators.period(D(2016, 1, 1), D(2026, 2, 17)) == (D(2016, 1, 1), D(2026, 2, 17))
    with pytest.raises(RangeInvalid):
        indicators.period(D(2016, 1, 1), D(2026, 2, 18))  # 3701 days
    with pytest.raises(RangeInvalid):
        indicators.period(D(2000, 1, 1), D(2026, 1, 1))


async def test_csv_one_row_per_scope_and_indicator_matching_the_json(settings, services):
    await seed_march()
    typed = await _typed(services, settings, date_from=FROM, date_to=TO)
    text = present.to_csv(typed)
    report = present.report_json(typed)
    assert text.startswith("\ufeff")  # Excel reads the UTF-8 Chinese with the BOM
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == ["scope", "key", "name", "indicator", "indicator_name", "value", "target", "met"]
    body = rows[1:]
    n = len(indicators.NAMES)
    assert n == 10
    assert len(body) == 5 * n  # city + 2 sections + 2 departments, 10 indicators each
    order = [("city", ""), ("section", "commercial"), ("section", "social_security"), ("department", "gjjzx"),
             ("department", "scjgj")]  # fmt: skip
    assert [(r[0], r[1]) for r in body[::n]] == order
    names = {"": "全市", "commercial": "商事登记", "social_security": "社会保障", **DEPARTMENT_NAMES}
    got = scopes(report)
    for i, (scope, key) in enumerate(order):
        chunk = body[i * n : (i + 1) * n]
        assert [r[3] for r in chunk] == list(indicators.NAMES)
        json_scope = got["city" if scope == "city" else f"{scope}:{key}"]
        for row in chunk:
            assert row[2] == names[key] and row[4] == indicators.NAMES[row[3]]
            # The row says what the JSON says ...
            item = json_scope["indicators"][row[3]]
            assert row[5] == ("" if item["value"] is None else str(item["value"])), row
            assert row[6] == ("" if item["target"] is None else str(item["target"])), row
            assert row[7] == ("" if item["met"] is None else str(item["met"]).lower()), row
            assert row[6] == ("0.95" if row[3] in TARGETED else ""), row
    # ... and, for the city and the sections, what was worked out by hand (departments: see the test above).
    for row in body[: 3 * n]:
        want = VALUES["city" if row[0] == "city" else f"section:{row[1]}"][row[3]]
        if want is None:
            assert row[5] == "" and row[7] == "", row
            continue
        assert float(row[5]) == want, row
        assert row[7] == (("true" if want >= 0.95 else "false") if row[3] in TARGETED else ""), row
    assert ["city", "", "全市", "one_visit_rate", "最多跑一次率", "0.6", "0.95", "false"] in body
    assert ["section", "commercial", "商事登记", "one_visit_rate", "最多跑一次率", "1.0", "0.95", "true"] in body
    assert ["department", "scjgj", "市市场监督管理局", "avg_days_to_complete", "平均办结工作日", "2.75", "", ""] in body


async def test_csv_leaves_missing_values_empty(settings, services):
    typed = await _typed(services, settings, date_from=FROM, date_to=TO)
    rows = list(csv.reader(io.StringIO(present.to_csv(typed)[1:])))
    assert len(rows) == 1 + len(indicators.NAMES)  # only the city
    for row in rows[1:]:
        assert row[5] == "" and row[7] == "", row
        assert row[6] == ("0.95" if row[3] in TARGETED else ""), row

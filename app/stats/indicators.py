"""The reform indicators, computed from the live catalogue, cases, bookings, ratings and scans.

Shares of the catalogue (最多跑一次率, 零跑路率, online depth ≥ 3) describe the matters active now;
the others count what happened in [from, to] (dates in Asia/Shanghai). Each share is set against
the year's target (years counted from `reform_start_year`: 80 / 90 / 95 % by default, configurable).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tortoise.expressions import Subquery
from tortoise.functions import Count, Sum

from app import clock, workdays
from app.booking.models import Booking, BookingStatus, CheckIn
from app.cases import bundles as case_bundles
from app.cases.models import Case, CaseEvent, CaseStatus
from app.errors import ServiceUnavailable
from app.feedback.errors import RangeInvalid
from app.feedback.models import Rating
from app.feedback.ratings import GOOD_LEVELS
from app.jsontext import dumps, loads
from app.matters.models import Department, Matter, MatterStatus, MatterVersion, VersionStatus
from app.matters.schemas import SECTION_NAMES, Section
from app.ratelimit import Limit, hit
from app.settings import Settings
from app.stats import present
from app.stats.deps import StatsDeps
from app.stats.types import (
    NAMES,
    BundleFigure,
    BundleReport,
    Indicator,
    IndicatorReport,
    ProjectFigure,
    ScopeReport,
)
from qr.models import Code, ScanDaily

__all__ = ["NAMES", "compute", "period", "public_report", "target_for"]

EARLIEST = dt.date(2000, 1, 1)
PUBLIC_CACHE_SECONDS = 60
SHARES_WITH_TARGET = (
    "one_visit_rate",
    "online_depth_rate",
    "online_case_rate",
    "on_time_rate",
    "bundle_on_time_rate",
    "satisfaction_rate",
)
PROJECTS_SHOWN = 200  # the capped projects listed, most recently accepted first


@dataclass
class _Counts:
    """Numerators and denominators of one scope (the whole city, a section or a department)."""

    matters: int = 0
    one_visit: int = 0
    zero_visit: int = 0
    deep: int = 0
    online_cases: int = 0
    counter_visits: int = 0
    finished: int = 0
    on_time: int = 0
    days_total: int = 0
    bundles_finished: int = 0
    bundles_on_time: int = 0
    bookings_due: int = 0
    no_shows: int = 0
    ratings: int = 0
    good: int = 0
    scans: int = 0

    def indicators(self) -> dict[str, float | None]:
        def share(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        return {
            "one_visit_rate": share(self.one_visit, self.matters),
            "zero_visit_rate": share(self.zero_visit, self.matters),
            "online_depth_rate": share(self.deep, self.matters),
            "online_case_rate": share(self.online_cases, self.online_cases + self.counter_visits),
            "on_time_rate": share(self.on_time, self.finished),
            "bundle_on_time_rate": share(self.bundles_on_time, self.bundles_finished),
            "avg_days_to_complete": round(self.days_total / self.finished, 2) if self.finished else None,
            "no_show_rate": share(self.no_shows, self.bookings_due),
            "satisfaction_rate": share(self.good, self.ratings),
            "scans_per_matter": round(self.scans / self.matters, 2) if self.matters else None,
        }

    def counts(self) -> tuple[tuple[str, int], ...]:
        return tuple(self.__dict__.items())


def period(date_from: dt.date | None, date_to: dt.date | None) -> tuple[dt.date, dt.date]:
    """A checked period: this year so far by default, at most about ten years (422 RANGE_INVALID otherwise)."""
    today = clock.today()
    end = date_to or today
    start = date_from or dt.date(end.year, 1, 1)
    if start > end or (end - start).days > 3700 or start < EARLIEST or end > today + dt.timedelta(days=366):
        raise RangeInvalid(details={"from": start.isoformat(), "to": end.isoformat()})
    return start, end


async def public_report(deps: StatsDeps, *, client: str, date_from: dt.date, date_to: dt.date) -> IndicatorReport:
    """The report for the public dashboard: rate limited per address and shared for a minute per period.

    Without the store (Redis down) the page still works, uncached and unlimited, as public pages must.
    """
    store = deps.store
    key = f"indicators:{date_from}:{date_to}"
    with contextlib.suppress(ServiceUnavailable):  # 429 stands; a store that is down only skips the limit
        await hit(store, Limit("stats-page-ip-1m", 30, 60), client)
    cached = None
    with contextlib.suppress(Exception):
        cached = await store.get(key)
    if cached:
        return present.report_from_json(loads(cached))
    report = await compute(deps, date_from=date_from, date_to=date_to)
    with contextlib.suppress(Exception):
        await store.set(key, dumps(present.report_json(report)), ex=PUBLIC_CACHE_SECONDS)
    return report


async def _grouped(query: Any, *fields: str) -> list[dict[str, Any]]:
    """Row counts of a query per combination of fields (`n`)."""
    return await query.annotate(n=Count("id")).group_by(*fields).values(*fields, "n")


def target_for(settings: Settings, year: int) -> int:
    """The target share (percent) for a calendar year of the reform."""
    index = max(year - settings.reform_start_year, 0)
    return settings.reform_targets[min(index, len(settings.reform_targets) - 1)]


async def compute(deps: StatsDeps, *, date_from: dt.date, date_to: dt.date) -> IndicatorReport:
    """Every indicator for the city, by section and by department, with the year's target."""
    settings = deps.settings
    begin, end = clock.day_start(date_from), clock.day_start(date_to + dt.timedelta(days=1))
    city = _Counts()
    sections: defaultdict[str, _Counts] = defaultdict(_Counts)
    departments: defaultdict[str, _Counts] = defaultdict(_Counts)

    def scopes(section: str | None, department: str | None) -> Iterable[_Counts]:
        yield city
        if section:
            yield sections[section]
        if department:
            yield departments[department]

    matters = await Matter.filter(status=MatterStatus.active, published_no__isnull=False).values(
        "code", "section", "department_code", "visits", "online_depth"
    )
    where = {m["code"]: (m["section"], m["department_code"]) for m in matters}
    for m in matters:
        for c in scopes(m["section"], m["department_code"]):
            c.matters += 1
            c.one_visit += m["visits"] <= 1
            c.zero_visit += m["visits"] == 0
            c.deep += m["online_depth"] >= 3

    # Counted in the database (GROUP BY) and joined by subqueries: a year of a city's cases is no IN list.
    # A bundle (一件事) is one application: its parts, opened by the system, are not applications of their own.
    filed = Case.filter(submitted_at__gte=begin, submitted_at__lt=end).exclude(kind="part")
    for row in await _grouped(filed, "section", "department_code"):
        for c in scopes(row["section"], row["department_code"]):
            c.online_cases += row["n"]
    visits = CheckIn.filter(created_at__gte=begin, created_at__lt=end, undone_at__isnull=True)
    for row in await _grouped(visits.filter(booking_id__isnull=True), "section"):
        for c in scopes(row["section"], None):  # a walk-in belongs to its section only
            c.counter_visits += row["n"]
    booked_visits = Booking.filter(id__in=Subquery(visits.filter(booking_id__isnull=False).values("booking_id")))
    for row in await _grouped(booked_visits, "section", "matter_code"):
        for c in scopes(row["section"], where.get(row["matter_code"], (None, None))[1]):
            c.counter_visits += row["n"]

    # Finished cases: delivered in the range (the promised time runs until the decision is delivered).
    # A bundle is delivered once, as a whole (its parts go with it): it counts once, against its own promise.
    delivered = CaseEvent.filter(action="deliver", created_at__gte=begin, created_at__lt=end)
    when = {d["case_id"]: clock.local_date(d["created_at"]) for d in await delivered.values("case_id", "created_at")}
    per_bundle: dict[str, list[int]] = {}
    if when:
        for case in await Case.filter(id__in=Subquery(delivered.values("case_id"))).values(
            "id", "section", "department_code", "accepted_on", "due_on", "suspended_days", "status", "kind",
            "matter_code",
        ):  # fmt: skip
            if case["status"] not in {CaseStatus.delivered, CaseStatus.completed} or case["accepted_on"] is None:
                continue
            done = when[case["id"]]
            days = max(workdays.workdays_between(case["accepted_on"], done) - case["suspended_days"], 0)
            in_time = case["due_on"] is not None and done <= case["due_on"]
            for c in scopes(case["section"], case["department_code"]):
                c.finished += 1
                c.on_time += in_time
                c.days_total += days
                if case["kind"] == "bundle":
                    c.bundles_finished += 1
                    c.bundles_on_time += in_time
            if case["kind"] == "bundle":
                tally = per_bundle.setdefault(case["matter_code"], [0, 0])
                tally[0] += 1
                tally[1] += in_time

    due = Booking.filter(
        day__gte=date_from, day__lte=date_to, status__in=[BookingStatus.checked_in, BookingStatus.no_show]
    )
    for b in await _grouped(due, "section", "matter_code", "status"):
        for c in scopes(b["section"], where.get(b["matter_code"], (None, None))[1]):
            c.bookings_due += b["n"]
            c.no_shows += b["n"] if b["status"] == BookingStatus.no_show else 0

    rated = Rating.filter(created_at__gte=begin, created_at__lt=end, excluded=False)
    for r in await _grouped(rated, "matter_code", "department_code", "level"):
        for c in scopes(where.get(r["matter_code"], (None, None))[0], r["department_code"]):
            c.ratings += r["n"]
            c.good += r["n"] if r["level"] in GOOD_LEVELS else 0

    codes = dict(await Code.all().values_list("slug", "matter_code"))
    scanned = ScanDaily.filter(day__gte=date_from, day__lte=date_to).annotate(total=Sum("scans")).group_by("slug")
    for s in await scanned.values("slug", "total"):
        matter = codes.get(s["slug"])
        if matter in where:
            section, department = where[matter]
            for c in scopes(section, department):
                c.scans += int(s["total"] or 0)

    target = target_for(settings, date_to.year)
    names = dict(await Department.all().values_list("code", "name"))
    return IndicatorReport(
        date_from=date_from,
        date_to=date_to,
        generated_at=clock.now(),
        year_of_reform=max(date_to.year - settings.reform_start_year + 1, 1),
        target_percent=target,
        city=_scope("city", "", "全市", city, target),
        by_section=tuple(
            _scope("section", s.value, SECTION_NAMES[s], sections[s.value], target)
            for s in Section
            if s.value in sections
        ),
        by_department=tuple(
            _scope("department", code, names.get(code, code), departments[code], target) for code in sorted(departments)
        ),
        bundles=await _bundle_report(per_bundle, date_from, date_to),
    )


async def _bundle_report(per_bundle: dict[str, list[int]], date_from: dt.date, date_to: dt.date) -> BundleReport:
    """Every offered bundle with its finished applications, and the capped projects of the period.

    A capped project counts in the period when its capped stages were decided in it, or are still running
    (so the dashboard shows the projects under way); the stages' days come from their parts' real dates.
    """
    offered = await _offered_bundles()
    figures = tuple(
        BundleFigure(code, name, promised, *per_bundle.get(code, [0, 0]))
        for code, (name, promised, _) in sorted(offered.items())
    )
    capped = [code for code, (_, _, has_cap) in offered.items() if has_cap]
    parents = (
        Case.filter(kind="bundle", matter_code__in=capped, accepted_on__isnull=False, accepted_on__lte=date_to)
        .exclude(status__in=[CaseStatus.rejected, CaseStatus.withdrawn])
        .order_by("-accepted_on", "-case_no")
        .limit(PROJECTS_SHOWN)
    )
    projects = []
    for parent in await parents if capped else []:
        view = await case_bundles.view(parent)
        cap = view.cap
        if cap is None:
            continue
        stages = [s for s in view.stages if s.no in set(cap.stages)]
        decided = max((s.decided_on for s in stages if s.decided_on), default=None)
        if cap.finished and decided is not None and not (date_from <= decided <= date_to):
            continue
        projects.append(
            ProjectFigure(
                bundle_no=view.bundle_no,
                code=view.code,
                name=view.name,
                cap_name=cap.name,
                cap_days=cap.days,
                stage_days=tuple((s.name, s.used_days) for s in stages),
                used_days=cap.used_days,
                finished=cap.finished,
                within=cap.within,
            )
        )
    return BundleReport(figures, tuple(projects))


async def _offered_bundles() -> dict[str, tuple[str, int, bool]]:
    """The offered bundles: code -> (name, promised working days, has a cap over some stages)."""
    # matter.kind says which matters are bundles: only their guides are read.
    rows = await MatterVersion.filter(
        status=VersionStatus.published, matter__status=MatterStatus.active, matter__kind="bundle"
    ).values("matter__code", "content")
    out = {}
    for row in rows:
        content = row["content"] or {}
        bundle = content.get("bundle")
        if bundle:
            out[row["matter__code"]] = (content["name"], int(content["promised_limit_days"]), bool(bundle.get("cap")))
    return out


def _scope(kind: str, key: str, name: str, counts: _Counts, target: int) -> ScopeReport:
    values = counts.indicators()
    indicators = tuple(
        (
            key_,
            Indicator(
                value=value,
                target=target / 100 if key_ in SHARES_WITH_TARGET else None,
                met=(value >= target / 100) if key_ in SHARES_WITH_TARGET and value is not None else None,
            ),
        )
        for key_, value in values.items()
    )
    return ScopeReport(kind, key, name, indicators, counts.counts())

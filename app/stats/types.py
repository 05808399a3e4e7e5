"""The reform indicators' report as typed values (no ORM, so channels may import it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

NAMES = {
    "one_visit_rate": "最多跑一次率",
    "zero_visit_rate": "零跑路率",
    "online_depth_rate": "网办深度≥3 事项占比",
    "online_case_rate": "网上申报办件占比",
    "on_time_rate": "按时办结率",
    "bundle_on_time_rate": "“一件事”按承诺时限办结率",
    "avg_days_to_complete": "平均办结工作日",
    "no_show_rate": "预约爽约率",
    "satisfaction_rate": "好评率",
    "scans_per_matter": "事项平均扫码次数",
}


@dataclass(frozen=True)
class Indicator:
    """One indicator's value against the year's target (target and met only for the targeted shares)."""

    value: float | None
    target: float | None
    met: bool | None


@dataclass(frozen=True)
class ScopeReport:
    """The indicators and their counts of one scope: the city, a section or a department."""

    kind: str  # city | section | department
    key: str  # the section or department code ('' for the city)
    name: str
    indicators: tuple[tuple[str, Indicator], ...]  # in NAMES order
    counts: tuple[tuple[str, int], ...]

    def indicator(self, key: str) -> Indicator:
        """One indicator by its key."""
        return dict(self.indicators)[key]


@dataclass(frozen=True)
class BundleFigure:
    """One bundle (一件事) over the period: applications finished (delivered) and how many within the promise."""

    code: str
    name: str
    promised_days: int
    finished: int
    on_time: int


@dataclass(frozen=True)
class ProjectFigure:
    """One application of a bundle with a cap over some stages (e.g. an investment project's first four ≤ 48).

    `stage_days` are the working days each capped stage took (pauses excluded; None when not started);
    `used_days` their sum, final when `finished`.
    """

    bundle_no: str
    code: str
    name: str
    cap_name: str
    cap_days: int
    stage_days: tuple[tuple[str, int | None], ...]
    used_days: int
    finished: bool
    within: bool


@dataclass(frozen=True)
class BundleReport:
    """一件事 over the period: each bundle's finished applications, and the capped projects stage by stage."""

    bundles: tuple[BundleFigure, ...] = ()
    projects: tuple[ProjectFigure, ...] = ()

    @property
    def projects_finished(self) -> int:
        """Projects whose capped stages are all decided."""
        return sum(p.finished for p in self.projects)

    @property
    def projects_within(self) -> int:
        """Finished projects whose capped stages took no more than the cap."""
        return sum(p.finished and p.within for p in self.projects)


@dataclass(frozen=True)
class IndicatorReport:
    """Every indicator for the city, by section and by department, for a period, with the year's target."""

    date_from: dt.date
    date_to: dt.date
    generated_at: dt.datetime
    year_of_reform: int
    target_percent: int
    city: ScopeReport
    by_section: tuple[ScopeReport, ...]
    by_department: tuple[ScopeReport, ...]
    bundles: BundleReport = BundleReport()

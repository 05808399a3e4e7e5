"""The indicator report as the API's JSON and as CSV, and back from the JSON the public dashboard caches."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from app import clock
from app.stats.types import NAMES, Indicator, IndicatorReport, ScopeReport

_KEY_FIELD = {"section": "section", "department": "department"}


def _scope_json(scope: ScopeReport) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if scope.kind in _KEY_FIELD:
        body = {_KEY_FIELD[scope.kind]: scope.key, "name": scope.name}
    body["indicators"] = {key: {"value": i.value, "target": i.target, "met": i.met} for key, i in scope.indicators}
    body["counts"] = dict(scope.counts)
    return body


def report_json(report: IndicatorReport) -> dict[str, Any]:
    """The report as GET /api/v1/admin/indicators answers it."""
    return {
        "from": report.date_from.isoformat(),
        "to": report.date_to.isoformat(),
        "generated_at": clock.iso(report.generated_at),
        "year_of_reform": report.year_of_reform,
        "target_percent": report.target_percent,
        "names": NAMES,
        "city": _scope_json(report.city),
        "by_section": [_scope_json(s) for s in report.by_section],
        "by_department": [_scope_json(d) for d in report.by_department],
    }


def _scope_from(kind: str, data: dict[str, Any]) -> ScopeReport:
    key = data.get(_KEY_FIELD.get(kind, ""), "")
    indicators = tuple((k, Indicator(v["value"], v["target"], v["met"])) for k, v in data["indicators"].items())
    return ScopeReport(kind, key, data.get("name", "全市"), indicators, tuple(data["counts"].items()))


def report_from_json(data: dict[str, Any]) -> IndicatorReport:
    """A report back from its JSON (the dashboard's shared cache)."""
    return IndicatorReport(
        date_from=dt.date.fromisoformat(data["from"]),
        date_to=dt.date.fromisoformat(data["to"]),
        generated_at=dt.datetime.fromisoformat(data["generated_at"]),
        year_of_reform=data["year_of_reform"],
        target_percent=data["target_percent"],
        city=_scope_from("city", data["city"]),
        by_section=tuple(_scope_from("section", s) for s in data["by_section"]),
        by_department=tuple(_scope_from("department", d) for d in data["by_department"]),
    )


def to_csv(report: IndicatorReport) -> str:
    """The report as CSV: one row per scope and indicator (UTF-8 with BOM so Excel reads the Chinese)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["scope", "key", "name", "indicator", "indicator_name", "value", "target", "met"])
    for scope in (report.city, *report.by_section, *report.by_department):
        for key, i in scope.indicators:
            writer.writerow(
                [scope.kind, scope.key, scope.name, key, NAMES[key], "" if i.value is None else i.value,
                 "" if i.target is None else i.target, "" if i.met is None else str(i.met).lower()]
            )  # fmt: skip
    return out.getvalue()

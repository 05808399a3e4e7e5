"""The indicator report as the API's JSON and as CSV, and back from the JSON the public dashboard caches."""

from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata
from typing import Any

from app import clock
from app.stats.types import (
    NAMES,
    BundleFigure,
    BundleReport,
    Indicator,
    IndicatorReport,
    ProjectFigure,
    ScopeReport,
)

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
        "bundles": bundles_json(report.bundles),
    }


def _share(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def bundles_json(b: BundleReport) -> dict[str, Any]:
    """一件事: each bundle's finished applications within its promise; capped projects stage by stage."""
    return {
        "items": [
            {
                "code": f.code,
                "name": f.name,
                "promised_days": f.promised_days,
                "finished": f.finished,
                "on_time": f.on_time,
                "on_time_rate": _share(f.on_time, f.finished),
            }
            for f in b.bundles
        ],
        "projects": [
            {
                "bundle_no": p.bundle_no,
                "code": p.code,
                "name": p.name,
                "cap_name": p.cap_name,
                "cap_days": p.cap_days,
                "stages": [{"name": n, "used_days": d} for n, d in p.stage_days],
                "used_days": p.used_days,
                "finished": p.finished,
                "within": p.within,
            }
            for p in b.projects
        ],
        "projects_finished": b.projects_finished,
        "projects_within": b.projects_within,
        "projects_within_rate": _share(b.projects_within, b.projects_finished),
    }


def _bundles_from(data: dict[str, Any] | None) -> BundleReport:
    if not data:
        return BundleReport()
    figures = tuple(
        BundleFigure(i["code"], i["name"], i["promised_days"], i["finished"], i["on_time"]) for i in data["items"]
    )
    projects = tuple(
        ProjectFigure(
            p["bundle_no"], p["code"], p["name"], p["cap_name"], p["cap_days"],
            tuple((s["name"], s["used_days"]) for s in p["stages"]), p["used_days"], p["finished"], p["within"],
        )
        for p in data["projects"]
    )  # fmt: skip
    return BundleReport(figures, projects)


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
        bundles=_bundles_from(data.get("bundles")),
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


# -- the dashboard's bar charts, laid out on the server ------------------------------------------------
# Names go on their own lines above their bar, wrapped to the chart's width, so no name is ever cut: the
# SVG scales as a whole, so what fits its viewBox fits at every screen width.
CHART_WIDTH = 400  # viewBox units
TRACK = 300  # the 100 % bar; its value is written just right of it
FONT = 14
LINE = 18  # line height of a wrapped name
_WIDE = {"%": 0.9, "m": 0.9, "w": 0.9, "M": 0.9, "W": 1.0}


def text_width(text: str, size: float = FONT) -> float:
    """A generous estimate of how wide a line of text is drawn (CJK one em, Latin about 0.62 em)."""
    em = 0.0
    for ch in text:
        em += 1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else _WIDE.get(ch, 0.62)
    return em * size


def wrap_label(text: str, width: float = CHART_WIDTH - 4) -> list[str]:
    """A name as lines no wider than `width` (greedy; a line breaks at a space when the space is near)."""
    lines: list[str] = []
    line = ""
    for ch in text.strip():
        if line and text_width(line + ch) > width:
            head, space, tail = line.rpartition(" ")
            if space and head and len(tail) < 12:
                lines.append(head)
                line = tail + ch
            else:
                lines.append(line)
                line = "" if ch == " " else ch
        else:
            line += ch
    return [*lines, line] if line or not lines else lines


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def bar_chart(chart_id: str, title: str, rows: list[tuple[str, float | None, bool]], target: float | None
              ) -> dict[str, Any]:  # fmt: skip
    """Where each name, bar and value of a chart goes: rows of (name, share 0..1 or None, judged by target)."""
    y = 4
    laid: list[dict[str, Any]] = []
    for name, value, judged in rows:
        lines = wrap_label(name)
        bar_y = y + len(lines) * LINE + 8
        colour = "#1456c8"
        if judged and value is not None:
            colour = "#16803c" if target is None or value >= target else "#c8161d"
        laid.append({
            "name": name, "lines": lines, "text_y": y + FONT, "bar_y": bar_y, "value": value, "shown": _pct(value),
            "width": None if value is None else round(value * TRACK, 1), "fill": colour,
        })  # fmt: skip
        y = bar_y + 16 + 10
    chart: dict[str, Any] = {
        "id": chart_id,
        "title": title,
        "desc": "；".join(f"{r['name']} {r['shown']}" for r in laid) + (f"。目标 {_pct(target)}" if target else ""),
        "rows": laid,
        "width": CHART_WIDTH,
        "track": TRACK,
        "value_x": TRACK + 6,
        "height": y + (24 if target is not None else 0),
        "target": None,
    }
    if target is not None:
        x = round(target * TRACK, 1)
        # The target's label hangs off its line toward the middle, so it never leaves the chart.
        chart["target"] = {"x": x, "label_y": y + 18, "anchor": "end" if target > 0.5 else "start",
                           "label": f"目标 {_pct(target)}"}  # fmt: skip
    return chart


CITY_CHART = ("one_visit_rate", "zero_visit_rate", "online_depth_rate", "online_case_rate", "on_time_rate",
              "satisfaction_rate")  # fmt: skip
UNJUDGED = {"zero_visit_rate"}  # shown for information: it has no target of its own


def dashboard_charts(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The three charts of the public dashboard from the report's JSON (report_json)."""
    target = data["target_percent"] / 100
    city = data["city"]["indicators"]
    return [
        bar_chart("chart-city", "全市各项比率与目标",
                  [(NAMES[k], city[k]["value"], k not in UNJUDGED) for k in CITY_CHART], target),
        bar_chart("chart-sections", "分板块最多跑一次率",
                  [(s["name"], s["indicators"]["one_visit_rate"]["value"], True) for s in data["by_section"]], target),
        bar_chart("chart-departments", "分部门好评率",
                  [(d["name"], d["indicators"]["satisfaction_rate"]["value"], True) for d in data["by_department"]],
                  target),
    ]  # fmt: skip

"""JSON shapes of the codes' results (administration API, guide links)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from app import clock
from app.matters import present as catalogue_present
from app.paging import Page
from qr.service import CodeInfo, CodeLinks
from qr.types import CodeStats, DayScans, InvalidScans


def code(info: CodeInfo) -> dict[str, Any]:
    """One code, times in ISO 8601 (+08:00)."""
    data = asdict(info)
    for key in ("valid_since", "valid_until", "created_at"):
        data[key] = clock.iso(data[key])
    return data


def code_page(result: Page[CodeInfo]) -> dict[str, Any]:
    """The API list envelope of codes."""
    return catalogue_present.page(result, code)


def links(value: CodeLinks | None) -> dict[str, str] | None:
    """A default code's links, as the guide shows them."""
    return asdict(value) if value is not None else None


def _day_scans(d: DayScans) -> dict[str, Any]:
    return {"date": d.day.isoformat(), "scans": d.scans, "by_channel": dict(d.by_channel), "visitors": d.visitors}


def code_stats(stats: CodeStats) -> dict[str, Any]:
    """A code's scans per day and channel."""
    return {
        "slug": stats.slug,
        "from": stats.date_from.isoformat(),
        "to": stats.date_to.isoformat(),
        "days": [_day_scans(d) for d in stats.days],
        "total_scans": stats.total_scans,
        "by_channel": dict(stats.by_channel),
    }


def invalid_stats(rows: tuple[InvalidScans, ...]) -> list[dict[str, Any]]:
    """Invalid scans per day and reason."""
    return [{"date": r.day.isoformat(), "reason": r.reason, "scans": r.scans} for r in rows]

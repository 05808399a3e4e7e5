"""What the citizen's pages show of a bundle (一件事): its stages and parts, and the bundle a part belongs to."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.cases.types import BundleRef, BundleView, TimelineEntry
from app.clock import SHANGHAI
from app.matters import service as catalogue

STAGE_STATES = {"waiting": "未开始", "running": "办理中", "done": "已完成", "stopped": "已终止"}


def _day(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


async def department_names() -> dict[str, str]:
    """Department names by code (a part names its department by code)."""
    return {d.code: d.name for d in await catalogue.list_departments()}


def bundle_context(b: BundleView | None, departments: dict[str, str]) -> dict[str, Any] | None:
    """A bundle's stages with their parts, what holds it up, the expected date and the cap, for a template."""
    if b is None:
        return None
    stages = []
    corrections = []
    for st in b.stages:
        parts = []
        for p in st.parts:
            part = {
                "case_no": p.case_no,
                "matter": {"code": p.matter_code, "name": p.matter_name},
                "department": departments.get(p.department, p.department),
                "status": p.status.value,
                "status_name": p.status_name,
                "due_on": _day(p.due_on),
                "decided_on": _day(p.decided_on),
                "sla": p.sla.state,
                "correction": dict(p.correction) if p.correction else None,
            }
            parts.append(part)
            if part["status"] == "correction_required" and part["correction"]:
                corrections.append(part)
        stages.append({
            "no": st.no, "name": st.name, "promised_days": st.promised_days, "state": st.state,
            "state_name": STAGE_STATES.get(st.state, st.state), "started_on": _day(st.started_on),
            "due_on": _day(st.due_on), "decided_on": _day(st.decided_on), "overdue": st.overdue, "parts": parts,
        })  # fmt: skip
    cap = None
    if b.cap is not None:
        cap = {"name": b.cap.name, "days": b.cap.days, "used_days": b.cap.used_days, "finished": b.cap.finished,
               "within": b.cap.within}  # fmt: skip
    return {
        "bundle_no": b.bundle_no,
        "code": b.code,
        "name": b.name,
        "lead_department": departments.get(b.lead_department, b.lead_department),
        "current_stage": b.current_stage,
        "expected_on": _day(b.expected_on),
        "holding": list(b.holding),
        "stages": stages,
        "corrections": corrections,
        "cap": cap,
    }


def part_of_context(r: BundleRef | None, departments: dict[str, str]) -> dict[str, Any] | None:
    """The bundle a part belongs to, for a link back."""
    if r is None:
        return None
    return {
        "bundle_no": r.bundle_no, "code": r.code, "name": r.name,
        "lead_department": departments.get(r.lead_department, r.lead_department), "stage": r.stage,
        "stage_name": r.stage_name,
    }  # fmt: skip


def timeline_context(entries: tuple[TimelineEntry, ...]) -> list[dict[str, Any]]:
    """Timeline steps, times in Asia/Shanghai to the minute; in a bundle each step names its part."""
    return [
        {"label": e.label, "at": f"{e.at.astimezone(SHANGHAI):%Y-%m-%d %H:%M}", "text": e.text, "source": e.source,
         "case_no": e.case_no}
        for e in entries
    ]  # fmt: skip

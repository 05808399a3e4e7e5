"""The API's JSON of the case results (app.cases.types): the mini program's and the staff console's.

Times in ISO 8601 with +08:00, dates as YYYY-MM-DD; the key order is the API's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from app import clock
from app.cases.types import (
    BundleRef,
    BundleView,
    CasePage,
    CaseSummary,
    CaseView,
    DeliveryView,
    Feed,
    MaterialItem,
    NextStep,
    PartyView,
    ProgressView,
    Receipt,
    Sla,
    StaffCaseItem,
    StaffCasePage,
    StaffCaseView,
    Submission,
    TimelineEntry,
    UploadInfo,
)
from app.notify import present as notify_present
from app.paging import envelope
from auth.pii import mask_id_number, mask_name, mask_phone


def _day(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def sla_json(sla: Sla) -> dict[str, Any]:
    """The SLA block."""
    body: dict[str, Any] = {"state": sla.state, "due_on": _day(sla.due_on), "days_left": sla.days_left}
    if sla.state == "paused":
        body["suspended_on"] = _day(sla.suspended_on)
    return body


def _next_step(step: NextStep | None) -> dict[str, Any] | None:
    return None if step is None else {"name": step.name, "expected_by": _day(step.expected_by)}


def summary_json(s: CaseSummary) -> dict[str, Any]:
    """A case as a list shows it."""
    return {
        "case_no": s.case_no,
        "matter": {"code": s.matter_code, "name": s.matter_name, "guide_version": s.guide_version},
        "status": s.status.value,
        "status_name": s.status_name,
        "submitted_at": clock.iso(s.submitted_at),
        "updated_at": clock.iso(s.updated_at),
        "promised_days": s.promised_days,
        "accepted_on": _day(s.accepted_on),
        "sla": sla_json(s.sla),
        "next_step": _next_step(s.next_step),
        "kind": s.kind,
        **({"bundle_no": s.bundle_no, "stage": s.stage} if s.kind == "part" else {}),
    }


def bundle_json(b: BundleView) -> dict[str, Any]:
    """A bundle's stages and parts, what holds it up and the expected date of the whole."""
    return {
        "bundle_no": b.bundle_no,
        "code": b.code,
        "name": b.name,
        "lead_department": b.lead_department,
        "current_stage": b.current_stage,
        "expected_on": _day(b.expected_on),
        "holding": list(b.holding),
        "stages": [
            {
                "no": st.no,
                "name": st.name,
                "promised_days": st.promised_days,
                "state": st.state,
                "started_on": _day(st.started_on),
                "due_on": _day(st.due_on),
                "decided_on": _day(st.decided_on),
                "used_days": st.used_days,
                "paused_days": st.paused_days,
                "overdue": st.overdue,
                "parts": [
                    {
                        "case_no": p.case_no,
                        "matter": {"code": p.matter_code, "name": p.matter_name},
                        "department": p.department,
                        "status": p.status.value,
                        "status_name": p.status_name,
                        "accepted_on": _day(p.accepted_on),
                        "due_on": _day(p.due_on),
                        "decided_on": _day(p.decided_on),
                        "sla": sla_json(p.sla),
                        "correction": p.correction,
                    }
                    for p in st.parts
                ],
            }
            for st in b.stages
        ],
        "cap": None
        if b.cap is None
        else {
            "name": b.cap.name,
            "stages": list(b.cap.stages),
            "days": b.cap.days,
            "used_days": b.cap.used_days,
            "finished": b.cap.finished,
            "within": b.cap.within,
        },
    }


def part_of_json(r: BundleRef) -> dict[str, Any]:
    """The bundle a part belongs to."""
    return {
        "bundle_no": r.bundle_no,
        "code": r.code,
        "name": r.name,
        "lead_department": r.lead_department,
        "stage": r.stage,
        "stage_name": r.stage_name,
    }


def _bundle_blocks(bundle: BundleView | None, part_of: BundleRef | None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if bundle is not None:
        body["bundle"] = bundle_json(bundle)
    if part_of is not None:
        body["part_of"] = part_of_json(part_of)
    return body


def _timeline(entries: tuple[TimelineEntry, ...], *, internal: bool) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        item: dict[str, Any] = {
            "action": e.action,
            "label": e.label,
            "status": e.status.value,
            "status_name": e.status_name,
            "text": e.text,
            "at": clock.iso(e.at),
        }
        if e.source is not None:
            item.update(source=e.source, case_no=e.case_no)
        if internal:
            item.update(actor={"kind": e.actor_kind, "id": e.actor_id}, note=e.note, data=e.data)
        out.append(item)
    return out


def _materials(items: tuple[MaterialItem, ...]) -> list[dict[str, Any]]:
    return [
        {
            "name": m.name,
            "round": m.round,
            "upload_id": str(m.upload_id),
            "filename": m.filename,
            "file_type": m.file_type,
            "size": m.size,
            "sha256": m.sha256,
        }
        for m in items
    ]


def masked_party(p: PartyView) -> PartyView:
    """The principal with name, ID number and phone masked (what a screen shows until the full data is needed)."""
    return PartyView(
        kind=p.kind,
        name=mask_name(p.name) if p.name else "",
        id_number=mask_id_number(p.id_number) if p.id_number else "",
        phone=mask_phone(p.phone) if p.phone else None,
    )


def _party(p: PartyView) -> dict[str, Any]:
    return {"kind": p.kind, "name": p.name, "id_number": p.id_number, "phone": p.phone}


def _delivery(d: DeliveryView) -> dict[str, Any]:
    body: dict[str, Any] = {"method": d.method, "tracking_no": d.tracking_no}
    if d.address is not None:
        body["address"] = dict(d.address)
    return body


def receipt_json(r: Receipt) -> dict[str, Any]:
    """The receipt block."""
    return {"case_code": r.case_code, "progress_url": r.progress_url}


def case_json(v: CaseView) -> dict[str, Any]:
    """A case for its applicant, agent or principal (with the receipt when the view carries it)."""
    body = summary_json(v.summary)
    body.update(
        id=str(v.id),
        agent=v.agent,
        principal=_party(v.principal),
        delivery=_delivery(v.delivery),
        correction=v.correction,
        materials=_materials(v.materials),
        form=v.form,
        hall=v.hall,
        department=v.department,
        timeline=_timeline(v.timeline, internal=False),
    )
    body["actions"] = list(v.actions)
    if v.receipt is not None:
        body["receipt"] = receipt_json(v.receipt)
    body.update(_bundle_blocks(v.bundle, v.part_of))
    return body


def submission_json(s: Submission) -> dict[str, Any]:
    """The answer to a submission: the case, its query code (shown once) and the receipt."""
    body = case_json(s.case)
    body["query_code"] = s.query_code
    body["receipt"] = receipt_json(s.receipt)
    return body


def progress_json(v: ProgressView) -> dict[str, Any]:
    """A case for an anonymous query."""
    body = summary_json(v.summary)
    body["principal"] = {"name": v.principal_name}
    body["timeline"] = _timeline(v.timeline, internal=False)
    body.update(_bundle_blocks(v.bundle, None))
    return body


def staff_case_json(v: StaffCaseView) -> dict[str, Any]:
    """A case for staff, in full."""
    body = summary_json(v.summary)
    body.update(
        id=str(v.id),
        agent=v.agent,
        principal=_party(v.principal),
        applicant_account=str(v.applicant_account),
        delivery=_delivery(v.delivery),
        correction=v.correction,
        form=v.form,
        materials=_materials(v.materials),
        hall=v.hall,
        department=v.department,
        suspended_days=v.suspended_days,
        actions=list(v.actions),
        timeline=_timeline(v.timeline, internal=True),
        notifications=[notify_present.notification_json(n) for n in v.notifications],
    )
    body.update(_bundle_blocks(v.bundle, v.part_of))
    return body


def page_json(p: CasePage) -> dict[str, Any]:
    """A page of the caller's cases."""
    return envelope(p, summary_json)


def staff_page_json(p: StaffCasePage) -> dict[str, Any]:
    """A page of cases in a staff member's scope."""
    return envelope(p, staff_item_json)


def staff_item_json(i: StaffCaseItem) -> dict[str, Any]:
    """One case of a staff list: its summary, where it is handled and the actions the caller may take."""
    item = summary_json(i.summary)
    item.update(hall=i.hall, department=i.department, actions=list(i.actions))
    return item


def feed_json(f: Feed) -> dict[str, Any]:
    """The provincial feed's page."""
    items = [
        {
            "event_id": e.event_id,
            "case_no": e.case_no,
            "matter_code": e.matter_code,
            "matter_name": e.matter_name,
            "department": e.department,
            "hall": e.hall,
            "action": e.action,
            "from_status": e.from_status,
            "status": e.status,
            "at": clock.iso(e.at),
            "submitted_at": clock.iso(e.submitted_at),
            "promised_days": e.promised_days,
            "due_on": _day(e.due_on),
            "online": True,
        }
        for e in f.items
    ]
    return {"items": items, "next_cursor": f.next_cursor}


def upload_json(u: UploadInfo) -> dict[str, Any]:
    """An upload for its owner."""
    return {
        "id": str(u.id),
        "filename": u.filename,
        "size": u.size,
        "file_type": u.file_type,
        "sha256": u.sha256,
        "created_at": clock.iso(u.created_at),
        "expires_at": clock.iso(u.expires_at),
        "in_use": u.in_use,
    }

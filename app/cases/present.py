"""How a case is shown: to its applicant or principal (masked), to an anonymous query, to staff (in full)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from app import clock, workdays
from app.cases import lifecycle
from app.cases.due import sla
from app.cases.lifecycle import STATUS_NAMES
from app.cases.models import Case, CaseEvent, CaseMaterial, CaseStatus, Upload
from app.notify import service as notify
from app.notify.models import Notification
from auth.pii import PiiCipher, PiiDecryptError, mask_id_number, mask_name, mask_phone
from auth.tokens import Principal


def open_delivery(cipher: PiiCipher, case: Case, *, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"method": case.delivery.get("method", "window"), "tracking_no": case.tracking_no}
    if out["method"] == "ems" and case.delivery.get("address_enc"):
        try:
            address = json.loads(cipher.decrypt(case.delivery["address_enc"], aad=f"case:{case.id}:address"))
        except (PiiDecryptError, ValueError):
            address = {}
        if not full:
            address = {
                "name": mask_name(address.get("name", "")),
                "phone": mask_phone(address.get("phone", "")),
                "region": address.get("region", ""),
                "detail": "****",
            }
        out["address"] = address
    return out


_PRINCIPAL_COLUMNS = {"name": "principal_name_enc", "id_number": "principal_id_enc", "phone": "principal_phone_enc"}


def _open(cipher: PiiCipher, case: Case, field: str) -> str:
    """A principal's field in clear ('' when absent); `field` is also the ciphertext's associated data."""
    token = getattr(case, _PRINCIPAL_COLUMNS[field])
    if not token:
        return ""
    try:
        return cipher.decrypt(token, aad=f"case:{case.id}:{field}")
    except PiiDecryptError:
        return ""


def next_step(case: Case) -> dict[str, Any] | None:
    """What happens next and by when (as far as the service can promise it)."""
    s = case.status
    if s in {CaseStatus.submitted, CaseStatus.resubmitted}:
        base = clock.local_date(case.updated_at)
        return {"name": "窗口受理", "expected_by": workdays.add_workdays(base, 1).isoformat()}
    if s is CaseStatus.correction_required:
        return {"name": "申请人补正材料", "expected_by": None}
    if s in {CaseStatus.accepted, CaseStatus.under_review}:
        return {"name": "审批决定", "expected_by": case.due_on.isoformat() if case.due_on else None}
    if s in {CaseStatus.approved, CaseStatus.denied}:
        return {"name": "结果送达", "expected_by": case.due_on.isoformat() if case.due_on else None}
    if s is CaseStatus.suspended:
        return {"name": "特殊环节结束后恢复计时", "expected_by": None}
    if s is CaseStatus.delivered:
        return {"name": "办结", "expected_by": None}
    return None


async def _timeline(case: Case, *, internal: bool) -> list[dict[str, Any]]:
    rows = await CaseEvent.filter(case_id=case.id).order_by("id")
    out = []
    for e in rows:
        item = {
            "action": e.action,
            "label": lifecycle.MOVES[e.action].label,
            "status": e.to_status,
            "status_name": STATUS_NAMES[CaseStatus(e.to_status)],
            "text": e.public_text,
            "at": clock.iso(e.created_at),
        }
        if internal:
            item.update(actor={"kind": e.actor_kind, "id": e.actor_id}, note=e.internal_note, data=e.data)
        out.append(item)
    return out


async def _materials(case: Case) -> list[dict[str, Any]]:
    rows = await CaseMaterial.filter(case_id=case.id).order_by("round", "id")
    uploads = {u.id: u for u in await Upload.filter(id__in=[r.upload_id for r in rows])}
    out = []
    for r in rows:
        u = uploads.get(r.upload_id)
        out.append(
            {
                "name": r.name,
                "round": r.round,
                "upload_id": str(r.upload_id),
                "filename": u.filename if u else None,
                "file_type": u.file_type if u else None,
                "size": u.size if u else None,
                "sha256": u.sha256 if u else None,
            }
        )
    return out


def summary(case: Case, today: dt.date) -> dict[str, Any]:
    return {
        "case_no": case.case_no,
        "matter": {"code": case.matter_code, "name": case.matter_name, "guide_version": case.guide_version},
        "status": case.status.value,
        "status_name": STATUS_NAMES[case.status],
        "submitted_at": clock.iso(case.submitted_at),
        "updated_at": clock.iso(case.updated_at),
        "promised_days": case.promised_days,
        "accepted_on": case.accepted_on.isoformat() if case.accepted_on else None,
        "sla": sla(case, today),
        "next_step": next_step(case),
    }


async def case_view(cipher: PiiCipher, case: Case, *, audience: str) -> dict[str, Any]:
    """A case as its applicant or principal sees it (`owner`), or as an anonymous query does (`public`)."""
    body = summary(case, clock.today())
    name = _open(cipher, case, "name")
    if audience == "owner":
        body.update(
            id=str(case.id),
            agent=case.agent,
            principal={
                "kind": case.principal_kind,
                "name": mask_name(name) if name else "",
                "id_number": mask_id_number(_open(cipher, case, "id_number"))
                if case.principal_kind == "person"
                else "",
                "phone": mask_phone(_open(cipher, case, "phone")) if case.principal_phone_enc else None,
            },
            delivery=open_delivery(cipher, case, full=False),
            correction=case.correction,
            materials=await _materials(case),
            form=case.form,
            hall=case.hall_code,
            department=case.department_code,
        )
    else:
        body.update(principal={"name": mask_name(name) if name else ""})
    body["timeline"] = await _timeline(case, internal=False)
    return body


async def staff_view(cipher: PiiCipher, case: Case, *, principal: Principal) -> dict[str, Any]:
    """A case for staff: full data, internal notes, the actions they may take and the pushes' delivery status."""
    body = summary(case, clock.today())
    body.update(
        id=str(case.id),
        agent=case.agent,
        principal={
            "kind": case.principal_kind,
            "name": _open(cipher, case, "name"),
            "id_number": _open(cipher, case, "id_number"),
            "phone": _open(cipher, case, "phone") or None,
        },
        applicant_account=str(case.citizen_id),
        delivery=open_delivery(cipher, case, full=True),
        correction=case.correction,
        form=case.form,
        materials=await _materials(case),
        hall=case.hall_code,
        department=case.department_code,
        suspended_days=case.suspended_days,
        actions=lifecycle.actions_for(case.status, principal.role or ""),
        timeline=await _timeline(case, internal=True),
        notifications=[
            notify.notification_dict(n)
            for n in await Notification.filter(subject_type="case", subject_id=case.case_no).order_by("created_at")
        ],
    )
    return body

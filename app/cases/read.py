"""A case read for its audience: its applicant or principal (masked), an anonymous query, staff (in full).

These build the typed views of app.cases.types from the rows; app.cases.present turns them into JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from app import clock, workdays
from app.cases import bundles, lifecycle
from app.cases.due import sla
from app.cases.lifecycle import STATUS_NAMES
from app.cases.models import Case, CaseEvent, CaseMaterial, Upload
from app.cases.types import (
    CaseStatus,
    CaseSummary,
    CaseView,
    DeliveryView,
    MaterialItem,
    NextStep,
    PartyView,
    ProgressView,
    Receipt,
    StaffCaseItem,
    StaffCaseView,
    TimelineEntry,
)
from app.notify import service as notify
from app.notify.models import Notification
from auth.pii import PiiCipher, PiiDecryptError, mask_id_number, mask_name, mask_phone
from auth.tokens import Principal


def open_delivery(cipher: PiiCipher, case: Case, *, full: bool) -> DeliveryView:
    """The delivery choice with the EMS address decrypted (masked unless `full`)."""
    method = case.delivery.get("method", "window")
    if not (method == "ems" and case.delivery.get("address_enc")):
        return DeliveryView(method, case.tracking_no)
    try:
        address = json.loads(cipher.decrypt(case.delivery["address_enc"], aad=f"case:{case.id}:address"))
    except (PiiDecryptError, ValueError):
        address = {}
    return DeliveryView(method, case.tracking_no, address if full else masked_address(address))


def masked_address(address: dict[str, Any]) -> dict[str, str]:
    """A postal address as its applicant sees it on screen (name and phone masked, no street)."""
    return {
        "name": mask_name(address.get("name", "")),
        "phone": mask_phone(address.get("phone", "")),
        "region": address.get("region", ""),
        "detail": "****",
    }


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


def next_step(case: Case) -> NextStep | None:
    """What happens next and by when (as far as the service can promise it)."""
    s = case.status
    if s in {CaseStatus.submitted, CaseStatus.resubmitted}:
        return NextStep("窗口受理", workdays.add_workdays(clock.local_date(case.updated_at), 1))
    if s is CaseStatus.correction_required:
        return NextStep("申请人补正材料", None)
    if s in {CaseStatus.accepted, CaseStatus.under_review}:
        return NextStep("各部门审批" if case.kind == lifecycle.BUNDLE else "审批决定", case.due_on)
    if s in {CaseStatus.approved, CaseStatus.denied}:
        if case.kind == lifecycle.PART:
            return NextStep("随「一件事」统一送达", None)
        return NextStep("结果送达", case.due_on)
    if s is CaseStatus.suspended:
        return NextStep("特殊环节结束后恢复计时", None)
    if s is CaseStatus.delivered:
        return NextStep("办结", None)
    return None


def public_timeline(events: list[tuple[str, str, str, dt.datetime]]) -> tuple[TimelineEntry, ...]:
    """A single case's timeline as the public sees it, from its events' (action, to_status, public_text, created_at)."""
    out = []
    for action, to_status, text, at in events:
        status = CaseStatus(to_status)
        out.append(TimelineEntry(action, lifecycle.MOVES[action].label, status, STATUS_NAMES[status], text, at))
    return tuple(out)


async def timeline(case: Case, *, internal: bool) -> tuple[TimelineEntry, ...]:
    """The case's events in order (with actors, notes and data for staff).

    A bundle's timeline is one: its own steps and every part's, each part's step naming its matter.
    """
    parts: dict[Any, Case] = {}
    if case.kind == lifecycle.BUNDLE:
        events, parts = await bundles.timeline_events(case)
    else:
        events = await CaseEvent.filter(case_id=case.id).order_by("id")
    out = []
    for e in events:
        status = CaseStatus(e.to_status)
        extra: dict[str, Any] = (
            {"actor_kind": e.actor_kind, "actor_id": e.actor_id, "note": e.internal_note, "data": e.data}
            if internal
            else {}
        )
        part = parts.get(e.case_id)
        if part is not None:
            extra.update(source=part.matter_name, case_no=part.case_no)
        label = lifecycle.MOVES[e.action].label
        out.append(TimelineEntry(e.action, label, status, STATUS_NAMES[status], e.public_text, e.created_at, **extra))
    return tuple(out)


async def materials(case: Case) -> tuple[MaterialItem, ...]:
    """The files handed in, by round."""
    rows = await CaseMaterial.filter(case_id=case.id).order_by("round", "id")
    uploads = {u.id: u for u in await Upload.filter(id__in=[r.upload_id for r in rows])}
    out = []
    for r in rows:
        u = uploads.get(r.upload_id)
        if u is None:
            out.append(MaterialItem(r.name, r.round, r.upload_id, None, None, None, None))
        else:
            out.append(MaterialItem(r.name, r.round, r.upload_id, u.filename, u.file_type, u.size, u.sha256))
    return tuple(out)


def summary(case: Case, today: dt.date) -> CaseSummary:
    """A case as a list shows it."""
    return CaseSummary(
        case_no=case.case_no,
        matter_code=case.matter_code,
        matter_name=case.matter_name,
        guide_version=case.guide_version,
        status=case.status,
        status_name=STATUS_NAMES[case.status],
        submitted_at=case.submitted_at,
        updated_at=case.updated_at,
        promised_days=case.promised_days,
        accepted_on=case.accepted_on,
        sla=sla(case, today),
        next_step=next_step(case),
        kind=case.kind,
        bundle_no=case.case_no.rsplit("-", 1)[0] if case.kind == lifecycle.PART else None,
        stage=case.stage,
    )


def staff_item(case: Case, today: dt.date, principal: Principal) -> StaffCaseItem:
    """A case in a staff list."""
    actions = tuple(lifecycle.actions_for(case.status, principal.role or "", case.kind))
    return StaffCaseItem(summary(case, today), case.hall_code, case.department_code, actions)


async def case_view(
    cipher: PiiCipher, case: Case, *, receipt: Receipt | None = None, actions: tuple[str, ...] = ()
) -> CaseView:
    """A case as its applicant, agent or principal sees it (masked)."""
    name = _open(cipher, case, "name")
    person = case.principal_kind == "person"
    return CaseView(
        summary=summary(case, clock.today()),
        id=case.id,
        agent=case.agent,
        principal=PartyView(
            kind=case.principal_kind,
            name=mask_name(name) if name else "",
            id_number=mask_id_number(_open(cipher, case, "id_number")) if person else "",
            phone=mask_phone(_open(cipher, case, "phone")) if case.principal_phone_enc else None,
        ),
        delivery=open_delivery(cipher, case, full=False),
        correction=case.correction,
        materials=await materials(case),
        form=case.form,
        hall=case.hall_code,
        department=case.department_code,
        timeline=await timeline(case, internal=False),
        receipt=receipt,
        actions=actions,
        bundle=await bundles.view(case) if case.kind == lifecycle.BUNDLE else None,
        part_of=await bundles.ref(case) if case.kind == lifecycle.PART else None,
    )


def submitted_view(
    case: Case,
    party: PartyView,
    delivery: dict[str, Any],
    taken: list[tuple[str, Upload]],
    event: tuple[str, str, str, dt.datetime],
) -> CaseView:
    """A case just submitted as its applicant sees it, from what the submission wrote (`party` in clear).

    What case_view reads back from the database and decrypts, built from the values written instead:
    the same view (tests/api/test_case_submission.py compares the answer with the case's detail).
    """
    person = party.kind == "person"
    address = delivery.get("address") if delivery.get("method") == "ems" else None
    return CaseView(
        summary=summary(case, clock.today()),
        id=case.id,
        agent=case.agent,
        principal=PartyView(
            kind=party.kind,
            name=mask_name(party.name) if party.name else "",
            id_number=mask_id_number(party.id_number) if person else "",
            phone=mask_phone(party.phone) if party.phone else None,
        ),
        delivery=DeliveryView(
            delivery["method"] if address is not None else "window",
            case.tracking_no,
            masked_address(address) if address is not None else None,
        ),
        correction=case.correction,
        materials=tuple(
            MaterialItem(name, 1, row.id, row.filename, row.file_type, row.size, row.sha256) for name, row in taken
        ),
        form=case.form,
        hall=case.hall_code,
        department=case.department_code,
        timeline=public_timeline([event]),
    )


async def progress_view(
    cipher: PiiCipher, case: Case, *, events: list[tuple[str, str, str, dt.datetime]] | None = None
) -> ProgressView:
    """A case as an anonymous query sees it (`events`: a single case's events when already read with it)."""
    name = _open(cipher, case, "name")
    steps = public_timeline(events) if events is not None else await timeline(case, internal=False)
    return ProgressView(
        summary(case, clock.today()),
        mask_name(name) if name else "",
        steps,
        bundle=await bundles.view(case) if case.kind == lifecycle.BUNDLE else None,
    )


async def staff_view(cipher: PiiCipher, case: Case, *, principal: Principal) -> StaffCaseView:
    """A case for staff: full data, internal notes, the actions they may take and the pushes' delivery status."""
    pushes = await Notification.filter(subject_type="case", subject_id=case.case_no).order_by("created_at")
    return StaffCaseView(
        summary=summary(case, clock.today()),
        id=case.id,
        agent=case.agent,
        principal=PartyView(
            kind=case.principal_kind,
            name=_open(cipher, case, "name"),
            id_number=_open(cipher, case, "id_number"),
            phone=_open(cipher, case, "phone") or None,
        ),
        applicant_account=case.citizen_id,
        delivery=open_delivery(cipher, case, full=True),
        correction=case.correction,
        form=case.form,
        materials=await materials(case),
        hall=case.hall_code,
        department=case.department_code,
        suspended_days=case.suspended_days,
        actions=tuple(lifecycle.actions_for(case.status, principal.role or "", case.kind)),
        timeline=await timeline(case, internal=True),
        notifications=tuple(notify.notification_view(n) for n in pushes),
        bundle=await bundles.view(case) if case.kind == lifecycle.BUNDLE else None,
        part_of=await bundles.ref(case) if case.kind == lifecycle.PART else None,
    )

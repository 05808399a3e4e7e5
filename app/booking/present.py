"""What a booking looks like to the API: the typed values of types.py as JSON-ready dicts.

The API's answers (and the idempotent answer stored with a booking, and the desk's stored refusals)
are these shapes; the H5 pages and WeChat read the typed values or these dicts.
"""

from __future__ import annotations

from typing import Any

from app import clock
from app.booking.types import (
    STATUS_NAMES,
    BookingDetail,
    BookingPage,
    BookingView,
    CheckedIn,
    CheckInRecord,
    Closure,
    ClosureAdded,
    CounterView,
    DeskBooking,
    HallScheduleView,
    Material,
    RevocationList,
    ScanAnswer,
    ScanRefusal,
    SlotList,
    StoredScan,
    Undone,
    WalkIn,
)
from app.jsontext import dumps
from app.matters.schemas import MATERIAL_FORM_NAMES, SECTION_NAMES, MaterialForm, Section
from app.paging import envelope

CHECKED_IN_MESSAGE = "签到成功，请等候叫号"


def booking_json(view: BookingView) -> dict[str, Any]:
    """A booking as the citizen API answers it."""
    hall = view.hall
    return {
        "id": str(view.id),
        "status": str(view.status),
        "status_name": STATUS_NAMES[view.status],
        "matter": {"code": view.matter_code, "name": view.matter_name},
        "hall": {"code": hall.code, "name": hall.name, "address": hall.address, "phone": hall.phone},
        "section": view.section,
        "section_name": SECTION_NAMES[Section(view.section)],
        "counter_hint": view.counter_hint,
        "slot_id": view.slot_id,
        "date": view.day.isoformat(),
        "starts_at": clock.iso(view.starts_at),
        "ends_at": clock.iso(view.ends_at),
        "version": view.version,
        "cancel_until": clock.iso(view.cancel_until),
        "queue_no": view.queue_no,
        "counter": view.counter,
        "checked_in_at": clock.iso(view.checked_in_at),
        "cancelled_at": clock.iso(view.cancelled_at),
        "created_at": clock.iso(view.created_at),
        "ticket": view.ticket,
        "checkin_window": {
            "opens_at": clock.iso(view.checkin_opens_at),
            "closes_at": clock.iso(view.checkin_closes_at),
        },
        # The visit a desk check-in made: rate it as subject_type=visit, subject_id=checkin_id (None until then).
        "checkin_id": str(view.checkin_id) if view.checkin_id else None,
        "links": {"self": view.url, "ticket_png": f"{view.url}/ticket.png", "ticket_svg": f"{view.url}/ticket.svg"},
    }


def booking_detail_json(detail: BookingDetail) -> dict[str, Any]:
    """A booking with its reminder."""
    body = booking_json(detail.booking)
    reminder = detail.reminder
    body["reminder"] = {"send_after": clock.iso(reminder.send_after), "status": reminder.status} if reminder else None
    return body


def booking_page_json(page: BookingPage) -> dict[str, Any]:
    """A page of bookings."""
    return envelope(page, booking_json)


def slot_list_json(slots: SlotList) -> dict[str, Any]:
    """A matter's slots."""
    return {
        "matter_code": slots.matter_code,
        "hall": {"code": slots.hall.code, "name": slots.hall.name},
        "section": slots.section,
        "section_name": SECTION_NAMES[Section(slots.section)],
        "slot_minutes": slots.slot_minutes,
        "window": {
            "from": slots.window_from.isoformat() if slots.window_from else None,
            "to": slots.window_to.isoformat() if slots.window_to else None,
        },
        "items": [
            {
                "slot_id": s.slot_id,
                "date": s.day.isoformat(),
                "starts_at": clock.iso(s.starts_at),
                "ends_at": clock.iso(s.ends_at),
                "capacity": s.capacity,
                "available": s.available,
                "bookable": s.bookable,
            }
            for s in slots.items
        ],
    }


# -- the desk --------------------------------------------------------------------------------------


def desk_booking_json(view: DeskBooking) -> dict[str, Any]:
    """A booking as a desk scan shows it."""
    return {
        "id": str(view.id),
        "matter": {"code": view.matter_code, "name": view.matter_name},
        "hall": view.hall,
        "section": view.section,
        "section_name": SECTION_NAMES[Section(view.section)],
        "date": view.day.isoformat(),
        "starts_at": clock.iso(view.starts_at),
        "ends_at": clock.iso(view.ends_at),
        "citizen": {"name": view.citizen_name, "phone": view.citizen_phone},
    }


def materials_json(materials: tuple[Material, ...]) -> list[dict[str, Any]]:
    """The materials the desk asks for."""
    return [
        {
            "name": m.name,
            "form": m.form,
            "form_name": MATERIAL_FORM_NAMES[MaterialForm(m.form)],
            "copies": m.copies,
            "required": m.required,
        }
        for m in materials
    ]


def checked_in_json(answer: CheckedIn) -> dict[str, Any]:
    """A check-in's answer (a replay of its nonce builds the same)."""
    return {
        "result": "checked_in",
        "ok": True,
        "message": CHECKED_IN_MESSAGE,
        "queue_no": answer.queue_no,
        "checkin_id": str(answer.checkin_id),
        "checked_in_at": clock.iso(answer.checked_in_at),
        "counter": answer.counter,
        "undo_until": clock.iso(answer.undo_until),
        "booking": desk_booking_json(answer.booking),
        "materials": materials_json(answer.materials),
        "details": {},
        "scanned_at": clock.iso(answer.scanned_at),
    }


def refusal_json(refusal: ScanRefusal) -> dict[str, Any]:
    """A refused scan's answer (stored with the scan and replayed as stored)."""
    body: dict[str, Any] = {
        "result": refusal.result,
        "ok": False,
        "message": refusal.message,
        "details": refusal.details,
    }
    if refusal.booking is not None:  # a known booking: the desk sees whom, when and with what number
        body["queue_no"] = refusal.queue_no
        body["booking"] = desk_booking_json(refusal.booking)
        body["materials"] = materials_json(refusal.materials or ())
    body["scanned_at"] = clock.iso(refusal.scanned_at)
    return body


def scan_text(answer: ScanAnswer) -> str:
    """A scan's answer as the desk API's JSON text (a repeated nonce's refusal: the stored text itself)."""
    if isinstance(answer, StoredScan):
        return answer.text
    body = checked_in_json(answer) if isinstance(answer, CheckedIn) else refusal_json(answer)
    return dumps(body).decode()


def walk_in_json(ticket: WalkIn) -> dict[str, Any]:
    """A walk-in's queue number."""
    return {
        "checkin_id": str(ticket.checkin_id),
        "kind": "walk_in",
        "queue_no": ticket.queue_no,
        "hall": ticket.hall,
        "section": ticket.section,
        "section_name": SECTION_NAMES[Section(ticket.section)],
        "issued_at": clock.iso(ticket.issued_at),
        "undo_until": clock.iso(ticket.undo_until),
    }


def undone_json(undone: Undone) -> dict[str, Any]:
    """A check-in taken back."""
    return {"checkin_id": str(undone.checkin_id), "queue_no": undone.queue_no, "undone_at": clock.iso(undone.undone_at)}


def checkins_json(rows: tuple[CheckInRecord, ...]) -> dict[str, Any]:
    """A hall's queue numbers of a day."""
    return {
        "items": [
            {
                "checkin_id": str(r.checkin_id),
                "kind": r.kind,
                "queue_no": r.queue_no,
                "section": r.section,
                "counter": r.counter,
                "booking_id": str(r.booking_id) if r.booking_id else None,
                "created_at": clock.iso(r.created_at),
                "undone_at": clock.iso(r.undone_at),
            }
            for r in rows
        ]
    }


def revocations_json(revoked: RevocationList) -> dict[str, Any]:
    """What an offline desk must refuse."""
    return {
        "hall": revoked.hall,
        "generated_at": clock.iso(revoked.generated_at),
        "items": [
            {
                "booking_id": str(r.booking_id),
                "version": r.version,
                "reason": r.reason,
                "revoked_at": clock.iso(r.revoked_at),
                "expires_at": clock.iso(r.expires_at),
            }
            for r in revoked.items
        ],
    }


def schedule_json(schedule: HallScheduleView) -> dict[str, Any]:
    """A hall's booking calendar."""
    return {"hall": schedule.hall, "configured": schedule.configured, "config": schedule.config.model_dump(mode="json")}


def closures_json(closures: tuple[Closure, ...]) -> dict[str, Any]:
    """A hall's closures."""
    return {"items": [{"date": c.day.isoformat(), "reason": c.reason} for c in closures]}


def closure_added_json(added: ClosureAdded) -> dict[str, Any]:
    """A new closure."""
    return {"date": added.day.isoformat(), "reason": added.reason, "slots_with_bookings": added.slots_with_bookings}


def counters_json(counters: tuple[CounterView, ...]) -> dict[str, Any]:
    """A hall's counters."""
    return {"items": [{"code": c.code, "section": c.section, "name": c.name, "active": c.active} for c in counters]}


def queue_entry_json(entry: Any) -> dict[str, Any]:
    """A queue number at the desk: booked or walk-in, its slot, its call state and counter."""
    return {
        "checkin_id": str(entry.checkin_id),
        "queue_no": entry.queue_no,
        "section": entry.section or None,
        "kind": entry.kind or None,
        "booked": entry.kind == "booking",
        "slot_starts_at": clock.iso(entry.slot_starts_at),
        "issued_at": clock.iso(entry.issued_at),
        "state": entry.state,
        "counter": entry.counter,
        "called_at": clock.iso(entry.called_at),
    }


def announcement_json(item: Any) -> dict[str, Any]:
    """A waiting-room screen event (numbers and counters only)."""
    return {
        "id": item.id,
        "queue_no": item.queue_no,
        "counter": item.counter,
        "action": item.action,
        "at": clock.iso(item.at),
    }

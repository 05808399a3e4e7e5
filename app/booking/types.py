"""What booking answers, as typed values: statuses, bookings, slots, tickets and desk scans.

No ORM here: channels import these (and the presenters in present.py) without loading a model.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.booking.calendar import ScheduleConfig

from app import clock
from app.paging import Page


class BookingStatus(enum.StrEnum):
    """booked -> checked_in | cancelled | no_show."""

    booked = "booked"
    checked_in = "checked_in"
    cancelled = "cancelled"
    no_show = "no_show"


STATUS_NAMES = {
    BookingStatus.booked: "已预约",
    BookingStatus.checked_in: "已签到",
    BookingStatus.cancelled: "已取消",
    BookingStatus.no_show: "已爽约",
}


@dataclass(frozen=True)
class HallRef:
    """A hall as a booking shows it (empty texts for a hall that no longer exists)."""

    code: str
    name: str = ""
    address: str = ""
    phone: str = ""


@dataclass(frozen=True)
class BookingView:
    """A citizen's booking, with its ticket while it admits its holder."""

    id: uuid.UUID
    status: BookingStatus
    matter_code: str
    matter_name: str
    hall: HallRef
    section: str
    counter_hint: str
    slot_id: str
    day: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime
    version: int
    cancel_until: dt.datetime
    queue_no: str | None
    counter: str | None
    checked_in_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    created_at: dt.datetime
    ticket: str | None
    url: str  # the booking's API address (its ticket images live under it)
    checkin_opens_at: dt.datetime  # a desk can check the holder in from then (the hall's early_minutes)
    checkin_closes_at: dt.datetime  # until then; afterwards the booking is a no-show
    checkin_id: uuid.UUID | None = None  # the visit a checked-in booking led to: what the citizen rates

    @property
    def changeable(self) -> bool:
        """Whether it can still be cancelled or rescheduled now (active, before the cutoff the service checks)."""
        return self.status is BookingStatus.booked and clock.now() < self.cancel_until


@dataclass(frozen=True)
class ReminderState:
    """The reminder queued for a booking's current version."""

    send_after: dt.datetime
    status: str


@dataclass(frozen=True)
class BookingDetail:
    """One booking with its reminder (None when none is queued)."""

    booking: BookingView
    reminder: ReminderState | None


BookingPage = Page[BookingView]


@dataclass(frozen=True, slots=True)  # a listing holds up to ~3,000 of them at once
class SlotView:
    """One slot of a hall section with its seats."""

    slot_id: str
    day: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    available: int
    bookable: bool


@dataclass(frozen=True)
class SlotList:
    """A matter's slots in a date range, inside its hall's booking window."""

    matter_code: str
    hall: HallRef
    section: str
    slot_minutes: int
    window_from: dt.date | None
    window_to: dt.date | None
    items: tuple[SlotView, ...]


@dataclass(frozen=True)
class Ticket:
    """A booking's current signed ticket (the text its QR code carries)."""

    booking_id: uuid.UUID
    version: int
    text: str


# -- desk --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Material:
    """A material the desk asks for."""

    name: str
    form: str
    copies: int
    required: bool


@dataclass(frozen=True)
class DeskBooking:
    """A booking as the desk sees it: the holder's name and phone masked."""

    id: uuid.UUID
    matter_code: str
    matter_name: str
    hall: str
    section: str
    day: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime
    citizen_name: str | None
    citizen_phone: str | None


@dataclass(frozen=True)
class CheckedIn:
    """A scan that checked its booking in: the queue number and what to ask the holder for."""

    queue_no: str
    checkin_id: uuid.UUID
    checked_in_at: dt.datetime
    counter: str | None
    undo_until: dt.datetime
    booking: DeskBooking
    materials: tuple[Material, ...]
    scanned_at: dt.datetime


@dataclass(frozen=True)
class ScanRefusal:
    """A scan that admits nobody: why (`result`), what to tell the desk, and the facts behind it.

    `details` holds the refusal's facts as the answer states them; an already checked-in booking
    carries its queue number, booking and materials too.
    """

    result: str
    message: str
    details: dict[str, Any]
    scanned_at: dt.datetime
    queue_no: str | None = None
    booking: DeskBooking | None = None
    materials: tuple[Material, ...] | None = None

    @property
    def booking_id(self) -> str | None:
        """The booking the refusal is about, when the ticket named a known one."""
        return str(self.booking.id) if self.booking is not None else self.details.get("booking_id")


@dataclass(frozen=True)
class StoredScan:
    """A repeated nonce's refusal: the first answer's stored JSON text, replayed byte for byte."""

    text: str


@dataclass(frozen=True)
class WalkIn:
    """A queue number given without a booking."""

    checkin_id: uuid.UUID
    queue_no: str
    hall: str
    section: str
    issued_at: dt.datetime
    undo_until: dt.datetime


@dataclass(frozen=True)
class Undone:
    """A check-in taken back."""

    checkin_id: uuid.UUID
    queue_no: str
    undone_at: dt.datetime


@dataclass(frozen=True)
class CheckInRecord:
    """One queue number a hall gave (a booking's check-in or a walk-in)."""

    checkin_id: uuid.UUID
    kind: str
    queue_no: str
    section: str
    counter: str | None
    booking_id: uuid.UUID | None
    created_at: dt.datetime
    undone_at: dt.datetime | None


@dataclass(frozen=True)
class Revocation:
    """A ticket version that no longer admits its holder."""

    booking_id: uuid.UUID
    version: int
    reason: str
    revoked_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class RevocationList:
    """A hall's revoked tickets whose slots are not over, as of `generated_at`."""

    hall: str
    generated_at: dt.datetime
    items: tuple[Revocation, ...]


ScanAnswer = CheckedIn | ScanRefusal | StoredScan


@dataclass(frozen=True)
class HallScheduleView:
    """A hall's booking calendar (the defaults while never configured)."""

    hall: str
    configured: bool
    config: ScheduleConfig


@dataclass(frozen=True)
class Closure:
    """A day a hall is closed, and why."""

    day: dt.date
    reason: str


@dataclass(frozen=True)
class ClosureAdded:
    """A new closure and how many of that day's slots already hold bookings."""

    day: dt.date
    reason: str
    slots_with_bookings: int


@dataclass(frozen=True)
class CounterView:
    """A window of a hall."""

    code: str
    section: str
    name: str
    active: bool


SECTION_LETTERS = {
    "investment": "A",
    "commercial": "B",
    "real_estate": "C",
    "social_security": "D",
    "tax": "E",
    "public_security": "F",
    "general": "G",
}
"""The queue numbers' letter per section (`D007`)."""

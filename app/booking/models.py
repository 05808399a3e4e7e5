"""ORM models of booking: hall calendars, slots with their seat counts, bookings, check-ins, desk scans."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from app.booking.types import BookingStatus


class HallSchedule(Model):
    """A hall's booking calendar: opening hours, slot length, capacity, window and cutoffs (JSON config)."""

    hall_code = fields.CharField(max_length=32, primary_key=True)
    config = fields.JSONField()
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "hall_schedule"


class HallClosure(Model):
    """A one-off closure of a hall on a date (e.g. a power cut or an inspection)."""

    id = fields.IntField(primary_key=True)
    hall_code = fields.CharField(max_length=32)
    day = fields.DateField()
    reason = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "hall_closure"
        unique_together = (("hall_code", "day"),)


class Counter(Model):
    """A window (窗口) of a hall, serving one business section."""

    id = fields.IntField(primary_key=True)
    hall_code = fields.CharField(max_length=32)
    code = fields.CharField(max_length=16)
    section = fields.CharField(max_length=20)
    name = fields.CharField(max_length=100, default="")
    active = fields.BooleanField(default=True)

    class Meta:
        table = "hall_counter"
        unique_together = (("hall_code", "code"),)


class Slot(Model):
    """Seats of one time slot of a hall section. `booked <= capacity` is kept by conditional updates."""

    id = fields.CharField(max_length=80, primary_key=True)
    hall_code = fields.CharField(max_length=32)
    section = fields.CharField(max_length=20)
    day = fields.DateField()
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    capacity = fields.IntField()
    booked = fields.IntField(default=0)

    class Meta:
        table = "booking_slot"
        indexes = (("hall_code", "section", "day"),)


class BookingAccount(Model):
    """A citizen's booking sequence, bumped by every new booking (PostgreSQL's one-statement booking).

    The booking statement reads the citizen's bookings, checks the caps in Python, then writes only if
    the sequence it read is still current: two simultaneous bookings of one citizen cannot both pass.
    """

    citizen_id = fields.UUIDField(primary_key=True)
    seq = fields.BigIntField(default=0)

    class Meta:
        table = "booking_account"


class Booking(Model):
    """A citizen's counter appointment. `version` changes when a reschedule revokes the old ticket."""

    id = fields.UUIDField(primary_key=True)
    citizen_id = fields.UUIDField(db_index=True)
    matter_code = fields.CharField(max_length=40)
    hall_code = fields.CharField(max_length=32)
    section = fields.CharField(max_length=20)
    slot_id = fields.CharField(max_length=80)
    day = fields.DateField()
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    noshow_at = fields.DatetimeField(db_index=True)
    status = fields.CharEnumField(BookingStatus, default=BookingStatus.booked, max_length=12)
    version = fields.IntField(default=1)
    queue_no = fields.CharField(max_length=8, null=True)
    counter = fields.CharField(max_length=16, null=True)
    checked_in_at = fields.DatetimeField(null=True)
    cancelled_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    # SHA-256 of the ticket issued for this version (tickets.digest): a desk scanning exactly that ticket
    # needs no signature check. A ticket signed since with a newer key is checked as before.
    ticket_digest = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "booking"


class RevokedTicket(Model):
    """A ticket that no longer admits its holder: published to offline desks until its slot is over."""

    id = fields.IntField(primary_key=True)
    booking_id = fields.UUIDField()
    version = fields.IntField()
    hall_code = fields.CharField(max_length=32, db_index=True)
    reason = fields.CharField(max_length=16)
    revoked_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()

    class Meta:
        table = "booking_revoked_ticket"
        unique_together = (("booking_id", "version"),)


class QueueCounter(Model):
    """The last queue number given in a hall section on a day."""

    id = fields.IntField(primary_key=True)
    hall_code = fields.CharField(max_length=32)
    section = fields.CharField(max_length=20)
    day = fields.DateField()
    issued = fields.IntField(default=0)

    class Meta:
        table = "queue_counter"
        unique_together = (("hall_code", "section", "day"),)


class CheckIn(Model):
    """A queue number handed out at a desk, for a booking or a walk-in."""

    id = fields.UUIDField(primary_key=True)
    booking_id = fields.UUIDField(null=True, db_index=True)
    hall_code = fields.CharField(max_length=32)
    section = fields.CharField(max_length=20)
    day = fields.DateField()
    queue_no = fields.CharField(max_length=8)
    counter = fields.CharField(max_length=16, null=True)
    staff_id = fields.UUIDField()
    kind = fields.CharField(max_length=10)
    created_at = fields.DatetimeField()
    undone_at = fields.DatetimeField(null=True)

    class Meta:
        table = "checkin"
        indexes = (("hall_code", "day"),)


class DeskScan(Model):
    """Every scan a desk submits, with the answer it got: the same nonce replays it, failures stay logged."""

    id = fields.IntField(primary_key=True)
    staff_id = fields.UUIDField()
    nonce = fields.CharField(max_length=64)
    hall_code = fields.CharField(max_length=32, null=True)
    result = fields.CharField(max_length=24)
    booking_id = fields.UUIDField(null=True)
    ticket_digest = fields.CharField(max_length=64)
    # The answer's JSON text, replayed for the same nonce. A check-in stores none: its answer is built
    # again from its check-in row (`checkin_id`), so the check-in is one statement (app/booking/desk.py).
    response = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    checkin_id = fields.UUIDField(null=True)

    class Meta:
        table = "desk_scan"
        unique_together = (("staff_id", "nonce"),)
        indexes = (("hall_code", "created_at"),)


class QueueTicket(Model):
    """A queue number's place in the call queue once a counter has called it (no row: still waiting).

    Its primary key is the check-in: of two counters calling the same number at once, exactly one
    inserts this row (the other gets an IntegrityError and takes the next number).
    """

    checkin_id = fields.UUIDField(primary_key=True)
    hall_code = fields.CharField(max_length=32)
    day = fields.DateField()
    queue_no = fields.CharField(max_length=8)
    state = fields.CharField(max_length=10)  # called | skipped | done
    counter = fields.CharField(max_length=16)
    called_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "queue_ticket"
        indexes = (("hall_code", "day"),)


class QueueCall(Model):
    """One announcement for a hall's waiting-room screen (call, recall, skip), in a per-database sequence.

    The display's event stream polls `id > last seen`: it works with any number of workers and needs no store.
    """

    id = fields.BigIntField(primary_key=True)
    hall_code = fields.CharField(max_length=32)
    day = fields.DateField()
    checkin_id = fields.UUIDField()
    queue_no = fields.CharField(max_length=8)
    counter = fields.CharField(max_length=16)
    action = fields.CharField(max_length=10)  # call | recall | skip | done
    staff_id = fields.UUIDField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "queue_call"
        indexes = (("hall_code", "id"),)

"""Booking's background jobs: no-shows, and forgetting revocations whose slots are over."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from app import clock
from app.booking.deps import BookingDeps
from app.booking.models import Booking, RevokedTicket
from app.booking.types import BookingStatus
from app.matters import guides
from app.notify import service as notify


async def mark_no_shows(deps: BookingDeps, *, batch: int = 500) -> int:
    """Bookings nobody checked in by slot end plus the grace period become no-shows (with a notice)."""
    now = clock.now()
    rows = await Booking.filter(status=BookingStatus.booked, noshow_at__lt=now).order_by("noshow_at").limit(batch)
    marked = 0
    for booking in rows:
        async with in_transaction():
            changed = await Booking.filter(id=booking.id, status=BookingStatus.booked).update(
                status=BookingStatus.no_show, updated_at=now
            )
            if not changed:
                continue  # checked in or cancelled meanwhile
            marked += 1
            await notify.cancel_pending(subject_type="booking", subject_id=str(booking.id))
            _, _, guide = await guides.guide_document(deps.cache, booking.matter_code, base_url=deps.settings.base_url)
            await notify.enqueue(
                kind="booking_no_show",
                citizen_id=booking.citizen_id,
                subject_type="booking",
                subject_id=str(booking.id),
                dedupe_key=f"booking:{booking.id}:no_show",
                payload={
                    "matter_name": guide["name"],
                    "hall_name": guide["hall"]["name"],
                    "starts_at": clock.iso(booking.starts_at),
                    "limit": deps.settings.booking_noshow_limit,
                    "days": deps.settings.booking_noshow_days,
                },
            )
    return marked


async def sweep_revocations() -> int:
    """Forget revocations whose slots are long over."""
    return await RevokedTicket.filter(expires_at__lt=clock.now()).delete()

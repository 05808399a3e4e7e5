"""The signed-in citizen's H5 pages: "my bookings" and a booking's ticket page, with the session cookie a
browser sends. Setup books a few slots of a bookable matter through the API as the benchmark citizen."""

from __future__ import annotations

import json
import secrets
from typing import Any

from .booking import BOOKING_HALL, _bookable_matters, booking_schedule
from .harness import EXIT_SERVER, BenchError, BenchPath, Context, Headers, api, staff_token

H5_BOOKINGS = 3  # bookings the benchmark citizen holds (the list page shows them all)


def _setup(ctx: Context) -> dict[str, Any]:
    """Once per phase: the hall open around the clock, and H5_BOOKINGS bookings of the benchmark citizen."""
    if "h5" in ctx.state:
        return ctx.state["h5"]
    admin = staff_token(ctx, "admin", "bench-admin")
    guides = _bookable_matters(ctx)
    if not guides:
        raise BenchError(f"no active matter of hall {BOOKING_HALL} offers booking", EXIT_SERVER)
    api(ctx, "PUT", f"/api/v1/admin/halls/{BOOKING_HALL}/schedule", admin, booking_schedule(str(guides[0]["section"])))
    token = ctx.citizen_token()
    booked: list[str] = []
    for guide in guides:
        if len(booked) == H5_BOOKINGS:
            break
        slots = api(ctx, "GET", f"/api/v1/matters/{guide['code']}/slots", token).get("items") or []
        slot = next((s for s in slots if s.get("bookable")), None)
        if slot is None:
            continue
        status, body = ctx.request(
            "POST", "/api/v1/bookings",
            body=f'{{"matter_code": "{guide["code"]}", "slot_id": "{slot["slot_id"]}"}}'.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                     "Idempotency-Key": secrets.token_hex(12)},
        )  # fmt: skip
        if status == 201:
            booked.append(str(json.loads(body)["id"]))
    if not booked:
        raise BenchError("the benchmark citizen could book no slot for the H5 pages", EXIT_SERVER)
    print(f"h5 setup: {len(booked)} bookings of the benchmark citizen", flush=True)
    ctx.state["h5"] = {"token": token, "bookings": booked}
    return ctx.state["h5"]


def _cookie(ctx: Context) -> Headers:
    """A phone browser signed in: the access-token cookie of the benchmark citizen."""
    return {
        "Cookie": f"zd_at={_setup(ctx)['token']}",
        "Accept": "text/html,application/xhtml+xml",
        "User-Agent": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 Chrome/124.0.0.0 Mobile Safari/537.36",
    }


def _bearer(ctx: Context) -> Headers:
    """The same citizen through the API (the page's cost next to the JSON's)."""
    return {"Authorization": f"Bearer {_setup(ctx)['token']}"}


H5_PATHS: list[BenchPath] = [
    BenchPath("api_my_bookings", "GET", "/api/v1/bookings", None, headers=_bearer, report_only=True, expect_status=200),
    BenchPath("h5_my_bookings", "GET", "/m/me/bookings", None, headers=_cookie, expect_status=200, vs_hello=0.3),
    BenchPath(
        "h5_ticket",
        "GET",
        lambda c: f"/m/me/bookings/{_setup(c)['bookings'][0]}",
        None,
        headers=_cookie,
        report_only=True,
        expect_status=200,
    ),
]

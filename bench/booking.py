"""The booking phase (README: "The booking phase"): a storm of citizens booking few seats, then a desk checking
bookings in. Setup goes through the service's own CLI and API (staff accounts, dev tokens, the hall's calendar, the
desk's bookings); the checks read the database (bench.stores) and the slots API. The Lua scripts are bench/lua/*.lua."""

from __future__ import annotations

import http.client
import json
import math
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import stores
from .harness import (
    BASELINE,
    EXIT_SERVER,
    HOST,
    PER_CITIZEN_S,
    STORM_WAVE,
    TOKEN_TIMEOUT,
    BenchError,
    BenchPath,
    Config,
    Context,
    WrkResult,
    api,
    catalogue_codes,
    count_answers,
    lua_table,
    mint_citizens,
    report_lines,
    report_per_slot,
    staff_token,
    sum_counts,
)

# The booking phase (see the README): the hall, its calendar and the sizes of the storm and of the desk's bookings.
BOOKING_HALL = "main"
SHANGHAI = ZoneInfo("Asia/Shanghai")  # the service's calendar days
SLOT_MINUTES = 10  # 143 slots a day around the clock: enough seats starting soon for the desk (below)
STORM_SLOTS = 2
STORM_SEATS = 8  # ... of this many seats each: 16 seats for 40 citizens, so every wave sees 201 and 409 SLOT_FULL
STORM_LEAD = timedelta(hours=2)  # storm slots start at least this late (they stay bookable through the phase)
DESK_SEATS = 1000  # seats per slot of every other section: the desk's bookings never run out of seats
DESK_MATTERS = 5  # the desk's bookings go to up to this many bookable matters of the hall, one per section
DESK_SOON = (timedelta(minutes=2), timedelta(minutes=200))  # their slots start this soon (check-in opens 240 min early)
DESK_COUNTER = "W01"
SETUP_CLIENTS = 16  # parallel connections creating the desk's bookings
PER_BOOKING_S = 0.05  # the most creating one desk booking may take (SETUP_CLIENTS in parallel)


def _citizen_count(cfg: Config) -> int:
    """Citizens to mint: the storm's, or enough for DESK_MATTERS desk bookings each, plus one for the preflights."""
    return max(cfg.citizens, math.ceil(cfg.desk_tickets / DESK_MATTERS)) + 1


def storm_setup_s(cfg: Config) -> float:
    """The most the shared setup (two staff accounts and their tokens, matters, calendar, citizens) and the storm's
    own setup and check take."""
    return 4 * TOKEN_TIMEOUT + (TOKEN_TIMEOUT + PER_CITIZEN_S * _citizen_count(cfg)) + 120


def desk_setup_s(cfg: Config) -> float:
    """The most creating the desk's bookings and checking them takes."""
    return 60 + PER_BOOKING_S * cfg.desk_tickets + 60


@dataclass(frozen=True)
class BookingSetup:
    """What the booking phase's paths share: staff tokens, the matters picked, the citizens' tokens."""

    admin: str
    clerk: str
    storm_matter: str
    storm_section: str
    desk_matters: list[tuple[str, str]]  # (code, section), one matter per section
    citizens: list[str]  # access tokens of distinct citizens; the last one is kept for the preflights


def _bookable_matters(ctx: Context) -> list[dict[str, Any]]:
    """The guides of the hall's active matters that offer booking, in catalogue order."""
    guides = []
    for code in catalogue_codes(ctx):
        status, body = ctx.request("GET", f"/api/v1/matters/{code}")
        guide = json.loads(body) if status == 200 else {}
        hall = (guide.get("hall") or {}).get("code")
        if guide.get("booking") and guide.get("status") == "active" and hall == BOOKING_HALL:
            guides.append(guide)
    return guides


def booking_schedule(storm_section: str) -> dict[str, Any]:
    """The hall's calendar for the phase: open around the clock every day, 10-minute slots, few seats in the storm's
    section and many elsewhere, the longest window, no booking cutoff, check-in from 240 minutes before a slot."""
    return {
        "hours": {str(day): [["00:00", "23:59"]] for day in range(1, 8)},
        "slot_minutes": SLOT_MINUTES,
        "capacity": {storm_section: STORM_SEATS},
        "default_capacity": DESK_SEATS,
        "window_days": 60,
        "same_day": True,
        "cutoff_minutes": 0,
        "early_minutes": 240,
        "grace_minutes": 60,
    }


def booking_setup(ctx: Context) -> BookingSetup:
    """Once per phase: an administrator and a clerk of the hall, the storm's matter and the desk's matters, the hall's
    calendar (PUT by the administrator) and the citizens' tokens."""
    if "booking" in ctx.state:
        return ctx.state["booking"]
    admin = staff_token(ctx, "admin", "bench-admin")
    clerk = staff_token(ctx, "clerk", "bench-clerk", hall=BOOKING_HALL)
    guides = _bookable_matters(ctx)
    if not guides:
        raise BenchError(f"no active matter of hall {BOOKING_HALL} offers booking", EXIT_SERVER)
    storm = guides[0]
    desk: list[tuple[str, str]] = []
    for guide in guides[1:]:
        sections = {storm["section"], *(s for _, s in desk)}
        if guide["section"] not in sections and len(desk) < DESK_MATTERS:
            desk.append((str(guide["code"]), str(guide["section"])))
    if not desk:
        raise BenchError(f"hall {BOOKING_HALL} has no bookable matter outside section {storm['section']}", EXIT_SERVER)
    api(ctx, "PUT", f"/api/v1/admin/halls/{BOOKING_HALL}/schedule", admin, booking_schedule(storm["section"]))
    wanted = _citizen_count(ctx.cfg)
    citizens, took = mint_citizens(ctx, wanted)
    print(
        f"booking setup: storm matter {storm['code']} (section {storm['section']}, {STORM_SEATS} seats a slot), "
        f"desk matters {', '.join(c for c, _ in desk)}; {wanted} citizens minted in {took:.1f} s",
        flush=True,
    )
    setup = BookingSetup(admin, clerk, str(storm["code"]), str(storm["section"]), desk, citizens)
    ctx.state["booking"] = setup
    return setup


def _slots(ctx: Context, matter: str, token: str, query: str = "") -> list[dict[str, Any]]:
    """The matter's slots (`GET /api/v1/matters/{code}/slots`)."""
    return list(api(ctx, "GET", f"/api/v1/matters/{matter}/slots{query}", token).get("items") or [])


def _starts(item: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(item["starts_at"]))


def storm_setup(ctx: Context) -> dict[str, str]:
    """The storm's data: its citizens in waves of STORM_WAVE, and per day of the window the slots the waves storm."""
    setup = booking_setup(ctx)
    citizens = setup.citizens[:-1]
    spare = setup.citizens[-1]
    earliest = datetime.now(UTC) + STORM_LEAD
    by_day: dict[str, list[str]] = {}
    for item in _slots(ctx, setup.storm_matter, spare):
        if item["bookable"] and _starts(item) >= earliest:
            by_day.setdefault(str(item["date"]), []).append(str(item["slot_id"]))
    most = max((len(ids) for ids in by_day.values()), default=0)
    rounds = min(len(citizens) // STORM_WAVE, (most - 1) // STORM_SLOTS)  # one slot a day stays spare
    days = [ids for ids in by_day.values() if len(ids) >= rounds * STORM_SLOTS + 1]
    if rounds < 1 or not days:
        raise BenchError(f"matter {setup.storm_matter} lists no day with enough slots for the storm", EXIT_SERVER)
    days = [ids[: rounds * STORM_SLOTS + 1] for ids in days]  # the last slot of each day is spare (preflight)
    tokens = citizens[: rounds * STORM_WAVE]
    salt = secrets.token_hex(4)
    data = ctx.work_dir / "storm.lua"
    data.write_text(
        f'return {{matter="{setup.storm_matter}", salt="{salt}", wave={STORM_WAVE}, per_wave={STORM_SLOTS}, '
        f"tokens={lua_table(tokens)}, days={{{','.join(lua_table(ids[:-1]) for ids in days)}}}}}\n",
        "utf-8",
    )
    ctx.state["storm"] = {
        "slots": sorted(sid for ids in days for sid in ids[:-1]),
        "spare": days[-1][-1],
        "dates": (min(by_day), max(by_day)),
        "attempts_max": len(tokens) * len(days),
        "salt": salt,
    }
    print(
        f"storm: {len(tokens)} citizens in waves of {STORM_WAVE}, {len(days)} days x {rounds * STORM_SLOTS} slots "
        f"({len(tokens) * len(days)} attempts before a citizen would try a day twice)",
        flush=True,
    )
    return {"bench_data": str(data), "bench_state": str(ctx.work_dir / "storm.state")}


def storm_preflight(ctx: Context) -> tuple[int, bytes]:
    """One booking by the spare citizen, of a slot outside the storm's (left out of the storm's accounting)."""
    setup, storm = ctx.state["booking"], ctx.state["storm"]
    body = json.dumps({"matter_code": setup.storm_matter, "slot_id": storm["spare"]}).encode()
    headers = {
        "Authorization": f"Bearer {setup.citizens[-1]}",
        "Content-Type": "application/json",
        "Idempotency-Key": f"{storm['salt']}-preflight",
    }
    return ctx.request("POST", "/api/v1/bookings", body=body, headers=headers)


def storm_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Seats against answers: every 201 is a booking, the confirmed bookings are the successes (the answered 201s
    plus any booking committed while wrk stopped with its request in flight), no slot is overbooked, every slot that
    answered SLOT_FULL is sold out exactly, and the slots API shows the same seats taken as the database."""
    setup, storm = ctx.state["booking"], ctx.state["storm"]
    counts = sum_counts(runs)
    problems: list[str] = []
    answered, sent = count_answers(counts), counts.get("sent", 0)
    in_flight = max(sent - answered, 0)  # sent, but wrk stopped before the answer came
    created, full = counts.get("status_201", 0), counts.get("code_SLOT_FULL", 0)
    errors_5xx = sum(v for k, v in counts.items() if k.startswith("status_5"))
    other = {k[5:]: v for k, v in counts.items() if k.startswith("code_") and k != "code_SLOT_FULL"}
    if other:
        problems.append(f"refusals other than SLOT_FULL: {other}")
    if counts.get("wrapped"):
        problems.append(
            f"{counts['wrapped']} attempts reused a citizen-day (more than {storm['attempts_max']} attempts; "
            "raise BENCH_BOOKING_CITIZENS)"
        )
    observed = report_lines(runs, "id")
    if len(set(observed)) != len(observed) or len(observed) != created:
        problems.append(f"{created} answers 201 name {len(set(observed))} distinct bookings")
    slots = storm["slots"]
    rows = stores.storm_rows(ctx.deadline, slots, storm["salt"])
    stuck = rows.keys_claimed  # keys claimed by a request that never finished or released
    seats = rows.seats  # slot -> (capacity, booked)
    bookings = rows.bookings  # booking id -> (slot, status)
    confirmed = {b for b, (_, status) in bookings.items() if status in ("booked", "checked_in")}
    missing = set(observed) - confirmed
    unobserved = confirmed - set(observed)
    if missing:
        problems.append(f"{len(missing)} answers 201 name no confirmed booking (e.g. {sorted(missing)[0]})")
    if len(unobserved) > in_flight:
        problems.append(f"{len(unobserved)} confirmed bookings were never answered 201 (only {in_flight} in flight)")
    capacity = sum(c for c, _ in seats.values())
    booked = sum(b for _, b in seats.values())
    violations = stores.slot_invariant_violations(ctx.deadline)
    if violations:
        shown = "; ".join(
            f"{v.slot_id} capacity {v.capacity} booked {v.booked} bookings {v.bookings}" for v in violations[:3]
        )
        problems.append(f"{len(violations)} slots overbooked or miscounted: {shown}")
    full_per_slot = report_per_slot(runs, "slot_full")
    not_sold_out = [s for s in full_per_slot if s in seats and seats[s][1] != seats[s][0]]
    if not_sold_out:
        problems.append(f"{len(not_sold_out)} slots answered SLOT_FULL with seats left (e.g. {not_sold_out[0]})")
    if booked != len(confirmed):
        problems.append(f"the storm's slots count {booked} seats taken for {len(confirmed)} confirmed bookings")
    first, last = storm["dates"]
    listed = _slots(ctx, setup.storm_matter, setup.citizens[-1], f"?from={first}&to={last}")
    api_taken = sum(int(i["capacity"]) - int(i["available"]) for i in listed if i["slot_id"] in seats)
    if api_taken != booked:
        problems.append(f"the slots API shows {api_taken} seats taken in the storm's slots, the database {booked}")
    successes = created + len(unobserved)
    expected = min(successes, capacity)
    if len(confirmed) != expected:
        problems.append(f"{len(confirmed)} confirmed bookings, expected min(successes, capacity) = {expected}")
    if errors_5xx:
        problems.append(f"{errors_5xx} answers 5xx (see the server log)")
    sold_out = sum(1 for c, b in seats.values() if b == c)
    facts = {
        "attempts": answered, "in_flight_unanswered": in_flight, "created_201": created, "slot_full_409": full,
        "other_refusals": other, "errors_5xx": errors_5xx, "confirmed_in_db": len(confirmed),
        "committed_unanswered": len(unobserved), "slots_stormed": len(seats), "slots_sold_out": sold_out,
        "capacity_of_slots_stormed": capacity, "seats_taken_db": booked, "seats_taken_api": api_taken,
        "slot_invariant_violations": len(violations), "idempotency_keys_left_claimed": stuck,
    }  # fmt: skip
    summary = (
        f"{answered} attempts: {created} x 201, {full} x 409 SLOT_FULL, {errors_5xx} x 5xx; {len(confirmed)} bookings "
        f"confirmed in the database = {created} answered 201 + {len(unobserved)} committed while wrk stopped "
        f"= min(successes, capacity {capacity} of the {len(seats)} slots stormed); {sold_out} slots sold out, "
        f"{len(violations)} slots overbooked or miscounted; API {api_taken} seats taken"
        + (f"; {stuck} Idempotency-Keys left claimed (no answer stored, not released)" if stuck else "")
    )
    return {"summary": summary, "problems": problems, "facts": facts}


def _create_bookings(ctx: Context, plan: list[tuple[str, str, str]], salt: str) -> list[dict[str, Any]]:
    """Book (token, matter, slot) for every entry through the API, SETUP_CLIENTS at a time; the bookings in plan
    order (each with its ticket). Anything but 201 stops the run."""
    host, _, port = ctx.base_url.removeprefix("http://").partition(":")
    assert host == HOST
    local = threading.local()
    end = time.monotonic() + ctx.deadline.clip(60 + PER_BOOKING_S * len(plan))

    def book(index: int) -> dict[str, Any]:
        token, matter, slot = plan[index]
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        if time.monotonic() > end:
            raise BenchError("creating the desk's bookings took too long", EXIT_SERVER)
        body = json.dumps({"matter_code": matter, "slot_id": slot})
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"{salt}-desk-{index}",
        }
        try:
            local.conn.request("POST", "/api/v1/bookings", body=body, headers=headers)
            response = local.conn.getresponse()
            status, payload = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            local.conn.close()
            raise BenchError(f"booking {matter} {slot} for the desk failed: {exc!r}", EXIT_SERVER) from None
        if status != 201:
            raise BenchError(f"booking {matter} {slot} for the desk answered {status}: {payload[:300]!r}", EXIT_SERVER)
        return json.loads(payload)

    with ThreadPoolExecutor(max_workers=SETUP_CLIENTS) as pool:
        return list(pool.map(book, range(len(plan))))


def desk_setup(ctx: Context) -> dict[str, str]:
    """The desk's data: BENCH_DESK_BOOKINGS bookings of slots starting within DESK_SOON (check-in is open), spread
    over the desk's matters, created through the API, and the clerk's token; plus one booking for the preflight."""
    setup = booking_setup(ctx)
    matters = setup.desk_matters
    citizens = setup.citizens[:-1]
    wanted = min(ctx.cfg.desk_tickets, len(citizens) * len(matters))
    now = datetime.now(UTC)
    today = now.astimezone(SHANGHAI).date()
    query = f"?from={today}&to={today + timedelta(days=1)}"
    soon: dict[str, list[str]] = {}
    for code, _ in matters:
        items = _slots(ctx, code, setup.citizens[-1], query)
        soon[code] = [
            str(i["slot_id"])
            for i in items
            if i["bookable"] and now + DESK_SOON[0] < _starts(i) <= now + DESK_SOON[1] and int(i["available"]) > 0
        ]
        if not soon[code]:
            raise BenchError(f"matter {code} lists no slot starting within {DESK_SOON[1]}", EXIT_SERVER)
    plan = []
    for k in range(wanted):
        code, _ = matters[k % len(matters)]
        person = k // len(matters)
        plan.append((citizens[person], code, soon[code][person % len(soon[code])]))
    first_code = matters[0][0]
    plan.append((setup.citizens[-1], first_code, soon[first_code][0]))  # the preflight's booking
    salt = secrets.token_hex(4)
    started = time.monotonic()
    made = _create_bookings(ctx, plan, salt)
    took = time.monotonic() - started
    print(f"desk: created {len(made)} bookings through the API in {took:.1f} s ({len(made) / took:.0f}/s)", flush=True)
    tickets = [str(b["ticket"]) for b in made[:-1]]
    data = ctx.work_dir / "desk.lua"
    data.write_text(
        f'return {{token="{setup.clerk}", counter="{DESK_COUNTER}", salt="{salt}", tickets={lua_table(tickets)}}}\n',
        "utf-8",
    )
    state = ctx.work_dir / "desk_checkin.state"
    ctx.state["desk"] = {
        "ids": [str(b["id"]) for b in made[:-1]],
        "preflight": (str(made[-1]["id"]), str(made[-1]["ticket"])),
        "salt": salt,
        "data": str(data),
        "state": state,
    }
    return {"bench_data": str(data), "bench_state": str(state)}


def _scan(ctx: Context, ticket: str, nonce: str) -> tuple[int, bytes]:
    """One scan of a ticket by the clerk."""
    setup = ctx.state["booking"]
    body = json.dumps({"ticket": ticket, "nonce": nonce, "counter": DESK_COUNTER}).encode()
    headers = {"Authorization": f"Bearer {setup.clerk}", "Content-Type": "application/json"}
    return ctx.request("POST", "/api/v1/desk/checkins", body=body, headers=headers)


def _expect_result(status: int, body: bytes, result: str) -> None:
    if status == 200 and json.loads(body).get("result") != result:
        raise BenchError(f"the preflight scan answered {body[:300]!r}, expected result {result}", EXIT_SERVER)


def desk_preflight(ctx: Context) -> tuple[int, bytes]:
    """The first scan of the preflight's booking: 200, result checked_in."""
    desk = ctx.state["desk"]
    status, body = _scan(ctx, desk["preflight"][1], f"{desk['salt']}p1")
    _expect_result(status, body, "checked_in")
    return status, body


def rescan_setup(ctx: Context) -> dict[str, str]:
    """desk_rescan scans the tickets desk_checkin has reached (its data, its scan count)."""
    if "desk" not in ctx.state:
        raise BenchError("desk_rescan needs desk_checkin before it in the same phase", EXIT_SERVER)
    desk = ctx.state["desk"]
    return {
        "bench_data": desk["data"],
        "bench_state": str(ctx.work_dir / "desk_rescan.state"),
        "bench_rescan_of": str(desk["state"]),
    }


def rescan_preflight(ctx: Context) -> tuple[int, bytes]:
    """A second scan of the preflight's booking: 200, result already_checked_in."""
    desk = ctx.state["desk"]
    status, body = _scan(ctx, desk["preflight"][1], f"{desk['salt']}p2")
    _expect_result(status, body, "already_checked_in")
    return status, body


def _desk_rows(ctx: Context) -> dict[str, tuple[str, int]]:
    """Booking id -> (status, check-in rows) of the desk's bookings (and the preflight's)."""
    desk = ctx.state["desk"]
    return stores.desk_rows(ctx.deadline, [*desk["ids"], desk["preflight"][0]])


def _desk_problems(rows: Mapping[str, tuple[str, int]], checked_in: Sequence[str]) -> list[str]:
    """What the database says against exactly one check-in per booking."""
    problems = []
    multiple = [b for b, (_, n) in rows.items() if n > 1]
    if multiple:
        problems.append(f"{len(multiple)} bookings have more than one check-in row (e.g. {multiple[0]})")
    mismatched = [b for b, (status, n) in rows.items() if (status == "checked_in") != (n == 1)]
    if mismatched:
        problems.append(f"{len(mismatched)} bookings' status disagrees with their check-in rows")
    twice = len(checked_in) - len(set(checked_in))
    if twice:
        problems.append(f"{twice} answers checked_in for a booking that had already been answered checked_in")
    unbacked = [b for b in set(checked_in) if rows.get(b, ("", 0))[1] != 1]
    if unbacked:
        problems.append(f"{len(unbacked)} answers checked_in have no check-in row (e.g. {unbacked[0]})")
    return problems


def _scan_results(counts: Mapping[str, int]) -> str:
    results = {k[7:]: v for k, v in counts.items() if k.startswith("result_")}
    return ", ".join(f"{v} x {k}" for k, v in sorted(results.items(), key=lambda kv: -kv[1])) or "none"


def _desk_scanned(ctx: Context) -> list[int]:
    """The indices of the tickets desk_checkin has scanned: each wrk thread scans its own region of the list in order
    (its count so far is in the script's state file)."""
    desk = ctx.state["desk"]
    threads = ctx.cfg.threads
    region = max(1, len(desk["ids"]) // threads)
    scanned: list[int] = []
    path = Path(desk["state"])
    for line in path.read_text("utf-8").splitlines() if path.exists() else []:
        tid, _, count = line.partition(" ")
        scanned += range(int(tid) * region, int(tid) * region + min(int(count), region))
    return sorted(scanned)


def desk_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Every first scan checks its booking in, once: one check-in row per booking scanned (but for scans wrk cut off
    when it stopped), none for the bookings never scanned, status checked_in exactly where there is a row."""
    desk = ctx.state["desk"]
    counts = sum_counts(runs)
    answered, sent = count_answers(counts), counts.get("sent", 0)
    in_flight = max(sent - answered, 0)
    ids = desk["ids"]
    scanned = {ids[i] for i in _desk_scanned(ctx)}
    rows = _desk_rows(ctx)
    checked_in = report_lines(runs, "checked_in")
    problems = _desk_problems(rows, checked_in)
    others = {k[7:]: v for k, v in counts.items() if k.startswith("result_") and k[7:] != "checked_in"}
    if counts.get("wrapped"):
        problems.append(
            f"ran out of fresh tickets: {counts['wrapped']} scans hit tickets scanned before "
            "(raise BENCH_DESK_BOOKINGS)"
        )
    elif others:
        problems.append(f"first scans answered other than checked_in: {others}")
    once = sum(1 for b in scanned if rows.get(b, ("", 0))[1] == 1)
    if len(scanned) - once > in_flight:
        problems.append(f"{len(scanned) - once} of the {len(scanned)} bookings scanned are not checked in")
    touched = [b for b in ids if b not in scanned and rows.get(b, ("", 0))[1] != 0]
    if touched:
        problems.append(f"{len(touched)} bookings never scanned have a check-in row (e.g. {touched[0]})")
    more = sum(1 for _, n in rows.values() if n > 1)
    facts = {
        "bookings": len(ids), "scans": answered, "in_flight_unanswered": in_flight, "results": _scan_results(counts),
        "bookings_scanned": len(scanned), "checked_in_once": once, "never_scanned": len(ids) - len(scanned),
        "with_more_than_one_checkin": more,
    }  # fmt: skip
    summary = (
        f"{answered} scans ({_scan_results(counts)}); of {len(ids)} bookings {len(scanned)} scanned, {once} of them "
        f"checked in exactly once (one check-in row), {len(ids) - len(scanned)} never scanned (fresh tickets left, "
        f"no row), {more} with more than one row"
    )
    return {"summary": summary, "problems": problems, "facts": facts}


def rescan_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Scans of tickets already checked in answer already_checked_in and add no check-in row."""
    counts = sum_counts(runs)
    rows = _desk_rows(ctx)
    problems = _desk_problems(rows, [])
    others = {k[7:]: v for k, v in counts.items() if k.startswith("result_") and k[7:] != "already_checked_in"}
    unexpected = {k: v for k, v in others.items() if k != "checked_in"}  # checked_in: a first scan cut off by wrk
    if unexpected:
        problems.append(f"rescans answered {unexpected}")
    total = len(rows)
    once = sum(1 for _, n in rows.values() if n == 1)
    summary = (
        f"{count_answers(counts)} rescans ({_scan_results(counts)}); after all runs {once} of {total} bookings have "
        f"exactly one check-in row, {sum(1 for _, n in rows.values() if n > 1)} more than one"
    )
    facts = {"scans": count_answers(counts), "results": _scan_results(counts), "bookings_checked_in_once": once}
    return {"summary": summary, "problems": problems, "facts": facts}


# The booking phase's paths: a storm of citizens booking few seats, then a desk checking bookings in.
# The writes compare with PostgreSQL's own write ceiling on this machine (pgbench -N, same client count): a booking
# is a few statements in one transaction with a row lock on its slot, a check-in one conditional update.
BOOKING_STORM = BenchPath(
    "booking_storm", "POST", "/api/v1/bookings", None, script="lua/booking_storm.lua", expect_status=201,
    setup=storm_setup, preflight=storm_preflight, check=storm_check,
    answers=frozenset({409}), wrk_timeout_s=10, setup_s=storm_setup_s, ceiling="N", vs_pgbench=0.5,
)  # fmt: skip
DESK_CHECKIN = BenchPath(
    "desk_checkin", "POST", "/api/v1/desk/checkins", None, script="lua/desk_checkin.lua", expect_status=200,
    setup=desk_setup, preflight=desk_preflight, check=desk_check,
    wrk_timeout_s=10, setup_s=desk_setup_s, ceiling="N", vs_pgbench=0.7,
)  # fmt: skip
DESK_RESCAN = BenchPath(
    "desk_rescan", "POST", "/api/v1/desk/checkins", None, script="lua/desk_checkin.lua", expect_status=200,
    report_only=True, setup=rescan_setup, preflight=rescan_preflight,
    check=rescan_check, wrk_timeout_s=10, setup_s=lambda cfg: 60.0, ceiling="N",
)  # fmt: skip
BOOKING_PATHS: list[BenchPath] = [BASELINE, BOOKING_STORM, DESK_CHECKIN, DESK_RESCAN]

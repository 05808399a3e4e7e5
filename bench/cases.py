"""The cases phase (README: "The cases phase"): online applications and anonymous progress queries. Setup goes through
the service's own CLI and API (the administrator, the bench matter created and published from a demo matter's guide,
the citizens' dev tokens, progress_query's cases); the checks read the database (bench.stores)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import stores
from .harness import (
    BASELINE,
    EXIT_SERVER,
    PER_CITIZEN_S,
    TOKEN_TIMEOUT,
    BenchError,
    BenchPath,
    Config,
    Context,
    WrkResult,
    api,
    catalogue_codes,
    count_answers,
    counts_text,
    lua_string,
    lua_table,
    mint_citizens,
    report_lines,
    staff_token,
    sum_counts,
)

# The cases phase (see the README): a matter of the bench's own that offers online application without required
# materials, the citizens who apply for it and the cases whose progress is queried.
CASE_MATTER = "BENCH-APPLY-001"  # created (and published) through the admin API, from a demo matter's guide
CASE_MATTER_NAME = "基准测试：网上申报（无必需材料）"
CASE_CITIZENS = 200  # citizens case_submit cycles through (plus one for the preflight and progress_query's cases)
CASE_APPLICANT = "张三"  # the applicant's name in every submission (the citizens have no verified identity)
PROGRESS_CASES = 50  # cases progress_query cycles through, created in its setup
PER_CASE_S = 0.5  # the most creating one of those cases may take (one at a time)


def id_number(n: int) -> str:
    """A valid 18-digit resident identity card number (GB 11643: region 430802, a birth date in 1990-1999, sequence
    and the ISO 7064 MOD 11-2 check character), a different one for each n below 3650 * 1000."""
    born = datetime(1990, 1, 1) + timedelta(days=n % 3650)
    body = f"430802{born:%Y%m%d}{n // 3650 % 1000:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def case_body(matter: str, n: int, form: Mapping[str, Any]) -> dict[str, Any]:
    """An online application for oneself (`CaseIn`): name and ID number given (no verified identity), a small
    form, the result collected at the window, no materials."""
    applicant = {"kind": "self", "name": CASE_APPLICANT, "id_number": id_number(n)}
    return {"matter_code": matter, "applicant": applicant, "form": dict(form), "delivery": {"method": "window"}}


@dataclass(frozen=True)
class CasesSetup:
    """What the cases phase's paths share: the bench matter, the citizens' tokens and a salt for keys and forms."""

    matter: str
    template: str  # the demo matter whose guide the bench matter copies
    citizens: list[str]  # access tokens of distinct citizens; the last one is kept for the preflight and the cases
    salt: str


def cases_setup_s(cfg: Config) -> float:
    """The most the shared setup takes: the administrator (account, token), the bench matter (the catalogue's guides,
    create, publish) and the citizens' tokens."""
    return 2 * TOKEN_TIMEOUT + 60 + (TOKEN_TIMEOUT + PER_CITIZEN_S * (CASE_CITIZENS + 4))


def case_submit_setup_s(cfg: Config) -> float:
    """The shared setup, case_submit's preflight and its check."""
    return cases_setup_s(cfg) + 90


def progress_setup_s(cfg: Config) -> float:
    """Creating progress_query's cases and its check."""
    return 30 + PER_CASE_S * PROGRESS_CASES + 60


def _apply_template(ctx: Context) -> dict[str, Any]:
    """The guide of the first active matter of the catalogue that offers online application at LoA 2."""
    for code in catalogue_codes(ctx):
        status, body = ctx.request("GET", f"/api/v1/matters/{code}")
        guide = json.loads(body) if status == 200 else {}
        if guide.get("status") == "active" and guide.get("online_apply") and int(guide.get("apply_loa", 2)) == 2:
            return guide
    raise BenchError("no active matter of the catalogue offers online application at LoA 2", EXIT_SERVER)


def _fits(guide: Mapping[str, Any]) -> bool:
    """Whether a guide takes online applications at LoA 2 without any required material."""
    return (
        guide.get("status") == "active"
        and bool(guide.get("online_apply"))
        and int(guide.get("apply_loa", 2)) == 2
        and not any(m.get("required") for m in guide.get("materials") or [])
    )


def bench_matter(ctx: Context, admin: str) -> tuple[str, str]:
    """The bench matter (CASE_MATTER): a copy of a demo matter's guide (same department, hall, section) that offers
    online application at LoA 2 with only its optional materials and no booking, created and published by the
    administrator (`POST /api/v1/admin/matters`, then `POST .../versions/{no}/publish`); (its code, the template's)."""
    template = _apply_template(ctx)
    raw = api(ctx, "GET", f"/api/v1/admin/matters/{template['code']}/versions/{template['version']}", admin)
    content = dict(raw["content"])
    content.update(
        name=CASE_MATTER_NAME,
        materials=[m for m in content.get("materials") or [] if not m.get("required", True)],
        online_apply=True,
        apply_loa=2,
        online_depth=max(3, int(content.get("online_depth", 3))),
        booking=False,  # stays out of the booking phase's matters
    )
    headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
    body = json.dumps({"code": CASE_MATTER, "content": content}).encode()
    status, payload = ctx.request("POST", "/api/v1/admin/matters", body=body, headers=headers)
    if status == 201:
        no = int(json.loads(payload)["version"]["no"])
        api(ctx, "POST", f"/api/v1/admin/matters/{CASE_MATTER}/versions/{no}/publish", admin)
    elif status != 409:  # 409: the matter exists (a database not reset): used when it fits (below)
        raise BenchError(f"POST /api/v1/admin/matters answered {status}: {payload[:300]!r}", EXIT_SERVER)
    status, payload = ctx.request("GET", f"/api/v1/matters/{CASE_MATTER}")
    guide = json.loads(payload) if status == 200 else {}
    if not _fits(guide):
        raise BenchError(
            f"matter {CASE_MATTER} does not take online applications at LoA 2 without required materials "
            f"(GET answered {status}: {payload[:300]!r})",
            EXIT_SERVER,
        )
    return CASE_MATTER, str(template["code"])


def cases_setup(ctx: Context) -> CasesSetup:
    """Once per phase: the administrator, the bench matter and the citizens' tokens (CASE_CITIZENS + 1)."""
    if "cases" in ctx.state:
        return ctx.state["cases"]
    admin = staff_token(ctx, "admin", "bench-admin")
    matter, template = bench_matter(ctx, admin)
    wanted = CASE_CITIZENS + 1
    citizens, took = mint_citizens(ctx, wanted)
    print(
        f"cases setup: matter {matter} (a copy of {template}: online application at LoA 2, no required material); "
        f"{wanted} citizens minted in {took:.1f} s",
        flush=True,
    )
    setup = CasesSetup(matter, template, citizens, secrets.token_hex(4))
    ctx.state["cases"] = setup
    return setup


def _submit(ctx: Context, token: str, key: str, body: Mapping[str, Any]) -> tuple[int, bytes]:
    """One online application (`POST /api/v1/cases`) by the citizen with this token."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": key}
    return ctx.request("POST", "/api/v1/cases", body=json.dumps(body, ensure_ascii=False).encode(), headers=headers)


def case_submit_setup(ctx: Context) -> dict[str, str]:
    """case_submit's data: the citizens (all but the spare one), an ID number for each, and the application's JSON
    around them (the script puts in the ID number and the request's number)."""
    setup = cases_setup(ctx)
    citizens = setup.citizens[:-1]
    form = {"purpose": "基准测试", "bench": "case_submit", "run": setup.salt, "n": "@N@"}
    body = case_body(setup.matter, 0, form)
    body["applicant"]["id_number"] = "@ID@"
    # The JSON cut at the ID number and at the form's n: the script sends head .. ID .. mid .. n .. tail.
    head, _, rest = json.dumps(body, ensure_ascii=False, separators=(",", ":")).partition("@ID@")
    mid, _, tail = rest.partition('"@N@"')
    ids = (id_number(k) for k in range(len(citizens)))
    data = ctx.work_dir / "case_submit.lua"
    data.write_text(
        f'return {{salt="{setup.salt}", tokens={lua_table(citizens)}, ids={lua_table(ids)}, '
        f"head={lua_string(head)}, mid={lua_string(mid)}, tail={lua_string(tail)}}}\n",
        "utf-8",
    )
    return {"bench_data": str(data), "bench_state": str(ctx.work_dir / "case_submit.state")}


def case_submit_preflight(ctx: Context) -> tuple[int, bytes]:
    """One application by the spare citizen (left out of the check: its form says `preflight`)."""
    setup = ctx.state["cases"]
    form = {"purpose": "基准测试", "bench": "preflight", "run": setup.salt}
    body = case_body(setup.matter, len(setup.citizens), form)
    return _submit(ctx, setup.citizens[-1], f"{setup.salt}-preflight", body)


def case_submit_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Cases against answers: the case_record rows of the run (the bench matter, the form's run and `case_submit`)
    are the answered 201s plus those committed while wrk stopped with their request in flight (at most the requests
    left unanswered); every 201 names one of them, all case numbers distinct (over the whole table too), each case
    with exactly one timeline event (`submit`)."""
    setup = ctx.state["cases"]
    counts = sum_counts(runs)
    problems: list[str] = []
    answered, sent = count_answers(counts), counts.get("sent", 0)
    in_flight = max(sent - answered, 0)
    created = counts.get("status_201", 0)
    errors_5xx = sum(v for k, v in counts.items() if k.startswith("status_5"))
    refused = {k[5:]: v for k, v in counts.items() if k.startswith("code_")}
    if refused:
        problems.append(f"refusals: {refused}")
    if errors_5xx:
        problems.append(f"{errors_5xx} answers 5xx (see the server log)")
    observed = report_lines(runs, "case")
    if len(set(observed)) != len(observed) or len(observed) != created:
        problems.append(f"{created} answers 201 name {len(set(observed))} distinct case numbers")
    rows = stores.case_rows(ctx.deadline, setup.matter, setup.salt)
    total, distinct, not_submitted = rows.total, rows.distinct, rows.not_submitted
    events, with_event, other_events = rows.events, rows.with_event, rows.other_events
    all_rows, all_distinct = rows.all_rows, rows.all_distinct
    stuck = rows.keys_claimed
    in_db = rows.case_nos
    missing = set(observed) - in_db
    unobserved = in_db - set(observed)
    if missing:
        problems.append(f"{len(missing)} answers 201 name no case of the run (e.g. {sorted(missing)[0]})")
    if len(unobserved) > in_flight:
        problems.append(f"{len(unobserved)} cases were never answered 201 (only {in_flight} requests in flight)")
    if total != created + len(unobserved):
        problems.append(f"{total} case_record rows of the run, expected {created} answered 201 + {len(unobserved)}")
    if distinct != total:
        problems.append(f"{total} case_record rows of the run carry {distinct} distinct case numbers")
    if all_distinct != all_rows:
        problems.append(f"case_record holds {all_rows} rows with {all_distinct} distinct case numbers")
    if not_submitted:
        problems.append(f"{not_submitted} cases of the run are not in status submitted")
    if events != total or with_event != total or other_events:
        problems.append(f"{total} cases have {events} timeline events ({other_events} not `submit`)")
    facts = {
        "attempts": answered, "in_flight_unanswered": in_flight, "created_201": created, "refusals": refused,
        "errors_5xx": errors_5xx, "cases_in_db": total, "distinct_case_nos": distinct,
        "committed_unanswered": len(unobserved), "submit_events": events, "case_record_rows": all_rows,
        "case_record_distinct_case_nos": all_distinct, "idempotency_keys_left_claimed": stuck,
    }  # fmt: skip
    summary = (
        f"{answered} applications: {created} x 201, {sum(refused.values())} refused, {errors_5xx} x 5xx; "
        f"{total} case_record rows of the run = {created} answered 201 + {len(unobserved)} committed while wrk "
        f"stopped, {distinct} distinct case numbers ({all_rows} rows, {all_distinct} distinct in the whole table), "
        f"{events} submit events"
        + (f"; {stuck} Idempotency-Keys left claimed (no answer stored, not released)" if stuck else "")
    )
    return {"summary": summary, "problems": problems, "facts": facts}


def progress_setup(ctx: Context) -> dict[str, str]:
    """progress_query's data: PROGRESS_CASES cases of the bench matter, applied for through the API by the spare
    citizen, and their numbers and query codes (shown once, in the 201)."""
    setup = cases_setup(ctx)
    end = time.monotonic() + ctx.deadline.clip(30 + PER_CASE_S * PROGRESS_CASES)
    cases: list[tuple[str, str]] = []
    for k in range(PROGRESS_CASES):
        if time.monotonic() > end:
            raise BenchError("creating progress_query's cases took too long", EXIT_SERVER)
        form = {"purpose": "基准测试", "bench": "progress_query", "run": setup.salt, "n": k}
        status, payload = _submit(
            ctx, setup.citizens[-1], f"{setup.salt}-progress-{k}", case_body(setup.matter, len(setup.citizens), form)
        )
        if status != 201:
            raise BenchError(f"POST /api/v1/cases for progress_query answered {status}: {payload[:300]!r}", EXIT_SERVER)
        answer = json.loads(payload)
        cases.append((str(answer["case_no"]), str(answer["query_code"])))
    paths = [f"/api/v1/progress?case_no={no}&query_code={code}" for no, code in cases]
    data = ctx.work_dir / "progress_query.lua"
    data.write_text(f"return {{paths={lua_table(paths)}, cases={lua_table(no for no, _ in cases)}}}\n", "utf-8")
    ctx.state["progress"] = {"paths": paths, "cases": [no for no, _ in cases]}
    print(f"progress: created {len(cases)} cases of {setup.matter} to query", flush=True)
    return {"bench_data": str(data)}


def progress_preflight(ctx: Context) -> tuple[int, bytes]:
    """The first case's progress (200, that case)."""
    progress = ctx.state["progress"]
    status, body = ctx.request("GET", progress["paths"][0], headers={"Accept": "application/json"})
    if status == 200 and json.loads(body).get("case_no") != progress["cases"][0]:
        raise BenchError(f"the preflight query answered {body[:300]!r}, not case {progress['cases'][0]}", EXIT_SERVER)
    return status, body


def progress_check(ctx: Context, runs: Sequence[WrkResult]) -> dict[str, Any]:
    """Every query answered 200 with one of the queried cases (none refused by the rate limits: 429)."""
    progress = ctx.state["progress"]
    counts = sum_counts(runs)
    answered = count_answers(counts)
    ok, other = counts.get("result_case", 0), counts.get("result_other", 0)
    limited = counts.get("status_429", 0)
    problems = []
    if other:
        problems.append(f"{other} answers 200 name no case that was queried")
    if limited:
        problems.append(f"{limited} answers 429 (the rate limits were not raised?)")
    if ok != answered:
        problems.append(f"{answered - ok} of {answered} queries did not answer one of the cases queried")
    summary = (
        f"{answered} queries of {len(progress['cases'])} cases: {ok} x 200 with the case queried, "
        f"{limited} x 429 ({counts_text(counts)})"
    )
    facts = {"queries": answered, "answered_case": ok, "answered_other": other, "rate_limited_429": limited}
    return {"summary": summary, "problems": problems, "facts": facts}


# The cases phase's paths: online applications (every one a new case) and anonymous progress queries of cases made in
# its setup.
# A submission writes (pgbench -N is its ceiling), a progress query reads (pgbench -S); both also carry absolute p99
# limits, measured at the phase's load.
CASE_SUBMIT = BenchPath(
    "case_submit", "POST", "/api/v1/cases", None, script="lua/case_submit.lua", expect_status=201,
    setup=case_submit_setup, preflight=case_submit_preflight,
    check=case_submit_check, wrk_timeout_s=10, setup_s=case_submit_setup_s,
    ceiling="N", vs_pgbench=0.25, p99_max_ms=100.0,
)  # fmt: skip
PROGRESS_QUERY = BenchPath(
    "progress_query", "GET", "/api/v1/progress", None, script="lua/progress_query.lua", expect_status=200,
    setup=progress_setup, preflight=progress_preflight,
    check=progress_check, wrk_timeout_s=10, setup_s=progress_setup_s,
    ceiling="S", vs_pgbench=0.25, p99_max_ms=20.0,
)  # fmt: skip
CASES_PATHS: list[BenchPath] = [BASELINE, CASE_SUBMIT, PROGRESS_QUERY]

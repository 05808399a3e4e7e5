"""Each demo bundle (一件事) end to end, on the demo catalogue: one application with each material uploaded
once, accepted once, parts in their departments' queues, stages in order and parallel within a stage,
a correction from one department while the others go on, dates across National Day and the 调休
Saturday, delivery together, one timeline, the citizen's notifications counted — and for investment
approval the first four stages' working days against 48, from the stages' real dates, on the dashboard.

Runs on both backends; CI's PostgreSQL run is the one the issue asks for (real row locks on the bundle).
"""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace

import pytest

from app import clock, workdays
from app.cases.models import Case
from app.matters import demo
from app.matters import service as matters
from app.notify.models import Notification
from auth.idcard import make_id_number
from tests.api import case_helpers as h

QYKB, TZXM, CSYJS = "4308-YJS-QYKB-001", "4308-YJS-TZXM-001", "4308-YJS-CSYJS-001"


def bundle_entry(code: str) -> dict:
    return next(m for m in demo.demo_data()["matters"] if m["code"] == code)


def departments_of(code: str) -> dict[str, str]:
    """Member matter code -> its department, from the demo file."""
    entries = {m["code"]: m for m in demo.demo_data()["matters"]}
    return {member: entries[member]["department"] for s in entries[code]["bundle"]["stages"] for member in s["matters"]}


@pytest.fixture
async def world(fake_clock, client, make_citizen, make_staff, auth_deps):
    from auth.logins import issue_for_staff

    await matters.import_catalogue(client.sanic_app.ctx.catalogue, data=demo.demo_data())
    phone = "13912345678"
    citizen, _ = await make_citizen(phone=phone, loa=3)
    codes = {d for c in (QYKB, TZXM, CSYJS) for d in departments_of(c).values()} | {"scjgj", "fgw", "gaj"}
    staff = {dep: (await make_staff("reviewer", departments=[dep]))[0] for dep in sorted(codes)}
    w = SimpleNamespace(client=client, clock=fake_clock, citizen=citizen, staff={})

    async def later(**delta) -> None:
        """Move the clock and sign everyone in again (tokens are short-lived)."""
        fake_clock.advance(**delta)
        w.headers = (await make_citizen(phone=phone, loa=3))[1]
        for dep, member in staff.items():
            pair = await issue_for_staff(auth_deps, staff=member)
            w.staff[dep] = {"Authorization": f"Bearer {pair.access_token}"}

    async def until(day: str) -> None:
        """Move the clock to the same hour of a later day."""
        target = dt.date.fromisoformat(day)
        await later(days=(target - clock.today()).days)

    w.later, w.until = later, until
    await later()
    return w


async def apply(w, code: str) -> dict:
    """One application to a bundle: every material uploaded once, in a type its entry accepts."""
    entry = bundle_entry(code)
    materials = []
    for m in entry["materials"]:
        data, name = (h.PDF, "m.pdf") if "pdf" in m["file_types"] else (h.PNG, "m.png")
        materials.append({"name": m["name"], "upload_ids": [await h.upload(w.client, w.headers, data, name)]})
    body = {
        "matter_code": code,
        "applicant": {"kind": "self", "name": "张三", "id_number": make_id_number()},
        "form": {"company_name": "张家界一件事示范有限公司"},
        "materials": materials,
        "delivery": {"method": "ems", "address": h.ADDRESS} if entry["postal_delivery"] else {"method": "window"},
    }
    _, r = await w.client.post("/api/v1/cases", json=body, headers={**w.headers, "Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    assert len(r.json["materials"]) == len(materials)  # each once, whatever the number of members using it
    return r.json


async def ok(r) -> dict:
    assert r.status_code == 200, r.text
    return r.json


async def run_bundle(w, code: str, *, late: dict[int, int] | None = None) -> tuple[str, dict]:
    """Drive one application of a bundle from submission to completion; (bundle number, final staff view).

    Each stage is decided on its due date (`late` adds working days to a stage); the first stage with
    several members has a correction from its first member's department while the others decide.
    """
    entry = bundle_entry(code)
    lead_dep = entry["department"]
    where = departments_of(code)
    case = await apply(w, code)
    no, query_code = case["case_no"], case["query_code"]
    await ok(await h.act(w.client, w.staff[lead_dep], no, "accept"))
    corrected = False
    stages = entry["bundle"]["stages"]
    for index, stage in enumerate(stages, start=1):
        view = await h.staff_case(w.client, w.staff[lead_dep], no)
        current = view["bundle"]["stages"][index - 1]
        # Stages in order: this one runs, the later ones wait; its parts opened the same day, side by side.
        assert current["state"] == "running", (code, index, view["bundle"]["stages"])
        assert all(s["state"] == "waiting" for s in view["bundle"]["stages"][index:])
        parts = current["parts"]
        assert [p["matter"]["code"] for p in parts] == stage["matters"]
        assert len({p["accepted_on"] for p in parts}) == 1
        started = parts[0]["accepted_on"]
        expected_due = workdays.add_workdays(dt.date.fromisoformat(started), stage["promised_days"])
        assert current["due_on"] == expected_due.isoformat()
        for p in parts:  # each part is in its own department's queue and nobody else's
            dep = where[p["matter"]["code"]]
            assert p["case_no"] in await h.staff_list(w.client, w.staff[dep])
            for other, headers in w.staff.items():
                if other != dep:
                    assert p["case_no"] not in await h.staff_list(w.client, headers)
        pending = list(parts)
        if len(parts) > 1 and not corrected:
            corrected = True
            first = parts[0]
            first_dep = w.staff[where[first["matter"]["code"]]]
            part_view = await h.staff_case(w.client, first_dep, first["case_no"])
            asked = part_view["materials"][0]["name"]
            r = await h.act(
                w.client, first_dep, first["case_no"], "request_correction", reason="材料不清晰", materials=[asked]
            )
            assert (await ok(r))["status"] == "correction_required"
            for p in parts[1:]:  # the others go on and decide meanwhile
                headers = w.staff[where[p["matter"]["code"]]]
                await ok(await h.act(w.client, headers, p["case_no"], "start_review"))
                await ok(await h.act(w.client, headers, p["case_no"], "approve"))
            assert (await h.staff_case(w.client, w.staff[lead_dep], no))["bundle"]["current_stage"] == index
            await w.later(days=1)  # the citizen answers the next day
            r = await h.resubmit(w.client, w.headers, first["case_no"], name=asked, data=h.PDF)
            assert r.status_code == 200, r.text
            pending = [first]
        view = await h.staff_case(w.client, w.staff[lead_dep], no)
        due_on = view["bundle"]["stages"][index - 1]["due_on"]
        decide_on = workdays.add_workdays(dt.date.fromisoformat(due_on), (late or {}).get(index, 0))
        if decide_on > clock.today():
            await w.until(decide_on.isoformat())
        for p in pending:
            headers = w.staff[where[p["matter"]["code"]]]
            await ok(await h.act(w.client, headers, p["case_no"], "start_review"))
            await ok(await h.act(w.client, headers, p["case_no"], "approve"))
    view = await h.staff_case(w.client, w.staff[lead_dep], no)
    assert view["status"] == "approved" and all(s["state"] == "done" for s in view["bundle"]["stages"])
    tracking = {"tracking_no": "EA123456789CN"} if entry["postal_delivery"] else {}
    await ok(await h.act(w.client, w.staff[lead_dep], no, "deliver", **tracking))
    await ok(await h.act(w.client, w.staff[lead_dep], no, "complete"))
    parts = await Case.filter(bundle_id=uuid.UUID(view["id"])).values_list("status", flat=True)
    assert len(parts) == sum(len(s["matters"]) for s in stages) and {str(s) for s in parts} == {"completed"}

    # One progress for the whole: every department's steps in one timeline, by the one number and code.
    _, r = await w.client.post("/api/v1/progress", json={"case_no": no, "query_code": query_code})
    assert r.status_code == 200, r.text
    sources = {e["source"] for e in r.json["timeline"] if "source" in e}
    members = {m["code"]: m["name"] for m in demo.demo_data()["matters"]}
    assert sources == {members[c] for s in stages for c in s["matters"]}

    # The citizen heard once per step of the whole (and once for the one correction), not once per department.
    sent = await Notification.filter(citizen_id=w.citizen.id, subject_id__startswith=no).order_by("created_at", "id")
    kinds = [(n.payload["case_no"] == no, n.payload["status"]) for n in sent]
    expected = [(True, "submitted"), (True, "accepted")] + [(True, "under_review")] * (len(stages) - 1)
    expected += [(False, "correction_required")] * corrected
    expected += [(True, "approved"), (True, "delivered"), (True, "completed")]
    assert sorted(kinds) == sorted(expected)
    return no, await h.staff_case(w.client, w.staff[lead_dep], no)


async def test_company_start_up_bundle(world):
    """企业开办: 营业执照 first (1 working day, across National Day), then four departments the same day."""
    _, view = await run_bundle(world, QYKB)
    stages = view["bundle"]["stages"]
    # Accepted Wednesday 2026-09-30: 1 working day is Thursday 10-08, after the seven closed days.
    assert stages[0]["started_on"] == "2026-09-30" and stages[0]["due_on"] == "2026-10-08"
    # Stage 2 opens the day stage 1 is decided; its correction paused the bundle one working day: 10-09.
    assert stages[1]["started_on"] == "2026-10-08" and stages[1]["paused_days"] == 1
    assert view["sla"]["due_on"] == "2026-10-09"
    assert [len(s["parts"]) for s in stages] == [1, 4]


async def test_newborn_bundle(world):
    _, view = await run_bundle(world, CSYJS)
    assert [len(s["parts"]) for s in view["bundle"]["stages"]] == [1, 2]
    assert view["bundle"]["cap"] is None


async def test_investment_bundle_and_its_48_working_days(world, make_staff):
    w = world
    no, view = await run_bundle(w, TZXM)
    stages = view["bundle"]["stages"]
    # 10 working days from Wednesday 09-30 run through the 调休 Saturday 10-10: 10-20.
    assert stages[0]["due_on"] == "2026-10-20"
    assert [s["used_days"] for s in stages] == [10, 15, 16, 7, 12]
    cap = view["bundle"]["cap"]
    assert cap["days"] == 48 and cap["used_days"] == 48 and cap["finished"] and cap["within"]

    # A second project whose land stage is decided three working days late: 51 days, over the cap.
    late_no, late_view = await run_bundle(w, TZXM, late={2: 3})
    assert late_view["bundle"]["cap"]["used_days"] == 51 and late_view["bundle"]["cap"]["within"] is False

    _, admin_headers = await make_staff("admin")
    _, r = await w.client.get(
        "/api/v1/admin/indicators",
        params={"from": "2026-09-01", "to": clock.today().isoformat()},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    figures = r.json["bundles"]
    projects = {p["bundle_no"]: p for p in figures["projects"]}
    assert projects[no]["used_days"] == 48 and projects[no]["within"] is True
    assert [s["used_days"] for s in projects[no]["stages"]] == [10, 15, 16, 7]
    assert projects[late_no]["used_days"] == 51 and projects[late_no]["within"] is False
    assert figures["projects_finished"] == 2 and figures["projects_within"] == 1
    assert figures["projects_within_rate"] == 0.5
    item = next(i for i in figures["items"] if i["code"] == TZXM)
    assert item["finished"] == 2
    # The public dashboard shows the same figures, without the projects' numbers.
    _, r = await w.client.get("/stats", params={"from": "2026-09-01", "to": clock.today().isoformat()})
    assert r.status_code == 200, r.text
    assert 'data-project="1" data-used="51"' in r.text or 'data-project="2" data-used="51"' in r.text
    assert 'data-used="48"' in r.text and late_no not in r.text and no not in r.text
    assert "在 48 个工作日内完成 1 个（50.0%）" in r.text

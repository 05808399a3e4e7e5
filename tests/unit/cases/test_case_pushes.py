"""Case pushes (办件进度通知): one `case_progress` row per step, in the step's own transaction, delivered
through the fake WeChat API once each, across WeChat outages and a worker that dies after claiming."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import uuid

import pytest

from app import clock
from app.cache import LocalCache
from app.cases import present, service
from app.cases.errors import CaseChanged
from app.cases.lifecycle import STATUS_NAMES
from app.cases.models import Case, CaseEvent, CaseStatus, Upload
from app.cases.types import StaffCaseView
from app.matters import service as catalogue
from app.notify import delivery
from app.notify import service as notify
from app.notify.deps import NotifyDeps
from app.notify.models import Notification, NotificationStatus
from app.storage import make_material_store
from app.store import make_store
from app.wechat.client import WeChatClient
from auth.idcard import make_id_number
from auth.models import Channel, ChannelBinding, Citizen
from auth.pii import PiiCipher
from auth.tokens import STAFF_AUDIENCE, Principal, TokenAuthority
from tests import factories

MATTER = "4308-XK-SS-001"
TEMPLATE = "/cgi-bin/message/template/send"
ADMIN = Principal(kind="staff", id=str(uuid.uuid4()), audience=STAFF_AUDIENCE, session_id="s-admin", role="admin")
# The whole road of a case with a correction and a suspension: (action, staff args), None for the citizen's own.
STEPS: list[tuple[str, dict | None]] = [
    ("require_correction", {"materials": ["居民身份证"], "reason": "身份证照片不清晰"}),
    ("resubmit", None),
    ("accept", {}),
    ("start_review", {}),
    ("suspend", {"reason": "需现场核查", "procedure": "现场核查"}),
    ("resume", {}),
    ("approve", {}),
    ("deliver", {}),
    ("complete", {}),
]


@pytest.fixture
async def deps(wechat_settings, services):
    """The case services wired like a worker's, on settings whose WeChat is the fake."""
    store = make_store(wechat_settings)
    cache = LocalCache(store)
    cipher = PiiCipher.from_settings(wechat_settings)
    parts = {
        "settings": wechat_settings,
        "cache": cache,
        "tokens": TokenAuthority(wechat_settings, cipher, cache),
        "cipher": cipher,
        "store": store,
        "materials": make_material_store(wechat_settings),
    }
    await catalogue.import_catalogue(services.catalogue, data=factories.small_catalogue())
    yield service.CaseDeps(**{f.name: parts[f.name] for f in dataclasses.fields(service.CaseDeps)})
    await store.aclose()


@pytest.fixture
async def wechat(wechat_settings):
    store = make_store(wechat_settings)
    client = WeChatClient(wechat_settings, store)
    yield client
    await client.aclose()
    await store.aclose()


@pytest.fixture
async def citizen(wechat_settings) -> Citizen:
    """A citizen who follows the official account."""
    row = await Citizen.create(id=uuid.uuid4())
    await ChannelBinding.create(
        citizen=row,
        channel=Channel.official_account,
        appid=wechat_settings.wechat_mp_appid,
        openid=f"oacct{uuid.uuid4().hex[:20]}",
        subscribed=True,
    )
    return row


def citizen_principal(citizen: Citizen) -> Principal:
    return Principal(kind="citizen", id=str(citizen.id), audience="app", session_id="s-citizen", loa=2)


async def new_upload(citizen: Citizen, file_type: str) -> Upload:
    now = clock.now()
    return await Upload.create(
        id=uuid.uuid4(),
        owner_id=citizen.id,
        sha256=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
        size=100,
        file_type=file_type,
        filename=f"file.{file_type}",
        created_at=now,
        expires_at=now + dt.timedelta(days=1),
    )


async def submit(deps, citizen: Citizen) -> dict:
    pdf = await new_upload(citizen, "pdf")
    png = await new_upload(citizen, "png")
    result = await service.submit(
        deps,
        principal=citizen_principal(citizen),
        matter_code=MATTER,
        applicant={"kind": "self", "name": "张三", "id_number": make_id_number()},
        form={},
        materials=[
            {"name": "公司登记（备案）申请书", "upload_ids": [str(pdf.id)]},
            {"name": "居民身份证", "upload_ids": [str(png.id)]},
        ],
        delivery={"method": "window"},
    )
    return present.submission_json(result)


async def step(deps, citizen: Citizen, case_no: str, action: str, args: dict | None) -> object:
    if args is not None:
        return await service.act(deps, principal=ADMIN, case_no=case_no, action=action, args=args)
    assert action == "resubmit"
    png = await new_upload(citizen, "jpg")
    return await service.resubmit(
        deps,
        principal=citizen_principal(citizen),
        case_no=case_no,
        materials=[{"name": "居民身份证", "upload_ids": [str(png.id)]}],
    )


async def pushes(case_no: str) -> list[Notification]:
    return await Notification.filter(subject_type="case", subject_id=case_no).order_by("created_at", "send_after")


async def state(case_no: str) -> tuple:
    """What a failed step must leave as it was: the case row, its events and its notifications."""
    case = await Case.get(case_no=case_no)
    events = await CaseEvent.filter(case_id=case.id).count()
    return case.status, case.version, case.updated_at, events, await Notification.filter(subject_id=case_no).count()


# ---------------------------------------------------------------- one notification per step, in its transaction


async def test_every_step_queues_exactly_one_case_progress_notification(fake_clock, deps, citizen):
    body = await submit(deps, citizen)
    case_no = body["case_no"]
    url = body["receipt"]["progress_url"]
    assert url == f"{deps.settings.base_url}/p/{body['receipt']['case_code']}"
    seen: set[uuid.UUID] = set()
    for action, args in [("submit", None), *STEPS]:
        if action != "submit":
            fake_clock.advance(seconds=1)
            await step(deps, citizen, case_no, action, args)
        case = await Case.get(case_no=case_no)
        rows = await pushes(case_no)
        new = [r for r in rows if r.id not in seen]
        assert len(new) == 1, (action, [r.payload for r in new])
        [row] = new
        seen.add(row.id)
        assert row.kind == "case_progress" and row.status is NotificationStatus.pending
        assert row.citizen_id == citizen.id and row.subject_type == "case"
        assert row.dedupe_key == f"case:{case.id}:v{case.version}"
        assert row.send_after == clock.now()  # due at once
        payload = row.payload
        assert payload["case_no"] == case_no and payload["matter_name"] == "营业执照设立登记"
        assert payload["status"] == case.status.value and payload["status_name"] == STATUS_NAMES[case.status]
        assert payload["url"] == url and payload["at"] == clock.iso(clock.now())
        last_event = await CaseEvent.filter(case_id=case.id).order_by("-id").first()
        assert last_event.action == action and payload["text"] == last_event.public_text
    assert case.status is CaseStatus.completed
    assert await CaseEvent.filter(case_id=case.id).count() == len(seen) == len(STEPS) + 1


async def test_concurrent_steps_one_wins_and_the_loser_leaves_no_trace(fake_clock, deps, citizen, monkeypatch):
    case_no = (await submit(deps, citizen))["case_no"]
    real = service.staff_case
    both_read = asyncio.Barrier(2)

    async def read_then_wait(*args, **kwargs):
        case = await real(*args, **kwargs)
        await both_read.wait()  # both staff members have the case in front of them before either acts
        return case

    monkeypatch.setattr(service, "staff_case", read_then_wait)
    results = await asyncio.gather(
        service.act(deps, principal=ADMIN, case_no=case_no, action="accept", args={}),
        service.act(deps, principal=ADMIN, case_no=case_no, action="reject", args={"reason": "材料不符"}),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, StaffCaseView)]
    lost = [r for r in results if not isinstance(r, StaffCaseView)]
    assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], CaseChanged), results
    winner = won[0].summary.status.value
    case = await Case.get(case_no=case_no)
    assert case.status.value == winner and case.version == 2
    events = await CaseEvent.filter(case_id=case.id).order_by("id").values_list("to_status", flat=True)
    assert events == ["submitted", winner]
    assert [r.payload["status"] for r in await pushes(case_no)] == ["submitted", winner]


async def test_a_stale_step_is_refused_without_writing_anything(fake_clock, deps, citizen, monkeypatch):
    case_no = (await submit(deps, citizen))["case_no"]
    stale = await Case.get(case_no=case_no)
    await service.act(deps, principal=ADMIN, case_no=case_no, action="accept", args={})
    before = await state(case_no)

    async def stale_read(*args, **kwargs):
        return stale  # read before the other desk accepted it

    monkeypatch.setattr(service, "staff_case", stale_read)
    with pytest.raises(CaseChanged):
        await service.act(deps, principal=ADMIN, case_no=case_no, action="require_correction",
                          args={"materials": ["居民身份证"], "reason": "不清晰"})  # fmt: skip
    assert await state(case_no) == before


@pytest.mark.parametrize("when", ["before_the_outbox_row", "after_the_outbox_row"])
async def test_a_step_failing_after_its_event_is_written_rolls_everything_back(
    fake_clock, deps, citizen, monkeypatch, when
):
    case_no = (await submit(deps, citizen))["case_no"]
    await service.act(deps, principal=ADMIN, case_no=case_no, action="accept", args={})
    before = await state(case_no)
    real = notify.enqueue
    inside: list[tuple] = []

    async def enqueue_then_crash(**kwargs):
        if when == "after_the_outbox_row":
            await real(**kwargs)
        inside.append(await state(case_no))  # what the transaction had written when it failed
        raise RuntimeError("worker crashed mid-step")

    monkeypatch.setattr(notify, "enqueue", enqueue_then_crash)
    fake_clock.advance(seconds=5)
    with pytest.raises(RuntimeError, match="mid-step"):
        await service.act(deps, principal=ADMIN, case_no=case_no, action="start_review", args={})
    [(status, version, _, events, notes)] = inside
    assert (status, version, events) == (CaseStatus.under_review, before[1] + 1, before[3] + 1)
    assert notes == before[4] + (1 if when == "after_the_outbox_row" else 0)
    assert await state(case_no) == before  # neither the status change, the event nor the notification

    monkeypatch.setattr(notify, "enqueue", real)
    await service.act(deps, principal=ADMIN, case_no=case_no, action="start_review", args={})
    assert [r.payload["status"] for r in await pushes(case_no)] == ["submitted", "accepted", "under_review"]


async def test_a_submission_failing_at_its_notification_leaves_no_case(fake_clock, deps, citizen, monkeypatch):
    """Failed where the notification is written: through the outbox (SQLite), or inside the one statement that
    writes case, event, notification and answer (PostgreSQL: a kind too long for its column fails it there)."""

    async def crash(**kwargs):
        raise RuntimeError("outbox down")

    monkeypatch.setattr(notify, "enqueue", crash)
    made = service._notification
    monkeypatch.setattr(service, "_notification", lambda *args: {**made(*args), "kind": "k" * 41})
    with pytest.raises(Exception, match=r"outbox down|value too long"):
        await submit(deps, citizen)
    assert await Case.all().count() == 0 and await CaseEvent.all().count() == 0
    assert await Notification.all().count() == 0
    assert await Upload.filter(owner_id=citizen.id, case_id__isnull=False).count() == 0  # uploads still free


# ---------------------------------------------------------------- delivery through WeChat


async def walk(deps, citizen: Citizen, fake_clock, steps=STEPS) -> tuple[dict, list[Notification]]:
    """Submit and take the steps a second apart (the outbox sends in that order)."""
    body = await submit(deps, citizen)
    for action, args in steps:
        fake_clock.advance(seconds=1)
        await step(deps, citizen, body["case_no"], action, args)
    rows = await pushes(body["case_no"])
    assert len(rows) == len(steps) + 1
    return body, rows


async def test_each_step_is_one_template_message_with_the_case_number_and_progress_url(
    fake_clock, deps, citizen, wechat, fake_wechat, wechat_settings
):
    body, rows = await walk(deps, citizen, fake_clock)
    outcome = await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))
    assert (outcome.sent, outcome.retried, outcome.failed) == (len(rows), 0, 0)
    binding = await ChannelBinding.get(citizen_id=citizen.id)
    sent = fake_wechat.sent
    assert len(sent) == len(rows) == fake_wechat.count(TEMPLATE)
    assert [s["client_msg_id"] for s in sent] == [str(r.id) for r in rows]  # in step order, once each
    for message, row in zip(sent, rows, strict=True):
        assert message["kind"] == "template" and message["touser"] == binding.openid
        assert message["template_id"] == wechat_settings.wechat_templates["case_progress"]
        assert message["data"]["keyword1"]["value"] == body["case_no"]
        assert message["data"]["keyword2"]["value"] == "营业执照设立登记"
        assert message["data"]["keyword3"]["value"] == row.payload["status_name"]
        assert message["data"]["first"]["value"] == row.payload["text"]
        assert message["url"] == body["receipt"]["progress_url"]
    assert [s["data"]["keyword3"]["value"] for s in sent] == [
        STATUS_NAMES[s]
        for s in (
            CaseStatus.submitted,
            CaseStatus.correction_required,
            CaseStatus.resubmitted,
            CaseStatus.accepted,
            CaseStatus.under_review,
            CaseStatus.suspended,
            CaseStatus.under_review,
            CaseStatus.approved,
            CaseStatus.delivered,
            CaseStatus.completed,
        )
    ]
    for row in await pushes(body["case_no"]):
        assert row.status is NotificationStatus.sent and row.channel == "official_account" and row.attempts == 1
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 0
    assert fake_wechat.count(TEMPLATE) == len(rows)


async def test_wechat_down_keeps_pushes_pending_then_sends_each_once(
    fake_clock, deps, citizen, wechat, fake_wechat, wechat_settings
):
    body, rows = await walk(deps, citizen, fake_clock, steps=STEPS[:2])  # submit, 补正, resubmit: 3 pushes
    fake_wechat.fail(TEMPLATE, status=502, times=4)

    outcome = await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))
    assert (outcome.sent, outcome.retried, outcome.failed) == (0, 3, 0)
    for row in await pushes(body["case_no"]):
        assert row.status is NotificationStatus.pending and row.attempts == 1
        assert "WECHAT_UNAVAILABLE" in row.last_error and row.send_after == clock.now() + delivery.backoff(1)
    assert fake_wechat.sent == []
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).retried == 0  # backing off

    fake_clock.advance(seconds=31)  # WeChat still fails once more, then recovers
    outcome = await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))
    assert (outcome.sent, outcome.retried) == (2, 1)
    pending = await Notification.filter(subject_id=body["case_no"], status=NotificationStatus.pending)
    assert len(pending) == 1 and pending[0].attempts == 2 and "WECHAT_UNAVAILABLE" in pending[0].last_error

    fake_clock.advance(seconds=delivery.backoff(2).total_seconds() + 1)
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 1
    fake_clock.advance(hours=2)
    assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=wechat))).sent == 0

    assert fake_wechat.count(TEMPLATE) == 4 + 3  # four refused calls, then one call per push
    assert sorted(s["client_msg_id"] for s in fake_wechat.sent) == sorted(str(r.id) for r in rows)
    assert {s["data"]["keyword1"]["value"] for s in fake_wechat.sent} == {body["case_no"]}
    for row in await pushes(body["case_no"]):
        assert row.status is NotificationStatus.sent and row.last_error is None and row.sent_at is not None


async def test_worker_killed_after_claiming_delivers_after_restart_exactly_once(
    fake_clock, deps, citizen, fake_wechat, wechat_settings
):
    body, rows = await walk(deps, citizen, fake_clock, steps=STEPS[:3])  # 4 pushes committed with their steps
    claimed = await delivery.claim(batch=10)  # this worker dies here: claimed and committed, nothing sent
    assert sorted(r.id for r in claimed) == sorted(r.id for r in rows)
    del claimed

    store = make_store(wechat_settings)
    restarted = WeChatClient(wechat_settings, store)  # a fresh worker
    try:
        fresh = NotifyDeps(settings=wechat_settings, wechat=restarted)
        assert (await delivery.deliver(fresh)).sent == 0  # still leased
        assert fake_wechat.sent == []
        fake_clock.advance(seconds=delivery.LEASE_SECONDS + 1)
        assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=restarted))).sent == len(rows)
        assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=restarted))).sent == 0
        fake_clock.advance(seconds=delivery.LEASE_SECONDS + 1)
        assert (await delivery.deliver(NotifyDeps(settings=wechat_settings, wechat=restarted))).sent == 0
    finally:
        await restarted.aclose()
        await store.aclose()
    assert fake_wechat.count(TEMPLATE) == len(rows)
    assert [s["client_msg_id"] for s in fake_wechat.sent] == [str(r.id) for r in rows]
    assert all(s["data"]["keyword1"]["value"] == body["case_no"] for s in fake_wechat.sent)
    for row in await pushes(body["case_no"]):
        assert row.status is NotificationStatus.sent and row.attempts == 2

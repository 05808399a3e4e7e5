"""一件事一次办: a bundle application opens one case per member matter, stage by stage, and follows them.

The citizen files one application (a case of kind `bundle`, under the lead department) and uploads
each material once. The one window accepts it once; acceptance opens the first stage: one case of
kind `part` per member matter, routed to the member's department with the stage's promised time,
each moving through the single-case lifecycle. When every part of a stage is decided the next stage
opens the same day; when the last stage is decided (or a part is denied) the bundle is decided, and
the lead department delivers every result together. Everything here runs inside the transaction of
the move that caused it; the bundle row is locked first, so two departments deciding the last two
parts of a stage at once open the next stage exactly once.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from app import clock, workdays
from app.cases import due, lifecycle
from app.cases.errors import CaseChanged
from app.cases.lifecycle import STATUS_NAMES
from app.cases.models import Case, CaseEvent, CaseMaterial
from app.cases.types import BundleRef, BundleView, CapView, CaseStatus, PartItem, StageView
from app.matters import guides
from app.matters.models import MatterVersion

S = CaseStatus
DECIDED = frozenset({S.approved, S.denied, S.delivered, S.completed})
Record = Callable[..., Awaitable[Any]]
"""The service's `_record(deps, case, action, from_status, actor, text, note, data, now)`."""

SYSTEM = ("system", None)


async def bundle_guide(case: Case) -> dict[str, Any]:
    """The bundle guide version a bundle (or a part's bundle) was filed under."""
    version = await MatterVersion.filter(matter__code=case.matter_code, no=case.guide_version).first()
    return dict(version.content) if version else {"materials": [], "bundle": {"stages": []}}


def materials_for(bundle: dict[str, Any], member_code: str) -> list[dict[str, Any]]:
    """The bundle's materials that serve one member (what its part holds and may ask to correct)."""
    return [m for m in bundle["materials"] if member_code in m.get("members", ())]


async def part_guide(part: Case) -> dict[str, Any]:
    """A part's guide for checks: the member's own guide, with the bundle's materials that serve it."""
    parent = await Case.get(id=part.bundle_id)
    bundle = await bundle_guide(parent)
    version = await MatterVersion.filter(matter__code=part.matter_code, no=part.guide_version).first()
    content = dict(version.content) if version else {"special_procedures": []}
    content["materials"] = materials_for(bundle, part.matter_code)
    content["code"] = part.matter_code
    return content


def _local(value: dt.datetime | None) -> dt.date | None:
    return clock.local_date(value) if value is not None else None


# ---------------------------------------------------------------- moves


async def open_stage(
    deps: Any, parent: Case, no: int, *, bundle: dict[str, Any], record: Record, now: dt.datetime
) -> list[Case]:
    """Open stage `no`: one accepted part per member matter, its materials, its first event (no push)."""
    stage = bundle["bundle"]["stages"][no - 1]
    today = clock.today()
    cipher = deps.cipher
    name = cipher.decrypt(parent.principal_name_enc, aad=f"case:{parent.id}:name")
    id_number = cipher.decrypt(parent.principal_id_enc, aad=f"case:{parent.id}:id_number")
    phone_enc = parent.principal_phone_enc
    phone = cipher.decrypt(phone_enc, aad=f"case:{parent.id}:phone") if phone_enc else None
    held = await CaseMaterial.filter(case_id=parent.id).order_by("round", "id")
    taken = await Case.filter(bundle_id=parent.id).count()
    parts = []
    for offset, code in enumerate(stage["matters"], start=1):
        _, _, member = await guides.guide_document(deps.cache, code, base_url=deps.settings.base_url)
        part_id = uuid.uuid4()
        part = Case(
            id=part_id,
            case_no=f"{parent.case_no}-{taken + offset:02d}",
            matter_code=member["code"],
            matter_name=member["name"],
            guide_version=member["version"],
            department_code=member["department"]["code"],
            hall_code=member["hall"]["code"],
            section=member["section"],
            kind=lifecycle.PART,
            bundle_id=parent.id,
            stage=no,
            citizen_id=parent.citizen_id,
            agent=parent.agent,
            principal_kind=parent.principal_kind,
            principal_name_enc=cipher.encrypt(name, aad=f"case:{part_id}:name"),
            principal_id_enc=cipher.encrypt(id_number, aad=f"case:{part_id}:id_number"),
            principal_id_bidx=parent.principal_id_bidx,
            principal_phone_enc=cipher.encrypt(phone, aad=f"case:{part_id}:phone") if phone else None,
            form=parent.form,
            delivery={"method": parent.delivery.get("method", "window"), "with_bundle": True},
            status=S.accepted,
            promised_days=int(stage["promised_days"]),
            accepted_on=today,
            # A part is followed through its bundle: its own number and no code opens it anonymously.
            query_code_hash=secrets.token_hex(32),
            version=1,
            submitted_at=parent.submitted_at,
            updated_at=now,
        )
        due.schedule(deps.settings, part)
        await part.save(force_create=True)
        names = {m["name"] for m in materials_for(bundle, part.matter_code)}
        await CaseMaterial.bulk_create(
            [
                CaseMaterial(case_id=part.id, name=m.name, upload_id=m.upload_id, round=m.round, created_at=now)
                for m in held
                if m.name in names
            ]
        )
        days = f"{part.promised_days} 个工作日" if part.promised_days else "即办"
        text = f"「{bundle['name']}」第 {no} 阶段「{stage['name']}」：已受理，承诺时限 {days}，{part.due_on} 前办结"
        await record(deps, part, "accept", None, SYSTEM, text, "", {"stage": no}, now)
        parts.append(part)
    return parts


async def after_part(deps: Any, part: Case, *, record: Record, now: dt.datetime) -> None:
    """After a part moved: the bundle's due date, and the next stage or the bundle's decision when a stage is done."""
    parent = await Case.filter(id=part.bundle_id).select_for_update().first()
    if parent is None or parent.status not in {S.accepted, S.under_review}:
        return
    bundle = await bundle_guide(parent)
    stages = bundle["bundle"]["stages"]
    parts = await Case.filter(bundle_id=parent.id)
    current = max(p.stage or 1 for p in parts)
    changes: dict[str, Any] = {}
    paused = _paused_days(parts)
    if paused != parent.suspended_days:
        parent.suspended_days = paused
        due.schedule(deps.settings, parent)
        changes.update(suspended_days=paused, due_on=parent.due_on, warn_on=parent.warn_on)
    in_stage = [p for p in parts if p.stage == current]
    action = None
    if all(p.status in DECIDED for p in in_stage):
        denied = [p for p in in_stage if p.status is S.denied]
        if denied:
            action, target = "conclude", S.denied
            names = "」「".join(p.matter_name for p in denied)
            text = f"「{names}」未获许可，「一件事」办理终止，结果将统一送达"
        elif current < len(stages):
            action, target = "open_stage", S.under_review
            nxt = stages[current]
            text = f"第 {current} 阶段已办结，第 {current + 1} 阶段「{nxt['name']}」开始办理"
        else:
            action, target = "conclude", S.approved
            text = "各部门审批均已通过，结果将统一送达"
    if not changes and action is None:
        return
    before = parent.status
    if action is not None:
        changes.update(status=target)
        parent.status = target
        if action == "conclude":
            changes.update(decided_at=now)
            parent.decided_at = now
    changes.update(version=parent.version + 1, updated_at=now)
    won = await Case.filter(id=parent.id, version=parent.version).update(**changes)
    if not won:
        raise CaseChanged(details={"case_no": parent.case_no})
    parent.version += 1
    parent.updated_at = now
    if action == "open_stage":
        opened = await open_stage(deps, parent, current + 1, bundle=bundle, record=record, now=now)
        due_on = max(p.due_on for p in opened if p.due_on)
        text += f"（{'、'.join(p.matter_name for p in opened)}并联办理，{due_on} 前完成本阶段）"
    if action is not None:
        await record(deps, parent, action, before, SYSTEM, text, "", {"stage": current}, now)


def _paused_days(parts: list[Case]) -> int:
    """The bundle's clock stops for a stage as long as its longest pause (its parts run side by side)."""
    by_stage: dict[int, int] = {}
    for p in parts:
        by_stage[p.stage or 1] = max(by_stage.get(p.stage or 1, 0), p.suspended_days)
    return sum(by_stage.values())


async def with_bundle(deps: Any, parent: Case, action: str, *, record: Record, now: dt.datetime) -> None:
    """Deliver or complete every part together with its bundle (one parcel, one visit; no push per part)."""
    step = {
        "deliver": ("deliver_with_bundle", {S.approved, S.denied}, S.delivered),
        "complete": ("complete_with_bundle", {S.delivered}, S.completed),
    }.get(action)
    if step is None:
        return
    part_action, sources, target = step
    for part in await Case.filter(bundle_id=parent.id, status__in=list(sources)).order_by("case_no"):
        before = part.status
        changes: dict[str, Any] = {"status": target, "version": part.version + 1, "updated_at": now}
        if target is S.completed:
            changes["completed_at"] = now
        if not await Case.filter(id=part.id, version=part.version).update(**changes):
            raise CaseChanged(details={"case_no": part.case_no})
        for key, value in changes.items():
            setattr(part, key, value)
        text = "结果随「一件事」统一送达" if target is S.delivered else "随「一件事」办结"
        await record(deps, part, part_action, before, SYSTEM, text, "", {"bundle_no": parent.case_no}, now)


# ---------------------------------------------------------------- reading


def _part_item(p: Case, today: dt.date) -> PartItem:
    return PartItem(
        case_no=p.case_no,
        matter_code=p.matter_code,
        matter_name=p.matter_name,
        department=p.department_code,
        status=p.status,
        status_name=STATUS_NAMES[p.status],
        accepted_on=p.accepted_on,
        due_on=p.due_on,
        decided_on=_local(p.decided_at),
        sla=due.sla(p, today),
        correction=p.correction,
    )


def _holding(p: Case) -> str:
    what = {
        S.correction_required: "等待申请人补正材料",
        S.suspended: "特殊环节（暂停计时）",
    }.get(p.status, STATUS_NAMES[p.status])
    return f"{p.matter_name}（{p.case_no}）：{what}"


async def view(parent: Case, today: dt.date | None = None) -> BundleView:
    """A bundle's stages with their parts, what holds it up now and when the whole is expected."""
    today = today or clock.today()
    bundle = await bundle_guide(parent)
    parts = await Case.filter(bundle_id=parent.id).order_by("stage", "case_no")
    stopped = parent.status in {S.rejected, S.withdrawn} or parent.decided_at is not None
    stages: list[StageView] = []
    current = max((p.stage or 1 for p in parts), default=None)
    for no, stage in enumerate(bundle["bundle"]["stages"], start=1):
        mine = [p for p in parts if p.stage == no]
        if not mine:
            state = "stopped" if stopped else "waiting"
            stages.append(
                StageView(no, stage["name"], stage["promised_days"], state, None, None, None, None, 0, False, ())
            )
            continue
        started = mine[0].accepted_on
        done = all(p.status in DECIDED for p in mine)
        decided = max(d for p in mine if (d := _local(p.decided_at))) if done else None
        paused = max(p.suspended_days for p in mine)
        due_on = max((p.due_on for p in mine if p.due_on), default=None)
        end = decided or today
        used = max(0, workdays.workdays_between(started, end) - paused) if started else None
        running = not done and not stopped
        overdue = bool(running and due_on and today > due_on) or bool(done and due_on and decided and decided > due_on)
        state = "done" if done else ("stopped" if stopped else "running")
        stages.append(
            StageView(
                no,
                stage["name"],
                stage["promised_days"],
                state,
                started,
                due_on,
                decided,
                used,
                paused,
                overdue,
                tuple(_part_item(p, today) for p in mine),
            )
        )
    holding: tuple[str, ...] = ()
    expected = None
    if not stopped and current is not None:
        running_parts = [p for p in parts if p.stage == current and p.status not in DECIDED]
        holding = tuple(_holding(p) for p in running_parts)
        latest = max((p.due_on for p in running_parts if p.due_on), default=today)
        rest = sum(s["promised_days"] for s in bundle["bundle"]["stages"][current:])
        expected = workdays.add_workdays(max(latest, today), rest)
    elif parent.status in {S.submitted, S.resubmitted}:
        holding = ("等待窗口受理",)
    elif parent.status is S.correction_required:
        holding = ("等待申请人补正材料",)
    elif parent.status in {S.approved, S.denied}:
        holding = ("等待统一送达结果",)
    cap = None
    if bundle["bundle"].get("cap"):
        c = bundle["bundle"]["cap"]
        capped = [s for s in stages if s.no in set(c["stages"])]
        used = sum(s.used_days or 0 for s in capped)
        finished = all(s.state == "done" for s in capped)
        cap = CapView(c["name"], tuple(c["stages"]), c["days"], used, finished, used <= c["days"])
    return BundleView(
        bundle_no=parent.case_no,
        code=parent.matter_code,
        name=parent.matter_name,
        lead_department=parent.department_code,
        stages=tuple(stages),
        current_stage=current,
        expected_on=expected,
        holding=holding,
        cap=cap,
    )


async def ref(part: Case) -> BundleRef | None:
    """The bundle a part belongs to, for the part's own page."""
    parent = await Case.get_or_none(id=part.bundle_id)
    if parent is None:
        return None
    stages = (await bundle_guide(parent))["bundle"]["stages"]
    stage = part.stage or 1
    name = stages[stage - 1]["name"] if stage <= len(stages) else ""
    return BundleRef(parent.case_no, parent.matter_code, parent.matter_name, parent.department_code, stage, name)


async def timeline_events(parent: Case) -> tuple[list[CaseEvent], dict[uuid.UUID, Case]]:
    """The bundle's own events and its parts', in the order they happened, with the parts by id."""
    parts = {p.id: p for p in await Case.filter(bundle_id=parent.id)}
    events = await CaseEvent.filter(case_id__in=[parent.id, *parts]).order_by("id")
    return list(events), parts

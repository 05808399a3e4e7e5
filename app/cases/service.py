"""Cases: submission, the lifecycle's moves, due dates, who may see what, progress and the feed.

Every change is one transaction: the case row (a conditional update on its status and version),
its timeline event, the citizen's notification in the outbox and, for a submission, the
idempotent answer. Due dates count working days on the Chinese calendar from acceptance; a
suspension (特殊环节) stops the clock and moves the due date by the working days it lasted.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from app import clock, idempotency, sql, workdays
from app.audit import service as audit
from app.cases import bundles, codes, due, lifecycle, present, read
from app.cases import sql as case_sql
from app.cases.deps import CaseDeps
from app.cases.errors import (
    ActionInvalid,
    CaseChanged,
    CaseNotFound,
    CaseOutOfScope,
    CursorInvalid,
    DeliveryNotOffered,
    FileTypeMismatch,
    IllegalTransition,
    MaterialsMissing,
    MaterialUnknown,
    OnlineApplyNotOffered,
    ProgressNotFound,
    UploadInUse,
    UploadNotFound,
)
from app.cases.lifecycle import STATUS_NAMES
from app.cases.models import Case, CaseEvent, CaseMaterial, Upload
from app.cases.types import (
    CasePage,
    CaseStatus,
    CaseView,
    Feed,
    FeedEvent,
    MaterialFile,
    MaterialSpec,
    PartyView,
    ProgressView,
    Receipt,
    StaffCasePage,
    StaffCaseView,
    Submission,
)
from app.cases.uploads import check_type, path_of
from app.errors import DomainError, InvalidInput, MatterNotFound
from app.idempotency import Claim, KeyTaken, Pending, Precheck
from app.jsontext import dumps
from app.matters import guides
from app.matters.models import MatterVersion
from app.notify import service as notify
from app.ratelimit import Limit, hit, refuse, window
from app.settings import Settings
from auth.errors import AssuranceTooLow
from auth.models import Citizen
from auth.tokens import Principal

QUERY_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud and typed from a receipt
QUERY_CODE_LENGTH = 8  # 40 bits, behind a rate limit


@dataclass(frozen=True)
class Party:
    """Who a case is for (the principal): a person or a company, as submitted."""

    kind: str  # person | company
    name: str
    id_number: str
    phone: str | None


# ---------------------------------------------------------------- numbers and codes


async def _next_case_no(prefix: str, day: dt.date) -> str:
    """`ZJJ20261126000042`: the prefix, the date and that day's sequence (one upsert, inside the transaction)."""
    return _case_no(prefix, day, await case_sql.next_case_sequence(prefix, day))


def _case_no(prefix: str, day: dt.date, seq: int) -> str:
    """A case number from its prefix, day and sequence."""
    return f"{prefix}{day:%Y%m%d}{seq:06d}"


def new_query_code() -> str:
    """A fresh query code (shown once, on the receipt)."""
    return "".join(secrets.choice(QUERY_ALPHABET) for _ in range(QUERY_CODE_LENGTH))


def query_code_hash(settings: Settings, case_no: str, code: str) -> str:
    """Keyed hash of a case's query code: what the case row keeps."""
    normalized = code.strip().upper().replace("-", "").replace(" ", "")
    message = f"query-code\x00{case_no}\x00{normalized}".encode()
    return hmac.new(settings.pii_index_key, message, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- submission


def _guide_materials(guide: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in guide["materials"]}


async def _principal_party(
    deps: CaseDeps, citizen: Citizen, applicant: dict[str, Any], today: dt.date
) -> tuple[bool, Party]:
    """(agent?, principal) from the submission's applicant block and the caller's account."""
    from auth.idcard import InvalidIdNumber, validate_id_number

    if applicant.get("kind") == "agent":
        p = applicant["principal"]
        if p["kind"] == "person":
            try:
                number = validate_id_number(p["id_number"], today=today).number
            except InvalidIdNumber as exc:
                raise InvalidInput(
                    "被代办人身份证号码不正确", code="ID_NUMBER_INVALID", details={"reason": exc.reason}
                ) from None
        else:
            number = p["id_number"].strip().upper()
        return True, Party(p["kind"], p["name"], number, p.get("phone"))
    # Self: the account's verified identity when it has one, else what the form says (LoA 2).
    name = id_number = None
    if citizen.name_enc and citizen.id_number_enc:
        name = deps.cipher.decrypt(citizen.name_enc, aad=f"citizen:{citizen.id}:name")
        id_number = deps.cipher.decrypt(citizen.id_number_enc, aad=f"citizen:{citizen.id}:id_number")
    else:
        if not applicant.get("name") or not applicant.get("id_number"):
            raise InvalidInput(
                "请填写申请人姓名和身份证号码（或先完成实名认证）",
                code="APPLICANT_INCOMPLETE",
                details={"missing": [f for f in ("name", "id_number") if not applicant.get(f)]},
            )
        name = applicant["name"]
        try:
            id_number = validate_id_number(applicant["id_number"], today=today).number
        except InvalidIdNumber as exc:
            raise InvalidInput("身份证号码不正确", code="ID_NUMBER_INVALID", details={"reason": exc.reason}) from None
    phone = applicant.get("phone")
    if phone is None and citizen.phone_enc:
        phone = deps.cipher.decrypt(citizen.phone_enc, aad=f"citizen:{citizen.id}:phone")
    return False, Party("person", name, id_number, phone)


def _check_delivery(guide: dict[str, Any], delivery: dict[str, Any]) -> None:
    if delivery["method"] == "ems" and not guide.get("postal_delivery"):
        raise DeliveryNotOffered(details={"matter_code": guide["code"]})


async def _take_uploads(
    deps: CaseDeps, *, owner_id: str, guide: dict[str, Any], given: list[dict[str, Any]], only: set[str] | None
) -> list[tuple[str, Upload]]:
    """Check the materials handed in against the guide (and a 补正's list): the uploads to bind, in order."""
    known = _guide_materials(guide)
    taken: list[tuple[str, Upload]] = []
    seen: set[str] = set()
    for item in given:
        name = item["name"]
        material = known.get(name)
        if material is None or (only is not None and name not in only):
            raise MaterialUnknown(
                details={"name": name, "materials": sorted(only) if only is not None else list(known)}
            )
        if name in seen:
            raise InvalidInput("同一材料请在一项中提交", code="MATERIAL_REPEATED", details={"name": name})
        seen.add(name)
        if len(set(item["upload_ids"])) != len(item["upload_ids"]):
            raise InvalidInput("同一文件请勿重复提交", code="UPLOAD_REPEATED", details={"name": name})
        for upload_id in item["upload_ids"]:
            try:
                row = await Upload.get_or_none(id=uuid.UUID(upload_id), owner_id=uuid.UUID(owner_id))
                if row is not None and row.expires_at is not None and row.expires_at <= clock.now():
                    row = None  # expired: the sweep may remove it any moment
            except ValueError:
                row = None
            if row is None:
                raise UploadNotFound(details={"upload_id": upload_id[:64], "material": name})
            if row.case_id is not None:
                raise UploadInUse(details={"upload_id": upload_id, "material": name})
            try:
                check_type({row.file_type}, material["file_types"], filename=row.filename)
            except FileTypeMismatch as exc:
                exc.details["material"] = name
                raise
            taken.append((name, row))
    needed = only if only is not None else {n for n, m in known.items() if m["required"]}
    missing = [n for n in known if n in needed and n not in seen]
    if missing:
        # The names as a list: a name may itself hold 、 (or any separator), so the text quotes each one.
        raise MaterialsMissing(f"缺少 {len(missing)} 项必需的申请材料：{quoted(missing)}", details={"missing": missing})
    return taken


def quoted(names: list[str]) -> str:
    """Material names for a sentence: each in 「」, so a name's own 、 or （） cannot blur where it ends."""
    return "".join(f"「{n}」" for n in names)


async def _bind(case: Case, taken: list[tuple[str, Upload]], round_no: int, now: dt.datetime) -> None:
    """Give the uploads to the case (each at most once: a conditional update) and list them as its materials."""
    ids = [row.id for _, row in taken]
    if ids and await Upload.filter(id__in=ids, case_id__isnull=True).update(case_id=case.id, expires_at=None) != len(
        set(ids)
    ):
        raise UploadInUse()
    await CaseMaterial.bulk_create(
        [
            CaseMaterial(case_id=case.id, name=name, upload_id=row.id, round=round_no, created_at=now)
            for name, row in taken
        ]
    )


async def submit_precheck(*, owner: str, key: str, citizen_id: str) -> Precheck | None:
    """On PostgreSQL, whether a submission's Idempotency-Key has a record and the citizen, in one read.

    Refuses nothing. A new key (idempotency.Pending) is then recorded by `submit` itself, with its answer, in
    the statement that files the case (sql.SUBMIT): no claim of its own to commit first, none left behind by an
    instance that dies mid-request. Elsewhere (None) the key is claimed as for any idempotent write.
    """
    if not sql.is_postgres():
        return None
    known, citizen = await case_sql.seen(citizen_id=uuid.UUID(citizen_id), owner=owner, key=key)
    return Precheck(known=known, seen=citizen)


async def submit(
    deps: CaseDeps,
    *,
    principal: Principal,
    matter_code: str,
    applicant: dict[str, Any],
    form: dict[str, Any],
    materials: list[dict[str, Any]],
    delivery: dict[str, Any],
    claim: Claim | Pending | None = None,
) -> Submission:
    """File an application: the case, its materials, first event, notification and answer commit together."""
    try:
        return await _submit(
            deps, principal=principal, matter_code=matter_code, applicant=applicant, form=form, materials=materials,
            delivery=delivery, claim=claim,
        )  # fmt: skip
    except DomainError:
        # A new key's request refused (e.g. its uploads in use): a retry of it may have filed the case meanwhile,
        # and then the answer is that retry's (its replay, or 409 in flight), not this refusal.
        if isinstance(claim, Pending) and await idempotency.known(owner=claim.owner, key=claim.key):
            raise KeyTaken() from None
        raise


async def _submit(
    deps: CaseDeps,
    *,
    principal: Principal,
    matter_code: str,
    applicant: dict[str, Any],
    form: dict[str, Any],
    materials: list[dict[str, Any]],
    delivery: dict[str, Any],
    claim: Claim | Pending | None,
) -> Submission:
    """`submit`'s checks, the number (with a new key's claim) and the filing."""
    _, _, guide = await guides.guide_document(deps.cache, matter_code, base_url=deps.settings.base_url)
    if guide["status"] != "active":
        raise MatterNotFound(details={"matter_code": matter_code[:64]})
    if not guide.get("online_apply"):
        raise OnlineApplyNotOffered(details={"matter_code": guide["code"]})
    needed = max(int(guide.get("apply_loa", 2)), 3 if applicant.get("kind") == "agent" else 2)
    if principal.loa < needed:
        raise AssuranceTooLow(
            "该事项网上申报需要完成实名认证" if needed == 3 else None,
            details={"required_loa": needed, "current_loa": principal.loa},
        )
    _check_delivery(guide, delivery)
    seen = claim.seen if isinstance(claim, Pending) else None
    citizen = seen if isinstance(seen, Citizen) else await Citizen.get(id=uuid.UUID(principal.id))
    now, today = clock.now(), clock.today()
    agent, party = await _principal_party(deps, citizen, applicant, today)
    taken = await _take_uploads(deps, owner_id=principal.id, guide=guide, given=materials, only=None)
    code = new_query_code()
    case_id = uuid.uuid4()
    # The number first, in its own statement: inside the transaction the day's counter row would stay locked
    # until commit and every submission of the city would queue behind it. A failed submission leaves a gap (so
    # does a retry racing its own first attempt: both take a number, one files).
    case_no = await _next_case_no(deps.settings.case_no_prefix, today)
    try:
        return await _file(
            deps, guide, principal, citizen, agent, party, taken, form, delivery, code, case_id, case_no, claim, now
        )
    except IntegrityError as exc:
        if isinstance(claim, Pending) and getattr(exc.__cause__, "table_name", None) == "idempotency_record":
            raise KeyTaken() from None  # a retry of this request recorded the key first: its answer is this one's
        raise


async def _file(
    deps: CaseDeps,
    guide: dict[str, Any],
    principal: Principal,
    citizen: Citizen,
    agent: bool,
    party: Party,
    taken: list[tuple[str, Upload]],
    form: dict[str, Any],
    delivery: dict[str, Any],
    code: str,
    case_id: uuid.UUID,
    case_no: str,
    claim: Claim | Pending | None,
    now: dt.datetime,
) -> Submission:
    """The case written under its number: in one statement on PostgreSQL, else through the ORM."""
    case = Case(
        id=case_id,
        case_no=case_no,
        matter_code=guide["code"],
        matter_name=guide["name"],
        guide_version=guide["version"],
        department_code=guide["department"]["code"],
        hall_code=guide["hall"]["code"],
        section=guide["section"],
        kind=lifecycle.BUNDLE if guide.get("bundle") else lifecycle.SINGLE,
        citizen_id=citizen.id,
        agent=agent,
        principal_kind=party.kind,
        principal_name_enc=deps.cipher.encrypt(party.name, aad=f"case:{case_id}:name"),
        principal_id_enc=deps.cipher.encrypt(party.id_number, aad=f"case:{case_id}:id_number"),
        principal_id_bidx=deps.cipher.blind_index(party.id_number, kind="id_number"),
        principal_phone_enc=deps.cipher.encrypt(party.phone, aad=f"case:{case_id}:phone") if party.phone else None,
        form=form,
        delivery=_seal_delivery(deps, case_id, delivery),
        status=CaseStatus.submitted,
        promised_days=int(guide["promised_limit_days"]),
        query_code_hash=query_code_hash(deps.settings, case_no, code),
        version=1,
        submitted_at=now,
        updated_at=now,
    )
    if sql.is_postgres() and case.kind == lifecycle.SINGLE:
        return await _submit_in_one_statement(deps, case, party, delivery, taken, code, principal, claim, now)
    async with in_transaction():
        await case.save(force_create=True)
        await _bind(case, taken, 1, now)
        await _record(deps, case, "submit", None, ("citizen", principal.id), _SUBMIT_TEXT, "", {}, now)
        # The query code is shown once: the case keeps only its keyed hash.
        result = Submission(await read.case_view(deps.cipher, case), code, await receipt(deps, case))
        if claim is not None:
            # The retry of a lost answer needs the code too: the stored answer holds it encrypted (see unseal_answer).
            await claim.complete(201, _sealed_answer(deps, result))
    return result


_SUBMIT_TEXT = "申请已提交，等待窗口受理"


def _sealed_answer(deps: CaseDeps, result: Submission) -> dict[str, Any]:
    """The answer as stored for a retry: the query code encrypted in it (see unseal_answer)."""
    body = present.submission_json(result)
    return dict(body, query_code=None, query_code_sealed=deps.cipher.encrypt(result.query_code, aad=_SEAL_AAD))


async def _submit_in_one_statement(
    deps: CaseDeps,
    case: Case,
    party: Party,
    delivery: dict[str, Any],
    taken: list[tuple[str, Upload]],
    code: str,
    principal: Principal,
    claim: Claim | Pending | None,
    now: dt.datetime,
) -> Submission:
    """PostgreSQL: the answer built from what is written, then case, event, notification and answer in one statement.

    Nothing is read back: the view is the one case_view would read (read.submitted_view). With materials,
    their uploads are bound in the same transaction (a conditional update: each upload at most once).
    """
    rcpt = await receipt(deps, case)
    at = clock.now()  # the event's time, as late as possible: the feed's lag is measured from here to the commit
    clear = PartyView(party.kind, party.name, party.id_number, party.phone)
    view = read.submitted_view(case, clear, delivery, taken, ("submit", case.status.value, _SUBMIT_TEXT, at))
    result = Submission(view, code, rcpt)
    event = {
        "event_action": "submit",
        "event_actor_kind": "citizen",
        "event_actor_id": principal.id,
        "event_text": _SUBMIT_TEXT,
        "event_at": at,
    }
    notification = _notification(case, _SUBMIT_TEXT, rcpt, now)
    body = _sealed_answer(deps, result) if claim is not None else None
    if taken:
        async with in_transaction():
            await case_sql.submit(case, event, notification, body, claim)
            await _bind(case, taken, 1, now)
    else:
        await case_sql.submit(case, event, notification, body, claim)  # one statement, its own transaction
    return result


_SEAL_AAD = "idempotent-answer:query_code"


def unseal_answer(deps: CaseDeps, text: str) -> str:
    """A stored submission answer as first sent: the query code decrypted in its place (same bytes)."""
    data = json.loads(text)
    sealed = data.pop("query_code_sealed", None)
    if sealed is None:
        return text
    data["query_code"] = deps.cipher.decrypt(sealed, aad=_SEAL_AAD)
    return dumps(data).decode()


def _seal_delivery(deps: CaseDeps, case_id: uuid.UUID, delivery: dict[str, Any]) -> dict[str, Any]:
    """The delivery choice with the postal address encrypted (it names and reaches a person)."""
    if delivery["method"] != "ems":
        return {"method": "window"}
    return {
        "method": "ems",
        "address_enc": deps.cipher.encrypt(dumps(delivery["address"]).decode(), aad=f"case:{case_id}:address"),
    }


async def receipt(deps: CaseDeps, case: Case) -> Receipt:
    """The receipt's signed case code and the progress page it opens."""
    code = await codes.issue(deps.tokens.sign, case.id)
    return Receipt(code, f"{deps.settings.base_url}/p/{code}")


# ---------------------------------------------------------------- events and notifications


async def _record(
    deps: CaseDeps,
    case: Case,
    action: str,
    from_status: CaseStatus | None,
    actor: tuple[str, str | None],
    public_text: str,
    note: str,
    data: dict[str, Any],
    now: dt.datetime,
) -> CaseEvent:
    """The timeline event of a move and the applicant's notification (inside the move's transaction).

    A bundle's part tells the citizen only what they must act on (a correction): its other steps reach
    them through the bundle's own notifications, one per step of the whole, not one per department.
    """
    event = await CaseEvent.create(
        case_id=case.id,
        action=action,
        from_status=from_status.value if from_status else None,
        to_status=case.status.value,
        actor_kind=actor[0],
        actor_id=actor[1],
        public_text=public_text,
        internal_note=note,
        data=data,
        created_at=clock.now(),  # as late as possible: the feed's lag is measured from here to the commit
    )
    if case.kind == lifecycle.PART and action != "request_correction":
        return event
    await notify.enqueue(**_notification(case, public_text, await receipt(deps, case), now), fresh=True)
    return event


def _notification(case: Case, public_text: str, rcpt: Receipt, now: dt.datetime) -> dict[str, Any]:
    """The applicant's notification of a case's step: notify.enqueue's arguments."""
    return {
        "kind": "case_progress",
        "citizen_id": case.citizen_id,
        "subject_type": "case",
        "subject_id": case.case_no,
        "payload": {
            "case_no": case.case_no,
            "matter_name": case.matter_name,
            "status": case.status.value,
            "status_name": STATUS_NAMES[case.status],
            "text": public_text,
            "at": clock.iso(now),
            "url": rcpt.progress_url,
        },
        "dedupe_key": f"case:{case.id}:v{case.version}",
        "send_after": now,
    }


# ---------------------------------------------------------------- moves


def _validate_action(
    deps: CaseDeps, case: Case, guide: dict[str, Any] | None, action: str, args: dict[str, Any]
) -> dict[str, Any]:
    """The action's own data, or 422 naming what it needs."""
    data: dict[str, Any] = {}
    if (
        action in {"reject", "deny", "require_correction", "request_correction", "suspend"}
        and not (args.get("reason") or "").strip()
    ):
        raise ActionInvalid("请填写原因", details={"action": action, "missing": ["reason"]})
    if args.get("reason"):
        data["reason"] = args["reason"].strip()
    if action in {"require_correction", "request_correction"}:
        names = list(dict.fromkeys(args.get("materials") or []))
        known = _guide_materials(guide or {"materials": []})
        unknown = [n for n in names if n not in known]
        if not names or unknown:
            raise ActionInvalid(
                "请列出需补正的材料（须为办事指南中的材料）",
                details={"action": action, "unknown": unknown, "materials": list(known)},
            )
        data["materials"] = names
    if action == "suspend":
        procedures = [p["name"] for p in (guide or {}).get("special_procedures", [])]
        procedure = (args.get("procedure") or "").strip()
        if procedures and procedure not in procedures:
            raise ActionInvalid("请选择办事指南列出的特殊环节", details={"action": action, "procedures": procedures})
        data["procedure"] = procedure or "特殊环节"
    if action == "deliver":
        if case.delivery.get("method") == "ems":
            tracking = (args.get("tracking_no") or "").strip()
            if not tracking:
                raise ActionInvalid("邮寄送达请填写 EMS 运单号", details={"action": action, "missing": ["tracking_no"]})
            data["tracking_no"] = tracking
        data["method"] = case.delivery.get("method", "window")
    return data


_DEFAULT_TEXT = {
    "accept": "您的申请已受理，承诺办结时限 {days}，预计 {due} 前办结",
    "reject": "您的申请不予受理：{reason}",
    "require_correction": "请补正以下材料：{materials}。原因：{reason}",
    "request_correction": (
        "「{matter}」需补正以下材料：{materials}。原因：{reason}（补正期间暂停计时，其他部门照常办理）"
    ),
    "resubmit": "已补正材料，等待窗口受理",
    "withdraw": "您已撤回申请",
    "start_review": "您的申请正在审查",
    "suspend": "办件进入特殊环节（{procedure}），期间暂停计时：{reason}",
    "resume": "特殊环节结束，恢复办理，预计 {due} 前办结",
    "approve": "审批通过，等待送达",
    "deny": "审批不予许可：{reason}",
    "deliver": "结果已送达（{how}）",
    "complete": "办件已办结，感谢您的耐心。欢迎对本次服务进行评价",
}


def _public_text(action: str, case: Case, data: dict[str, Any], given: str | None) -> str:
    if given and given.strip():
        return given.strip()[:500]
    how = "窗口领取" if data.get("method") != "ems" else f"EMS 邮寄，运单号 {data.get('tracking_no')}"
    return _DEFAULT_TEXT[action].format(
        days=f"{case.promised_days} 个工作日" if case.promised_days else "即办",
        due=case.due_on.isoformat() if case.due_on else "",
        reason=data.get("reason", ""),
        materials=quoted(data.get("materials", [])),
        procedure=data.get("procedure", ""),
        how=how,
        matter=case.matter_name,
    )[:500]


async def _guide_of(case: Case) -> dict[str, Any]:
    """The guide version the case was filed under (what its materials and procedures are checked against)."""
    if case.kind == lifecycle.PART:
        return await bundles.part_guide(case)
    version = await MatterVersion.filter(matter__code=case.matter_code, no=case.guide_version).first()
    content = dict(version.content) if version else {"materials": [], "special_procedures": []}
    content["code"] = case.matter_code
    return content


async def _move(
    deps: CaseDeps,
    case: Case,
    action: str,
    *,
    role: str,
    actor: tuple[str, str | None],
    args: dict[str, Any],
    taken: list[tuple[str, Upload]] | None = None,
) -> Case:
    """Apply one legal action to a case (409 ILLEGAL_TRANSITION naming its status otherwise)."""
    move = lifecycle.MOVES.get(action)
    if move is None or not lifecycle.allowed(action, case.status, role, case.kind):
        raise IllegalTransition(
            f"办件当前状态为「{STATUS_NAMES[case.status]}」，不能执行此操作",
            details={
                "status": case.status.value,
                "action": action,
                "allowed": lifecycle.actions_for(case.status, role, case.kind),
            },
        )
    guide = await _guide_of(case) if action in {"require_correction", "request_correction", "suspend"} else None
    data = _validate_action(deps, case, guide, action, args)
    now, today = clock.now(), clock.today()
    before = case.status
    changes: dict[str, Any] = {
        "status": move.target or case.resume_status,
        "updated_at": now,
        "version": case.version + 1,
    }
    if action == "accept":
        changes.update(accepted_on=today)
    elif action == "suspend":
        changes.update(resume_status=case.status, suspended_on=today)
    elif action == "resume":
        stopped = workdays.workdays_between(case.suspended_on, today) if case.suspended_on else 0
        changes.update(resume_status=None, suspended_on=None, suspended_days=case.suspended_days + stopped)
        data["stopped_days"] = stopped
    elif action in {"approve", "deny", "reject"}:
        changes.update(decided_at=now)
    elif action == "require_correction":
        changes.update(correction={"materials": data["materials"], "reason": data.get("reason", "")})
    elif action == "request_correction":
        # Asked after acceptance (a bundle's part): like a suspension, the clock stops until the answer.
        changes.update(
            correction={"materials": data["materials"], "reason": data.get("reason", "")},
            resume_status=case.status,
            suspended_on=today,
        )
    elif action == "resubmit" and case.resume_status is not None:
        stopped = workdays.workdays_between(case.suspended_on, today) if case.suspended_on else 0
        changes.update(
            status=case.resume_status,
            correction=None,
            resume_status=None,
            suspended_on=None,
            suspended_days=case.suspended_days + stopped,
        )
        data["stopped_days"] = stopped
    elif action == "resubmit":
        changes.update(correction=None)
    elif action == "deliver":
        changes.update(tracking_no=data.get("tracking_no"))
    elif action == "complete":
        changes.update(completed_at=now)
    for key, value in changes.items():
        setattr(case, key, value)
    if case.accepted_on is not None and (action in {"accept", "resume"} or "stopped_days" in data):
        due.schedule(deps.settings, case)
        changes.update(due_on=case.due_on, warn_on=case.warn_on)
    text = _public_text(action, case, data, args.get("public_text"))
    async with in_transaction():
        won = await Case.filter(id=case.id, status=before, version=case.version - 1).update(**changes)
        if not won:
            raise CaseChanged(details={"case_no": case.case_no})
        if taken is not None:
            last = await CaseMaterial.filter(case_id=case.id).order_by("-round").first()
            await _bind(case, taken, (last.round if last else 0) + 1, now)
        await _record(deps, case, action, before, actor, text, (args.get("note") or "").strip()[:1000], data, now)
        if case.kind == lifecycle.PART:
            await bundles.after_part(deps, case, record=_record, now=now)
        elif case.kind == lifecycle.BUNDLE and action == "accept":
            await bundles.open_stage(deps, case, 1, bundle=await bundles.bundle_guide(case), record=_record, now=now)
        elif case.kind == lifecycle.BUNDLE:
            await bundles.with_bundle(deps, case, action, record=_record, now=now)
        if actor[0] == "staff":
            await audit.record(
                action=f"case.{action}",
                object_type="case",
                object_id=case.case_no,
                summary=f"办件 {case.case_no}：{STATUS_NAMES[before]} → {STATUS_NAMES[case.status]}",
                changes={"status": [before.value, case.status.value], **data},
            )
    return case


async def _case_by_no(case_no: str) -> Case:
    case = await Case.get_or_none(case_no=case_no.strip().upper()[:32])
    if case is None:
        raise CaseNotFound(details={"case_no": case_no[:32]})
    return case


Reader = Principal | uuid.UUID
"""Who reads a case: a signed-in citizen (API, H5), or the account a WeChat subscriber's openid is bound to."""


async def _reader(who: Reader) -> tuple[uuid.UUID, int]:
    """(account id, assurance level): a token's level, or the account's own for a bound subscriber."""
    if isinstance(who, Principal):
        return uuid.UUID(who.id), who.loa
    loa = await Citizen.filter(id=who, disabled=False).first().values_list("loa", flat=True)
    return who, int(loa or 0)


async def _may_read(who: Reader, case: Case) -> bool:
    """The applicant's account, or the principal (被代办人) once signed in with the same verified ID number."""
    citizen_id, loa = await _reader(who)
    if case.citizen_id == citizen_id:
        return True
    if loa < 3:
        return False
    bidx = await Citizen.filter(id=citizen_id).first().values_list("id_number_bidx", flat=True)
    return bool(bidx) and hmac.compare_digest(bidx, case.principal_id_bidx)


async def citizen_case(deps: CaseDeps, *, principal: Reader, case_no: str) -> Case:
    """A case the citizen may see (the same 404 as a case that does not exist)."""
    case = await _case_by_no(case_no)
    if not await _may_read(principal, case):
        raise CaseNotFound(details={"case_no": case_no[:32]})
    return case


async def withdraw(deps: CaseDeps, *, principal: Principal, case_no: str, reason: str | None) -> CaseView:
    """The applicant withdraws before acceptance."""
    case = await citizen_case(deps, principal=principal, case_no=case_no)
    if str(case.citizen_id) != principal.id:
        raise CaseNotFound(details={"case_no": case_no[:32]})  # the principal reads, the applicant acts
    case = await _move(deps, case, "withdraw", role="citizen", actor=("citizen", principal.id), args={"reason": reason})
    return await read.case_view(deps.cipher, case, actions=_citizen_actions(case, principal))


async def resubmit(deps: CaseDeps, *, principal: Principal, case_no: str, materials: list[dict[str, Any]]) -> CaseView:
    """Hand in the materials a 补正 asked for."""
    case = await citizen_case(deps, principal=principal, case_no=case_no)
    if str(case.citizen_id) != principal.id:
        raise CaseNotFound(details={"case_no": case_no[:32]})
    if case.status is not CaseStatus.correction_required:
        raise IllegalTransition(
            f"办件当前状态为「{STATUS_NAMES[case.status]}」，不能补正材料",
            details={"status": case.status.value, "action": "resubmit", "allowed": []},
        )
    guide = await _guide_of(case)
    only = set((case.correction or {}).get("materials", []))
    taken = await _take_uploads(deps, owner_id=principal.id, guide=guide, given=materials, only=only)
    case = await _move(deps, case, "resubmit", role="citizen", actor=("citizen", principal.id), args={}, taken=taken)
    return await read.case_view(deps.cipher, case, actions=_citizen_actions(case, principal))


async def case_detail(deps: CaseDeps, *, principal: Reader, case_no: str) -> CaseView:
    """A case for its applicant, agent or principal: the timeline, the next step and the receipt's code.

    `principal` is the caller's token, or the account id a WeChat subscriber is bound to: the same read rule.
    """
    case = await citizen_case(deps, principal=principal, case_no=case_no)
    actions = _citizen_actions(case, principal)
    return await read.case_view(deps.cipher, case, receipt=await receipt(deps, case), actions=actions)


def _citizen_actions(case: Case, reader: Reader) -> tuple[str, ...]:
    """What the reader may do to the case now: the applicant's moves (a principal or subscriber only reads)."""
    if not (isinstance(reader, Principal) and str(case.citizen_id) == reader.id):
        return ()
    return tuple(lifecycle.actions_for(case.status, lifecycle.CITIZEN, case.kind))


async def correction_materials(deps: CaseDeps, *, principal: Principal, case_no: str) -> tuple[MaterialSpec, ...]:
    """The materials a 补正 asks the applicant for, with the file types the case's guide accepts for each."""
    case = await citizen_case(deps, principal=principal, case_no=case_no)
    if str(case.citizen_id) != principal.id or case.status is not CaseStatus.correction_required:
        return ()
    known = _guide_materials(await _guide_of(case))
    return tuple(
        MaterialSpec(name, True, tuple(known[name]["file_types"]) if name in known else ())
        for name in (case.correction or {}).get("materials", [])
    )


async def receipt_url(deps: CaseDeps, *, principal: Principal, case_no: str) -> str:
    """What the receipt's QR code holds: the progress page of the case, signed."""
    case = await citizen_case(deps, principal=principal, case_no=case_no)
    return (await receipt(deps, case)).progress_url


async def staff_case(deps: CaseDeps, *, principal: Principal, case_no: str) -> Case:
    """A case in the staff member's scope (403 CASE_OUT_OF_SCOPE for another department's or hall's)."""
    case = await _case_by_no(case_no)
    if not principal.covers(department=case.department_code, hall=case.hall_code):
        raise CaseOutOfScope(details={"case_no": case.case_no})
    return case


async def staff_detail(deps: CaseDeps, *, principal: Principal, case_no: str) -> StaffCaseView:
    """A case in the staff member's scope, in full."""
    case = await staff_case(deps, principal=principal, case_no=case_no)
    return await read.staff_view(deps.cipher, case, principal=principal)


async def staff_material(deps: CaseDeps, *, principal: Principal, case_no: str, upload_id: str) -> MaterialFile:
    """A material's stored file of a case in the staff member's scope (404 for a file the case does not hold)."""
    case = await staff_case(deps, principal=principal, case_no=case_no)
    try:
        uid = uuid.UUID(upload_id)
    except ValueError:
        raise UploadNotFound(details={"upload_id": upload_id[:64]}) from None
    row = await Upload.get_or_none(id=uid) if await CaseMaterial.exists(case_id=case.id, upload_id=uid) else None
    if row is None:
        raise UploadNotFound(details={"upload_id": upload_id[:64]})
    return MaterialFile(case.case_no, row.id, row.file_type, path_of(deps.settings, row))


async def act(
    deps: CaseDeps, *, principal: Principal, case_no: str, action: str, args: dict[str, Any]
) -> StaffCaseView:
    """A staff action on a case (accept, reject, require_correction, start_review, …)."""
    case = await staff_case(deps, principal=principal, case_no=case_no)
    role = principal.role or ""
    case = await _move(deps, case, action, role=role, actor=("staff", principal.id), args=args)
    return await read.staff_view(deps.cipher, case, principal=principal)


async def my_cases(
    deps: CaseDeps, *, principal: Reader, status: str | None = None, page: int = 1, page_size: int = 20
) -> CasePage:
    """The caller's cases (as applicant or agent), newest first: the API's list and the WeChat menu's."""
    query = Case.filter(citizen_id=uuid.UUID(principal.id) if isinstance(principal, Principal) else principal)
    query = query.exclude(kind=lifecycle.PART)  # a bundle's parts are followed through the bundle
    if status:
        query = query.filter(status=status)
    total = await query.count()
    rows = await query.order_by("-submitted_at", "-case_no").offset((page - 1) * page_size).limit(page_size)
    today = clock.today()
    return CasePage(tuple(read.summary(r, today) for r in rows), total, page, page_size)


async def staff_cases(
    deps: CaseDeps,
    *,
    principal: Principal,
    view: str | None,
    status: str | None,
    page: int,
    page_size: int,
    department: str | None = None,
) -> StaffCasePage:
    """Cases in the staff member's scope: all, `mine` (I acted on), `due_soon` (yellow) or `overdue` (red).

    `department` narrows the scope to one department (it never widens it: the scope filter applies first).
    """
    query = Case.filter(**principal.scope_filter())
    if department:
        query = query.filter(department_code=department)
    today = clock.today()
    running = [s.value for s in lifecycle.CLOCK_RUNNING]
    if view == "mine":
        query = query.filter(
            id__in=Subquery(CaseEvent.filter(actor_kind="staff", actor_id=principal.id).values("case_id"))
        )
    elif view == "due_soon":
        query = query.filter(status__in=running, warn_on__lte=today, due_on__gte=today)
    elif view == "overdue":
        query = query.filter(status__in=running, due_on__lt=today)
    if view in {"due_soon", "overdue"}:
        # A decided part waits for its bundle's delivery on the bundle's clock, not its own.
        query = query.filter(Q(kind__not=lifecycle.PART) | Q(status__not_in=[CaseStatus.approved, CaseStatus.denied]))
    if status:
        query = query.filter(status=status)
    total = await query.count()
    order = ("due_on", "submitted_at") if view in {"due_soon", "overdue"} else ("-submitted_at", "-case_no")
    rows = await query.order_by(*order).offset((page - 1) * page_size).limit(page_size)
    return StaffCasePage(tuple(read.staff_item(r, today, principal) for r in rows), total, page, page_size)


async def bundle_names(bundle_nos: list[str]) -> dict[str, str]:
    """The 一件事 names of bundles by number, for a queue row of a part (a name is not personal data)."""
    nos = sorted(set(bundle_nos))
    if not nos:
        return {}
    rows = await Case.filter(case_no__in=nos, kind=lifecycle.BUNDLE).values_list("case_no", "matter_name")
    return {str(no): str(name) for no, name in rows}


# ---------------------------------------------------------------- anonymous progress


PROGRESS_HOT_PAIR_FAILS = 3  # wrong codes one address may give for a case number under attack (typos)


def _progress_limits(settings: Settings) -> tuple[Limit, Limit, Limit, Limit]:
    """Per address (all queries a minute; wrong codes an hour and a day) and wrong codes per case number an hour."""
    return (
        Limit("progress-ip-1m", settings.progress_rate_per_minute, 60),
        Limit("progress-fail-ip-1h", settings.progress_fail_per_address_hour, 3600),
        Limit("progress-fail-ip-1d", settings.progress_fail_per_address_day, 86400),
        Limit("progress-case-1h", settings.progress_rate_per_case_hour, 3600),
    )


async def query_progress(
    deps: CaseDeps, *, client: str, case_no: str | None, query_code: str | None, code: str | None
) -> ProgressView:
    """An anonymous query behind its rate limits; only wrong codes count against a case number.

    Every address has a rate (queries a minute) and a budget of wrong codes (an hour, a day); past it the
    address is refused. A case number counts wrong codes from every address: once it has had
    `progress_rate_per_case_hour` of them within the hour, the addresses that already gave it
    `PROGRESS_HOT_PAIR_FAILS` wrong codes are refused for it, while the right code from any other address
    still opens the case: a right answer is not a guess, so the owner is never locked out by others.
    """
    per_minute, fail_hour, fail_day, per_case = _progress_limits(deps.settings)
    if code:
        await hit(deps.store, per_minute, client)
        return await progress_by_code(deps, code=code)
    number = (case_no or "").strip().upper()[:32]
    pair = Limit("progress-fail-pair-1h", PROGRESS_HOT_PAIR_FAILS, 3600)
    pair_key = f"{number}|{client}"
    # One round trip for all of them: the query counted, the budgets read (the pair's too, used only when the
    # case number is under attack); refused in the order the rules are listed above.
    (rate,), (hour, day, case_fails, pair_fails) = await window(
        deps.store,
        counted=[(per_minute, client)],
        peeked=[(fail_hour, client), (fail_day, client), (per_case, number), (pair, pair_key)],
    )
    if rate[0] > per_minute.count:
        raise refuse(per_minute, rate[1])
    for limit, (used, retry) in ((fail_hour, hour), (fail_day, day)):
        if used >= limit.count:
            raise refuse(limit, retry)
    if case_fails[0] >= per_case.count and pair_fails[0] >= pair.count:
        raise refuse(pair, pair_fails[1])
    try:
        return await progress(deps, case_no=number, query_code=query_code or "")
    except ProgressNotFound:
        counted = [(fail_hour, client), (fail_day, client), (per_case, number), (pair, pair_key)]
        await window(deps.store, counted=counted)
        raise


async def progress(deps: CaseDeps, *, case_no: str, query_code: str) -> ProgressView:
    """A case by its number and query code; one 404 for a wrong number and a wrong code alike."""
    number = case_no.strip().upper()[:32]
    expected = query_code_hash(deps.settings, number, query_code)
    events = None
    if sql.is_postgres():
        case, events = await case_sql.progress_case(number, expected)
    else:
        case = await Case.get_or_none(case_no=number)
    stored = case.query_code_hash if case is not None else "0" * 64
    if not hmac.compare_digest(stored, expected) or case is None:
        raise ProgressNotFound()
    return await read.progress_view(deps.cipher, case, events=events)


async def progress_by_code(deps: CaseDeps, *, code: str) -> ProgressView:
    """A case by the signed code of its receipt (the QR code)."""
    try:
        case_id, kid, body, signature = codes.decode(code)
        codes.check(await deps.tokens.signed(kid, codes.CONTEXT + body, signature))
    except codes.CaseCodeInvalid:
        raise ProgressNotFound() from None
    case = await Case.get_or_none(id=case_id)
    if case is not None and case.kind == lifecycle.PART:
        case = await Case.get_or_none(id=case.bundle_id)  # a part's code shows the whole bundle
    if case is None:
        raise ProgressNotFound()
    return await read.progress_view(deps.cipher, case)


# ---------------------------------------------------------------- feed


def _cursor(event_id: int) -> str:
    return base64.urlsafe_b64encode(f"e{event_id}".encode()).decode().rstrip("=")


def _after(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("e"):
            raise ValueError
        return int(raw[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise CursorInvalid(details={"cursor": cursor[:64]}) from None


async def feed(deps: CaseDeps, *, cursor: str | None, limit: int) -> Feed:
    """Every case event in commit-safe order for the provincial platform (办件上报), `limit` at a time.

    Events newer than `feed_lag_seconds` wait for the next call: ids are given out before commit, so a
    slower transaction may still add a lower id than one already visible.
    """
    after = _after(cursor)
    horizon = clock.now() - dt.timedelta(seconds=deps.settings.feed_lag_seconds)
    events = []
    for event in await CaseEvent.filter(id__gt=after).order_by("id").limit(limit):
        if event.created_at > horizon:
            break  # in id order up to the first young event: an older one with a higher id waits with it
        events.append(event)
    cases = {c.id: c for c in await Case.filter(id__in={e.case_id for e in events})}
    items = []
    for e in events:
        c = cases[e.case_id]
        items.append(
            FeedEvent(
                event_id=e.id,
                case_no=c.case_no,
                matter_code=c.matter_code,
                matter_name=c.matter_name,
                department=c.department_code,
                hall=c.hall_code,
                action=e.action,
                from_status=e.from_status,
                status=e.to_status,
                at=e.created_at,
                submitted_at=c.submitted_at,
                promised_days=c.promised_days,
                due_on=c.due_on,
            )
        )
    next_cursor = _cursor(events[-1].id) if events else (cursor or None)
    return Feed(tuple(items), next_cursor)

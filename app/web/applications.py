"""Citizen online application in the browser: the materials form, uploads, submit, the receipt, my cases.

Without script the form posts multipart to the page itself: each chosen file is stored like an API
upload and kept in the citizen's draft, with the typed fields, so the form shows both when the citizen
comes back. With script (static/apply.js) a file goes up as soon as it is chosen, to the same route.
Submitting builds the same application (`CaseIn`) as POST /api/v1/cases and runs it once per form key.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sanic import Blueprint, HTTPResponse, Request

from app import clock, idempotency
from app.cases import drafts, present, service, uploads
from app.cases import errors as ce
from app.cases.deps import CaseDeps
from app.cases.schemas import CaseIn
from app.cases.types import CaseView, Draft, MaterialSpec
from app.errors import DomainError, InvalidInput, MatterNotFound, pydantic_details
from app.guide import service as guides
from app.http import doc, idempotent_answer, parse_query
from app.ratelimit import TooManyRequests
from app.web import ACTIONS
from app.web import bundle_view as bv
from app.web.kit import citizen_page, field_errors, page, read_form, see_other
from auth import accounts
from auth.errors import AssuranceTooLow
from auth.guards import check_csrf
from qr.render import ImageOptions, cached_render

bp = Blueprint("web_apply", url_prefix="")
TAG = "h5 页面"

# The typed fields of the form, flat; `case_input` nests them as CaseIn has them.
FIELDS = (
    "applicant_kind", "name", "id_number", "phone", "principal_kind", "principal_name", "principal_id_number",
    "principal_phone", "delivery", "addr_name", "addr_phone", "addr_region", "addr_detail",
)  # fmt: skip
_LOCS = {
    "applicant": "applicant_kind",
    "applicant.kind": "applicant_kind",
    "applicant.name": "name",
    "applicant.id_number": "id_number",
    "applicant.phone": "phone",
    "applicant.principal": "principal_id_number",  # the company code's check character
    "applicant.principal.kind": "principal_kind",
    "applicant.principal.name": "principal_name",
    "applicant.principal.id_number": "principal_id_number",
    "applicant.principal.phone": "principal_phone",
    "delivery": "delivery",
    "delivery.method": "delivery",
    "delivery.address.name": "addr_name",
    "delivery.address.phone": "addr_phone",
    "delivery.address.region": "addr_region",
    "delivery.address.detail": "addr_detail",
}
# What a file input accepts, by the guide's type names (extensions too: some phones report no MIME type).
_ACCEPT = {
    "pdf": "application/pdf,.pdf",
    "jpg": "image/jpeg,.jpg,.jpeg",
    "png": "image/png,.png",
    "ofd": ".ofd",
    "doc": "application/msword,.doc",
    "docx": ".docx,application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel,.xls",
    "xlsx": ".xlsx,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class PageQuery(BaseModel):
    """A page of a list, or what a redirect after a post came to say."""

    model_config = ConfigDict(extra="ignore")
    page: int = Field(default=1, ge=1, le=1000)
    done: str = Field(default="", max_length=20)


class WithdrawForm(BaseModel):
    """Why the applicant withdraws (optional)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    reason: str | None = Field(default=None, max_length=200)


def _deps(request: Request) -> CaseDeps:
    return request.app.ctx.cases


def _size(n: int | None) -> str:
    if n is None:
        return ""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f}".removesuffix(".0") + " MB"
    return f"{max(1, round(n / 1024))} KB"


def _minute(at: Any) -> str:
    return f"{at.astimezone(clock.SHANGHAI):%Y-%m-%d %H:%M}"


def _limits(request: Request) -> dict[str, Any]:
    limit = request.app.ctx.settings.upload_max_bytes
    return {"max_bytes": limit, "max_size": _size(limit)}


def _spec_view(i: int, spec: MaterialSpec, draft: Draft, notes: str = "") -> dict[str, Any]:
    """One material of a form: its input's name, what it accepts, the files kept for it."""
    types = [t for t in spec.file_types if t in _ACCEPT]
    return {
        "key": f"file-{i}",
        "name": spec.name,
        "required": spec.required,
        "notes": notes,
        "types": "/".join(dict.fromkeys(t.upper() if t not in ("doc", "docx") else "WORD" for t in types)),
        "accept": ",".join(_ACCEPT[t] for t in types),
        "image": any(t in ("jpg", "png") for t in types),
        "files": [
            {"id": str(u.id), "filename": u.filename, "size": _size(u.size)} for u in draft.files.get(spec.name, ())
        ],
        "lost": spec.name in draft.lost,
    }


def _guide_specs(guide: Mapping[str, Any]) -> list[MaterialSpec]:
    return [MaterialSpec(m["name"], bool(m["required"]), tuple(m["file_types"])) for m in guide["materials"]]


def _parts(specs: list[MaterialSpec]) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {f"file-{i}": (s.name, s.file_types) for i, s in enumerate(specs)}


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    while (chunk := await request.stream.read()) is not None:
        yield chunk


def _length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


async def _read_files(
    request: Request, *, scope: str, specs: list[MaterialSpec], skip_if_done: bool
) -> tuple[dict[str, str], dict[str, str], int]:
    """Store the files of a multipart form post into the draft: (fields, errors by input, status)."""
    deps, owner = _deps(request), request.ctx.principal.id
    parts = _parts(specs)

    async def check(fields: Mapping[str, str]) -> bool:
        check_csrf(request, fields.get("csrf") or "")
        key = fields.get("idem") or ""
        # The same form posted again after it became a case: its files are not stored a second time.
        return not (skip_if_done and key and await drafts.case_of(deps, owner_id=owner, form_key=key))

    got = await uploads.accept_form(
        deps, owner_id=owner, parts=parts, content_type=request.headers.get("content-type"),
        content_length=_length(request), chunks=_chunks(request), check=check,
    )  # fmt: skip
    by_name = {name: key for key, (name, _) in parts.items()}
    errors: dict[str, str] = {}
    status = 200
    for name, stored in got.files.items():
        try:
            await drafts.attach(deps, owner_id=owner, scope=scope, material=name, uploads=stored)
        except drafts.TooManyFiles as exc:
            errors[by_name[name]], status = exc.message, exc.status
    for name, exc in got.errors.items():
        errors[by_name[name]], status = exc.message, exc.status
    if got.refused is not None:
        errors["__all__"], status = got.refused.message, got.refused.status
    fields = dict(got.fields)
    if fields.get("fields") == "1":  # the whole form came (a script's upload sends only the file)
        typed = {k: fields[k].strip() for k in FIELDS if k in fields}
        await drafts.save_fields(deps, owner_id=owner, scope=scope, fields=typed)
    op = fields.get("op", "")
    if op.startswith("remove:"):
        await drafts.detach(deps, owner_id=owner, scope=scope, upload_id=op.removeprefix("remove:"))
    return fields, errors, status


def _material_errors(exc: DomainError, keys: Mapping[str, str]) -> dict[str, str]:
    """A refusal about materials, next to each material it names."""
    details = exc.details or {}
    if isinstance(exc, ce.MaterialsMissing):
        found = {keys[n]: "请上传此材料（必需）" for n in details.get("missing", []) if n in keys}
        return {**found, "__all__": exc.message}
    name = details.get("material")
    if name in keys:
        return {keys[name]: exc.message}
    return {}


# ---------------------------------------------------------------- the application form


def case_input(code: str, typed: Mapping[str, str], draft: Draft, *, verified: bool) -> dict[str, Any]:
    """The flat form as the application CaseIn validates (the same shape POST /api/v1/cases takes)."""
    kind = typed.get("applicant_kind") or "self"
    applicant: dict[str, Any] = {"kind": kind}
    if typed.get("phone"):
        applicant["phone"] = typed["phone"]
    if kind == "agent":
        principal = {
            "kind": typed.get("principal_kind") or "person",
            "name": typed.get("principal_name", ""),
            "id_number": typed.get("principal_id_number", ""),
        }
        if typed.get("principal_phone"):
            principal["phone"] = typed["principal_phone"]
        applicant["principal"] = principal
    elif not verified:
        applicant.update(name=typed.get("name") or None, id_number=typed.get("id_number") or None)
    delivery: dict[str, Any] = {"method": typed.get("delivery") or "window"}
    if delivery["method"] == "ems":
        delivery["address"] = {
            "name": typed.get("addr_name", ""),
            "phone": typed.get("addr_phone", ""),
            "region": typed.get("addr_region", ""),
            "detail": typed.get("addr_detail", ""),
        }
    return {
        "matter_code": code, "applicant": applicant, "form": {}, "materials": draft.materials(), "delivery": delivery,
    }  # fmt: skip


_KEY_WORDS = {
    "IDEMPOTENCY_KEY_REQUIRED": "页面已过期，请检查后重新提交",
    "IDEMPOTENCY_KEY_INVALID": "页面已过期，请检查后重新提交",
    "IDEMPOTENCY_KEY_REUSED": "这份表单已提交过，请在“我的办件”中查看；如需再次申报，请检查后重新提交",
    "IDEMPOTENCY_IN_FLIGHT": "申请正在提交，请稍候在“我的办件”中查看，不要重复提交",
}


def _submit_errors(exc: DomainError, typed: Mapping[str, str], keys: Mapping[str, str]) -> dict[str, str]:
    """A refused application as messages next to the fields and materials it concerns."""
    if exc.code in _KEY_WORDS:
        return {"__all__": _KEY_WORDS[exc.code]}
    found = _material_errors(exc, keys)
    if found:
        return found
    agent = typed.get("applicant_kind") == "agent"
    if exc.code == "APPLICANT_INCOMPLETE":
        words = {"name": "请填写申请人姓名", "id_number": "请填写申请人身份证号码"}
        return {f: words[f] for f in exc.details.get("missing", []) if f in words} or {"__all__": exc.message}
    if exc.code == "ID_NUMBER_INVALID":
        return {"principal_id_number" if agent else "id_number": exc.message}
    if isinstance(exc, ce.DeliveryNotOffered):
        return {"delivery": exc.message}
    if isinstance(exc, AssuranceTooLow):
        return {"applicant_kind": (exc.message or "") + "（请先完成实名认证）"}
    fields = (exc.details or {}).get("fields")
    if isinstance(fields, dict) and fields:
        return {_LOCS.get(k, "__all__"): v for k, v in field_errors(exc).items()}
    return {"__all__": exc.message}


def _offered(guide: Mapping[str, Any]) -> bool:
    return bool(guide.get("online_apply")) and guide.get("status") == "active"


def _loa(guide: Mapping[str, Any]) -> int:
    return 3 if int(guide.get("apply_loa", 2)) >= 3 else 2


async def _guide(request: Request, code: str) -> dict[str, Any]:
    return (await guides.guide(request.app.ctx.guide, code=code)).data


async def _form(
    request: Request, guide: Mapping[str, Any], *, status: int = 200, errors: Mapping[str, str] | None = None,
    key: str | None = None, saved: bool = False,
) -> HTTPResponse:  # fmt: skip
    """The application form with the draft's fields and files, and errors next to what they concern."""
    principal = request.ctx.principal
    draft = await drafts.load(_deps(request), owner_id=principal.id, scope=f"apply:{guide['code']}")
    profile = await accounts.profile(request.app.ctx.auth, principal=principal)
    notes = {m["name"]: m.get("notes", "") for m in guide["materials"]}
    if guide.get("bundle"):  # one upload serves several members: say which
        names = guide["bundle"].get("member_names") or {}
        for m in guide["materials"]:
            uses = "用于：" + "、".join(names.get(c, {}).get("name") or c for c in m.get("members", ()))
            notes[m["name"]] = f"{notes[m['name']]}（{uses}）" if notes[m["name"]] else uses

    materials = [_spec_view(i, s, draft, notes.get(s.name, "")) for i, s in enumerate(_guide_specs(guide))]
    return page(
        request, "apply.html", status=status, g=guide, materials=materials, form=draft.fields, errors=errors or {},
        form_key=key, saved=saved, profile=profile, **_limits(request),
    )  # fmt: skip


@bp.route("/m/<code:str>/apply", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="网上申报：按办事指南的材料填写申请、上传材料（未开通网上申报的事项显示说明）",
     errors=[MatterNotFound])  # fmt: skip
async def apply_page(request: Request, code: str) -> HTTPResponse:
    """The form, for a citizen signed in at the level the matter asks (phone, or real name)."""
    guide = await _guide(request, code)
    if not _offered(guide):
        settings = request.app.ctx.settings
        return page(request, "entry.html", g=guide, action="apply", action_name=ACTIONS["apply"],
                    consult_days=settings.consult_days, rating_days=settings.rating_window_days)  # fmt: skip

    async def form(request: Request) -> HTTPResponse:
        return await _form(request, guide, saved=request.args.get("saved") == "1")

    return await citizen_page(_loa(guide))(form)(request)


async def _apply_post(request: Request, code: str, *, submit: bool) -> HTTPResponse:
    guide = await _guide(request, code)
    if not _offered(guide):
        return see_other(request, f"/m/{guide['code']}/apply")

    async def handle(request: Request) -> HTTPResponse:
        deps, principal = _deps(request), request.ctx.principal
        scope = f"apply:{guide['code']}"
        specs = _guide_specs(guide)
        fields, errors, status = await _read_files(request, scope=scope, specs=specs, skip_if_done=submit)
        key = fields.get("idem") or None
        if submit and key:
            done = await drafts.case_of(deps, owner_id=principal.id, form_key=key)
            if done:
                return see_other(request, f"/m/me/cases/{done}/receipt")
        if errors:
            return await _form(request, guide, status=status if status >= 400 else 422, errors=errors, key=key)
        if not submit:
            return see_other(request, f"/m/{guide['code']}/apply?saved=1")
        return await _submit(request, guide, key)

    return await citizen_page(_loa(guide))(handle)(request)


async def _submit(request: Request, guide: Mapping[str, Any], key: str | None) -> HTTPResponse:
    """File the draft as an application, once per form key, then show its receipt."""
    deps, principal = _deps(request), request.ctx.principal
    scope = f"apply:{guide['code']}"
    draft = await drafts.load(deps, owner_id=principal.id, scope=scope)
    profile = await accounts.profile(request.app.ctx.auth, principal=principal)
    verified = bool(profile.real_name.name and profile.real_name.id_number)
    keys = {s.name: f"file-{i}" for i, s in enumerate(_guide_specs(guide))}
    try:
        body = CaseIn.model_validate(case_input(guide["code"], draft.fields, draft, verified=verified))
    except ValidationError as exc:
        fields = pydantic_details(exc)["fields"]
        errors = {_LOCS.get(k, "__all__"): "；".join(v) for k, v in fields.items()}
        return await _form(request, guide, status=422, errors=errors, key=key)

    async def run(claim: idempotency.Claim | None) -> dict[str, Any]:
        result = await service.submit(
            deps, principal=principal, matter_code=body.matter_code, applicant=body.applicant.model_dump(mode="json"),
            form=body.form, materials=[m.model_dump() for m in body.materials],
            delivery=body.delivery.model_dump(mode="json"), claim=claim,
        )  # fmt: skip
        return present.submission_json(result)

    try:
        answer = await idempotent_answer(
            request, key=key, owner=principal.subject, payload=body.model_dump(mode="json"), run=run,
            replay=lambda text: service.unseal_answer(deps, text),
        )  # fmt: skip
    except (InvalidInput, AssuranceTooLow, ce.UploadNotFound, ce.UploadInUse, idempotency.IdempotencyInFlight,
            idempotency.IdempotencyKeyRequired, idempotency.IdempotencyKeyInvalid) as exc:  # fmt: skip
        errors = _submit_errors(exc, draft.fields, keys)
        fresh = exc.code in _KEY_WORDS  # the form gets a new key: this one is spent or broken
        return await _form(request, guide, status=exc.status, errors=errors, key=None if fresh else key)
    case_no = answer.body["case_no"]
    await drafts.submitted(
        deps, owner_id=principal.id, scope=scope, form_key=key or "", case_no=case_no,
        query_code=answer.body.get("query_code"),
    )  # fmt: skip
    return see_other(request, f"/m/me/cases/{case_no}/receipt")


_APPLY_ERRORS = [
    MatterNotFound, InvalidInput, AssuranceTooLow, ce.UploadTooLarge, ce.UploadInvalid, ce.FileTypeMismatch,
    drafts.TooManyFiles, TooManyRequests,
]  # fmt: skip


@bp.post("/m/<code:str>/apply/upload", stream=True)
@doc(tag=TAG, summary="网上申报：上传所选材料并保存草稿（multipart/form-data；每项材料的文件字段 file-<序号>）",
     status=303, errors=_APPLY_ERRORS)  # fmt: skip
async def apply_upload(request: Request, code: str) -> HTTPResponse:
    """Store the chosen files and what was typed; then back to the form (a script gets the form's HTML)."""
    return await _apply_post(request, code, submit=False)


@bp.post("/m/<code:str>/apply", stream=True)
@doc(tag=TAG, summary="网上申报：提交申请（同 POST /api/v1/cases，隐藏字段 idem 为幂等键；成功后 303 到回执页）",
     status=303, errors=[*_APPLY_ERRORS, *idempotency.ERRORS, ce.OnlineApplyNotOffered, ce.MaterialsMissing,
                         ce.MaterialUnknown, ce.UploadNotFound, ce.UploadInUse, ce.DeliveryNotOffered])  # fmt: skip
async def apply_submit(request: Request, code: str) -> HTTPResponse:
    """Store any files chosen with it, then file the application (once per form)."""
    return await _apply_post(request, code, submit=True)


# ---------------------------------------------------------------- receipt, my cases, one case


def _qr_data_uri(url: str) -> str:
    """The receipt's QR code drawn into the page (no second request that a lapsed session could refuse)."""
    svg = cached_render("svg", url, ImageOptions(size=6, margin=4, ec="M"))
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


def _case_context(view: CaseView, departments: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the case pages show: times in Asia/Shanghai to the minute, dates as YYYY-MM-DD."""
    s = view.summary
    step = s.next_step
    rounds: dict[int, list[dict[str, Any]]] = {}
    for m in view.materials:
        item = {"name": m.name, "filename": m.filename or "（文件已清理）", "size": _size(m.size)}
        rounds.setdefault(m.round, []).append(item)
    next_step = None
    if step is not None:
        next_step = {"name": step.name, "expected_by": step.expected_by.isoformat() if step.expected_by else None}
    return {
        "case_no": s.case_no,
        "matter": {"code": s.matter_code, "name": s.matter_name},
        "status": s.status.value,
        "status_name": s.status_name,
        "sla": {
            "state": s.sla.state,
            "due_on": s.sla.due_on.isoformat() if s.sla.due_on else None,
            "days_left": s.sla.days_left,
        },
        "submitted_at": _minute(s.submitted_at),
        "promised_days": s.promised_days,
        "next_step": next_step,
        "timeline": bv.timeline_context(view.timeline),
        "kind": s.kind,
        "bundle": bv.bundle_context(view.bundle, dict(departments or {})),
        "part_of": bv.part_of_context(view.part_of, dict(departments or {})),
        "principal": {"name": view.principal.name, "agent": view.agent},
        "delivery": view.delivery.method,
        "tracking_no": view.delivery.tracking_no,
        "rounds": sorted(rounds.items()),
        "correction": dict(view.correction) if view.correction else None,
        "actions": list(view.actions),
    }


@bp.get("/m/me/cases/<case_no:str>/receipt")
@doc(tag=TAG, summary="申报回执：办件编号、查询码（只显示这一次）和回执二维码", errors=[ce.CaseNotFound])
@citizen_page(loa=2)
async def receipt_page(request: Request, case_no: str) -> HTTPResponse:
    """The receipt of a new case; the query code is taken from the store, so a reload no longer shows it."""
    principal = request.ctx.principal
    view = await service.case_detail(_deps(request), principal=principal, case_no=case_no)
    code = await drafts.take_query_code(_deps(request), owner_id=principal.id, case_no=view.summary.case_no)
    url = view.receipt.progress_url if view.receipt else ""
    departments = await bv.department_names() if view.bundle else {}
    return page(request, "receipt.html", c=_case_context(view, departments), query_code=code, qr=_qr_data_uri(url))


@bp.get("/m/me/cases")
@doc(tag=TAG, summary="我的办件（最新在前）", query=PageQuery)
@citizen_page(loa=2)
async def my_cases_page(request: Request) -> HTTPResponse:
    """The citizen's cases with their status and next step."""
    q = parse_query(request, PageQuery)
    result = await service.my_cases(_deps(request), principal=request.ctx.principal, page=q.page, page_size=20)
    items = [
        {"case_no": s.case_no, "matter": s.matter_name, "status": s.status.value, "status_name": s.status_name,
         "submitted_at": _minute(s.submitted_at), "kind": s.kind,
         "next_step": s.next_step.name if s.next_step else None,
         "expected_by": s.next_step.expected_by.isoformat() if s.next_step and s.next_step.expected_by else None}
        for s in result.items
    ]  # fmt: skip
    more = result.page * result.page_size < result.total
    return page(request, "my_cases.html", items=items, total=result.total, page_no=result.page, more=more)


_DONE = {"withdraw": "申请已撤回。", "resubmit": "补正材料已提交，请等待窗口受理。", "saved": "已保存。"}


async def _case_page(
    request: Request, case_no: str, *, status: int = 200, errors: Mapping[str, str] | None = None,
    done: str | None = None,
) -> HTTPResponse:  # fmt: skip
    deps, principal = _deps(request), request.ctx.principal
    view = await service.case_detail(deps, principal=principal, case_no=case_no)
    number = view.summary.case_no
    correction: list[dict[str, Any]] = []
    if "resubmit" in view.actions:
        specs = list(await service.correction_materials(deps, principal=principal, case_no=number))
        draft = await drafts.load(deps, owner_id=principal.id, scope=f"resubmit:{number}")
        correction = [_spec_view(i, s, draft) for i, s in enumerate(specs)]
    departments = await bv.department_names() if view.bundle or view.part_of else {}
    return page(
        request, "case.html", status=status, c=_case_context(view, departments), correction=correction,
        errors=errors or {}, done=_DONE.get(done or ""), **_limits(request),
    )  # fmt: skip


@bp.get("/m/me/cases/<case_no:str>")
@doc(tag=TAG, summary="办件详情：状态、办理过程、下一步预计时间、材料、补正、撤回、评价", query=PageQuery,
     errors=[ce.CaseNotFound])  # fmt: skip
@citizen_page(loa=2)
async def case_page(request: Request, case_no: str) -> HTTPResponse:
    """One case of the citizen (as applicant, agent or principal)."""
    q = parse_query(request, PageQuery)
    return await _case_page(request, case_no, done=q.done)


async def _resubmit_post(request: Request, case_no: str, *, submit: bool) -> HTTPResponse:
    deps, principal = _deps(request), request.ctx.principal
    specs = list(await service.correction_materials(deps, principal=principal, case_no=case_no))
    if not specs:  # nothing asked for (any more): the case page says where the case stands
        return see_other(request, f"/m/me/cases/{case_no}")
    scope = f"resubmit:{case_no.strip().upper()}"
    _, errors, status = await _read_files(request, scope=scope, specs=specs, skip_if_done=False)
    if errors:
        return await _case_page(request, case_no, status=status if status >= 400 else 422, errors=errors)
    if not submit:
        return see_other(request, f"/m/me/cases/{case_no}?done=saved#correction")
    draft = await drafts.load(deps, owner_id=principal.id, scope=scope)
    keys = {s.name: f"file-{i}" for i, s in enumerate(specs)}
    try:
        await service.resubmit(deps, principal=principal, case_no=case_no, materials=draft.materials())
    except (InvalidInput, ce.UploadNotFound, ce.UploadInUse, ce.IllegalTransition, ce.CaseChanged) as exc:
        errors = _material_errors(exc, keys) or {"__all__": exc.message}
        return await _case_page(request, case_no, status=exc.status, errors=errors)
    await drafts.discard(deps, owner_id=principal.id, scope=scope)
    return see_other(request, f"/m/me/cases/{case_no}?done=resubmit")


_RESUBMIT_ERRORS = [
    ce.CaseNotFound, ce.IllegalTransition, ce.MaterialsMissing, ce.MaterialUnknown, ce.FileTypeMismatch,
    ce.UploadTooLarge, ce.UploadInvalid, ce.UploadNotFound, ce.UploadInUse, ce.CaseChanged, TooManyRequests,
]  # fmt: skip


@bp.post("/m/me/cases/<case_no:str>/resubmit/upload", stream=True)
@doc(tag=TAG, summary="补正材料：上传所选文件并保存（multipart/form-data）", status=303, errors=_RESUBMIT_ERRORS)
@citizen_page(loa=2)
async def resubmit_upload(request: Request, case_no: str) -> HTTPResponse:
    """Keep the chosen files for the correction."""
    return await _resubmit_post(request, case_no, submit=False)


@bp.post("/m/me/cases/<case_no:str>/resubmit", stream=True)
@doc(tag=TAG, summary="补正材料：提交（同 POST /api/v1/cases/{case_no}/resubmit）", status=303,
     errors=_RESUBMIT_ERRORS)  # fmt: skip
@citizen_page(loa=2)
async def resubmit(request: Request, case_no: str) -> HTTPResponse:
    """Hand in the corrected materials."""
    return await _resubmit_post(request, case_no, submit=True)


@bp.post("/m/me/cases/<case_no:str>/withdraw")
@doc(tag=TAG, summary="撤回申请（受理前；同 POST /api/v1/cases/{case_no}/withdraw）", status=303,
     errors=[ce.CaseNotFound, ce.IllegalTransition, ce.CaseChanged])  # fmt: skip
@citizen_page(loa=2)
async def withdraw(request: Request, case_no: str) -> HTTPResponse:
    """Withdraw, after the citizen confirmed on the case page."""
    form, errors, _ = read_form(request, WithdrawForm)
    if form is None:
        return await _case_page(request, case_no, status=422, errors=errors)
    try:
        await service.withdraw(_deps(request), principal=request.ctx.principal, case_no=case_no, reason=form.reason)
    except (ce.IllegalTransition, ce.CaseChanged) as exc:
        return await _case_page(request, case_no, status=exc.status, errors={"__all__": exc.message})
    return see_other(request, f"/m/me/cases/{case_no}?done=withdraw")

"""Citizen API for online submission: uploads, cases (申报), withdrawals, 补正 and progress queries (过程查询)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sanic import Blueprint, HTTPResponse, Request

from app import idempotency
from app.cases import errors as ce
from app.cases import present, service, uploads
from app.cases.schemas import CaseIn, ResubmitIn
from app.cases.types import CaseStatus
from app.errors import InvalidInput, MatterNotFound, ServiceUnavailable
from app.http import doc, idempotent, json_response, parse_body, parse_query
from app.ratelimit import TooManyRequests
from auth.errors import CITIZEN_AUTH_ERRORS, AssuranceTooLow
from auth.guards import citizen_required
from qr.render import MEDIA_TYPES, ImageOptions, cached_render

bp = Blueprint("cases", url_prefix="/api/v1")
TAG = "cases 网上申报与办件查询"
AUTH_ERRORS = CITIZEN_AUTH_ERRORS
PRIVATE = {"Cache-Control": "private, no-store"}


class UploadQuery(BaseModel):
    """Which material the file is for (optional: then its accepted types are checked now)."""

    model_config = ConfigDict(extra="ignore")
    matter_code: str | None = Field(
        default=None, max_length=40, description="事项编码（与 material 一起给出时按该材料允许的类型检查）"
    )
    material: str | None = Field(default=None, max_length=200, description="材料名称")


class UploadForm(BaseModel):
    """multipart/form-data with one file part named `file`."""

    file: str = Field(json_schema_extra={"format": "binary"}, description="文件（PDF、JPG、PNG、OFD、Word、Excel）")


class WithdrawIn(BaseModel):
    """Why the applicant withdraws (optional)."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=200)


class ListQuery(BaseModel):
    """Filter and page of my cases."""

    model_config = ConfigDict(extra="ignore")
    status: CaseStatus | None = None
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=100)


class ProgressQuery(BaseModel):
    """An anonymous query: the case number and its query code, or the signed code of the receipt."""

    model_config = ConfigDict(extra="ignore")
    case_no: str | None = Field(default=None, max_length=32, description="办件编号")
    query_code: str | None = Field(default=None, max_length=16, description="查询码（受理回执上）")
    code: str | None = Field(default=None, max_length=200, description="回执二维码内容（可代替编号和查询码）")

    @model_validator(mode="after")
    def _one_way(self) -> ProgressQuery:
        if not self.code and not (self.case_no and self.query_code):
            raise ValueError("请提供办件编号和查询码")
        return self


def _deps(request: Request) -> service.CaseDeps:
    return request.app.ctx.cases


@bp.post("/uploads", stream=True)
@doc(
    tag=TAG,
    summary="上传申请材料（multipart/form-data，字段 file；边读边限大小，按文件内容识别类型）",
    query=UploadQuery,
    body=UploadForm,
    body_media="multipart/form-data",
    status=201,
    secured="bearer",
    errors=[
        *AUTH_ERRORS,
        ce.UploadTooLarge,
        ce.UploadInvalid,
        ce.FileTypeMismatch,
        ce.MaterialUnknown,
        MatterNotFound,
        TooManyRequests,
        ServiceUnavailable,
        ce.StorageUnavailable,
    ],
)
@citizen_required(loa=2)
async def upload(request: Request) -> HTTPResponse:
    """Store one file for the caller; it expires unless a case uses it within a day."""
    query = parse_query(request, UploadQuery)
    length = request.headers.get("content-length")

    async def chunks() -> Any:
        while (chunk := await request.stream.read()) is not None:
            yield chunk

    result = await uploads.accept(
        _deps(request),
        owner_id=request.ctx.principal.id,
        matter_code=query.matter_code,
        material=query.material,
        content_type=request.headers.get("content-type"),
        content_length=int(length) if length and length.isdigit() else None,
        chunks=chunks(),
    )
    return json_response(present.upload_json(result), status=201, headers=PRIVATE)


@bp.get("/uploads/<upload_id:str>")
@doc(tag=TAG, summary="我上传的文件", secured="bearer", errors=[*AUTH_ERRORS, ce.UploadNotFound])
@citizen_required(loa=2)
async def upload_detail(request: Request, upload_id: str) -> HTTPResponse:
    """One of the caller's uploads (another citizen's is 404)."""
    result = await uploads.get_upload(owner_id=request.ctx.principal.id, upload_id=upload_id)
    return json_response(present.upload_json(result), headers=PRIVATE)


MATERIALS_DOC = (
    "缺少必需材料时答复 422 `MATERIALS_MISSING`，`details.missing` 为缺少的材料名称列表（JSON 数组，"
    "按办事指南顺序；材料名称本身可能含“、”等符号，请按数组逐项显示，不要拆分 message）；"
    "材料文件类型不符（`FILE_TYPE_MISMATCH`）、文件已过期（`UPLOAD_NOT_FOUND`）或已被使用（`UPLOAD_IN_USE`）时，"
    "`details.material` 为该材料名称。"
)


@bp.post("/cases")
@doc(
    tag=TAG,
    summary="网上申报（需 Idempotency-Key；答复办件编号和只显示一次的查询码）",
    description=MATERIALS_DOC,
    body=CaseIn,
    status=201,
    secured="bearer",
    errors=[
        *AUTH_ERRORS,
        InvalidInput,
        *idempotency.ERRORS,
        MatterNotFound,
        AssuranceTooLow,
        ce.OnlineApplyNotOffered,
        ce.MaterialsMissing,
        ce.MaterialUnknown,
        ce.FileTypeMismatch,
        ce.UploadNotFound,
        ce.UploadInUse,
        ce.DeliveryNotOffered,
    ],
)
@citizen_required(loa=2)
async def submit(request: Request) -> HTTPResponse:
    """File an application with the guide's materials."""
    body = parse_body(request, CaseIn)
    principal = request.ctx.principal

    async def run(claim: idempotency.Claim | idempotency.Pending | None) -> dict[str, Any]:
        result = await service.submit(
            _deps(request),
            principal=principal,
            matter_code=body.matter_code,
            applicant=body.applicant.model_dump(mode="json"),
            form=body.form,
            materials=[m.model_dump() for m in body.materials],
            delivery=body.delivery.model_dump(mode="json"),
            claim=claim,
        )
        return present.submission_json(result)

    return await idempotent(
        request,
        owner=principal.subject,
        payload=body.model_dump(mode="json"),
        replay=lambda text: service.unseal_answer(_deps(request), text),
        run=run,
        # One read for the key and the citizen; a new key is then recorded with the case, in its transaction.
        precheck=lambda owner, key: service.submit_precheck(owner=owner, key=key, citizen_id=principal.id),
    )


@bp.get("/cases")
@doc(tag=TAG, summary="我的办件", query=ListQuery, secured="bearer", errors=[*AUTH_ERRORS, InvalidInput])
@citizen_required(loa=2)
async def my_cases(request: Request) -> HTTPResponse:
    """The caller's cases, newest first."""
    q = parse_query(request, ListQuery)
    page = await service.my_cases(
        _deps(request),
        principal=request.ctx.principal,
        status=q.status.value if q.status else None,
        page=q.page,
        page_size=q.page_size,
    )
    return json_response(present.page_json(page), headers=PRIVATE)


@bp.get("/cases/<case_no:str>")
@doc(
    tag=TAG,
    summary="办件详情与进度（申请人、代办人或被代办人本人；actions 为调用者现在可做的操作：withdraw、resubmit）",
    secured="bearer",
    errors=[*AUTH_ERRORS, ce.CaseNotFound],
)
@citizen_required(loa=2)
async def case_detail(request: Request, case_no: str) -> HTTPResponse:
    """One case with its timeline and the expected date of its next step."""
    view = await service.case_detail(_deps(request), principal=request.ctx.principal, case_no=case_no)
    return json_response(present.case_json(view), headers=PRIVATE)


@bp.get("/cases/<case_no:str>/<image:str>")
@doc(
    tag=TAG,
    summary="回执二维码图片：qr.png 或 qr.svg（扫码打开办件进度页）",
    query=ImageOptions,
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput, ce.CaseNotFound],
)
@citizen_required(loa=2)
async def receipt_image(request: Request, case_no: str, image: str) -> HTTPResponse:
    """The receipt's signed case code as a QR image."""
    fmt = {"qr.png": "png", "qr.svg": "svg"}.get(image)
    if fmt is None:
        raise ce.CaseNotFound(details={"path": image[:32]})
    opts = parse_query(request, ImageOptions)
    url = await service.receipt_url(_deps(request), principal=request.ctx.principal, case_no=case_no)
    return HTTPResponse(cached_render(fmt, url, opts), content_type=MEDIA_TYPES[fmt], headers=PRIVATE)


@bp.post("/cases/<case_no:str>/withdraw")
@doc(
    tag=TAG,
    summary="撤回申请（受理前）",
    body=WithdrawIn,
    secured="bearer",
    errors=[*AUTH_ERRORS, InvalidInput, ce.CaseNotFound, ce.IllegalTransition, ce.CaseChanged],
)
@citizen_required(loa=2)
async def withdraw(request: Request, case_no: str) -> HTTPResponse:
    """Withdraw a case not yet accepted."""
    body = parse_body(request, WithdrawIn) if request.body else WithdrawIn()
    result = await service.withdraw(
        _deps(request), principal=request.ctx.principal, case_no=case_no, reason=body.reason
    )
    return json_response(present.case_json(result))


@bp.post("/cases/<case_no:str>/resubmit")
@doc(
    tag=TAG,
    summary="补正材料（仅限补正通知列出的材料）",
    description=MATERIALS_DOC,
    body=ResubmitIn,
    secured="bearer",
    errors=[
        *AUTH_ERRORS,
        InvalidInput,
        ce.CaseNotFound,
        ce.IllegalTransition,
        ce.MaterialsMissing,
        ce.MaterialUnknown,
        ce.FileTypeMismatch,
        ce.UploadNotFound,
        ce.UploadInUse,
        ce.CaseChanged,
    ],
)
@citizen_required(loa=2)
async def resubmit(request: Request, case_no: str) -> HTTPResponse:
    """Hand in the corrected materials."""
    body = parse_body(request, ResubmitIn)
    result = await service.resubmit(
        _deps(request),
        principal=request.ctx.principal,
        case_no=case_no,
        materials=[m.model_dump() for m in body.materials],
    )
    return json_response(present.case_json(result))


@bp.get("/progress")
@doc(
    tag=TAG,
    summary="办件进度查询（免登录：办件编号 + 查询码，或回执二维码；限频）",
    query=ProgressQuery,
    errors=[InvalidInput, ce.ProgressNotFound, TooManyRequests, ServiceUnavailable],
)
async def progress(request: Request) -> HTTPResponse:
    """Anonymous progress: the same 404 for a wrong number and a wrong code."""
    return await _progress(request, parse_query(request, ProgressQuery))


@bp.post("/progress")
@doc(
    tag=TAG,
    summary="办件进度查询（POST：查询码放在请求体中，不进入地址、日志和浏览器历史；推荐）",
    body=ProgressQuery,
    errors=[InvalidInput, ce.ProgressNotFound, TooManyRequests, ServiceUnavailable],
)
async def progress_post(request: Request) -> HTTPResponse:
    """Anonymous progress with the query code in the body."""
    return await _progress(request, parse_body(request, ProgressQuery))


async def _progress(request: Request, q: ProgressQuery) -> HTTPResponse:
    view = await service.query_progress(
        _deps(request),
        client=request.remote_addr or request.ip or "unknown",
        case_no=q.case_no,
        query_code=q.query_code,
        code=q.code,
    )
    return json_response(present.progress_json(view), headers=PRIVATE)

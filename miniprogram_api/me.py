"""The signed-in citizen: profile and real-name verification."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.errors import InvalidInput
from app.http import JSON_TYPE, doc, json_response, parse_body
from app.jsontext import dumps
from app.ratelimit import TooManyRequests
from auth import accounts, present
from auth.errors import AssuranceTooLow, RealNameDone, RealNameMismatch, TokenInvalid, TokenMissing
from auth.guards import citizen_required
from auth.idcard import InvalidIdNumber
from auth.realname import RealNameUnavailable

bp = Blueprint("me", url_prefix="/api/v1/me")
TAG = "me 我的"


class RealNameBody(BaseModel):
    """Name and resident ID number."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=2, max_length=30)
    id_number: str = Field(min_length=1, max_length=32)


@bp.get("")
@doc(tag=TAG, summary="我的账号（个人信息均已脱敏）", errors=[TokenMissing, TokenInvalid], secured="bearer")
@citizen_required(loa=1)
async def me(request: Request) -> HTTPResponse:
    """The caller's profile."""
    profile = await accounts.profile(request.app.ctx.auth, principal=request.ctx.principal)
    body = dumps(present.profile_json(profile))
    return HTTPResponse(body, content_type=JSON_TYPE, headers={"Cache-Control": "private, no-store"})


@bp.post("/real-name")
@doc(
    tag=TAG,
    summary="实名认证（身份等级提升到 3）",
    body=RealNameBody,
    secured="bearer",
    errors=[
        TokenMissing,
        TokenInvalid,
        AssuranceTooLow,
        InvalidInput,
        InvalidIdNumber,
        RealNameMismatch,
        RealNameDone,
        TooManyRequests,
        RealNameUnavailable,
    ],
)
@citizen_required(loa=1)
async def real_name(request: Request) -> HTTPResponse:
    """Verify name and ID number; the next refreshed token carries LoA 3."""
    body = parse_body(request, RealNameBody)
    result = await accounts.real_name(
        request.app.ctx.auth,
        principal=request.ctx.principal,
        name=body.name,
        id_number=body.id_number,
        ip=request.remote_addr or request.ip or "unknown",
    )
    return json_response(present.profile_json(result))

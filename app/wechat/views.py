"""The official account's message callback (/wechat/callback): the handshake and the messages."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app.errors import ServiceUnavailable
from app.http import doc
from app.wechat import callback

bp = Blueprint("wechat_callback", url_prefix="")
TAG = "wechat 公众号消息回调"


class HandshakeQuery(BaseModel):
    """WeChat's server-address check."""

    model_config = ConfigDict(extra="ignore")
    signature: str = Field(max_length=64)
    timestamp: str = Field(max_length=16)
    nonce: str = Field(max_length=64)
    echostr: str = Field(max_length=128)


class MessageQuery(BaseModel):
    """The signature parameters WeChat puts on every message it posts."""

    model_config = ConfigDict(extra="ignore")
    signature: str = Field(max_length=64)
    timestamp: str = Field(max_length=16)
    nonce: str = Field(max_length=64)
    openid: str | None = Field(default=None, max_length=128)
    encrypt_type: str | None = Field(default=None, max_length=8, description="aes：安全模式或兼容模式")
    msg_signature: str | None = Field(default=None, max_length=64)


async def _body(request: Request) -> bytes:
    """The body, read only up to the limit: a larger one is refused before it is all received."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > callback.MAX_BODY:
        raise callback.CallbackTooLarge(details={"max_bytes": callback.MAX_BODY})
    data = bytearray()
    while (chunk := await request.stream.read()) is not None:
        data += chunk
        if len(data) > callback.MAX_BODY:
            raise callback.CallbackTooLarge(details={"max_bytes": callback.MAX_BODY})
    return bytes(data)


def _query(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in request.args.items() if v}


@bp.get("/wechat/callback")
@doc(tag=TAG, summary="服务器地址验证（签名正确时原样返回 echostr）", query=HandshakeQuery,
     errors=[callback.CallbackForbidden, callback.CallbackStale, callback.CallbackReplayed,
             ServiceUnavailable])  # fmt: skip
async def handshake(request: Request) -> HTTPResponse:
    """Echo `echostr` when WeChat signed the request with our token."""
    q = _query(request)
    echo = await request.app.ctx.wechat_callback.handshake(
        signature=q.get("signature"),
        timestamp=q.get("timestamp"),
        nonce=q.get("nonce"),
        echostr=q.get("echostr"),
    )
    return HTTPResponse(echo, content_type="text/plain; charset=utf-8")


@bp.post("/wechat/callback", stream=True)
@doc(
    tag=TAG,
    summary="接收消息与事件（明文、兼容、安全模式；5 秒内答复，重复消息只处理一次）",
    query=MessageQuery,
    body={"type": "string", "description": "微信推送的 XML"},
    body_media="application/xml",
    errors=[*callback.ERRORS, ServiceUnavailable],
)
async def receive(request: Request) -> HTTPResponse:
    """A message or event: the reply XML, or `success`."""
    body = await request.app.ctx.wechat_callback.handle(query=_query(request), body=await _body(request))
    kind = "text/plain; charset=utf-8" if body == callback.SUCCESS else "application/xml; charset=utf-8"
    return HTTPResponse(body, content_type=kind)

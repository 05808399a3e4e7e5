"""/q/<slug>: a scan of a printed code. A browser gets the current guide page; apps get JSON; .png/.svg are images."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request, redirect

from app.errors import InvalidInput
from app.http import doc
from app.web.views import HTML, guide_html
from qr import views as codes_http
from qr.service import target_path

bp = Blueprint("web_scan", url_prefix="")


@bp.route("/q/<name:str>", methods=["GET", "HEAD"])
@doc(
    tag=codes_http.TAG,
    summary="扫码入口：浏览器打开当前办事指南；Accept: application/json 返回解析结果；.png/.svg 为二维码图片",
    description="图片参数 size（1-40）、margin（0-16）、ec（L/M/Q/H）。"
    "停用、过期、次数用完返回 410 说明页；未知二维码 404。",
    errors=[*codes_http.GONE, InvalidInput],
)
async def scan(request: Request, name: str) -> HTTPResponse:
    """A scan of a printed code, or one of its images."""
    if name.endswith((".png", ".svg")):
        return await codes_http.image(request, name[:-4], name[-3:])
    snap = await codes_http.resolve_scan(request, name)
    if codes_http.wants_json(request):
        return codes_http.json_answer(request, snap)
    if snap.action != "guide":
        # A code printed for an action (e.g. 预约 at a counter) opens that action: always our own route.
        return codes_http.with_visitor(request, redirect(target_path(snap.matter_code, snap.action)))
    settings = request.app.ctx.settings
    in_wechat = "MicroMessenger" in request.headers.get("user-agent", "")
    mini_page = settings.wechat_mini_page if in_wechat else None
    body = await guide_html(
        request,
        snap.matter_code,
        notice=codes_http.scan_notice(snap),
        mini_program={"appid": settings.wechat_mini_appid, "page": mini_page, "slug": snap.slug} if mini_page else None,
    )
    return codes_http.with_visitor(
        request, HTTPResponse(body, content_type=HTML, headers={"Cache-Control": "no-store"})
    )

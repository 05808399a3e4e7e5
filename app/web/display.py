"""The waiting-room screen of a hall: the numbers being called and where, live (public: no personal data)."""

from __future__ import annotations

import asyncio
import time

from sanic import Blueprint, HTTPResponse, Request

from app.booking import errors as be
from app.booking import present, queue
from app.http import doc
from app.jsontext import dumps

bp = Blueprint("web_display")
HTML = "text/html; charset=utf-8"
TAG = "display 叫号大屏"
POLL_SECONDS = 1.0  # how often the stream looks for new calls (any worker appends them to queue_call)
HEARTBEAT_SECONDS = 15.0  # a comment line keeps proxies from closing an idle stream
STREAM_SECONDS = 300.0  # then the stream ends and EventSource reconnects with Last-Event-ID
RETRY_MS = 3000


def _after(request: Request) -> int:
    """The last event the screen has: Last-Event-ID (a reconnect) or ?after= (the page's first connect)."""
    for raw in (request.headers.get("last-event-id"), request.args.get("after")):
        if raw and raw.isdigit() and len(raw) < 19:
            return int(raw)
    return 0


@bp.route("/display/<hall:str>", methods=["GET", "HEAD"])
@doc(tag=TAG, summary="叫号大屏（候号区电视）：正在呼叫的号码与窗口，实时更新并语音播报", errors=[be.HallNotFound])
async def display_page(request: Request, hall: str) -> HTTPResponse:
    """The screen: the latest calls in large type; display.js follows the event stream and speaks."""
    name = await queue.hall_name(hall)
    calls, last = await queue.latest_calls(hall)
    html = request.app.ctx.pages.render(
        "display.html", hall=hall, hall_name=name, calls=[present.announcement_json(c) for c in calls], last=last
    )
    # The strict page policy (app/observe.py), but the screen may be framed by our own pages and has no forms.
    request.ctx.csp_frame_ancestors, request.ctx.csp_form_action = "'self'", "'none'"
    return HTTPResponse(html, content_type=HTML, headers={"Cache-Control": "no-store"})


@bp.get("/display/<hall:str>/events")
@doc(
    tag=TAG,
    summary="叫号事件流（text/event-stream）：call、recall、skip、done；支持 Last-Event-ID 续传",
    errors=[be.HallNotFound],
)
async def display_events(request: Request, hall: str) -> None:
    """Server-sent events of a hall's calls after the last one the screen has, with heartbeats."""
    await queue.hall_name(hall)
    last = _after(request)
    response = await request.respond(
        content_type="text/event-stream; charset=utf-8",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    await response.send(f"retry: {RETRY_MS}\n: {hall}\n\n")
    started = beat = time.monotonic()
    while time.monotonic() - started < STREAM_SECONDS:
        for item in await queue.announcements(hall, after=last):
            data = dumps(present.announcement_json(item)).decode()
            await response.send(f"id: {item.id}\nevent: {item.action}\ndata: {data}\n\n")
            last, beat = item.id, time.monotonic()
        if time.monotonic() - beat >= HEARTBEAT_SECONDS:
            await response.send(": heartbeat\n\n")
            beat = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
    await response.eof()

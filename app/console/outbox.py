"""The notification outbox in the console (admin): filter by status, see why a send failed, retry it."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, HTTPResponse, Request

from app import clock
from app.console.kit import ConsoleForbidden, page, see_other, staff_page
from app.errors import InvalidInput
from app.http import doc, parse_query
from app.notify import service as notify
from app.notify.errors import NotificationNotFound, NotificationNotRetryable
from app.notify.types import DeliveryChannel, NotificationStatus
from app.web.kit import form_data

bp = Blueprint("console_outbox", url_prefix="")
TAG = "console 工作台"
STATUS_NAMES = {"pending": "待发送", "sent": "已发送", "failed": "发送失败", "cancelled": "已取消"}
CHANNEL_NAMES = {
    DeliveryChannel.official_account.value: "公众号模板消息",
    DeliveryChannel.miniprogram.value: "小程序订阅消息",
    DeliveryChannel.sms.value: "短信",
}


class OutboxQuery(BaseModel):
    """Outbox filters, as GET /api/v1/admin/notifications takes them."""

    model_config = ConfigDict(extra="ignore")
    status: NotificationStatus | None = None
    page: int = Field(default=1, ge=1, le=10_000)
    retried: str | None = Field(default=None, max_length=40)


def _minute(at: dt.datetime | None) -> str:
    return "—" if at is None else f"{at.astimezone(clock.SHANGHAI):%Y-%m-%d %H:%M}"


@bp.get("/console/notifications")
@doc(tag=TAG, summary="通知发件箱（按状态筛选；渠道、尝试次数、最近错误、下次尝试时间）", query=OutboxQuery,
     errors=[InvalidInput, ConsoleForbidden])  # fmt: skip
@staff_page("admin")
async def outbox(request: Request) -> HTTPResponse:
    """A page of the outbox, newest first."""
    q = parse_query(request, OutboxQuery)
    return await _render(request, q)


async def _render(request: Request, q: OutboxQuery, *, status: int = 200, error: str | None = None) -> HTTPResponse:
    result = await notify.list_notifications(
        status=q.status.value if q.status else None, kind=None, subject_id=None, page=q.page, page_size=20
    )
    pages = max(1, -(-result.total // result.page_size))
    return page(
        request,
        "outbox.html",
        status=status,
        result=result,
        pages=pages,
        current=q.status.value if q.status else "",
        statuses=STATUS_NAMES,
        channels=CHANNEL_NAMES,
        minute=_minute,
        retried=q.retried,
        error=error,
    )


@bp.post("/console/notifications/<notification_id:str>/retry")
@doc(tag=TAG, summary="重试发送失败的通知（回到待发送，一次性去重键不变）",
     errors=[NotificationNotFound, NotificationNotRetryable, ConsoleForbidden])  # fmt: skip
@staff_page("admin")
async def retry(request: Request, notification_id: str) -> HTTPResponse:
    """Put a failed notification back to pending through the same service as the admin API."""
    form_data(request)
    try:
        view = await notify.retry_failed(notification_id)
    except (NotificationNotFound, NotificationNotRetryable) as exc:
        return await _render(request, OutboxQuery(), status=exc.status, error=exc.message)
    return see_other(request, f"/console/notifications?status=pending&retried={view.id}")

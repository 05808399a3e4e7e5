"""What the official account answers: built from the same services the API uses, in Chinese.

Events: subscribe (welcome, or with a scene the scanned matter's guide), SCAN (the guide, counted as
a WeChat scan of the code), unsubscribe (pushes stop), menu clicks; text: a case number (with its
query code, or alone from a bound subscriber), 预约 / 进度, a matter keyword, anything else help.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from wechatpy import events, messages
from wechatpy.messages import BaseMessage

from app import clock
from app.booking import service as booking_service
from app.booking.service import BookingDeps
from app.cache import LocalCache
from app.cases import present
from app.cases import service as case_service
from app.cases.models import Case
from app.cases.service import CaseDeps
from app.errors import DomainError
from app.matters import service as matter_service
from app.settings import Settings
from app.wechat.callback import Reply
from app.wechat.client import WeChatClient
from auth import accounts
from auth.deps import AuthDeps
from qr import service as qr_service
from qr.analytics import ScanRecorder
from qr.models import ScanChannel

log = logging.getLogger("app.wechat.replies")

MENU_BOOKINGS, MENU_CASES, MENU_SEARCH = "MY_BOOKINGS", "MY_CASES", "SEARCH_HELP"
WELCOME = (
    "欢迎关注张家界市政务服务！“最多跑一次”，我们陪您办成每件事。\n"
    "· 发送事项名称（如“营业执照”），查看办事指南、预约和网上申报入口；\n"
    "· 发送办件编号和查询码（如“ZJJ20261008000001 ABCD2345”），查询办理进度；\n"
    "· 发送“预约”或“进度”，查看您的预约和办件；\n"
    "· 扫描大厅和材料上的事项二维码，随时查看最新指南。"
)
HELP = (
    "您可以发送：\n· 事项名称关键词，如“公积金提取”\n· 办件编号 + 查询码，查询办理进度\n"
    "· “预约”查看我的预约，“进度”查看我的办件"
)
NOT_FOUND_CASE = "未找到该办件，请核对办件编号和查询码（见受理回执）。"
# ASCII boundaries: Chinese characters are word characters to `\b`, and people type "进度ZJJ2026…".
_QUERY_CODE = re.compile(r"(?<![0-9A-Za-z])([2-9A-HJ-NP-Z]{8})(?![0-9A-Za-z])")


def _case_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![0-9A-Za-z])({re.escape(prefix)}\d{{14}})(?![0-9A-Za-z])", re.IGNORECASE)


@dataclass(frozen=True)
class ReplyDeps:
    """What the answers are made from."""

    settings: Settings
    cache: LocalCache
    scans: ScanRecorder
    booking: BookingDeps
    cases: CaseDeps
    wechat: WeChatClient
    auth: AuthDeps


class Responder:
    """Turns one verified message into a reply (text, news articles) or nothing."""

    def __init__(self, deps: ReplyDeps) -> None:
        self.deps = deps
        self.case_no = _case_pattern(deps.settings.case_no_prefix)

    async def __call__(self, message: BaseMessage) -> Reply:
        """The answer to a message."""
        if isinstance(message, events.SubscribeScanEvent):
            await self._subscription(message.source, subscribed=True)
            return await self._guide(message.source, message.scene_id) or WELCOME
        if isinstance(message, events.SubscribeEvent):
            await self._subscription(message.source, subscribed=True)
            return WELCOME + await self._sign_in_hint(message.source)
        if isinstance(message, events.ScanEvent):
            return await self._guide(message.source, message.scene_id)
        if isinstance(message, events.UnsubscribeEvent):
            await self._subscription(message.source, subscribed=False)
            return None
        if isinstance(message, events.ClickEvent):
            return await self._click(message.source, message.key)
        if isinstance(message, messages.TextMessage):
            return await self._text(message.source, (message.content or "").strip()[:200])
        return None  # VIEW, location, pictures, unknown events: nothing to say

    # ------------------------------------------------------------ subscribers

    async def _subscription(self, openid: str, *, subscribed: bool) -> None:
        """Record the (un)subscribe with the identity service (unsubscribed: template messages stop)."""
        await accounts.set_subscription(
            self.deps.auth, appid=self.deps.settings.wechat_mp_appid, openid=openid, subscribed=subscribed
        )

    async def _citizen(self, openid: str) -> uuid.UUID | None:
        mp = self.deps.settings.wechat_mp_appid
        return await accounts.citizen_for_openid(self.deps.auth, appid=mp, openid=openid)

    async def _sign_in_hint(self, openid: str) -> str:
        if await self._citizen(openid) is not None:
            return ""
        return f"\n\n首次使用请先登录，办件进度将推送到本公众号：{self._sign_in_url()}"

    def _sign_in_url(self) -> str:
        return f"{self.deps.settings.base_url}/api/v1/auth/wechat/authorize?next=/m"

    # ------------------------------------------------------------ guides

    async def _guide(self, openid: str, slug: str | None) -> Reply:
        """The scanned code's matter as a news reply, counted as a WeChat scan."""
        if not slug:
            return None
        settings = self.deps.settings
        try:
            snap = await qr_service.resolve(slug, cache=self.deps.cache, base_url=settings.base_url)
        except DomainError as exc:
            self.deps.scans.record_invalid(exc.code.lower())
            return f"该二维码已失效（{exc.message}）。请发送事项名称查找最新办事指南。"
        visitor = "w:" + hashlib.blake2b(openid.encode(), digest_size=10).hexdigest()
        self.deps.scans.record(slug, ScanChannel.wechat, visitor)
        s = snap.summary
        return [
            {
                "title": s.get("name", ""),
                "description": f"{s.get('department_name', '')} · {s.get('visits_label', '')}。点击查看办事指南、"
                "所需材料，预约或网上申报。",
                "url": f"{settings.base_url}{qr_service.target_path(snap.matter_code, snap.action)}",
                "image": "",
            }
        ]

    async def _search(self, keyword: str) -> Reply:
        page = await matter_service.search_matters(q=keyword, page=1, page_size=3)
        if not page.items:
            return f"没有找到与“{keyword}”相关的事项。\n\n{HELP}"
        base = self.deps.settings.base_url
        return [
            {
                "title": m["name"],
                "description": f"{m['department_name']} · {m['visits_label']}",
                "url": f"{base}/m/{m['code']}",
                "image": "",
            }
            for m in page.items
        ]

    # ------------------------------------------------------------ text and menu

    async def _click(self, openid: str, key: str | None) -> Reply:
        if key == MENU_BOOKINGS:
            return await self._bookings(openid)
        if key == MENU_CASES:
            return await self._cases(openid)
        if key == MENU_SEARCH:
            return HELP
        return None

    async def _text(self, openid: str, content: str) -> Reply:
        if not content:
            return HELP
        number = self.case_no.search(content)
        if number:
            code = _QUERY_CODE.search(content.upper().replace(number.group(1).upper(), " "))
            return await self._case(openid, number.group(1).upper(), code.group(1) if code else None)
        if content in {"预约", "我的预约"}:
            return await self._bookings(openid)
        if content in {"进度", "办件", "我的办件", "查询进度"}:
            return await self._cases(openid)
        if content in {"帮助", "help", "?", "？", "你好", "您好"}:
            return HELP
        return await self._search(content[:50])

    async def _case(self, openid: str, case_no: str, code: str | None) -> str:
        deps = self.deps.cases
        try:
            if code:
                view = await case_service.query_progress(
                    deps, client=f"wx:{openid}", case_no=case_no, query_code=code, code=None
                )
            else:
                citizen = await self._citizen(openid)
                case = await Case.get_or_none(case_no=case_no)
                if citizen is None or case is None or case.citizen_id != citizen:
                    return NOT_FOUND_CASE  # the same answer as an unknown number
                view = await present.case_view(deps.cipher, case, audience="public")
        except DomainError as exc:
            return NOT_FOUND_CASE if exc.status == 404 else exc.message
        return _case_text(view)

    async def _bookings(self, openid: str) -> str:
        citizen = await self._citizen(openid)
        if citizen is None:
            return f"请先登录后查看您的预约：{self._sign_in_url()}"
        page = await booking_service.list_bookings(
            self.deps.booking, citizen_id=str(citizen), status="booked", page=1, page_size=5
        )
        if not page["items"]:
            return "您当前没有待办理的预约。发送事项名称可查看是否支持预约。"
        lines = [
            f"· {b['matter']['name']}：{b['starts_at'][5:16].replace('T', ' ')}–{b['ends_at'][11:16]} "
            f"{b['hall'].get('name', '')}"
            for b in page["items"]
        ]
        return "您的预约：\n" + "\n".join(lines) + "\n请按时前往，凭预约码在窗口扫码签到。"

    async def _cases(self, openid: str) -> str:
        citizen = await self._citizen(openid)
        if citizen is None:
            return f"请先登录后查看您的办件：{self._sign_in_url()}"
        rows = await Case.filter(citizen_id=citizen).order_by("-submitted_at").limit(5)
        if not rows:
            return "您还没有网上申报的办件。"
        today = clock.today()
        lines = []
        for row in rows:
            view = present.summary(row, today)
            when = (view["next_step"] or {}).get("expected_by")
            lines.append(
                f"· {row.case_no} {row.matter_name}：{view['status_name']}" + (f"，预计 {when} 前" if when else "")
            )
        return "您的办件：\n" + "\n".join(lines)


def _case_text(view: dict[str, Any]) -> str:
    lines = [f"办件 {view['case_no']}（{view['matter']['name']}）", f"当前状态：{view['status_name']}"]
    step = view.get("next_step")
    if step:
        by = f"，预计 {step['expected_by']} 前" if step.get("expected_by") else ""
        lines.append(f"下一步：{step['name']}{by}")
    if view.get("timeline"):
        last = view["timeline"][-1]
        lines.append(f"最新进展（{last['at'][5:16].replace('T', ' ')}）：{last['text']}")
    return "\n".join(lines)

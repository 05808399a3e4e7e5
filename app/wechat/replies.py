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
from typing import TYPE_CHECKING

from app import clock
from app.booking import service as booking_service
from app.bootstrap import Services
from app.cases import service as case_service
from app.cases.types import BundleView, CaseSummary, TimelineEntry
from app.clock import SHANGHAI
from app.errors import DomainError
from app.matters import service as matter_service
from app.wechat.callback import Reply
from auth import accounts
from qr import service as qr_service
from qr.types import ScanChannel

if TYPE_CHECKING:
    from wechatpy.messages import BaseMessage

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


class Responder:
    """Turns one verified message into a reply (text, news articles) or nothing."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.case_no = _case_pattern(services.settings.case_no_prefix)

    async def __call__(self, message: BaseMessage) -> Reply:
        """The answer to a message."""
        from wechatpy import events, messages  # imported with the first message (see app.wechat.callback)

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
            self.services.auth, appid=self.services.settings.wechat_mp_appid, openid=openid, subscribed=subscribed
        )

    async def _citizen(self, openid: str) -> uuid.UUID | None:
        mp = self.services.settings.wechat_mp_appid
        return await accounts.citizen_for_openid(self.services.auth, appid=mp, openid=openid)

    async def _sign_in_hint(self, openid: str) -> str:
        if await self._citizen(openid) is not None:
            return ""
        return f"\n\n首次使用请先登录，办件进度将推送到本公众号：{self._sign_in_url()}"

    def _sign_in_url(self) -> str:
        return f"{self.services.settings.base_url}/api/v1/auth/wechat/authorize?next=/m"

    # ------------------------------------------------------------ guides

    async def _guide(self, openid: str, slug: str | None) -> Reply:
        """The scanned code's matter as a news reply, counted as a WeChat scan."""
        if not slug:
            return None
        settings = self.services.settings
        try:
            snap = await qr_service.resolve(self.services.codes, slug=slug)
        except DomainError as exc:
            self.services.scans.record_invalid(exc.code.lower())
            return f"该二维码已失效（{exc.message}）。请发送事项名称查找最新办事指南。"
        visitor = "w:" + hashlib.blake2b(openid.encode(), digest_size=10).hexdigest()
        self.services.scans.record(slug, ScanChannel.wechat, visitor)
        s = snap.summary
        assert s is not None  # resolve() answers only codes that open a matter
        return [
            {
                "title": s.name,
                "description": f"{s.department_name} · {s.visits_label}。点击查看办事指南、所需材料，预约或网上申报。",
                "url": f"{settings.base_url}{qr_service.target_path(snap.matter_code, snap.action)}",
                "image": "",
            }
        ]

    async def _search(self, keyword: str) -> Reply:
        page = await matter_service.search_matters(q=keyword, page=1, page_size=3)
        if not page.items:
            return f"没有找到与“{keyword}”相关的事项。\n\n{HELP}"
        base = self.services.settings.base_url
        return [
            {
                "title": m.name,
                "description": f"{m.department_name} · {m.visits_label}",
                "url": f"{base}/m/{m.code}",
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
        deps = self.services.cases
        try:
            if code:
                view = await case_service.query_progress(
                    deps, client=f"wx:{openid}", case_no=case_no, query_code=code, code=None
                )
                return _case_text(view.summary, view.timeline, view.bundle)
            citizen = await self._citizen(openid)
            if citizen is None:
                return NOT_FOUND_CASE  # the same answer as an unknown number
            # The API's read rule: the applicant or agent, or the principal (被代办人) with a verified identity.
            case = await case_service.case_detail(deps, principal=citizen, case_no=case_no)
            return _case_text(case.summary, case.timeline, case.bundle)
        except DomainError as exc:
            return NOT_FOUND_CASE if exc.status == 404 else exc.message

    async def _bookings(self, openid: str) -> str:
        citizen = await self._citizen(openid)
        if citizen is None:
            return f"请先登录后查看您的预约：{self._sign_in_url()}"
        page = await booking_service.list_bookings(
            self.services.booking, citizen_id=str(citizen), status="booked", page=1, page_size=5
        )
        if not page.items:
            return "您当前没有待办理的预约。发送事项名称可查看是否支持预约。"
        lines = [
            f"· {b.matter_name}：{b.starts_at.astimezone(SHANGHAI):%m-%d %H:%M}–"
            f"{b.ends_at.astimezone(SHANGHAI):%H:%M} {b.hall.name}"
            for b in page.items
        ]
        return "您的预约：\n" + "\n".join(lines) + "\n请按时前往，凭预约码在窗口扫码签到。"

    async def _cases(self, openid: str) -> str:
        citizen = await self._citizen(openid)
        if citizen is None:
            return f"请先登录后查看您的办件：{self._sign_in_url()}"
        page = await case_service.my_cases(self.services.cases, principal=citizen, page=1, page_size=5)
        if not page.items:
            return "您还没有网上申报的办件。"
        lines = []
        for case in page.items:
            when = case.next_step.expected_by if case.next_step else None
            by = f"，预计 {when:%Y-%m-%d} 前" if when else ""
            lines.append(f"· {case.case_no} {case.matter_name}：{case.status_name}{by}")
        return "您的办件：\n" + "\n".join(lines)


def _case_text(case: CaseSummary, timeline: tuple[TimelineEntry, ...], bundle: BundleView | None = None) -> str:
    """A case's status, next step and latest event as a WeChat text (times in Asia/Shanghai).

    A bundle (一件事) answers for the whole: the stage it is in, each department's part, what it waits for.
    """
    lines = [f"办件 {case.case_no}（{case.matter_name}）", f"当前状态：{case.status_name}"]
    step = case.next_step
    if bundle is not None and bundle.current_stage is not None and case.status.value in {"accepted", "under_review"}:
        stage = bundle.stages[bundle.current_stage - 1]
        lines.append(f"共 {len(bundle.stages)} 个阶段，正在办理第 {stage.no} 阶段「{stage.name}」：")
        lines += [f"· {p.matter_name}：{p.status_name}" for p in stage.parts]
        lines += [f"待办：{h}" for h in bundle.holding if "补正" in h]
        if bundle.expected_on:
            lines.append(f"预计 {bundle.expected_on:%Y-%m-%d} 前全部办结")
        step = None
    if step:
        by = f"，预计 {step.expected_by:%Y-%m-%d} 前" if step.expected_by else ""
        lines.append(f"下一步：{step.name}{by}")
    if timeline:
        last = timeline[-1]
        lines.append(f"最新进展（{last.at.astimezone(clock.SHANGHAI):%m-%d %H:%M}）：{last.text}")
    return "\n".join(lines)

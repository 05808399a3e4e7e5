"""The administrator's catalogue console in real headless Chromium: edit a guide draft, see the difference,
publish, and the public guide page shows the change; axe-core on every console page visited.

A real `python -m app run` with the demo catalogue; an admin made with the CLI, whose access token is put
in the console's session cookie (how the console signs in is another test's business).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import h5
from tests.e2e.conftest import Server
from tests.fakes.wechat import FakeWeChat

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not h5.CHROMIUM.exists(), reason=f"{h5.CHROMIUM} not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) not installed")
pytest.importorskip("axe_playwright_python", reason="axe-playwright-python not installed")
expect = sync_api.expect
expect.set_options(timeout=15_000)

MATTER = "4308-XK-SS-001"  # demo 营业执照设立登记
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[h5.Service]:
    """`python -m app run` with the demo catalogue (one process for the module)."""
    tmp = tmp_path_factory.mktemp("console-catalogue")
    database_url = f"sqlite://{tmp / 'e2e.sqlite3'}"
    with FakeWeChat() as fake:
        server = Server(
            {"APP_ENV": "development", "LOAD_DEMO": "true", "SMS_SENDER": "console", "REALNAME_VERIFIER": "dev",
             "DATABASE_URL": database_url, "ACCESS_LOG": "false", **h5.wechat_env(fake)},
            tmp / "server.log",
        )  # fmt: skip
        try:
            server.wait_ready()
            yield h5.Service(server, fake, database_url)
        finally:
            server.stop()


@pytest.fixture
def admin_page(service: h5.Service) -> Iterator[Any]:
    """A desktop tab signed in to the console as an administrator; page errors fail the test."""
    token = service.staff("admin")["Authorization"].split(" ", 1)[1]
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(h5.CHROMIUM), headless=True, args=h5.CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
            context.set_default_timeout(15_000)
            context.on("weberror", lambda e: errors.append(str(e.error)))
            context.add_cookies([{"name": "zd_st", "value": token, "url": service.url, "httpOnly": True,
                                  "sameSite": "Strict"}])  # fmt: skip
            yield context.new_page()
        finally:
            browser.close()
    assert errors == [], errors


def test_admin_edits_a_draft_sees_the_diff_publishes_and_the_public_guide_shows_it(
    service: h5.Service, admin_page: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    journey = h5.Journey.in_dir(tmp_path, request.node.name)
    journey.watch(admin_page)
    page, url = admin_page, service.url
    new_summary = f"材料齐全当场办结（{secrets.token_hex(3)}）"

    journey.visit(page, url + "/console", "console home")
    page.get_by_role("link", name="事项目录管理").click()
    page.get_by_label("事项名称或编码").fill(MATTER)
    page.get_by_role("button", name="查找").click()
    journey.check(page, "matters")
    page.get_by_role("link", name="营业执照设立登记").click()
    journey.check(page, "matter")
    page.get_by_role("link", name="新建草稿（从已发布版本开始）").click()
    journey.check(page, "draft editor")

    # A mistake first: the error is said next to its field and what was typed stays.
    page.get_by_label("承诺时限（工作日）").fill("三天")
    page.get_by_label("简介").fill(new_summary)
    page.get_by_role("button", name="保存草稿并查看差异").click()
    expect(page.locator("#promised_limit_days-err")).to_be_visible()
    expect(page.get_by_label("承诺时限（工作日）")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("简介")).to_have_value(new_summary)
    journey.check(page, "draft editor with an error")
    page.get_by_label("承诺时限（工作日）").fill("1")
    page.locator("input[name=m_name]").last.fill("授权委托书")  # the empty row at the end adds a material
    page.get_by_role("button", name="保存草稿并查看差异").click()

    expect(page.get_by_role("heading", name="草稿与已发布版本的差异")).to_be_visible()
    summary = page.locator('[data-field="summary"]')
    expect(summary).to_contain_text(new_summary)
    expect(page.locator('[data-field="materials"] .add-row')).to_have_text("授权委托书")
    expect(page.locator('[data-field="name"]')).to_have_count(0)
    journey.check(page, "diff")
    page.get_by_role("button", name="发布").click()
    expect(page.get_by_role("status")).to_contain_text("已发布")
    journey.check(page, "published")

    page.get_by_role("link", name="查看公众办事指南").click()
    expect(page.get_by_text(new_summary)).to_be_visible()
    expect(page.get_by_text("授权委托书").first).to_be_visible()

    # The other administration pages of this part pass axe too.
    journey.visit(page, url + "/console/codes", "codes")
    page.locator("table a").first.click()
    journey.check(page, "one code")
    journey.visit(page, url + "/console/halls", "halls")
    journey.visit(page, url + "/console/halls/main", "hall main")
    journey.assert_accessible()

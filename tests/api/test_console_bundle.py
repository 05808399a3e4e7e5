"""一件事 in the reviewer's workbench through the pages: a part in its department's queue with its bundle's
number, name and stage; a part's page naming its bundle and offering a department's correction (not accept,
deliver or complete); the lead department's bundle page with every stage, part, hold-up, cap and the merged
timeline; overdue parts and bundles in the overdue view.

The world is tests/api/test_bundles.py's two-stage bundle (A in scjgj, then B in gjjzx and C in swj), here with
a cap over both stages. The fake clock starts on Wednesday 2026-09-30 (National Day follows; Saturday 10-10 is a
调休 working day). Staff sign in to the console by the session cookie holding a minted access token.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from app.matters import service as matters
from auth.logins import issue_for_staff
from tests.api import case_helpers as h
from tests.api.test_bundles import FORM, ID, apply, bundle_entry, catalogue, ok
from tests.api.test_console_review import post_form, row

CAP = {"name": "两个阶段合计", "stages": [1, 2], "days": 3}


def forms(html: str) -> list[str]:
    """The actions a case page offers, in order."""
    return re.findall(r'name="action" value="([a-z_]+)"', html)


def stage(html: str, no: int) -> str:
    """One stage's block of a bundle page."""
    return re.search(rf'<div class="stage" data-stage="{no}".*?</div>', html, re.S).group(0)


@pytest.fixture
async def world(fake_clock, client, make_citizen, make_staff, auth_deps):
    entry = bundle_entry()
    entry["bundle"] = {**entry["bundle"], "cap": CAP}
    await matters.import_catalogue(client.sanic_app.ctx.catalogue, data=catalogue(entry))
    phone = "13912340001"
    citizen, headers = await make_citizen(phone=phone)
    staff = {
        name: (await make_staff("reviewer", departments=[dep]))[0]
        for name, dep in (("lead", "scjgj"), ("fund", "gjjzx"), ("tax", "swj"))
    }
    w = SimpleNamespace(client=client, clock=fake_clock, citizen=citizen, headers=headers, staff=staff)

    async def later(**delta) -> None:
        """Move the clock, and issue everyone fresh tokens (they are short)."""
        fake_clock.advance(**delta)
        w.headers = (await make_citizen(phone=phone))[1]
        for name, member in staff.items():
            pair = await issue_for_staff(auth_deps, staff=member)
            setattr(w, name, {"Authorization": f"Bearer {pair.access_token}"})

    async def console(name: str) -> None:
        """Sign this staff member in to the console (the client's session cookie)."""
        pair = await issue_for_staff(auth_deps, staff=staff[name])
        client.cookies.set("zd_st", pair.access_token)

    w.later, w.console = later, console
    await later()
    return w


async def to_stage_two(w) -> tuple[str, str, str, str]:
    """An application accepted on 09-30 whose stage 1 is approved on 10-08: bundle, A, B, C numbers."""
    no = (await apply(w))["case_no"]
    await ok(await h.act(w.client, w.lead, no, "accept"))
    await w.later(days=8)
    await ok(await h.act(w.client, w.lead, f"{no}-01", "start_review"))
    await ok(await h.act(w.client, w.lead, f"{no}-01", "approve"))
    return no, f"{no}-01", f"{no}-02", f"{no}-03"


async def queue(w, view: str = "all") -> str:
    _, page = await w.client.get(f"/console/cases?view={view}")
    assert page.status == 200, page.text
    return page.text


async def test_each_department_s_queue_shows_its_own_parts_with_their_bundle(world):
    w = world
    no, a, b, c = await to_stage_two(w)

    await w.console("fund")
    fund = await queue(w)
    part = row(fund, b)
    assert "一件事·分件" in part and "住房公积金单位缴存登记" in part
    assert f'data-bundle="{no}"' in part and "属于「测试开办一件事」" in part and "第 2 阶段" in part
    assert f'href="/console/cases/{b}"' in part
    # Only its own part: not swj's part of the same stage, not scjgj's, not the bundle.
    assert f'data-case="{c}"' not in fund and f'data-case="{a}"' not in fund and f'data-case="{no}"' not in fund
    assert "共 1 件" in fund

    await w.console("tax")
    tax = await queue(w)
    assert f'data-case="{c}"' in tax and f'data-case="{b}"' not in tax and "发票领用" in row(tax, c)

    await w.console("lead")
    lead = await queue(w)
    whole = row(lead, no)
    assert '<span class="badge kind">一件事</span>' in whole and "测试开办一件事" in whole
    assert "第 1 阶段" in row(lead, a) and f'data-case="{b}"' not in lead
    # Another department's part is out of scope even by its address.
    _, other = await w.client.get(f"/console/cases/{b}")
    assert other.status == 403


async def test_a_part_s_page_names_its_bundle_and_asks_for_a_correction(world):
    w = world
    no, _, b, _ = await to_stage_two(w)
    await w.console("fund")
    path = f"/console/cases/{b}"
    _, page = await w.client.get(path)
    assert page.status == 200, page.text
    panel = re.search(r'<section class="card" aria-labelledby="part-of".*?</section>', page.text, re.S).group(0)
    assert "测试开办一件事（4308-YJS-TEST-001）" in panel and no in panel and "scjgj" in panel
    assert "第 2 阶段：后续登记" in panel
    assert f'href="/console/cases/{no}"' not in panel  # gjjzx cannot open scjgj's bundle: no dead link
    # A part is reviewed, never accepted, delivered or completed on its own.
    assert forms(page.text) == ["request_correction", "start_review", "suspend"]
    correction = re.search(r'<form [^>]*aria-labelledby="act-request_correction".*?</form>', page.text, re.S).group(0)
    offered = re.findall(r'name="materials" value="([^"]+)"', correction)
    assert sorted(offered) == sorted([FORM, ID])  # the bundle's materials that serve this member, no others
    assert 'name="reason"' in correction

    # Without a reason: said next to the field, nothing moves.
    bad = await post_form(w.client, f"{path}/actions", path, {"action": "request_correction", "materials": [ID]})
    assert bad.status == 422 and 'id="request_correction-reason-err"' in bad.text and "请填写原因" in bad.text
    assert (await h.staff_case(w.client, w.fund, b))["status"] == "accepted"
    # An action a part does not have is refused on the page too.
    refused = await post_form(w.client, f"{path}/actions", path, {"action": "accept"})
    assert refused.status == 409 and 'role="alert"' in refused.text

    done = await post_form(w.client, f"{path}/actions", path,
                           {"action": "request_correction", "reason": "身份证不清晰", "materials": [ID]})  # fmt: skip
    assert done.status == 303 and done.headers["location"] == f"{path}?done=request_correction"
    part = await h.staff_case(w.client, w.fund, b)
    assert part["status"] == "correction_required" and part["correction"]["materials"] == [ID]
    _, after = await w.client.get(done.headers["location"])
    assert "已执行：部门要求补正（暂停计时）" in after.text and forms(after.text) == []
    assert f"<dd data-correction>{ID}（原因：身份证不清晰）</dd>" in after.text

    # The lead's bundle page says what holds it up.
    await w.console("lead")
    _, whole = await w.client.get(f"/console/cases/{no}")
    holding = re.search(r'<ul class="holding">.*?</ul>', whole.text, re.S).group(0)
    assert f"住房公积金单位缴存登记（{b}）：等待申请人补正材料" in holding
    assert f"发票领用（{no}-03）" in holding


async def test_the_lead_s_bundle_page_shows_stages_parts_cap_and_one_timeline(world):
    w = world
    no, a, b, c = await to_stage_two(w)
    await w.console("lead")
    _, page = await w.client.get(f"/console/cases/{no}")
    assert page.status == 200, page.text
    html = page.text
    assert '<span class="badge kind">一件事</span>' in html
    assert "当前阶段</dt><dd>第 2 阶段：后续登记" in html
    assert "预计整体办结</dt><dd>2026-10-10" in html
    assert "两个阶段合计</dt><dd data-cap>已用 1 / 3 个工作日" in html

    one = stage(html, 1)
    assert 'data-state="done"' in one and "已完成" in one and "已超期" not in one
    assert "开始</dt><dd>2026-09-30" in one and "承诺完成</dt><dd>2026-10-08" in one
    assert "完成</dt><dd>2026-10-08" in one and "1 / 1 个工作日" in one
    assert f'<a href="/console/cases/{a}">{a}</a>' in one  # scjgj's own part: linked
    two = stage(html, 2)
    assert 'data-state="running"' in two and "办理中" in two and "承诺完成</dt><dd>2026-10-10" in two
    part_b = re.search(rf'<tr data-part="{b}">.*?</tr>', two, re.S).group(0)
    assert "gjjzx" in part_b and "已受理" in part_b and "2026-10-10" in part_b and "正常" in part_b
    assert f'href="/console/cases/{b}"' not in part_b  # another department's part: named, not linked
    assert f'data-part="{c}"' in two and "swj" in two

    # The merged timeline names each step's source.
    timeline = html[html.index("办理时间线") :]
    assert '<th scope="col">来源与环节</th>' in timeline
    assert f"营业执照设立登记（{a}）" in timeline and f"住房公积金单位缴存登记（{b}）" in timeline
    assert "一件事（整体）" in timeline
    # The bundle is not reviewed as a whole.
    assert forms(html) == []
    # The lead's own part links back to the bundle it belongs to.
    _, own = await w.client.get(f"/console/cases/{a}")
    assert f'<a href="/console/cases/{no}">{no}</a>' in own.text and "第 1 阶段：设立登记" in own.text

    # Both departments decide: the bundle is approved, the lead delivers and completes it from the page.
    for headers, part in ((w.fund, b), (w.tax, c)):
        await ok(await h.act(w.client, headers, part, "start_review"))
        await ok(await h.act(w.client, headers, part, "approve"))
    path = f"/console/cases/{no}"
    _, approved = await w.client.get(path)
    assert forms(approved.text) == ["deliver"] and 'data-state="done"' in stage(approved.text, 2)
    assert "等待统一送达结果" in approved.text
    done = await post_form(w.client, f"{path}/actions", path, {"action": "deliver", "tracking_no": "EA123456789CN"})
    assert done.status == 303
    done = await post_form(w.client, f"{path}/actions", path, {"action": "complete"})
    assert done.status == 303
    assert (await h.staff_case(w.client, w.fund, b))["status"] == "completed"


async def test_overdue_parts_and_bundles_are_in_the_overdue_view_and_the_stage_is_flagged(world):
    w = world
    no = (await apply(w))["case_no"]
    await ok(await h.act(w.client, w.lead, no, "accept"))
    await w.later(days=12)  # Monday 10-12: stage 1 was due 10-08, the whole on 10-10
    await w.console("lead")
    overdue = await queue(w, "overdue")
    assert "已超期" in row(overdue, f"{no}-01") and "已超期" in row(overdue, no)
    _, page = await w.client.get(f"/console/cases/{no}")
    one = stage(page.text, 1)
    assert 'data-state="running"' in one and '<span class="badge red">已超期</span>' in one
    assert "超出上限" in page.text  # 4 working days of a 3-day cap
    # Another department's overdue view holds none of it.
    await w.console("fund")
    assert no not in await queue(w, "overdue")

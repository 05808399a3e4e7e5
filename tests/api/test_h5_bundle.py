"""一件事 in the citizen's pages: the guide's stages and shared materials (plain and elder), one application
through the apply page, the case page with its stages, parts and a department's correction answered on the
part's page, my cases, and the anonymous progress page with the merged timeline."""

from __future__ import annotations

import html
import re

import pytest

from app.cases.models import Case
from app.matters import service as matters
from tests.api.test_bundles import BUNDLE, ID, RULES, A, B, C, bundle_entry, catalogue
from tests.api.test_h5_account import _csrf, _sign_in
from tests.api.test_h5_apply import JPG, NO_FILE, PDF, open_form, post, typed

CAPPED = "4308-YJS-TEST-009"


def text_of(r) -> str:
    """The page's text with tags and entities gone, spaces squeezed (for reading order and words)."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", r.text)))


@pytest.fixture
def settings(base_settings, tmp_path):
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    return base_settings.replace(upload_dir=upload_dir, upload_max_bytes=64 * 1024)


@pytest.fixture
async def seeded(client):
    capped = bundle_entry(
        code=CAPPED,
        name="带时限上限的一件事",
        bundle={
            "stages": [
                {"name": "设立登记", "matters": [A], "promised_days": 1},
                {"name": "后续登记", "matters": [B, C], "promised_days": 2},
            ],
            "cap": {"name": "前两个阶段", "stages": [1, 2], "days": 3},
        },
    )
    await matters.import_catalogue(client.sanic_app.ctx.catalogue, data=catalogue(bundle_entry(), capped))
    return client


@pytest.fixture
async def citizen(seeded, app):
    done = await _sign_in(seeded, app, phone="13900006666", next_path=f"/m/{BUNDLE}/apply")
    assert done.status == 303
    return seeded


@pytest.fixture
async def staff(make_staff):
    return {name: (await make_staff("reviewer", departments=[dep]))[1]
            for name, dep in (("lead", "scjgj"), ("fund", "gjjzx"), ("tax", "swj"))}  # fmt: skip


async def act(client, headers, case_no: str, action: str, **args) -> None:
    _, r = await client.post(f"/api/v1/staff/cases/{case_no}/actions", json={"action": action, **args},
                             headers=headers)  # fmt: skip
    assert r.status_code == 200, r.text


async def apply(client) -> tuple[str, str]:
    """Apply through the page, each material once: (case number, query code from the receipt)."""
    page = await open_form(client, BUNDLE)
    files = [("file-0", ("申请表.pdf", PDF, "application/pdf")), ("file-1", ("身份证.jpg", JPG, "image/jpeg")),
             ("file-2", NO_FILE)]  # fmt: skip
    r = await post(client, f"/m/{BUNDLE}/apply", page, typed(), files)
    assert r.status == 303, r.text[:500]
    case_no = re.fullmatch(r"/m/me/cases/(ZJJ\d+)/receipt", r.headers["location"]).group(1)
    _, receipt = await client.get(r.headers["location"])
    assert receipt.status == 200
    code = re.search(r'id="query-code">([2-9A-Z]{8})<', receipt.text).group(1)
    words = text_of(receipt)
    assert case_no in words and "一件事" in words and "设立登记（1 个工作日）" in words
    return case_no, code


# ---------------------------------------------------------------- the guide


async def test_the_guide_shows_the_stages_their_members_and_what_each_material_serves(seeded):
    _, r = await seeded.get(f"/m/{BUNDLE}")
    assert r.status == 200
    words = text_of(r)
    assert "一件事（主题服务）" in words and "牵头部门市市场监督管理局" in words
    # stages in order, each member a link to its own guide, with its department and the promised days
    first, second = words.index("第 1 阶段：设立登记"), words.index("第 2 阶段：后续登记")
    assert first < second
    assert re.search(rf'<a href="/m/{A}">[^<]+</a>', r.text)
    assert f'<a href="/m/{B}">住房公积金单位缴存登记</a>' in r.text and f'<a href="/m/{C}">发票领用</a>' in r.text
    assert "承诺 1 个工作日" in words and "承诺 2 个工作日" in words and "合计承诺时限：3 个工作日" in words
    assert "税务局" in words[second:]
    assert 'id="bundle-cap"' not in r.text
    # the one materials list says which members each material serves
    assert re.search(r"用于：[^<]*、住房公积金单位缴存登记、发票领用<", r.text)
    assert "用于：住房公积金单位缴存登记" not in r.text  # the form serves all three, A first
    rules_row = r.text[r.text.index(RULES) :]
    assert re.match(r"[^<]*(<[^>]*>[^<]*)*?用于：[^、<]+</div>", rules_row)  # 公司章程 serves A only


async def test_the_elder_rendition_and_the_cap_are_right_too(seeded):
    _, capped = await seeded.get(f"/m/{CAPPED}")
    assert "时限上限：前两个阶段 ≤ 3 个工作日" in text_of(capped)
    await seeded.post("/m/elder", data={"next": f"/m/{BUNDLE}"})
    _, elder = await seeded.get(f"/m/{BUNDLE}")
    assert 'class="elder"' in elder.text
    words = text_of(elder)
    assert "第 2 阶段：后续登记" in words and "发票领用" in words and "用于：" in words


# ---------------------------------------------------------------- applying, the case, corrections, progress


async def test_the_form_asks_for_each_material_once_saying_what_it_serves(citizen):
    text = html.unescape((await open_form(citizen, BUNDLE)).text)
    assert text.count('<fieldset class="mat"') == 3
    assert f"{ID} <span" in text and "用于：营业执照设立登记、住房公积金单位缴存登记" in text


async def test_one_application_with_each_material_once(citizen):
    case_no, _ = await apply(citizen)
    case = await Case.get(case_no=case_no)
    assert case.kind == "bundle"
    _, r = await citizen.get(f"/m/me/cases/{case_no}")
    words = text_of(r)
    assert r.status == 200 and "第 1 阶段：设立登记 未开始" in words and "第 2 阶段：后续登记 未开始" in words
    assert words.count("申请表.pdf") == 1 and words.count("身份证.jpg") == 1
    _, mine = await citizen.get("/m/me/cases")
    assert re.search(rf'href="/m/me/cases/{case_no}">[^<]+</a> <span class="badge yjs">一件事</span>', mine.text)


async def test_the_case_page_follows_the_stages_and_a_correction_is_answered_on_the_part(citizen, staff):
    case_no, code = await apply(citizen)
    await act(citizen, staff["lead"], case_no, "accept")
    part_a = f"{case_no}-01"
    _, r = await citizen.get(f"/m/me/cases/{case_no}")
    words = text_of(r)
    assert "第 1 阶段：设立登记 办理中" in words and f'href="/m/me/cases/{part_a}"' in r.text
    assert "市场监督管理局" in words and 'id="holding"' in r.text and 'id="expected-on"' in r.text

    await act(citizen, staff["lead"], part_a, "start_review")
    await act(citizen, staff["lead"], part_a, "approve")
    part_b, part_c = f"{case_no}-02", f"{case_no}-03"
    _, r = await citizen.get(f"/m/me/cases/{case_no}")
    words = text_of(r)
    assert "第 1 阶段：设立登记 已完成" in words and "第 2 阶段：后续登记 办理中" in words
    stage2 = r.text[r.text.index('id="stage-2"') :]
    assert part_b in stage2 and part_c in stage2 and "税务局" in stage2 and "住房公积金" in stage2
    assert "应于" in stage2  # each part's due date

    # gjjzx asks for a clearer ID card: the bundle's page says so up top, with the way to the part's form
    await act(citizen, staff["fund"], part_b, "request_correction", reason="身份证不清晰", materials=[ID])
    _, r = await citizen.get(f"/m/me/cases/{case_no}")
    alert = re.search(rf'<div class="alert" role="alert" id="correct-{part_b}">(.*?)</div>', r.text, re.S)
    assert alert and "身份证不清晰" in alert.group(1) and f'href="/m/me/cases/{part_b}#correction"' in alert.group(1)
    assert r.text.index("correct-" + part_b) < r.text.index('id="stages"')
    assert "待补正材料" in r.text[r.text.index(f'id="part-{part_b}"') :]  # the part's status in its stage

    # the part's own page: which bundle it belongs to, and the usual correction form
    _, part = await citizen.get(f"/m/me/cases/{part_b}")
    assert part.status == 200
    assert re.search(rf'id="part-of">本办件是「<a href="/m/me/cases/{case_no}">测试开办一件事</a>」', part.text)
    assert f'action="/m/me/cases/{part_b}/resubmit"' in part.text
    # what the form's "save" (and its script, on choosing a file) posts: back to the form on the same page
    saved = await post(citizen, f"/m/me/cases/{part_b}/resubmit/upload", part, {"op": "save"},
                       [("file-0", ("清晰.jpg", JPG, "image/jpeg"))])  # fmt: skip
    assert saved.status == 303 and saved.headers["location"] == f"/m/me/cases/{part_b}?done=saved#correction"
    _, part = await citizen.get(f"/m/me/cases/{part_b}")
    assert "清晰.jpg" in part.text
    done = await post(citizen, f"/m/me/cases/{part_b}/resubmit", part, {"op": "submit"}, [("file-0", NO_FILE)])
    assert done.status == 303 and done.headers["location"] == f"/m/me/cases/{part_b}?done=resubmit"
    _, r = await citizen.get(f"/m/me/cases/{case_no}")
    assert f'id="correct-{part_b}"' not in r.text

    # the merged timeline names each step's part; the anonymous progress page shows the stages too
    _, progress = await citizen.post("/p", data={"case_no": case_no, "query_code": code})
    assert progress.status == 200
    assert 'id="stages"' in progress.text and "第 2 阶段：后续登记 办理中" in text_of(progress)
    assert '<span class="src">住房公积金单位缴存登记</span>' in progress.text
    assert f'href="/m/me/cases/{part_b}"' not in progress.text  # no applicant links for an anonymous reader

    for part, who in ((part_b, "fund"), (part_c, "tax")):
        await act(citizen, staff[who], part, "start_review")
        await act(citizen, staff[who], part, "approve")
    await act(citizen, staff["lead"], case_no, "deliver")
    await act(citizen, staff["lead"], case_no, "complete")
    _, r = await citizen.get(f"/m/me/cases/{case_no}")
    words = text_of(r)
    assert "已办结" in words and "第 2 阶段：后续登记 已完成" in words and 'id="holding"' not in r.text
    _, mine = await citizen.get("/m/me/cases")
    assert "共 1 件" in text_of(mine) and part_b not in mine.text  # the parts are not separate applications


async def test_anonymous_progress_without_sign_in_shows_the_bundle(citizen, staff):
    case_no, code = await apply(citizen)
    await act(citizen, staff["lead"], case_no, "accept")
    await citizen.post("/m/logout", data={"csrf": _csrf((await citizen.get("/m/me"))[1].text)})
    _, r = await citizen.post("/p", data={"case_no": case_no, "query_code": code})
    words = text_of(r)
    assert r.status == 200 and "第 1 阶段：设立登记 办理中" in words and f"{case_no}-01" in words
    assert '<span class="src">' in r.text and "营业执照" in words

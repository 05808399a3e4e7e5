"""Console administration pages: the catalogue (draft, diff, publish, retire), codes and halls."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile

import pytest

from app import clock
from app.matters import service
from tests import factories

LICENCE = "4308-XK-SS-001"
FOOD = "4308-XK-SS-002"


@pytest.fixture
async def catalogue(services):
    """The small catalogue, imported through the service."""
    await service.import_catalogue(services.catalogue, data=factories.small_catalogue())


async def sign_in(client, make_staff, role: str = "admin") -> None:
    """A console session: the staff access token in the console cookie."""
    _, headers = await make_staff(role)
    client.cookies.set("zd_st", headers["Authorization"].split(" ", 1)[1])


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def draft_form(html: str) -> dict[str, list[str] | str]:
    """The editor's fields as a browser would post them (repeated row names kept as lists)."""
    form = re.search(r'<form method="post" action="/console/matters/[^"]+/draft">(.*?)</form>', html, re.S).group(1)
    data: dict[str, list[str]] = {}
    for tag in re.finditer(r"<(input|textarea|select)\b([^>]*)>(.*?)(?=</textarea>|</select>|$)?", form, re.S):
        kind, attrs = tag.group(1), tag.group(2)
        name = re.search(r'name="([^"]+)"', attrs)
        if not name:
            continue
        if kind == "input":
            if 'type="checkbox"' in attrs and " checked" not in attrs:
                continue
            value = re.search(r'value="([^"]*)"', attrs)
            val = value.group(1) if value else ""
        elif kind == "textarea":
            val = form[tag.end(2) + 1 : form.index("</textarea>", tag.end(2))]
        else:
            body = form[tag.end(2) : form.index("</select>", tag.end(2))]
            chosen = re.search(r'<option value="([^"]*)" selected', body) or re.search(r'<option value="([^"]*)"', body)
            val = chosen.group(1)
        data.setdefault(name.group(1), []).append(_unescape(val))
    return {k: v[0] if len(v) == 1 else v for k, v in data.items()}


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


async def test_admin_edits_a_draft_sees_the_diff_publishes_and_the_public_guide_changes(client, make_staff, catalogue):
    await sign_in(client, make_staff)
    _, before = await client.get(f"/m/{LICENCE}")
    assert before.status == 200 and "凭此页面在窗口即办" not in before.text
    _, listing = await client.get("/console/matters?q=" + LICENCE)
    assert listing.status == 200 and f'href="/console/matters/{LICENCE}"' in listing.text
    _, editor = await client.get(f"/console/matters/{LICENCE}/draft")
    assert editor.status == 200
    data = draft_form(editor.text)
    data["summary"] = "凭此页面在窗口即办"
    names = data["m_name"]
    assert names[-1] == ""  # the empty row adds a material
    data["m_name"] = [*names[:-1], "授权委托书"]
    _, saved = await client.post(f"/console/matters/{LICENCE}/draft", data=data, follow_redirects=False)
    assert saved.status == 303, saved.text
    assert saved.headers["location"] == f"/console/matters/{LICENCE}/diff"
    _, diff = await client.get(f"/console/matters/{LICENCE}/diff")
    assert diff.status == 200
    assert 'data-field="summary"' in diff.text and "+ 新增：凭此页面在窗口即办" in diff.text
    assert '<span class="add-row">授权委托书</span>' in diff.text
    assert 'data-field="name"' not in diff.text  # unchanged fields are not listed
    no = re.search(r'name="no" value="(\d+)"', diff.text).group(1)
    # The draft is not public until published.
    _, still = await client.get(f"/m/{LICENCE}")
    assert "凭此页面在窗口即办" not in still.text
    _, done = await client.post(f"/console/matters/{LICENCE}/publish", data={"csrf": csrf(diff.text), "no": no},
                                follow_redirects=False)  # fmt: skip
    assert done.status == 303 and done.headers["location"] == f"/console/matters/{LICENCE}?done=published"
    _, after = await client.get(f"/m/{LICENCE}")
    assert "凭此页面在窗口即办" in after.text and "授权委托书" in after.text
    _, api = await client.get(f"/api/v1/matters/{LICENCE}")
    assert api.json["version"] == int(no)


async def test_a_field_error_is_shown_next_to_its_field_and_nothing_is_saved(client, make_staff, catalogue):
    await sign_in(client, make_staff)
    _, editor = await client.get(f"/console/matters/{LICENCE}/draft")
    data = draft_form(editor.text)
    data.update(promised_limit_days="abc", consult_phone="1", name="新名称")
    _, bad = await client.post(f"/console/matters/{LICENCE}/draft", data=data)
    assert bad.status == 422
    assert 'id="promised_limit_days-err"' in bad.text and 'aria-describedby="promised_limit_days-err"' in bad.text
    assert 'id="consult_phone-err"' in bad.text
    assert 'value="新名称"' in bad.text and 'value="abc"' in bad.text  # what was typed stays
    # A rule across fields (the promise over the legal limit) is said at the top of the form.
    data.update(promised_limit_days="300", legal_limit_days="20", consult_phone="0744-1234567")
    _, rule = await client.post(f"/console/matters/{LICENCE}/draft", data=data)
    assert rule.status == 422 and "承诺时限不得超过法定时限" in rule.text
    data.update(advanced="[1,")
    _, js = await client.post(f"/console/matters/{LICENCE}/draft", data=data)
    assert js.status == 422 and 'id="advanced-err"' in js.text
    _, versions = await client.get(f"/console/matters/{LICENCE}")
    assert "草稿</th><td>无" in versions.text


async def test_retire_with_a_successor_and_a_bad_successor_is_refused(client, make_staff, catalogue):
    await sign_in(client, make_staff)
    _, page = await client.get(f"/console/matters/{LICENCE}")
    assert f'<option value="{FOOD}">' in page.text
    _, bad = await client.post(f"/console/matters/{LICENCE}/retire", data={"csrf": csrf(page.text),
                                                                         "successor": LICENCE})  # fmt: skip
    assert bad.status == 422 and 'id="successor-err"' in bad.text
    form = {"csrf": csrf(page.text), "successor": FOOD}
    _, done = await client.post(f"/console/matters/{LICENCE}/retire", data=form, follow_redirects=False)
    assert done.status == 303
    _, guide = await client.get(f"/api/v1/matters/{LICENCE}")
    assert guide.json["status"] == "retired" and guide.json["successor"]["code"] == FOOD
    _, retired = await client.get("/console/matters?status=retired")
    assert LICENCE in retired.text and FOOD not in retired.text


@pytest.mark.parametrize("role", ["reviewer", "clerk"])
@pytest.mark.parametrize(
    "path", ["/console/matters", f"/console/matters/{LICENCE}", f"/console/matters/{LICENCE}/draft",
             f"/console/matters/{LICENCE}/diff"],
)  # fmt: skip
async def test_other_roles_are_refused(client, make_staff, catalogue, role, path):
    await sign_in(client, make_staff, role)
    _, resp = await client.get(path)
    assert resp.status == 403 and "CONSOLE_ROLE_FORBIDDEN" in resp.text


# ---------------------------------------------------------------- codes


async def _a_code(client) -> tuple[str, str]:
    """Issue a code through the console page; (slug, the page's form token)."""
    _, listing = await client.get("/console/codes")
    assert listing.status == 200
    form = {"csrf": csrf(listing.text), "matter_code": LICENCE, "action": "guide", "label": "一楼东侧", "hall": "main",
            "valid_since": "", "valid_until": "", "max_scans": ""}  # fmt: skip
    _, done = await client.post("/console/codes", data=form, follow_redirects=False)
    assert done.status == 303, done.text
    slug = done.headers["location"].split("/")[-1].split("?")[0]
    return slug, csrf(listing.text)


async def test_codes_issue_retarget_disable_limit_and_list_by_hall(client, make_staff, catalogue):
    await sign_in(client, make_staff)
    slug, token = await _a_code(client)
    _, page = await client.get(f"/console/codes/{slug}?done=issued")
    assert page.status == 200 and "一楼东侧" in page.text and "已签发" in page.text
    _, by_hall = await client.get("/console/codes?hall=main")
    assert f'href="/console/codes/{slug}"' in by_hall.text
    _, other_hall = await client.get("/console/codes?hall=gongjijin")
    assert f'href="/console/codes/{slug}"' not in other_hall.text
    retarget = {"csrf": token, "op": "target", "matter_code": FOOD, "action": "book"}
    _, moved = await client.post(f"/console/codes/{slug}", data=retarget, follow_redirects=False)
    assert moved.status == 303
    _, resolved = await client.get(f"/api/v1/codes/{slug}")
    assert resolved.json["matter"]["code"] == FOOD and resolved.json["target"].endswith(f"/m/{FOOD}/book")
    _, limit = await client.post(f"/console/codes/{slug}", data={"csrf": token, "op": "limit", "max_scans": "0"})
    assert limit.status == 422 and 'id="max_scans-err"' in limit.text
    _, off = await client.post(f"/console/codes/{slug}", data={"csrf": token, "op": "status", "status": "disabled"},
                               follow_redirects=False)  # fmt: skip
    assert off.status == 303
    _, gone = await client.get(f"/api/v1/codes/{slug}")
    assert gone.status == 410 and gone.json["error"]["code"] == "CODE_DISABLED"


async def test_code_validity_that_already_ended_is_refused_on_the_page_and_in_the_api(
    client, make_staff, admin_headers, catalogue
):
    await sign_in(client, make_staff)
    slug, token = await _a_code(client)
    past = (clock.now() - dt.timedelta(hours=2)).astimezone(clock.SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    future = (clock.now() + dt.timedelta(days=3)).astimezone(clock.SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    form = {"csrf": token, "op": "validity", "valid_since": "", "valid_until": past}
    _, refused = await client.post(f"/console/codes/{slug}", data=form)
    assert refused.status == 422 and 'id="valid_until-err"' in refused.text and f'value="{past}"' in refused.text
    _, still = await client.get(f"/api/v1/codes/{slug}")
    assert still.status == 200
    _, api = await client.patch(f"/api/v1/admin/codes/{slug}", json={"valid_until": clock.iso(clock.now())},
                                headers=admin_headers)  # fmt: skip
    assert api.status == 422 and api.json["error"]["code"] == "CODE_VALIDITY_ENDED"
    _, issue = await client.post("/api/v1/admin/codes", headers=admin_headers,
                                 json={"matter_code": LICENCE, "valid_until": clock.iso(clock.now())})  # fmt: skip
    assert issue.status == 422 and issue.json["error"]["code"] == "CODE_VALIDITY_ENDED"
    _, ok = await client.post(f"/console/codes/{slug}", data={**form, "valid_until": future}, follow_redirects=False)
    assert ok.status == 303
    _, got = await client.get(f"/api/v1/admin/codes/{slug}", headers=admin_headers)
    assert got.json["valid_until"].startswith(future)


async def test_the_section_zip_downloads_with_the_console_session(client, make_staff, catalogue):
    await sign_in(client, make_staff)
    _, resp = await client.get("/console/codes/batch.zip?section=commercial")
    assert resp.status == 200 and resp.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(resp.content)).namelist()
    assert any(n.startswith(LICENCE) and n.endswith("-poster.svg") for n in names)


@pytest.mark.parametrize("role", ["reviewer", "clerk"])
async def test_other_roles_cannot_manage_codes(client, make_staff, catalogue, role):
    await sign_in(client, make_staff, role)
    for path in ("/console/codes", "/console/codes/batch.zip?section=commercial"):
        _, resp = await client.get(path)
        assert resp.status == 403


# ---------------------------------------------------------------- halls


def hall_form(html: str, action: str) -> dict[str, str]:
    """The single-valued fields of one of the hall page's forms, as shown."""
    form = re.search(rf'<form method="post" action="{re.escape(action)}">(.*?)</form>', html, re.S).group(1)
    data = {"csrf": csrf(html)}
    for tag in re.finditer(r"<input\b([^>]*)>", form):
        name, value = re.search(r'name="([^"]+)"', tag.group(1)), re.search(r'value="([^"]*)"', tag.group(1))
        if name and (' type="checkbox"' not in tag.group(1) or " checked" in tag.group(1)):
            data[name.group(1)] = _unescape(value.group(1) if value else "")
    return data


async def test_hall_schedule_edit_changes_the_matter_s_slots(client, make_staff, make_citizen, catalogue):
    await sign_in(client, make_staff)
    _, citizen = await make_citizen(loa=2)
    _, before = await client.get(f"/api/v1/matters/{LICENCE}/slots", headers=citizen)
    assert before.status == 200 and before.json["slot_minutes"] == 30
    _, page = await client.get("/console/halls/main")
    assert page.status == 200 and "09:00-12:00" in page.text
    data = hall_form(page.text, "/console/halls/main/schedule")
    data.update({f"hours_{d}": "08:30-10:30" for d in "1234567"})
    data.update(slot_minutes="60", cap_commercial="7")
    _, bad = await client.post("/console/halls/main/schedule", data={**data, "hours_3": "10:00-09:00"})
    assert bad.status == 422 and 'id="hours_3-err"' in bad.text and 'value="10:00-09:00"' in bad.text
    _, bad = await client.post("/console/halls/main/schedule", data={**data, "cap_tax": "-1"})
    assert bad.status == 422 and 'id="cap_tax-err"' in bad.text
    _, done = await client.post("/console/halls/main/schedule", data=data, follow_redirects=False)
    assert done.status == 303, done.text
    _, after = await client.get(f"/api/v1/matters/{LICENCE}/slots", headers=citizen)
    assert after.json["slot_minutes"] == 60 and after.json["items"]
    assert {s["starts_at"][11:16] for s in after.json["items"]} == {"08:30", "09:30"}
    assert {s["capacity"] for s in after.json["items"]} == {7}
    _, shown = await client.get("/console/halls/main")
    assert 'value="08:30-10:30"' in shown.text and 'name="cap_commercial" inputmode="numeric" value="7"' in shown.text


async def test_hall_closures_and_counters(client, make_staff, catalogue):
    await sign_in(client, make_staff)
    _, page = await client.get("/console/halls/main")
    token = csrf(page.text)
    day = (clock.today() + dt.timedelta(days=10)).isoformat()
    past = (clock.today() - dt.timedelta(days=1)).isoformat()
    _, bad = await client.post("/console/halls/main/closures", data={"csrf": token, "date": past, "reason": "x"})
    assert bad.status == 422 and 'id="date-err"' in bad.text
    _, ok = await client.post("/console/halls/main/closures", data={"csrf": token, "date": day, "reason": "设备检修"},
                              follow_redirects=False)  # fmt: skip
    assert ok.status == 303
    _, again = await client.post("/console/halls/main/closures", data={"csrf": token, "date": day, "reason": "x"})
    assert again.status == 409 and 'id="date-err"' in again.text
    _, shown = await client.get("/console/halls/main")
    assert "设备检修" in shown.text and f"/closures/{day}/remove" in shown.text
    _, gone = await client.post(f"/console/halls/main/closures/{day}/remove", data={"csrf": token},
                                follow_redirects=False)  # fmt: skip
    assert gone.status == 303
    _, shown = await client.get("/console/halls/main")
    assert "设备检修" not in shown.text

    counters = {"csrf": token, "c_code": ["A1", "B2", ""], "c_section": ["commercial", "tax", "general"],
                "c_name": ["商事 1 号", "税务 2 号", ""], "c_active": ["0", "2"]}  # fmt: skip
    _, saved = await client.post("/console/halls/main/counters", data=counters, follow_redirects=False)
    assert saved.status == 303
    _, listed = await client.get("/api/v1/admin/halls/main/counters",
                                 headers={"Authorization": "Bearer " + client.cookies["zd_st"]})  # fmt: skip
    items = {c["code"]: c for c in listed.json["items"]}
    assert items["A1"]["section"] == "commercial" and items["A1"]["active"] is True
    assert items["B2"]["section"] == "tax" and items["B2"]["active"] is False
    _, dup = await client.post("/console/halls/main/counters", data={**counters, "c_code": ["A1", "A1", ""]})
    assert dup.status == 422 and 'id="counters-err"' in dup.text
    _, bad = await client.post("/console/halls/main/counters", data={**counters, "c_code": ["A 1", "B2", ""]})
    assert bad.status == 422 and "第 1 行" in bad.text


@pytest.mark.parametrize("role", ["reviewer", "clerk"])
async def test_other_roles_cannot_edit_halls(client, make_staff, catalogue, role):
    await sign_in(client, make_staff, role)
    for path in ("/console/halls", "/console/halls/main"):
        _, resp = await client.get(path)
        assert resp.status == 403
    _, resp = await client.post("/console/halls/main/schedule", data={"csrf": "x"})
    assert resp.status == 403 and "CONSOLE_ROLE_FORBIDDEN" in resp.text


async def test_a_new_matter_s_draft_is_listed_unpublished_and_can_be_published_from_the_console(
    client, make_staff, admin_headers, catalogue
):
    content = dict(factories.small_catalogue()["matters"][0])
    content.pop("code")
    code = "4308-XK-SS-900"
    body = {"code": code, "content": {**content, "name": "新设事项", "section": "nowhere"}}
    _, created = await client.post("/api/v1/admin/matters", headers=admin_headers, json=body)
    assert created.status == 201
    await sign_in(client, make_staff)
    _, listing = await client.get("/console/matters?status=unpublished")
    assert listing.status == 200 and "新设事项" in listing.text and LICENCE not in listing.text
    _, diff = await client.get(f"/console/matters/{code}/diff")
    assert "尚未发布过" in diff.text and 'data-field="name"' in diff.text
    no = re.search(r'name="no" value="(\d+)"', diff.text).group(1)
    _, refused = await client.post(f"/console/matters/{code}/publish", data={"csrf": csrf(diff.text), "no": no})
    assert refused.status == 422 and "发布失败" in refused.text and "section" in refused.text
    _, editor = await client.get(f"/console/matters/{code}/draft")
    data = draft_form(editor.text)
    data["advanced"] = data["advanced"].replace('"nowhere"', '"commercial"')
    _, saved = await client.post(f"/console/matters/{code}/draft", data=data, follow_redirects=False)
    assert saved.status == 303, saved.text
    _, done = await client.post(f"/console/matters/{code}/publish", data={"csrf": csrf(diff.text), "no": no},
                                follow_redirects=False)  # fmt: skip
    assert done.status == 303
    _, public = await client.get(f"/m/{code}")
    assert public.status == 200 and "新设事项" in public.text
